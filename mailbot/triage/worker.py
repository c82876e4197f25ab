"""Take pending inbound rows in order and run each through the pipeline.

The pipeline quarantines a mail that raises. Should something still escape it for a batch,
the batch is handled again mail by mail, and a mail that raises even then is quarantined
here, with its id in the log once: no single mail stops the worker.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable

from mailbot.clock import iso
from mailbot.errors import TransientError
from mailbot.models import InboundStatus
from mailbot.store import Store
from mailbot.store import inbound as inbound_q
from mailbot.store.inbound import InboundRow
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


class Worker:
    def __init__(
        self, pipeline: Pipeline, store: Store, on_queued: Callable[[], None] = lambda: None,
        idle_poll: float = 5.0,
    ) -> None:
        self.pipeline = pipeline
        self.store = store
        self.on_queued = on_queued
        self.idle_poll = idle_poll  # also picks up rows a concurrent `mailbot import` stored
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def drain(self, stop: asyncio.Event | None = None) -> list[Outcome]:
        """Process every pending row (including those a crash left behind)."""
        outcomes: list[Outcome] = []
        last = 0
        while stop is None or not stop.is_set():
            async with self.store.read() as db:
                rows = await inbound_q.pending(db, after=last, limit=BATCH,
                                              max_bytes=BATCH_BYTES)
            if not rows:
                break
            async with self.store.read() as db:
                rows += await inbound_q.rest_of_delivery(db, rows[-1])
            try:
                done = await self._batch(rows, stop)
            except TransientError:
                raise
            except Exception:
                log.warning("worker: a batch of %d from inbound %d raised; taking them one"
                            " by one", len(rows), rows[0].id)
                done = [await self._one(row) for row in rows]
            if done is None:
                break
            last = rows[-1].id
            outcomes.extend(done)
            if any(o.queued for o in done):
                self.on_queued()
        return outcomes

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
