"""The one way raw mail enters the database, shared by every source.

A source calls `accept_many` (or `GroupCommit.accept`) and acknowledges its sender only
after it returns: the row is committed (synchronous=FULL) by then. A redelivery of the same
bytes is recognised by digest (or by the source's own reference, e.g. an IMAP UID) and
stored once.

One delivery addressed to several inboxes (security@ and support@ in one transaction) is one
row per inbox, each to be decided on its own; the first holds the bytes, the others name it.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from mailbot.clock import Clock, iso
from mailbot.errors import StoreBusy
from mailbot.mail.parse import header_block
from mailbot.store import Db, Store
from mailbot.store import inbound as inbound_q

BATCH = 64  # deliveries per commit at most
_MESSAGE_ID = re.compile(rb"^message-id:[ \t]*(<[^>\r\n]{1,900}>)", re.I | re.M)


@dataclass(frozen=True, slots=True)
class Delivery:
    raw: bytes
    source: str  # smtp | lmtp | imap | import
    inbox: str
    rcpt_to: Sequence[str]
    mail_from: str | None = None
    peer: str | None = None
    source_ref: str | None = None
    also: Sequence[str] = ()  # the other inboxes it was addressed to, each gets a row


@dataclass(frozen=True, slots=True)
class Accepted:
    inbound_id: int
    new: bool
    rows: Mapping[str, int] = field(default_factory=dict)  # inbox name -> its inbound row

    def row_for(self, inbox: str) -> int:
        return self.rows.get(inbox, self.inbound_id)


def message_id_of(raw: bytes) -> str | None:
    """The Message-ID from the header block, cheaply (the full parse comes later)."""
    found = _MESSAGE_ID.search(header_block(raw))
    return found.group(1).decode("ascii", "replace") if found else None


async def accept_many(store: Store, deliveries: Iterable[Delivery], clock: Clock) -> list[Accepted]:
    """Store deliveries in one transaction (an mbox import commits in batches)."""
    async with store.write(durable=True) as db:
        return await insert_all(db, deliveries, iso(clock()))


async def insert_all(db: Db, deliveries: Iterable[Delivery], at: str) -> list[Accepted]:
    """The inserts of `accept_many`, inside a durable transaction the caller holds (a source
    that records its own bookkeeping in the same commit, as the IMAP watcher does)."""
    out = []
    for d in deliveries:
        digest, message_id = hashlib.sha256(d.raw).hexdigest(), message_id_of(d.raw)
        inbound_id, new = await inbound_q.insert(
            db, received_at=at, source=d.source, source_ref=d.source_ref, peer=d.peer,
            mail_from=d.mail_from, rcpt_to=d.rcpt_to, inbox=d.inbox,
            message_id=message_id, digest=digest, raw=d.raw,
        )
        rows = {d.inbox: inbound_id}
        for inbox in dict.fromkeys(d.also):
            if inbox in rows:
                continue
            # Its own digest: a redelivery of the same bytes to the same inboxes is
            # recognised per inbox, like the first row.
            rows[inbox], fresh = await inbound_q.insert(
                db, received_at=at, source=d.source, source_ref=None, peer=d.peer,
                mail_from=d.mail_from, rcpt_to=d.rcpt_to, inbox=inbox,
                message_id=message_id, digest=f"{digest}:{inbox}", raw=d.raw,
                raw_of=inbound_id,
            )
            new = new or fresh
        out.append(Accepted(inbound_id, new, rows))
    return out


class GroupCommit:
    """Concurrent deliveries share one durable commit (one fsync for all of them).

    Each caller still returns only after its own mail is committed. The commit runs in a
    task of its own, so a client that hangs up mid-commit cannot cancel it for the others.
    """

    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self._waiting: list[tuple[Delivery, asyncio.Future[Accepted]]] = []
        self._task: asyncio.Task[None] | None = None

    async def accept(self, delivery: Delivery) -> Accepted:
        future: asyncio.Future[Accepted] = asyncio.get_running_loop().create_future()
        self._waiting.append((delivery, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._commit_all(), name="intake-commit")
        return await asyncio.shield(future)

    async def _commit_all(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[:BATCH], self._waiting[BATCH:]
            try:
                results = await accept_many(self.store, [d for d, _ in batch], self.clock)
            except BaseException as e:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(e if isinstance(e, Exception) else StoreBusy(str(e)))
                if not isinstance(e, Exception):
                    raise
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
