"""Failover between two `mailbot run` instances on one PostgreSQL database: what one
instance at a time holds (the scheduler's leadership, a watched IMAP folder) goes to the
other when the holder is SIGKILLed, within the lease's length and one renewal."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.dovecot import Dovecot
from tests.imap_support import SEEN, imap_table, password_file, reports
from tests.reliability.multi import Instance, daemons, lease_holders, leasing_seconds, until
from tests.support import Sink, assert_confidential, table

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _once(backend: str) -> None:
    """On PostgreSQL whatever the backend: the default run has it, --backend postgresql
    would only repeat it."""
    if backend == "postgresql":
        pytest.skip("runs on PostgreSQL in the default run already")


SWEEP = 60.0  # [escalation] interval: a new leader's sweep comes within it


def _takeover() -> float:
    """Seconds a dead holder's lease may take to pass to another instance: its length and
    one renewal period (mailbot.leasing), and some slack for a loaded machine."""
    _, lease, renew = leasing_seconds()
    return lease + renew + 20


def _scheduler(url: str) -> str | None:
    """The holder of the scheduler's lease (mailbot.jobs.schedule.LEADER)."""
    return lease_holders(url).get("scheduler")


def _folder(url: str) -> str | None:
    found = [h for n, h in lease_holders(url).items() if n.startswith("imap")]
    assert len(found) <= 1, lease_holders(url)
    return found[0] if found else None


def _roles(pair: list[Instance], holder: str | None) -> tuple[Instance, Instance]:
    """(the instance holding the lease, the other one)."""
    holding = [d for d in pair if d.holds(holder)]
    assert len(holding) == 1, f"{holder!r} is not one of {[d.pids for d in pair]}"
    return holding[0], next(d for d in pair if d is not holding[0])


def _overdue_critical_case(url: str) -> int:
    """A critical case whose first response was due ten days ago, written straight to the
    database: the next sweep owes its warning, deadline and breach notices at once."""
    now = datetime.now(UTC)

    def iso(t: datetime) -> str:
        return t.isoformat(timespec="seconds")

    ((case_id,),) = table(
        url, "INSERT INTO cases (ref, inbox, reporter, subject, language, created_at,"
        " updated_at, first_response_due, resolution_due, severity) VALUES ('SEC-2026-0900',"
        " 'security', 'r@example.net', 'RCE in the upload form', 'en', ?, ?, ?, ?,"
        " 'critical') RETURNING id",
        (iso(now - timedelta(days=20)), iso(now - timedelta(days=20)),
         iso(now - timedelta(days=10)), iso(now + timedelta(days=30))))
    return int(case_id)


async def _stop_all(pair: list[Instance]) -> None:
    for d in pair:
        if d.proc is not None and d.proc.returncode is None:
            assert await d.stop() == 0


