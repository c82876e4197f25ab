"""The one way raw mail enters the database, shared by every source.

A source calls `accept` and acknowledges its sender only after it returns: the row is
committed (synchronous=FULL) by then. A redelivery of the same bytes is recognised by
digest (or by the source's own reference, e.g. an IMAP UID) and stored once.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from mailbot.clock import Clock, iso
from mailbot.store import Store
from mailbot.store import inbound as inbound_q

_HEADER_END = re.compile(rb"\r?\n\r?\n")
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


@dataclass(frozen=True, slots=True)
class Accepted:
    inbound_id: int
    new: bool


def message_id_of(raw: bytes) -> str | None:
    """The Message-ID from the header block, cheaply (the full parse comes later)."""
    m = _HEADER_END.search(raw)
    head = raw[: m.start()] if m else raw[:65536]
    found = _MESSAGE_ID.search(head)
    return found.group(1).decode("ascii", "replace") if found else None


async def accept(store: Store, delivery: Delivery, clock: Clock) -> Accepted:
    return (await accept_many(store, [delivery], clock))[0]


async def accept_many(store: Store, deliveries: Iterable[Delivery], clock: Clock) -> list[Accepted]:
    """Store deliveries in one transaction (an mbox import commits in batches)."""
    at = iso(clock())
    out = []
    async with store.write() as db:
        for d in deliveries:
            inbound_id, new = await inbound_q.insert(
                db, received_at=at, source=d.source, source_ref=d.source_ref, peer=d.peer,
                mail_from=d.mail_from, rcpt_to=d.rcpt_to, inbox=d.inbox,
                message_id=message_id_of(d.raw), digest=hashlib.sha256(d.raw).hexdigest(),
                raw=d.raw,
            )
            out.append(Accepted(inbound_id, new))
    return out
