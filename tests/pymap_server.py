"""A real pymap (PyPI, pure Python: a second IMAP implementation beside Dovecot) for the
tests: its maildir backend in a temp dir, users in its own passwd/shadow files, in the
foreground on a free loopback port.

pymap differs from Dovecot where it matters to the watcher: it has no NAMESPACE, its
PERMANENTFLAGS has no `\\*` (a keyword is answered OK and kept nowhere), and its IDLE is
its own code.
"""

from __future__ import annotations

import importlib.util
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.dovecot import PASSWORD, POOL, ImapServer
from tests.listening import wait_for_greeting


def available() -> str | None:
    """None when pymap can run here, else why not."""
    if importlib.util.find_spec("pymap") is None:
        return "pymap is not installed (pip install -e '.[test]')"
    return None


def _hashed(password: str) -> str:
    from pysasl.hashing import BuiltinHash  # pymap's own dependency: its default hash

    # Few rounds: the tests log in often, and the password is no secret.
    return BuiltinHash(rounds=1000).hash(password)


class Pymap(ImapServer):
    name = "pymap"
    idle_check = 2  # its IDLE may stay silent about another session's APPEND (imap_table)

    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="mailbot-pymap-"))
        self.proc: subprocess.Popen[bytes] | None = None
        hashed = _hashed(PASSWORD)
        users = [f"user{i}" for i in range(1, POOL + 1)]
        # passwd(5) and shadow(5) lines: the home field is the user's maildir, under root.
        (self.root / "pymap-etc-passwd").write_text("".join(f"{u}:::::{u}:\n" for u in users))
        (self.root / "pymap-etc-shadow").write_text("".join(f"{u}:{hashed}\n" for u in users))

    def start(self) -> None:
        assert self.proc is None
        with (self.root / "pymap.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", "from pymap.main import main; main()", "--host",
                 "127.0.0.1", "--port", str(self.port), "--no-tls", "maildir", str(self.root)],
                stdout=log, stderr=log, start_new_session=True)
        outcome = wait_for_greeting(self.proc, self.port, b"* OK", 20)
        if outcome == "listening":
            return
        if outcome == "exited":
            self.proc = None
            raise RuntimeError(f"pymap exited:\n{self.log()}")
        self.stop()
        raise RuntimeError(f"pymap did not start listening on {self.port}\n{self.log()}")

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        path = self.root / "pymap.log"
        return path.read_text(errors="replace") if path.exists() else ""
