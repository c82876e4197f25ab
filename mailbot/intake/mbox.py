"""`mailbot import PATH`: an mbox file or a Maildir through the same durable intake.

Idempotent: a mail already stored (same bytes) is recognised by digest and skipped.
"""

from __future__ import annotations

import mailbox
from collections.abc import Iterator
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses
from pathlib import Path

from mailbot.clock import Clock
from mailbot.config import Config, InboxConfig
from mailbot.errors import MailbotError
from mailbot.intake.durable import Delivery, accept_many
from mailbot.mail.parse import header_block
from mailbot.store import Store

BATCH = 500


@dataclass(frozen=True, slots=True)
class ImportResult:
    stored: int
    duplicates: int


def _addressed_inbox(config: Config, raw: bytes) -> InboxConfig | None:
    """The inbox the mail was delivered or addressed to, from its headers."""
    try:
        # The header block only: the body can be megabytes.
        headers = BytesHeaderParser(policy=compat32).parsebytes(header_block(raw))
        values = [str(v) for name in ("Delivered-To", "X-Original-To", "To", "Cc")
                  for v in headers.get_all(name, [])]
    except Exception:  # a header block too broken to read: the default inbox takes it
        return None
    for _, address in getaddresses(values):
        found = config.inbox_for(address)
        if found is not None:
            return found
    return None


def source_problem(path: Path) -> str | None:
    """Why `path` is neither an mbox file nor a Maildir, in words; None when it is one."""
    if path.is_dir():
        missing = [d for d in ("cur", "new", "tmp") if not (path / d).is_dir()]
        if missing:
            return f"{path}: not a Maildir (no {', '.join(d + '/' for d in missing)} in it)"
        return None
    if not path.exists():
        return f"{path}: no such file or directory"
    if not path.is_file():
        return f"{path}: neither an mbox file nor a Maildir"
    try:
        with path.open("rb") as f:
            start = f.read(5)
    except OSError as e:
        return f"{path}: cannot read: {(e.strerror or str(e)).lower()}"
    if start and start != b"From ":  # an empty file is an empty mbox
        return f"{path}: neither an mbox file (it does not start with 'From ') nor a Maildir"
    return None


def read_mails(path: Path) -> Iterator[bytes]:
    if problem := source_problem(path):
        raise MailbotError(problem)
    if path.is_dir():
        box: mailbox.Mailbox[mailbox.Message] = mailbox.Maildir(path, factory=None, create=False)
    else:
        box = mailbox.mbox(path, factory=None, create=False)
    try:
        for key in box.iterkeys():
            yield box.get_bytes(key)
    finally:
        box.close()


async def import_path(
    store: Store, config: Config, path: Path, clock: Clock, inbox: str | None = None
) -> ImportResult:
    target = config.inbox(inbox) if inbox else config.inboxes[0]
    stored = duplicates = 0
    batch: list[Delivery] = []

    async def flush() -> None:
        nonlocal stored, duplicates
        for a in await accept_many(store, batch, clock):
            stored += a.new
            duplicates += not a.new
        batch.clear()

    for raw in read_mails(path):
        found = target if inbox else _addressed_inbox(config, raw) or target
        batch.append(Delivery(raw=raw, source="import", inbox=found.name,
                              rcpt_to=[found.address], peer=str(path)))
        if len(batch) >= BATCH:
            await flush()
    if batch:
        await flush()
    return ImportResult(stored, duplicates)
