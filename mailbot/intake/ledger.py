"""The IMAP watchers' way into the database. Its coroutines run on the event loop; a
watcher thread calls them through `call`, which blocks that thread (never the loop).

`take` is the exactly-once step: the raw mail and its (mailbox, UIDVALIDITY, UID) commit
together, durably, before the server is told anything. A mail renumbered by a UIDVALIDITY
change is recognised by its digest (the same bytes) or its Message-ID (taken from this
folder before), and recorded against the inbound row it already has.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

from mailbot.clock import Clock, iso
from mailbot.config import ImapConfig, InboxConfig
from mailbot.errors import StoreBusy
from mailbot.intake.durable import Delivery, insert_all, message_id_of
from mailbot.leasing import Lease
from mailbot.models import InboundStatus
from mailbot.store import Store
from mailbot.store import imap as imap_q
from mailbot.store import inbound as inbound_q

log = logging.getLogger(__name__)
T = TypeVar("T")
CALL_TIMEOUT = 120.0  # a durable commit of one batch; the watcher reconnects when it expires


class Ledger:
    def __init__(self, store: Store, clock: Clock, on_stored: Callable[[], None],
                 loop: asyncio.AbstractEventLoop) -> None:
        self.store = store
        self.clock = clock
        self.on_stored = on_stored
        self.loop = loop
        self.closed = False

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the loop and wait for it: for watcher threads only."""
        if self.closed:
            coro.close()
            raise StoreBusy("the daemon is stopping")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(CALL_TIMEOUT)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise StoreBusy(f"database did not answer within {CALL_TIMEOUT:g}s") from None

    async def resume(self, mailbox: str) -> imap_q.Resume:
        async with self.store.read() as db:
            return await imap_q.resume(db, mailbox)

    async def new_generation(self, inbox: InboxConfig, imap: ImapConfig, uidvalidity: int,
                             resync_below: int, lease: Lease | None = None) -> None:
        async with self.store.write() as db:
            if lease is not None:
                await lease.check(db)
            await imap_q.new_generation(db, imap.mailbox, inbox.name, uidvalidity,
                                        resync_below, iso(self.clock()))

    async def take(self, inbox: InboxConfig, imap: ImapConfig, uidvalidity: int,
                   resync_below: int, fetched: Sequence[tuple[int, bytes]],
                   lease: Lease | None = None) -> int:
        """Store fetched (uid, raw) mail and its UIDs in one durable commit; the count new.
        With the folder's `lease`: only while this instance holds it (LeaseLost)."""
        mailbox = imap.mailbox
        fresh: list[tuple[int, str | None, Delivery]] = []
        known: list[tuple[int, str | None, int]] = []
        async with self.store.write(durable=True) as db:
            if lease is not None:
                await lease.check(db)
            for uid, raw in fetched:
                mid = message_id_of(raw)
                earlier = (await imap_q.taken_before(db, mailbox, uidvalidity, mid)
                           if mid and uid < resync_below else None)
                if earlier is not None:
                    known.append((uid, mid, earlier))
                    continue
                fresh.append((uid, mid, Delivery(
                    raw=raw, source="imap", inbox=inbox.name, rcpt_to=[inbox.address],
                    peer=f"{imap.host}:{imap.port}",
                    source_ref=f"imap:{mailbox}:{uidvalidity}:{uid}")))
            accepted = await insert_all(db, [d for _, _, d in fresh], iso(self.clock()))
            rows = [(uid, mid, a.inbound_id)
                    for (uid, mid, _), a in zip(fresh, accepted, strict=True)]
            await imap_q.taken(db, mailbox, uidvalidity, rows + known)
        for (uid, mid, _), a in zip(fresh, accepted, strict=True):
            if a.new:
                log.info("imap %s: UID %d stored as inbound %d (Message-ID %s)",
                         mailbox, uid, a.inbound_id, mid)
            else:
                log.info("imap %s: UID %d is inbound %d again (same bytes)",
                         mailbox, uid, a.inbound_id)
        for uid, mid, inbound_id in known:
            log.info("imap %s: UID %d is inbound %d again (Message-ID %s, before UIDVALIDITY"
                     " %d)", mailbox, uid, inbound_id, mid, uidvalidity)
        new = sum(a.new for a in accepted)
        if new:
            self.on_stored()
        return new

    async def unreadable(self, inbox: InboxConfig, imap: ImapConfig, uidvalidity: int, uid: int,
                         reason: str, lease: Lease | None = None) -> int:
        """A message that could not be taken: a quarantined inbound row with no bytes and
        the reason, recorded as taken and marked so the folder goes on past it (the server
        is told nothing: the message stays there for a human). Its inbound id."""
        mailbox, now = imap.mailbox, iso(self.clock())
        ref = f"imap:{mailbox}:{uidvalidity}:{uid}"
        async with self.store.write(durable=True) as db:
            if lease is not None:
                await lease.check(db)
            inbound_id, _ = await inbound_q.insert(
                db, received_at=now, source="imap", source_ref=ref,
                peer=f"{imap.host}:{imap.port}", mail_from=None, rcpt_to=[inbox.address],
                inbox=inbox.name, message_id=None,
                digest=hashlib.sha256(f"unreadable {ref}".encode()).hexdigest(), raw=b"")
            await inbound_q.finish(
                db, inbound_id, status=InboundStatus.QUARANTINED, at=now,
                reason=f"IMAP UID {uid} of {mailbox} could not be taken ({reason}); it is"
                       " still on the server, unmarked")
            await imap_q.taken(db, mailbox, uidvalidity, [(uid, None, inbound_id)])
            await imap_q.marked(db, mailbox, uidvalidity, [uid])
        return inbound_id

    async def marked(self, mailbox: str, uidvalidity: int, uids: Sequence[int]) -> None:
        async with self.store.write() as db:
            await imap_q.marked(db, mailbox, uidvalidity, uids)

    async def report(self, inbox: InboxConfig, imap: ImapConfig, state: str,
                     error: str | None, failures: int) -> None:
        async with self.store.write() as db:
            await imap_q.set_state(db, imap.mailbox, inbox.name, state, error, failures,
                                   iso(self.clock()))

    async def mode(self, imap: ImapConfig, mode: str, warnings: Sequence[str]) -> None:
        async with self.store.write() as db:
            await imap_q.set_mode(db, imap.mailbox, mode, warnings)
