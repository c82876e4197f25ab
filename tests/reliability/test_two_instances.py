"""Two mailbot instances on one PostgreSQL database, as two MX hosts would run them.

The kill test runs two `mailbot run` processes, each SIGKILLed at random moments and
restarted while clients spread reports and follow-ups over both listeners; the database and
the relay are then checked as in test_kills. The escalation test runs two daemons in this
process (the only place the clock can be moved) and starts them together after deadlines
passed, when each would catch up on the due steps if it led the scheduler.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from mailbot.config import load_config
from tests.reliability.harness import (
    Ledger,
    check_ledger,
    check_relay,
    killer,
    settle,
    workload,
)
from tests.reliability.multi import (
    Instance,
    daemons,
    instance_config,
    leasing_seconds,
    spread_client,
    until,
)
from tests.support import (
    FRIDAY_EVENING,
    MovingClock,
    Sink,
    assert_confidential,
    report,
    running_bot,
    table,
)

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _once(backend: str) -> None:
    """On PostgreSQL whatever the backend: the default run has it, --backend postgresql
    would only repeat it."""
    if backend == "postgresql":
        pytest.skip("runs on PostgreSQL in the default run already")


async def test_two_instances_under_kills_lose_nothing_and_repeat_nothing(
    pg_url: str, sink: Sink, tmp_path: Path, rng: random.Random, long_run: bool
) -> None:
    """Every mail answered 250 by either instance is stored once and handled, whichever
    instance is killed when; one case and one acknowledgement per report; each follow-up on
    its report's case, though it often reached the other instance than its report."""
    # Long: the 1,000 mails (500 reports, 500 follow-ups), 10 kills of each
    # instance; short: 100 mails, 3 kills of each.
    reporters, follow_ups, kills = (500, 1, 10) if long_run else (50, 1, 3)
    pair = daemons(tmp_path, pg_url, sink.port)
    ledger = Ledger()
    for d in pair:
        await d.start()
    try:
        plans = workload(reporters, follow_ups, 6, rng)
        ports = [d.port for d in pair]
        await asyncio.gather(*(killer(d, kills, rng, 0.5 if long_run else 0.2) for d in pair),
                             *(spread_client(ports, p, ledger, rng) for p in plans))
        # A killed instance's claims come back only when they lapse (mailbot.leasing.CLAIM):
        # its restart is a new instance to the others, and to itself.
        claim, _, _ = leasing_seconds()
        await settle(pg_url, claim + (240 if long_run else 120))
        for d in pair:
            assert await d.stop() == 0
    except BaseException:
        for d in pair:
            print(f"--- {d.log}\n{d.log_tail()}")
        raise
    finally:
        for d in pair:
            if d.proc and d.proc.returncode is None:
                d.proc.kill()
    assert len(ledger.accepted) == reporters * (1 + follow_ups)
    check_ledger(pg_url, ledger)
    total_kills = sum(d.kills for d in pair)
    again = check_relay(pg_url, sink.received, ledger, total_kills)
    shares = check_processed_by(pg_url, pair)
    assert_confidential(sink.received, pg_url, pair[0].config)
    print(f"{total_kills} kills, {len(ledger.accepted)} mails, {ledger.retries} retries, "
          f"{len(sink.received)} at the relay, {again} sent twice, processed {shares}")
    assert [d.kills for d in pair] == [kills, kills]


def check_processed_by(url: str, instances: list[Instance]) -> list[int]:
    """Every processed mail names the one instance (a start of it: a pid) that processed it
    (`inbound.processed_by`), and each instance processed some: the mails per instance."""
    shares = [0] * len(instances)
    for mid, by in table(url, "SELECT message_id, processed_by FROM inbound"
                              " WHERE status = 'done'"):
        owners = [i for i, d in enumerate(instances) if d.holds(by)]
        assert len(owners) == 1, f"{mid}: processed by {by!r}, not one of the instances"
        shares[owners[0]] += 1
    assert all(shares), f"an instance processed nothing: {shares}"
    return shares


def _escalations(url: str) -> list[tuple[str, str]]:
    """(purpose, Message-ID) of every escalation mail queued."""
    return [(str(p), str(m)) for p, m in table(
        url, "SELECT purpose, message_id FROM outbox WHERE purpose LIKE 'escalation:%'")]


async def test_two_instances_queue_each_escalation_step_once(
    pg_url: str, sink: Sink, tmp_path: Path
) -> None:
    """Two daemons started together on one database after the first-response deadlines
    passed, both ready to catch up on due steps at start: each case's warning (to both
    staff) and deadline notice (to the lead) is queued once and reaches the relay once."""
    cases = 3  # 9 steps: a sweep with more than 10 sends one summary per person instead
    configs = [load_config(instance_config(tmp_path, f"instance-{i}", pg_url, sink.port))
               for i in range(2)]
    clock = MovingClock(FRIDAY_EVENING)
    async with running_bot(configs[0], clock) as first:
        for i in range(cases):
            await first.send(report(subject=f"Finding {i}: open redirect",
                                    sender=f"r{i}@example.net",
                                    message_id=f"<esc-{i}@example.net>"))
        for i in range(cases):
            await sink.wait_for(1, timeout=30, to=f"r{i}@example.net")  # opened, acknowledged
    assert table(pg_url, "SELECT count(*) FROM cases") == [(cases,)]
    assert _escalations(pg_url) == []
    # Friday 18 Dec 18:00 → Thursday 24 Dec 12:00 in Amsterdam: past Wednesday's warning
    # and Thursday 09:00's deadline (3 business days), before Monday's breach.
    clock.advance(timedelta(days=5, hours=18))
    expected = cases * 3
    async with contextlib.AsyncExitStack() as stack:
        await asyncio.gather(*(stack.enter_async_context(running_bot(c, clock))
                               for c in configs))
        # Whichever takes the scheduler's lease catches up at once; the mail then goes out.

        def delivered() -> bool:
            sent = {m for _, m in _escalations(pg_url)}
            arrived = {str(r.msg["Message-ID"]) for r in sink.received}
            return len(sent) >= expected and sent <= arrived

        await until(delivered, 60, f"{expected} escalation mails queued and delivered")
    # Both daemons stopped: nothing more can be queued or sent.
    queued = _escalations(pg_url)
    purposes = Counter(p for p, _ in queued)
    assert [p for p, n in purposes.items() if n > 1] == []
    assert len(queued) == expected
    levels = Counter(p.split(":")[-2] for p in purposes)
    assert levels == {"warning": 2 * cases, "deadline": cases}
    ids = {m for _, m in queued}
    at_relay = Counter(str(r.msg["Message-ID"]) for r in sink.received
                       if str(r.msg["Message-ID"]) in ids)
    assert set(at_relay) == ids
    assert set(at_relay.values()) == {1}, "an escalation mail sent twice"
    assert table(pg_url, "SELECT count(*) FROM escalations") == [(cases * 2,)]
    assert_confidential(sink.received, pg_url, configs[0])
