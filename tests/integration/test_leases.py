"""Leases: one holder at a time (the scheduler's leader, an IMAP folder), taken over when
the holder stops renewing; work fenced by a lease that was lost is rolled back. Moments
come from a fake clock, as in the code (no sleeping for a lease to lapse)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from mailbot import leasing
from mailbot.clock import iso
from mailbot.config import Config
from mailbot.intake.durable import Delivery, accept_many
from mailbot.jobs import schedule
from mailbot.store import Store
from mailbot.store import outbox as outbox_q
from mailbot.triage.pipeline import Pipeline
from mailbot.triage.worker import Worker
from tests.support import FRIDAY_EVENING, MovingClock, report


class Clock:
    """A clock that moves only when told."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


async def test_a_lease_goes_to_another_instance_when_its_holder_stops_renewing(
    two: tuple[Store, Store], other: str
) -> None:
    """While its holder renews the lease, another instance cannot take it; once the holder
    stops, the other takes it when it lapses (LEASE after the last renewal), and the old
    holder finds it gone."""
    a, b = two
    clock = Clock(FRIDAY_EVENING)
    first = leasing.Lease(a, "scheduler", clock, holder=other)
    second = leasing.Lease(b, "scheduler", clock)
    assert await first.hold()
    assert not await second.hold()
    clock.advance(30)
    assert await first.hold()  # renewed: lapses 45 s from now
    clock.advance(40)
    assert not await second.hold()
    clock.advance(6)
    assert await second.hold()
    assert second.held
    with pytest.raises(leasing.LeaseLost):  # the old holder's next work finds it gone
        async with first.fenced().write():
            pass
    assert not first.held


async def test_a_write_fenced_by_a_lost_lease_is_rolled_back(
    two: tuple[Store, Store], other: str
) -> None:
    """Work an old holder begins after another instance took its lease (it missed its
    renewals, the database thinks it dead) is refused and leaves nothing behind."""
    a, b = two
    clock = Clock(FRIDAY_EVENING)
    old = leasing.Lease(a, "scheduler", clock, holder=other)
    new = leasing.Lease(b, "scheduler", clock)
    assert await old.hold()
    clock.advance(leasing.LEASE.total_seconds())
    assert await new.hold()
    with pytest.raises(leasing.LeaseLost):
        async with old.fenced().write() as db:
            await outbox_q.enqueue(db, purpose="digest:x", case_id=None, created_at=iso(clock()),
                                   mail_from="security@example.org", rcpt_to=["a@example.net"],
                                   message_id="<d@example.org>", raw=b"x")
    assert not old.held
    async with new.fenced().write() as db:
        assert await outbox_q.enqueue(db, purpose="digest:x", case_id=None,
                                      created_at=iso(clock()), mail_from="security@example.org",
                                      rcpt_to=["a@example.net"], message_id="<d@example.org>",
                                      raw=b"x") == 1


async def test_a_released_lease_is_taken_at_once(two: tuple[Store, Store], other: str) -> None:
    """A holder that stops cleanly hands the lease on: the next instance need not wait."""
    a, b = two
    clock = Clock(FRIDAY_EVENING)
    first = leasing.Lease(a, "imap:security", clock, holder=other)
    second = leasing.Lease(b, "imap:security", clock)
    assert await first.hold()
    assert not await second.hold()
    await first.release()
    assert await second.hold()


async def test_a_lease_of_a_crashed_instance_is_taken_at_once(
    two: tuple[Store, Store], other: str
) -> None:
    """An instance takes a lease at once from a holder known to be gone (SQLite: its
    process ended, or a store of this process that was closed, as a restarted daemon
    leaves; PostgreSQL: no session carries its name), but never from one that lives (an
    open store of this process included)."""
    a, b = two
    clock = Clock(FRIDAY_EVENING)
    if a.dialect == "sqlite":
        assert await leasing.Lease(a, "scheduler", clock).hold()
        assert not await leasing.Lease(b, "scheduler", clock).hold()  # `a` is open
        a.retire()  # as its close does
    else:
        assert await leasing.Lease(a, "scheduler", clock, holder="nowhere:1:gone").hold()
    assert await leasing.Lease(b, "scheduler", clock).hold()
    assert await leasing.Lease(a, "imap:x", clock, holder=other).hold()
    assert not await leasing.Lease(b, "imap:x", clock).hold()


async def scheduled(store: Store, config: Config, clock: MovingClock) -> schedule.Scheduler:
    pipeline = Pipeline.create(config, store, clock)
    return await schedule.start(config, store, pipeline.templates, clock, lambda: None,
                                pipeline.secret)


async def steps(store: Store) -> list[tuple[int, str, str, int]]:
    """(case, deadline, level, times recorded) of every escalation step."""
    async with store.read() as db:
        rows = await db.execute_fetchall(
            "SELECT case_id, deadline, level, count(*) FROM escalations"
            " GROUP BY case_id, deadline, level ORDER BY case_id, deadline, level")
    return [(int(r[0]), str(r[1]), str(r[2]), int(r[3])) for r in rows]


async def open_case(store: Store, config: Config, clock: MovingClock, n: int) -> None:
    raw = report(sender=f"r{n}@example.net", message_id=f"<r{n}@example.net>").as_bytes()
    await accept_many(store, [Delivery(raw=raw, source="smtp", inbox="security",
                                       rcpt_to=["security@example.org"])], clock)
    await Worker(Pipeline.create(config, store, clock), store).drain()


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
async def test_the_scheduler_moves_to_another_instance_when_its_leader_dies(
    two: tuple[Store, Store], shared_config: Callable[..., Config]
) -> None:
    """Of two instances only the leader sweeps; when it dies the other takes the lease once
    it lapses and catches up, and a late sweep of the old leader is rolled back: each
    escalation step is recorded once (PostgreSQL: two SQLite daemons are not a set-up)."""
    a, b = two
    config = shared_config()
    clock = MovingClock(FRIDAY_EVENING)
    await open_case(a, config, clock, 1)
    clock.advance(timedelta(days=40))  # every step of case 1 is due
    first = await scheduled(a, config, clock)
    second = await scheduled(b, config, clock)
    try:
        assert first.lease.held and not second.lease.held
        swept = await steps(a)
        assert swept and all(n == 1 for *_, n in swept)
        late_sweep = first.get_job("escalation-sweep").func
        first.shutdown(wait=False)  # the leader dies: it renews nothing from now on
        await open_case(a, config, clock, 2)
        clock.advance(timedelta(days=40))
        lead = second.get_job("leader-lease")
        await lead.func()
        assert second.lease.held
        async with asyncio.timeout(30):  # the new leader's catch-up sweeps case 2
            while not any(case == 2 for case, *_ in await steps(b)):
                await asyncio.sleep(0.05)
        await late_sweep()  # the old leader, back from a pause
        after = await steps(a)
        assert [s for s in after if s[0] == 1] == swept
        assert all(n == 1 for *_, n in after)
    finally:
        await second.stop()
