"""Leave gpg-agent as the command found it: one a CLI command started is stopped at its end.

gpg starts an agent on demand (key generation, signing, decryption) and leaves it running
after the command is done; an operator who ran `mailbot key generate` once should not find
a daemon left behind. An agent that was already running (the daemon's) is left alone.
Blocking (gpgconf): called before and after `asyncio.run`, never on the event loop.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path


def _socket(home: Path) -> Path | None:
    """Where the agent of this home listens; None when gpgconf cannot say."""
    if shutil.which("gpgconf") is None or not home.is_dir():
        return None
    try:
        out = subprocess.run(["gpgconf", "--homedir", str(home), "--list-dirs", "agent-socket"],
                             capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return Path(out.stdout.strip()) if out.returncode == 0 and out.stdout.strip() else None


def running(home: Path) -> bool:
    sock = _socket(home)
    return sock is not None and sock.exists()


def stop(home: Path) -> None:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"],
                       capture_output=True, timeout=10, check=False)


@contextlib.contextmanager
def as_found(home: Path) -> Iterator[None]:
    """Stop the agent of `home` at the end unless one was running at the start."""
    before = running(home)
    try:
        yield
    finally:
        if not before and running(home):
            stop(home)
