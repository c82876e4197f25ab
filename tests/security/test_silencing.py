"""Silencing staff: a flood that exhausts the acknowledgement limits must not hide a case.

Each test runs a real daemon on loopback with a relay sink; the flood summary job runs on
the daemon's own schedule, and what it queued is read from the outbox table.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from email import message_from_bytes, policy
from pathlib import Path

from mailbot.config import load_config
from mailbot.jobs.summary import MAX_CASES, Summaries
from mailbot.mail.render import Templates
from tests.reliability.harness import settle
from tests.support import (
    FRIDAY_EVENING,
    Bot,
    MovingClock,
    Received,
    Sink,
    plain_text,
    report,
    running_bot,
    table,
)

STAFF = ("alice@example.org", "bob@example.org")
REAL = "quinn@example.net"
REAL_SUBJECT = "Critical RCE in the upload endpoint"


def limited(write_config: Callable[..., Path], port: int, interval: str = "1 minute",
            per_sender: int = 3, per_hour: int = 5) -> Path:
    path = write_config(port)
    path.write_text(path.read_text() + f"\n[limits]\nacks_per_sender_per_hour = {per_sender}\n"
                    f"acks_per_hour = {per_hour}\nsummary_interval = \"{interval}\"\n")
    return path


def summaries(db: Path) -> list[tuple[str, str, str]]:
    """(purpose, recipient, text) of every summary queued."""
    out = []
    for purpose, raw in table(db, "SELECT purpose, raw FROM outbox WHERE purpose LIKE"
                                  " 'summary:%' ORDER BY id"):
        msg = message_from_bytes(raw, policy=policy.default)
        out.append((purpose, str(msg["To"]), plain_text(msg)))
    return out


def listed(text: str) -> list[str]:
    return re.findall(r"^  (SEC-\d{4}-\d{4})  ", text, re.M)


async def held(db: Path, count: int) -> None:
    """Wait until `count` cases are held for the summary (the worker is done with them)."""
    async with asyncio.timeout(30):
        while table(db, "SELECT count(*) FROM held_notices") != [(count,)]:
            await asyncio.sleep(0.05)


def body(r: Received) -> str:
    return plain_text(r.msg)


async def summary_mails(sink: Sink, address: str, timeout: float = 20) -> list[Received]:
    """Wait until the relay got a summary for `address` (the job ticks every 5 s)."""
    async with asyncio.timeout(timeout):
        while not (found := [r for r in sink.to(address)
                             if r.msg["X-Mailbot-Kind"] == "summary"]):
            await asyncio.sleep(0.05)
    return found


async def flood(bot: Bot, senders: list[str]) -> None:
    for n, sender in enumerate(senders):
        await bot.send(report(sender=sender, subject=f"Ticket {n}: please call me back",
                              message_id=f"<flood-{n}@example.net>"))


async def test_forged_reports_exhaust_the_sender_limit_yet_the_real_report_reaches_staff(
    tmp_path: Path, sink: Sink, write_config: Callable[..., Path]
) -> None:
    """The attacker forges eleven reports From: quinn to use up quinn's acknowledgement
    limit, so that quinn's real report goes unseen: staff still get it in a summary, from
    the daemon's own schedule, with its sender and subject."""
    config = load_config(limited(write_config, sink.port, per_sender=10, per_hour=200))
    db = tmp_path / "mailbot.db"
    async with running_bot(config, MovingClock(FRIDAY_EVENING)) as bot:
        await flood(bot, [REAL] * 11)
        await bot.send(report(sender=REAL, subject=REAL_SUBJECT, message_id="<real@example.net>"))
        await held(db, 2)
        bot.clock.advance(timedelta(minutes=2))  # were the first held listed alone already
        for address in STAFF:
            async with asyncio.timeout(20):  # the job looks every 5 seconds
                while REAL_SUBJECT not in (text := "".join(
                        body(r) for r in await summary_mails(sink, address))):
                    await asyncio.sleep(0.05)
            assert "SEC-2026-0012  new case, " in text and f"From:    {REAL}" in text
    # Ten acknowledged and notified one by one; the 11th and the real one were held.
    (ref,) = table(db, "SELECT ref FROM cases WHERE subject = ?", (REAL_SUBJECT,))[0]
    assert ref == "SEC-2026-0012"
    assert table(db, "SELECT count(*) FROM outbox WHERE purpose LIKE 'ack:%'") == [(10,)]
    for address in STAFF:
        once = Counter(r for _, to, t in summaries(db) if to == address for r in listed(t))
        assert once == {"SEC-2026-0011": 1, "SEC-2026-0012": 1}


