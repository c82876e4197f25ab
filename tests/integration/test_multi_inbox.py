"""One transaction addressed to two inboxes: a case in each, the raw mail stored once, and
over LMTP one reply per recipient naming what was stored for it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from mailbot.config import load_config
from mailbot.intake.durable import Delivery, accept_many
from mailbot.store import inbound as inbound_q
from mailbot.store import open_store
from mailbot.triage.pipeline import Pipeline
from mailbot.triage.worker import BATCH, Worker
from tests.support import FRIDAY_EVENING, Bot, MovingClock, Sink, report, running_bot, table

BOTH = ["security@example.org", "support@example.org"]


async def until_done(db: Path, rows: int, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while table(db, "SELECT count(*) FROM inbound WHERE status != 'pending'") != [(rows,)]:
            await asyncio.sleep(0.05)


async def lmtp(port: int, recipients: list[str], raw: bytes) -> list[str]:
    """One LMTP transaction on a plain socket; the replies after the end of DATA."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def reply() -> str:
        while True:
            line = (await asyncio.wait_for(reader.readline(), 10)).decode().rstrip("\r\n")
            if line[3:4] != "-":
                return line

    try:
        assert (await reply()).startswith("220")
        writer.write(b"LHLO client.example.net\r\n")
        assert (await reply()).startswith("250")
        writer.write(b"MAIL FROM:<researcher@example.net>\r\n")
        assert (await reply()).startswith("250")
        for r in recipients:
            writer.write(f"RCPT TO:<{r}>\r\n".encode())
            assert (await reply()).startswith("250")
        writer.write(b"DATA\r\n")
        assert (await reply()).startswith("354")
        writer.write(raw + b".\r\n")
        return [await reply() for _ in recipients]
    finally:
        writer.close()
        await writer.wait_closed()


@pytest.fixture
async def lmtp_bot(sink: Sink, write_config: Callable[..., Path]) -> AsyncIterator[Bot]:
    config = load_config(write_config(sink.port, protocol="lmtp"))
    async with running_bot(config, MovingClock(FRIDAY_EVENING)) as b:
        yield b


async def test_smtp_to_two_inboxes_opens_a_case_in_each(bot: Bot, sink: Sink,
                                                        tmp_path: Path) -> None:
    """Mail to security@ and support@ in one SMTP transaction opens SEC and SUP cases, each
    acknowledged and notified, with the raw bytes stored in one row only."""
    db = tmp_path / "mailbot.db"
    msg = report(to=", ".join(BOTH))
    await bot.send(msg, to=BOTH)
    await until_done(db, 2)
    assert table(db, "SELECT ref, inbox, reporter FROM cases ORDER BY id") == [
        ("SEC-2026-0001", "security", "researcher@example.net"),
        ("SUP-2026-0001", "support", "researcher@example.net")]
    rows = table(db, "SELECT id, inbox, status, raw_of, length(raw) FROM inbound ORDER BY id")
    (first, security, s1, none, size), (_, support, s2, raw_of, empty) = rows
    assert (security, support, s1, s2, none, raw_of, empty) == (
        "security", "support", "done", "done", None, first, 0)
    assert size > 0
    store = await bot.open_store()
    async with store.read() as conn:
        both = [await inbound_q.get(conn, r[0]) for r in rows]
    assert both[0] is not None and both[1] is not None and both[0].raw == both[1].raw
    acks = await sink.wait_for(2)
    assert sorted(str(a.msg["Subject"]).split("]")[0] for a in acks) == [
        "[SEC-2026-0001", "[SUP-2026-0001"]
    for staff in ("alice@example.org", "bob@example.org"):
        async with asyncio.timeout(10):
            while len(sink.to(staff)) < 2:
                await asyncio.sleep(0.05)


async def test_lmtp_answers_each_recipient_with_its_own_row(lmtp_bot: Bot,
                                                            tmp_path: Path) -> None:
    """LMTP gives one reply per recipient, naming the row stored for that recipient's inbox;
    the same bytes delivered again are recognised per inbox and answered with those rows."""
    db = tmp_path / "mailbot.db"
    raw = report(to=", ".join(BOTH)).as_bytes().replace(b"\n", b"\r\n")
    recipients = [*BOTH, "security+anything@example.org"]
    replies = await lmtp(lmtp_bot.port, recipients, raw)
    await until_done(db, 2)
    ids = dict(table(db, "SELECT inbox, id FROM inbound"))
    assert replies == [f"250 2.0.0 stored as {ids['security']}",
                       f"250 2.0.0 stored as {ids['support']}",
                       f"250 2.0.0 stored as {ids['security']}"]
    assert await lmtp(lmtp_bot.port, recipients, raw) == replies
    assert table(db, "SELECT count(*) FROM inbound") == [(2,)]
    assert table(db, "SELECT count(*) FROM cases") == [(2,)]


async def test_a_reply_to_both_inboxes_lands_once(bot: Bot, sink: Sink, tmp_path: Path) -> None:
    """A follow-up to both inboxes that answers the first inbox's acknowledgement lands on
    that case once; the other inbox's row is marked as the same delivery, and no new case
    is opened."""
    db = tmp_path / "mailbot.db"
    await bot.send(report(to=", ".join(BOTH)), to=BOTH)
    acks = await sink.wait_for(2)
    sec = next(str(a.msg["Message-ID"]) for a in acks if "SEC-" in str(a.msg["Subject"]))
    follow = report(to=", ".join(BOTH), subject="Re: more", message_id="<fu@example.net>",
                    In_Reply_To=sec, References=sec)
    await bot.send(follow, to=BOTH)
    await until_done(db, 4)
    assert table(db, "SELECT c.ref, m.kind FROM messages m JOIN cases c ON c.id = m.case_id"
                     " WHERE m.message_id = '<fu@example.net>'") == [
        ("SEC-2026-0001", "follow-up")]
    assert table(db, "SELECT inbox, status, reason FROM inbound WHERE message_id ="
                     " '<fu@example.net>' ORDER BY id") == [
        ("security", "done", None),
        ("support", "ignored", "the same delivery as inbound 3, on SEC-2026-0001")]
    assert table(db, "SELECT count(*) FROM cases") == [(2,)]


async def test_a_delivery_cut_by_the_batch_size_is_decided_together(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    """When the worker's batch ends at the first row of a two-inbox delivery, the second
    row is taken into the same batch: both inboxes open their case."""
    config = load_config(write_config())
    store = await open_store(config.storage)
    try:
        singles = [Delivery(raw=report(sender=f"r{i}@example.net",
                                       message_id=f"<r{i}@example.net>").as_bytes(),
                            source="smtp", inbox="security", rcpt_to=["security@example.org"])
                   for i in range(BATCH - 1)]
        both = Delivery(raw=report(to=", ".join(BOTH)).as_bytes(), source="smtp",
                        inbox="security", rcpt_to=BOTH, also=["support"])
        clock = MovingClock(FRIDAY_EVENING)
        await accept_many(store, [*singles, both], clock)
        await Worker(Pipeline.create(config, store, clock), store).drain()
    finally:
        await store.close()
    db = tmp_path / "mailbot.db"
    assert table(db, "SELECT inbox, status FROM inbound WHERE message_id ="
                     " '<report-1@example.net>' ORDER BY id") == [
        ("security", "done"), ("support", "done")]
    assert table(db, "SELECT inbox, count(*) FROM cases GROUP BY inbox ORDER BY inbox") == [
        ("security", BATCH), ("support", 1)]
