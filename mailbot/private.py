"""Files and directories that only the bot's own user can read, whatever the umask.

What mailbot keeps holds case text, reporters' addresses and staff reply tokens, so each
file is made 0600 and each directory it makes 0700. Directories that already exist are
the operator's and are left as they are.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700


def make_dirs(path: Path) -> None:
    """`path` and every missing parent, each created 0700 (mkdir's `mode` is cut by the
    umask, and `parents=True` ignores it for the parents)."""
    missing: list[Path] = []
    while not path.exists():
        missing.append(path)
        if path.parent == path:
            break
        path = path.parent
    for p in reversed(missing):
        with contextlib.suppress(FileExistsError):  # made meanwhile by another process
            p.mkdir(mode=DIR_MODE)
            os.chmod(p, DIR_MODE)


def tighten(path: Path) -> None:
    """A file of ours readable by others (made by an older version, or under a looser
    umask) is made 0600; absent files, files of another owner and files on a read-only
    file system are left alone."""
    with contextlib.suppress(OSError):
        if os.stat(path).st_mode & 0o077:
            os.chmod(path, FILE_MODE)


def create_file(path: Path) -> None:
    """An empty 0600 file at `path` unless one is there (then it is tightened)."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    except FileExistsError:
        tighten(path)
