"""`mailbot attachments`: the attachments of a case's stored raw mail, written out whole.

A notification that could not carry an attachment names this command. The bytes come from
the raw mail as it was received (decrypted with the inbox key when it was encrypted), not
from what parse kept in memory. File names come from the sender: only their last path
component is used, control characters and leading dots are dropped, and an existing file
is never overwritten or followed through a symlink; files are 0600, a new directory 0700.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from mailbot.mail.attachments import extract
from mailbot.models import Attachment
from mailbot.triage.crypto import Crypto

_UNSAFE = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\x85]")


@dataclass(frozen=True, slots=True)
class Written:
    path: Path
    size: int


def attachments_of(crypto: Crypto, raw: bytes) -> tuple[Attachment, ...]:
    """Every attachment of a stored mail, whole; blocking (gpg, parsing): run in a thread."""
    opened, failure = crypto.open(raw)
    if failure:
        raise OSError(f"cannot open the stored mail: {failure}")
    return extract(opened.raw or raw)


def safe_name(name: str | None, n: int) -> str:
    """A file name of ours from the sender's: no directory, no control character, no
    leading dot; `attachment-N` when nothing is left."""
    base = _UNSAFE.sub("", (name or "").replace("\\", "/").rsplit("/", 1)[-1])
    base = base.strip().lstrip(".").strip()[:200]
    return base or f"attachment-{n}"


def write_all(attachments: tuple[Attachment, ...], directory: Path) -> list[Written]:
    """Write each attachment into `directory` (made 0700 if missing); blocking."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    written = []
    for n, a in enumerate(attachments, 1):
        path = _create(directory, safe_name(a.filename, n), a.data)
        written.append(Written(path, len(a.data)))
    return written


def _create(directory: Path, name: str, data: bytes) -> Path:
    stem, dot, suffix = name.rpartition(".")
    if not stem:
        stem, dot, suffix = name, "", ""
    for copy in range(1, 1000):
        candidate = name if copy == 1 else f"{stem} ({copy}){dot}{suffix}"
        path = directory / candidate
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            continue
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return path
    raise FileExistsError(f"{directory / name}: a thousand files of that name exist")
