"""The escalation ladder over a real database with a fake clock: each step once, on time."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from mailbot.clock import iso
from mailbot.config import Config, load_config
from mailbot.jobs.escalation import Escalator
from mailbot.mail.render import Templates
from mailbot.store import Store, one, open_store
from mailbot.store import cases as case_q

AMS = ZoneInfo("Europe/Amsterdam")
OPENED = iso(datetime(2026, 12, 18, 18, 0, tzinfo=AMS))  # a Friday evening


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 18, 18, 0, tzinfo=AMS)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def config(write_config: Callable[..., Path]) -> Config:
    path = write_config()
    path.write_text(path.read_text() + '\n[[staff]]\naddress = "carol@example.org"\n'
                    'role = "manager"\n')
    return load_config(path)


@pytest.fixture
async def store(config: Config) -> AsyncIterator[Store]:
    s = await open_store(config.storage)
    yield s
    await s.close()


async def open_case(store: Store, ref: str = "SEC-2026-0001", severity: str | None = None,
                    first_due: datetime = datetime(2026, 12, 23, 23, 59, 59, tzinfo=AMS),
                    resolution_due: datetime = datetime(2027, 1, 17, 23, 59, 59, tzinfo=AMS)
                    ) -> int:
    async with store.write() as db:
        row = await one(
            db, "INSERT INTO cases (ref, inbox, reporter, subject, language, created_at,"
            " updated_at, first_response_due, resolution_due, severity) VALUES"
            " (?, 'security', 'r@example.net', 'XSS', 'en', ?, ?, ?, ?, ?) RETURNING id",
            (ref, OPENED, OPENED, iso(first_due), iso(resolution_due), severity))
    assert row is not None
    return int(row[0])


async def sent(store: Store) -> list[tuple[str, str]]:
    """(recipient, step) of every escalation mail queued, in order."""
    async with store.read() as db:
        rows = await db.execute_fetchall(
            "SELECT rcpt_to, purpose FROM outbox WHERE purpose LIKE 'escalation%' ORDER BY id")
    # purpose: escalation:<case>:<deadline>:<due, with colons>:<level>:<address>
    return [(r[0].strip('[]"'), ":".join(r[1].rsplit(":", 2)[-2:]) if r[1].startswith(
        "escalation:") else "summary") for r in rows]


async def at(escalator: Escalator, clock: Clock, year: int, month: int, day: int, hour: int,
             minute: int) -> int:
    clock.now = datetime(year, month, day, hour, minute, tzinfo=AMS)
    return await escalator.sweep()


@pytest.fixture
def escalator(config: Config, store: Store) -> tuple[Escalator, Clock]:
    clock = Clock()
    return Escalator(config, store, Templates(), b"s" * 32, clock), clock


async def test_ladder_runs_on_business_days_each_step_once(
    store: Store, escalator: tuple[Escalator, Clock]
) -> None:
    """Friday-evening report before Christmas: warning Wed 09:00, deadline Thu 09:00, breach
    Mon 28 Dec 09:00 (25 and 26 are holidays), each once, to the right people."""
    e, clock = escalator
    await open_case(store)
    assert await at(e, clock, 2026, 12, 23, 8, 59) == 0
    assert await at(e, clock, 2026, 12, 23, 9, 0) == 3  # no assignee: the inbox's staff
    assert await at(e, clock, 2026, 12, 23, 9, 1) == 0  # never twice
    assert await at(e, clock, 2026, 12, 24, 8, 59) == 0
    assert await at(e, clock, 2026, 12, 24, 9, 0) == 1  # the lead
    assert await at(e, clock, 2026, 12, 27, 12, 0) == 0  # Sunday: waits for business hours
    assert await at(e, clock, 2026, 12, 28, 9, 0) == 1  # the manager
    assert await sent(store) == [
        ("alice@example.org", "warning:alice@example.org"),
        ("bob@example.org", "warning:bob@example.org"),
        ("carol@example.org", "warning:carol@example.org"),
        ("alice@example.org", "deadline:alice@example.org"),
        ("carol@example.org", "breach:carol@example.org"),
    ]
    async with store.read() as db:
        events = [e["action"] for e in await case_q.events(db, 1)]
    assert events == ["escalation warning", "escalation deadline", "escalation breach"]


async def test_restart_between_steps_sends_nothing_twice(
    config: Config, store: Store, escalator: tuple[Escalator, Clock]
) -> None:
    """A new escalator (a restarted daemon) finds the steps already sent in the database."""
    e, clock = escalator
    await open_case(store)
    assert await at(e, clock, 2026, 12, 23, 10, 0) == 3
    fresh = Escalator(config, store, Templates(), b"s" * 32, clock)
    assert await fresh.sweep() == 0


async def test_first_response_before_the_warning_cancels_it(
    store: Store, escalator: tuple[Escalator, Clock]
) -> None:
    """A promise kept before its warning falls due sends no step at all."""
    e, clock = escalator
    case_id = await open_case(store)
    async with store.write() as db:
        await case_q.update(db, case_id, {"first_responded_at": iso(clock.now)})
    assert await at(e, clock, 2026, 12, 29, 12, 0) == 0


async def test_critical_breach_goes_out_at_once(
    store: Store, escalator: tuple[Escalator, Clock]
) -> None:
    """A breach on a critical case does not wait for business hours."""
    e, clock = escalator
    await open_case(store, severity="critical")
    await at(e, clock, 2026, 12, 24, 12, 0)  # warning and deadline
    assert await at(e, clock, 2026, 12, 24, 23, 59) == 0
    assert await at(e, clock, 2026, 12, 25, 0, 0) == 1  # Christmas night: end of Thu 24 passed
    assert (await sent(store))[-1] == ("carol@example.org", "breach:carol@example.org")


async def test_moved_due_date_gets_its_own_steps(
    store: Store, escalator: tuple[Escalator, Clock]
) -> None:
    """#due moves the resolution deadline: its steps go again for the new date."""
    e, clock = escalator
    case_id = await open_case(store, resolution_due=datetime(2027, 1, 5, 23, 59, 59, tzinfo=AMS))
    async with store.write() as db:
        await case_q.update(db, case_id, {"first_responded_at": iso(clock.now)})
    assert await at(e, clock, 2027, 1, 5, 9, 0) == 3  # resolution warning, to all 3 staff
    async with store.write() as db:
        await case_q.update(db, case_id, {"resolution_due": iso(
            datetime(2027, 1, 12, 23, 59, 59, tzinfo=AMS))})
    assert await at(e, clock, 2027, 1, 6, 9, 0) == 0  # the old deadline is gone
    assert await at(e, clock, 2027, 1, 12, 9, 0) == 3  # warning for the new date


