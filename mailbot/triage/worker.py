"""Claim pending inbound rows in order and run each through the pipeline.

Rows are claimed (store/claims.py) a batch at a time, so that several instances sharing
one database never process the same mail: a claim lasts leasing.CLAIM and is renewed while
its batch runs; processing a row ends its claim; a crashed instance's claims lapse and
another instance takes the rows. Mail that answers mail another instance still holds waits
for it (triage/order.py), a bounded time, then goes back to the queue.

The pipeline quarantines a mail that raises. Should something still escape it for a batch,
the batch is handled again mail by mail, and a mail that raises even then is quarantined
here, with its id in the log once: no single mail stops the worker.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable

from mailbot import leasing
from mailbot.clock import iso
from mailbot.errors import TransientError
from mailbot.models import InboundStatus
from mailbot.store import Store
from mailbot.store import claims as claims_q
from mailbot.store import inbound as inbound_q
from mailbot.store.inbound import InboundRow
from mailbot.triage import order
from mailbot.triage.pipeline import Outcome, Pipeline
from mailbot.waiting import wait_any

log = logging.getLogger(__name__)

# Test-only: a worker that never starts, so a crash test can kill the daemon between
# intake and processing.
PAUSE_ENV = "MAILBOT_TEST_PAUSE_WORKER"
BATCH = 20  # rows per batch: one transaction for all (pipeline.process_batch) under load
# Raw bytes per batch at most (one mail when it is larger): 20 mails of 20 MB at once cost
# over a gigabyte in the parser.
BATCH_BYTES = 16 * 1024 * 1024
# How long a claimed mail waits for the mail it answers, held by another instance, before
# it goes back to the queue (that instance's batch takes a second or two).
ORDER_WAIT = 10.0


class Worker:
    def __init__(
        self, pipeline: Pipeline, store: Store, on_queued: Callable[[], None] = lambda: None,
        idle_poll: float = 5.0, order_wait: float = ORDER_WAIT,
    ) -> None:
        self.pipeline = pipeline
        self.store = store
        self.on_queued = on_queued
        self.idle_poll = idle_poll  # also picks up rows a concurrent `mailbot import` stored
        self.order_wait = order_wait
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def drain(self, stop: asyncio.Event | None = None) -> list[Outcome]:
        """Process every pending row this instance can claim (including those a crash left
        behind, once their claims lapsed)."""
        outcomes: list[Outcome] = []
        last = 0
        while stop is None or not stop.is_set():
            rows, top = await self._claim(last)
            if not top:
                break
            last = top
            async with leasing.kept(self.store, "inbound", [r.id for r in rows],
                                    self.pipeline.clock):
                rows = await self._in_order(rows, stop)
                if not rows:
                    continue
                try:
                    done = await self._batch(rows, stop)
                except TransientError:
                    raise
                except Exception:
                    log.warning("worker: a batch of %d from inbound %d raised; taking them"
                                " one by one", len(rows), rows[0].id)
                    done = [await self._one(row) for row in rows]
            if done is None:
                await self._release([r.id for r in rows])  # stopping: another may take them
                break
            outcomes.extend(done)
            if any(o.queued for o in done):
                self.on_queued()
        return outcomes

    async def _claim(self, after: int) -> tuple[list[InboundRow], int]:
        """Claim the next batch after the id `after`: (its pending rows, the highest id
        claimed, 0 when none was)."""
        me, now = self.store.instance, self.pipeline.clock()
        if not after:  # claims of an instance that is gone (a crash) need not lapse first
            async with self.store.read() as db:
                dead = await claims_q.absent(db, await claims_q.holders(db, "inbound", me))
            if dead:
                log.info("worker: freeing the claims of %s, gone", ", ".join(dead))
                async with self.store.write() as db:
                    await claims_q.release_holders(db, "inbound", dead)
        async with self.store.read() as db:  # an idle look takes no write lock
            if not await claims_q.inbound_waiting(db, me, iso(now), after):
                return [], 0
        async with self.store.write() as db:
            ids = await claims_q.claim_inbound(
                db, me, iso(now), iso(now + leasing.CLAIM), after=after, limit=BATCH,
                max_bytes=BATCH_BYTES)
        if not ids:
            return [], 0
        async with self.store.read() as db:
            return await inbound_q.claimed(db, ids), max(ids)

    async def _in_order(self, rows: list[InboundRow], stop: asyncio.Event | None
                        ) -> list[InboundRow]:
        """The rows that may go now (triage/order.py): those that answer mail another
        instance holds wait for it, polling the database, up to `order_wait` seconds; then
        they are released to the queue and left out of this batch."""
        if not rows:
            return rows
        me, below = self.store.instance, max(r.id for r in rows)
        wanted = [mid for r in rows for mid in order.named(r.raw)[1]]
        deadline = time.monotonic() + self.order_wait
        pause = 0.05
        while True:
            async with self.store.read() as db:
                earlier = await claims_q.earlier_pending(db, me, below, wanted)
            waiting = order.waiting(rows, [(i, mid) for i, mid, _, _ in earlier])
            if not waiting:
                return rows
            now = iso(self.pipeline.clock())
            held = any(by is not None and until is not None and until > now
                       for _, _, by, until in earlier)
            if not held or time.monotonic() >= deadline or (stop is not None
                                                            and stop.is_set()):
                break
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.5)
        log.info("worker: inbound %s answer mail still pending before them (inbound %s);"
                 " back to the queue", ",".join(map(str, sorted(waiting))),
                 ",".join(str(i) for i, _, _, _ in earlier))
        await self._release(sorted(waiting))
        return [r for r in rows if r.id not in waiting]

    async def _release(self, ids: list[int]) -> None:
        async with self.store.statement() as db:
            await claims_q.release(db, "inbound", self.store.instance, ids)

    async def _batch(self, rows: list[InboundRow],
                     stop: asyncio.Event | None) -> list[Outcome] | None:
        # Parsing is pure and runs in a thread: a mail that takes long to parse never
        # stalls the listener on the event loop.
        prepared = await asyncio.to_thread(self.pipeline.parse_all, rows)
        if stop is not None and stop.is_set():
            return None
        return await self.pipeline.process_batch(list(zip(rows, prepared, strict=True)))

    async def _one(self, row: InboundRow) -> Outcome:
        """One mail on its own; one that raises past the pipeline's guard is quarantined."""
        try:
            return await self.pipeline.process(row)
        except TransientError:
            raise
        except Exception as e:
            log.exception("inbound %d: processing failed past the pipeline; quarantined",
                          row.id)
            reason = f"internal error: {type(e).__name__}: {e}"
            async with self.store.write() as db:
                await inbound_q.finish(db, row.id, status=InboundStatus.QUARANTINED,
                                       at=iso(self.pipeline.clock()), reason=reason)
            return Outcome(row.id, InboundStatus.QUARANTINED, reason=reason)

    async def run(self, stop: asyncio.Event) -> None:
        log.info("worker: instance %s", self.store.instance)
        if os.environ.get(PAUSE_ENV):
            log.warning("worker paused by %s", PAUSE_ENV)
            await stop.wait()
            return
        backoff = 1.0
        while not stop.is_set():
            self._wake.clear()
            try:
                await self.drain(stop)
                backoff = 1.0
            except TransientError as e:
                log.warning("worker: %s; retrying in %.0fs", e, backoff)
                await wait_any(stop, None, backoff)
                backoff = min(backoff * 2, 60.0)
                continue
            await wait_any(stop, self._wake, self.idle_poll)