async def test_an_autoresponder_from_new_addresses_cannot_silence_staff(
    tmp_path: Path, sink: Sink, write_config: Callable[..., Path]
) -> None:
    """A responder mails from a fresh address each time until the global acknowledgement
    limit is spent; the real report after it is listed to every staff member."""
    config = load_config(limited(write_config, sink.port, interval="60 minutes",
                                 per_sender=2, per_hour=4))
    db = tmp_path / "mailbot.db"
    clock = MovingClock(FRIDAY_EVENING)
    async with running_bot(config, clock) as bot:
        await flood(bot, [f"away-{n}@example.net" for n in range(6)])
        await bot.send(report(sender=REAL, subject=REAL_SUBJECT, message_id="<real@example.net>"))
        await held(db, 3)
        # The job as the scheduler runs it (its next tick is minutes away).
        assert await Summaries(config, await bot.open_store(), Templates(), clock).run() == 2
    found = summaries(db)
    assert sorted(to for _, to, _ in found) == list(STAFF)
    for _, _, text in found:
        assert listed(text) == ["SEC-2026-0005", "SEC-2026-0006", "SEC-2026-0007"]
        assert f"From:    {REAL}" in text and f"Subject: {REAL_SUBJECT}" in text
    # Nothing was queued for the senders past the limit.
    assert table(db, "SELECT count(*) FROM outbox WHERE rcpt_to LIKE ? OR rcpt_to LIKE ?",
                 (f"%{REAL}%", "%away-5@%")) == [(0,)]


async def test_summary_is_bounded_one_per_interval_and_lists_each_case_once(
    tmp_path: Path, sink: Sink, write_config: Callable[..., Path]
) -> None:
    """The attacker floods far past the limit hoping to make the summary itself a flood:
    each summary lists at most MAX_CASES cases in bounded lines, at most one is queued per
    interval, and every held case is in exactly one summary."""
    config = load_config(limited(write_config, sink.port, interval="60 minutes",
                                 per_sender=1, per_hour=1))
    db = tmp_path / "mailbot.db"
    clock = MovingClock(FRIDAY_EVENING)
    count = MAX_CASES + 20
    long_subject = "x" * 5000
    async with running_bot(config, clock) as bot:
        for n in range(count + 1):
            await bot.send(report(sender=f"f{n}@example.net", subject=f"{long_subject} {n}",
                                  message_id=f"<many-{n}@example.net>"))
        await held(db, count)
        job = Summaries(config, await bot.open_store(), Templates(), clock)
        assert await job.run() == 2  # one per staff member
        assert await job.run() == 0  # not again within the interval
        clock.advance(timedelta(minutes=61))
        assert await job.run() == 2
        assert await job.run() == 0
    found = summaries(db)
    assert len(found) == 4
    per_case = Counter(ref for _, to, text in found if to == STAFF[0] for ref in listed(text))
    assert len(per_case) == count and set(per_case.values()) == {1}
    first = next(text for _, to, text in found if to == STAFF[0])
    assert len(listed(first)) == MAX_CASES and "20 more mails wait" in first
    assert max(len(raw) for (raw,) in table(
        db, "SELECT raw FROM outbox WHERE purpose LIKE 'summary:%'")) < 64 * 1024


async def test_held_cases_survive_a_restart_and_are_summarised_once(
    tmp_path: Path, sink: Sink, write_config: Callable[..., Path]
) -> None:
    """The attacker floods, then the daemon stops before the summary was due: the next
    start lists the held cases, and a further restart lists none of them again."""
    config = load_config(limited(write_config, sink.port, interval="60 minutes",
                                 per_sender=1, per_hour=1))
    db = tmp_path / "mailbot.db"
    clock = MovingClock(FRIDAY_EVENING)
    async with running_bot(config, clock) as bot:
        await flood(bot, [f"g{n}@example.net" for n in range(4)])
        await held(db, 3)
    assert summaries(db) == []  # the daemon stopped before the summary ran
    async with running_bot(config, clock):  # the job runs once at start
        for address in STAFF:
            await summary_mails(sink, address)
    clock.advance(timedelta(hours=2))
    async with running_bot(config, clock):
        pass
    found = summaries(db)
    assert [listed(t) for _, _, t in found] == [["SEC-2026-0002", "SEC-2026-0003",
                                                 "SEC-2026-0004"]] * 2
    assert table(db, "SELECT count(*) FROM held_notices WHERE summary_id IS NULL") == [(0,)]


async def test_without_a_flood_notifications_stay_immediate(
    tmp_path: Path, sink: Sink, write_config: Callable[..., Path]
) -> None:
    """Under the limits nothing is held: each report gets its own notification at once and
    no summary is written."""
    config = load_config(limited(write_config, sink.port))
    db = tmp_path / "mailbot.db"
    async with running_bot(config, MovingClock(FRIDAY_EVENING)) as bot:
        await bot.send(report(sender=REAL, subject=REAL_SUBJECT))
        for address in STAFF:
            (got,) = await sink.wait_for(1, to=address)
            assert got.msg["X-Mailbot-Kind"] == "new"
        await settle(db, 10)
    assert table(db, "SELECT count(*) FROM held_notices") == [(0,)]
    assert summaries(db) == []