async def test_a_week_away_sends_one_summary_per_person(
    store: Store, escalator: tuple[Escalator, Clock]
) -> None:
    """After a long downtime, many due steps become one summary mail per person, and are
    all recorded so none follows later."""
    e, clock = escalator
    for n in range(1, 4):
        await open_case(store, ref=f"SEC-2026-{n:04d}")
    # 3 cases x 2 deadlines x 3 levels = 18 steps: warnings to all staff (no assignee),
    # deadlines to alice (lead), breaches to carol (manager): three summaries.
    assert await at(e, clock, 2027, 1, 20, 10, 0) == 3
    assert sorted(await sent(store)) == [("alice@example.org", "summary"),
                                         ("bob@example.org", "summary"),
                                         ("carol@example.org", "summary")]
    async with store.read() as db:
        rows = await db.execute_fetchall("SELECT count(*) FROM escalations")
    assert next(iter(rows))[0] == 18
    assert await at(e, clock, 2027, 1, 20, 11, 0) == 0


async def test_backlog_in_chunks_announces_every_step(
    store: Store, escalator: tuple[Escalator, Clock], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backlog swept in several transactions: every recorded step is in some mail."""
    monkeypatch.setattr("mailbot.jobs.escalation.CHUNK", 2)
    e, clock = escalator
    for n in range(1, 6):
        await open_case(store, ref=f"SEC-2026-{n:04d}")
    await at(e, clock, 2027, 1, 20, 10, 0)
    async with store.read() as db:
        steps = next(iter(await db.execute_fetchall("SELECT count(*) FROM escalations")))[0]
        mails = [r[0] for r in await db.execute_fetchall("SELECT raw FROM outbox")]
    assert steps == 30  # 5 cases x 2 deadlines x 3 levels
    text = b"".join(mails).decode("utf-8", "replace")
    for n in range(1, 6):
        assert f"SEC-2026-{n:04d}" in text
    # chunks of 2, 2, 1 cases: two summaries each to 3 people, then 6 single notices x people
    assert sum("summary" in m.decode() for m in mails) == 6


async def test_reporter_update_cadence(write_config: Callable[..., Path]) -> None:
    """With "update the reporter every 14 days", silence is escalated like a deadline, and an
    update to the reporter starts the cadence again."""
    path = write_config()
    path.write_text(path.read_text().replace(
        'warn_before = "1 business day"', 'warn_before = "1 business day"\n'
        'update_every = "14 days"'))
    config = load_config(path)
    store = await open_store(config.storage)
    try:
        clock = Clock()
        e = Escalator(config, store, Templates(), b"s" * 32, clock)
        case_id = await open_case(store, resolution_due=datetime(2027, 3, 1, tzinfo=AMS))
        async with store.write() as db:
            await case_q.update(db, case_id, {"first_responded_at": OPENED,
                                              "last_reporter_update_at": OPENED})
        # 14 days after Fri 18 Dec ends Fri 1 Jan (a holiday): warning and deadline wait
        # for business hours, Mon 4 Jan 09:00.
        assert await at(e, clock, 2026, 12, 31, 12, 0) == 0
        assert await at(e, clock, 2027, 1, 4, 9, 0) == 3  # warning to 2 staff, deadline to lead
        async with store.write() as db:  # a #reply to the reporter on Mon 4 Jan
            await case_q.update(db, case_id, {"last_reporter_update_at": iso(clock.now),
                                              "next_escalation_at": None})
        assert await at(e, clock, 2027, 1, 5, 9, 0) == 0  # no breach: the cadence restarted
    finally:
        await store.close()


async def test_dst_week(store: Store, escalator: tuple[Escalator, Clock]) -> None:
    """Across the end of summer time the warning still goes at 09:00 local (08:00 UTC)."""
    e, clock = escalator
    await open_case(store, first_due=datetime(2026, 10, 28, 23, 59, 59, tzinfo=AMS),
                    resolution_due=datetime(2026, 11, 22, 23, 59, 59, tzinfo=AMS))
    clock.now = datetime(2026, 10, 28, 7, 59, tzinfo=UTC)
    assert await e.sweep() == 0
    clock.now = datetime(2026, 10, 28, 8, 0, tzinfo=UTC)
    assert await e.sweep() == 3