async def test_scheduler_leader_fails_over(pg_url: str, sink: Sink, tmp_path: Path) -> None:
    """The instance that leads the scheduler is SIGKILLed; within a lease and a renewal the
    other leads, and its sweep sends the overdue steps of a case written to the database
    after the kill (so no other instance can have sent them), each once."""
    pair = daemons(tmp_path, pg_url, sink.port)
    try:
        for d in pair:
            await d.start()
        await until(lambda: _scheduler(pg_url) is not None, 30, "an instance leads")
        leader, other = _roles(pair, _scheduler(pg_url))
        await leader.kill()
        killed = time.monotonic()
        case_id = _overdue_critical_case(pg_url)
        await until(lambda: other.holds(_scheduler(pg_url)), _takeover(),
                    "the surviving instance leads the scheduler")
        took = time.monotonic() - killed
        breach = ("SELECT count(*) FROM escalations WHERE case_id = ? AND level = 'breach'"
                  " AND deadline = 'first-response'")
        await until(lambda: table(pg_url, breach, (case_id,)) == [(1,)], SWEEP + 30,
                    "the new leader's sweep queued the breach notice")
        escalations = ("SELECT message_id FROM outbox WHERE purpose LIKE ?",
                       (f"escalation:{case_id}:%",))

        def delivered() -> bool:
            queued = {str(m) for (m,) in table(pg_url, *escalations)}
            return queued <= {str(r.msg["Message-ID"]) for r in sink.received}

        await until(delivered, 30, "the escalation mails at the relay")
        print(f"leader killed; the other leads after {took:.0f} s")
        await _stop_all(pair)
    except BaseException:
        for d in pair:
            print(f"--- {d.log}\n{d.log_tail()}")
        raise
    finally:
        for d in pair:
            if d.proc is not None and d.proc.returncode is None:
                d.proc.kill()
    # The case's steps all fell due long ago (the warning and deadline notices too, their
    # business hours long past): each queued once, each sent once.
    steps = table(pg_url, "SELECT level, count(*) FROM escalations WHERE case_id = ?"
                          " GROUP BY level", (case_id,))
    assert sorted(steps) == [("breach", 1), ("deadline", 1), ("warning", 1)]
    queued = table(pg_url, "SELECT purpose, message_id FROM outbox WHERE purpose LIKE ?",
                   (f"escalation:{case_id}:%",))
    assert len({p for p, _ in queued}) == len(queued)
    arrived = [str(r.msg["Message-ID"]) for r in sink.received
               if "SEC-2026-0900" in str(r.msg["Subject"])]
    assert sorted(arrived) == sorted(m for _, m in queued)
    assert_confidential(sink.received, pg_url, pair[0].config)


async def test_imap_folder_holder_fails_over(make_dovecot: Callable[..., Dovecot], pg_url: str,
                                             sink: Sink, tmp_path: Path) -> None:
    """Both instances watch one Dovecot folder and one holds it; the holder is SIGKILLed,
    and mail appended after the kill is taken by the other: every message stored once, one
    case and one acknowledgement each, all marked taken on the server."""
    server = make_dovecot()
    user = server.add_user()
    imap = imap_table(server, user, password_file(tmp_path))
    pair = daemons(tmp_path, pg_url, sink.port, imap=imap,
                   extra="acks_per_sender_per_hour = 100000\n")
    done = "SELECT count(*) FROM inbound WHERE status = 'done'"
    try:
        for d in pair:
            await d.start()
        await asyncio.to_thread(server.append, user, reports(5, "before"))
        await until(lambda: table(pg_url, done) == [(5,)], 60, "the first 5 processed")
        # Their acknowledgements out first: what is tested is the folder's lease, not the
        # lapse of the holder's claims on its outgoing mail (test_two_instances has that).
        await sink.wait_for(5, timeout=30, to="researcher@example.net")
        await until(lambda: _folder(pg_url) is not None, 30, "an instance holds the folder")
        holder, other = _roles(pair, _folder(pg_url))
        await holder.kill()
        killed = time.monotonic()
        await asyncio.to_thread(server.append, user, reports(5, "after"))
        await until(lambda: table(pg_url, done) == [(10,)], _takeover() + 30,
                    "the other instance took the mail appended after the kill")
        took = time.monotonic() - killed
        assert other.holds(_folder(pg_url))
        await sink.wait_for(10, timeout=30, to="researcher@example.net")
        print(f"folder holder killed; its mail taken by the other after {took:.0f} s")
        await _stop_all(pair)
    except BaseException:
        for d in pair:
            print(f"--- {d.log}\n{d.log_tail()}")
        raise
    finally:
        for d in pair:
            if d.proc is not None and d.proc.returncode is None:
                d.proc.kill()
    assert table(pg_url, "SELECT count(*), count(DISTINCT message_id) FROM inbound") \
        == [(10, 10)]
    assert table(pg_url, "SELECT count(*) FROM cases") == [(10,)]
    acks = {str(r.msg["In-Reply-To"]) for r in sink.to("researcher@example.net")}
    assert len(acks) == 10
    flags = await asyncio.to_thread(server.flags, user)
    assert len(flags) == 10 and all(SEEN in f for f in flags.values())
    assert_confidential(sink.received, pg_url, pair[0].config)
