"""Holding what several instances share: claims kept alive while their work runs, and named
leases (the scheduler's leader, each watched IMAP folder).

Lengths: a claim lasts CLAIM and is renewed every quarter of it while its work runs, so
only a dead instance's claims lapse, and they come back to the others within CLAIM. A lease
lasts LEASE and its holder renews it every RENEW_EVERY; another instance tries as often, so
a dead holder is replaced at most LEASE + RENEW_EVERY (one minute) after its last renewal,
and at the next try once it is known gone (store/claims.py, `absent`).
Moments come from the injected clock; instances compare each other's moments, so their
hosts' clocks must agree (NTP) to well within these lengths.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path

from mailbot.clock import Clock, iso
from mailbot.errors import TransientError
from mailbot.store import Db, Store
from mailbot.store import claims as claims_q
from mailbot.store import leases as leases_q
from mailbot.store.migrate import Migration

log = logging.getLogger(__name__)

CLAIM = timedelta(seconds=120)
LEASE = timedelta(seconds=45)
RENEW_EVERY = 15.0  # seconds


class LeaseLost(TransientError):
    """Another instance holds the lease this work needs: the work is rolled back."""


@asynccontextmanager
async def kept(store: Store, table: claims_q.Table, ids: list[int], clock: Clock,
               length: timedelta = CLAIM) -> AsyncIterator[None]:
    """Renew this instance's claims on `ids` while the block runs (a slow batch, a slow
    relay), so that they lapse only when the instance is gone."""
    async def renew() -> None:
        while True:
            await asyncio.sleep(length.total_seconds() / 4)
            try:
                async with store.statement() as db:
                    await claims_q.renew(db, table, store.instance, ids, iso(clock() + length))
            except TransientError as e:  # the work's own writes will meet it too
                log.warning("%s: cannot renew claims on %d rows: %s", table, len(ids), e)

    task = asyncio.create_task(renew(), name=f"renew-{table}-claims")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class Lease:
    """A named lease as this instance sees it: `hold` takes or renews it, `held` says
    whether it was held at the last look."""

    def __init__(self, store: Store, name: str, clock: Clock, length: timedelta = LEASE,
                 holder: str | None = None) -> None:
        self.store = store
        self.name = name
        self.clock = clock
        self.length = length
        self.holder = holder or store.instance
        self.held = False
        self._until: datetime | None = None  # when our last renewal lapses

    async def hold(self) -> bool:
        """Take the lease, or renew it while ours; whether this instance holds it now. A
        database that does not answer keeps a held lease only until it lapses."""
        now = self.clock()
        until = now + self.length
        try:
            took = await self._take(now, until)
        except TransientError as e:
            log.warning("lease %s: %s", self.name, e)
            took = self._until is not None and now < self._until
            self._changed(took)
            return took
        if took:
            self._until = until
        self._changed(took)
        return took

    async def _take(self, now: datetime, until: datetime) -> bool:
        async with self.store.statement() as db:
            if await leases_q.take(db, self.name, self.holder, iso(now), iso(until)):
                return True
        # A holder that is gone (a crash; claims_q.absent) need not be waited for.
        async with self.store.read() as db:
            current = await leases_q.holder(db, self.name)
            if current is None or not await claims_q.absent(db, [current[0]]):
                return False
        async with self.store.statement() as db:
            return await leases_q.take_from(db, self.name, self.holder, current[0], iso(until))

    def _changed(self, held: bool) -> None:
        if held and not self.held:
            log.info("lease %s: taken by this instance (%s)", self.name, self.holder)
        elif self.held and not held:
            log.warning("lease %s: lost; another instance holds it now", self.name)
        self.held = held

    async def release(self) -> None:
        """Give it up (a clean stop), so another instance need not wait for it to lapse."""
        if not self.held:
            return
        self.held = False
        self._until = None
        try:
            async with self.store.statement() as db:
                await leases_q.release(db, self.name, self.holder)
        except TransientError as e:
            log.warning("lease %s: cannot release: %s; it lapses by itself", self.name, e)

    async def check(self, db: Db) -> None:
        """Inside a write transaction: raise LeaseLost unless this instance still holds
        the lease (renewed by the check; on PostgreSQL locked until the transaction ends)."""
        until = self.clock() + self.length
        if not await leases_q.fence(db, self.name, self.holder, iso(until)):
            self._changed(False)
            raise LeaseLost(f"lease {self.name}: another instance holds it now")
        self._until = until

    def fenced(self) -> Store:
        """The store as this lease's work must see it: every write transaction checks the
        lease first (`check`)."""
        return Fenced(self.store, self)


class Fenced(Store):
    """A store whose write transactions belong to a lease's holder: each begins with the
    lease's `check`, so work of an instance that lost the lease is rolled back instead of
    overlapping with the new holder's."""

    def __init__(self, store: Store, lease: Lease) -> None:
        self.inner = store
        self.lease = lease
        self.dialect = store.dialect
        self.path: Path | None = store.path

    @asynccontextmanager
    async def write(self, *, durable: bool = False) -> AsyncIterator[Db]:
        async with self.inner.write(durable=durable) as db:
            await self.lease.check(db)
            yield db

    def statement(self) -> AbstractAsyncContextManager[Db]:
        return self.inner.statement()

    def read(self) -> AbstractAsyncContextManager[Db]:
        return self.inner.read()

    def side_read(self) -> AbstractAsyncContextManager[Db]:
        return self.inner.side_read()

    async def migrate(self) -> list[Migration]:
        return await self.inner.migrate()

    async def close(self) -> None:
        await self.inner.close()

    async def write_problem(self, timeout: float) -> str | None:
        return await self.inner.write_problem(timeout)

    async def compact(self) -> None:
        await self.inner.compact()

    @property
    def intake_waiting(self) -> bool:
        return self.inner.intake_waiting
