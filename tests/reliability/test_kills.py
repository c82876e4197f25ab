"""SIGKILL at random moments under a burst of reports and follow-ups from several clients."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from tests.reliability.harness import (
    Daemon,
    Ledger,
    check_ledger,
    check_relay,
    client,
    killer,
    settle,
    workload,
)
from tests.support import Sink

pytestmark = pytest.mark.slow


async def test_kills_lose_nothing_and_repeat_nothing(
    daemon: Daemon, sink: Sink, tmp_path: Path, rng: random.Random, long_run: bool
) -> None:
    """Every mail answered 250 survives SIGKILL; one case and one ack per report; each
    follow-up on its report's case."""
    # Long: 500 reports + 500 follow-ups, 20 kills; short: 160 mails, 3 kills.
    reporters, follow_ups, kills = (500, 1, 20) if long_run else (80, 1, 3)
    ledger = Ledger()
    await daemon.start()
    try:
        plans = workload(reporters, follow_ups, 6, rng)
        await asyncio.gather(killer(daemon, kills, rng, 0.5 if long_run else 0.4),
                             *(client(daemon.port, p, ledger) for p in plans))
        await settle(tmp_path / "mailbot.db", 180 if long_run else 90)
        assert await daemon.stop() == 0
    except BaseException:
        print(daemon.log_tail())
        raise
    finally:
        if daemon.proc and daemon.proc.returncode is None:
            daemon.proc.kill()
    db = tmp_path / "mailbot.db"
    assert len(ledger.accepted) == reporters * (1 + follow_ups)
    check_ledger(db, ledger)
    again = check_relay(db, sink.received, ledger, daemon.kills)
    print(f"{daemon.kills} kills, {len(ledger.accepted)} mails, {ledger.retries} retries, "
          f"{len(sink.received)} at the relay, {again} sent twice")
    assert daemon.kills == kills
