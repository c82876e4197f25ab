"""End to end over real sockets: the bot's listener, a real relay sink, a real SQLite file."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import aiosmtplib
import pytest

from mailbot.config import load_config
from mailbot.store import cases as case_q
from mailbot.store import inbound as inbound_q
from mailbot.store import one
from mailbot.store import outbox as outbox_q
from tests.support import FRIDAY_EVENING, Bot, MovingClock, Sink, report, running_bot


async def wait_until(predicate: Callable[[], Awaitable[object]], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.05)


async def inbound_settled(bot: Bot) -> bool:
    store = await bot.open_store()
    async with store.read() as db:
        return "pending" not in await inbound_q.counts(db)


async def test_report_opens_case_and_gets_acknowledgement(bot: Bot, sink: Sink) -> None:
    """A report opens SEC-2026-0001 and the reporter gets an ack stating the promised date."""
    await bot.send(report())
    (ack,) = await sink.wait_for(1)
    msg = ack.msg
    assert ack.rcpt_tos == ["researcher@example.net"]
    assert ack.mail_from == "security@example.org"
    assert msg["Subject"] == "[SEC-2026-0001] Re: XSS in /search"
    assert msg["In-Reply-To"] == "<report-1@example.net>"
    assert "<report-1@example.net>" in msg["References"]
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["X-Loop"] == "security@example.org"
    body = msg.get_content()
    # Friday 18:00 in Amsterdam + 3 business days: Mon, Tue, Wed.
    assert "Wednesday 23 December 2026" in body
    # 30 days after 18 December.
    assert "Sunday 17 January 2027" in body
    assert "SEC-2026-0001" in body

    store = await bot.open_store()
    async with store.read() as db:
        case = await case_q.get(db, "SEC-2026-0001")
        assert case is not None
        assert case["state"] == "new"
        assert case["reporter"] == "researcher@example.net"
        assert case["first_response_due"] == "2026-12-23T22:59:59+00:00"
        assert case["resolution_due"] == "2027-01-17T22:59:59+00:00"
        messages = await case_q.messages(db, case["id"])
        # The ack's Message-ID threads replies back to the case.
        assert await case_q.case_of_message_ids(db, [str(msg["Message-ID"])]) == case["id"]
    assert [(m["direction"], m["kind"]) for m in messages] == [("in", "report"), ("out", "ack")]


async def test_dutch_inbox_acknowledges_in_dutch_on_belgian_calendar(bot: Bot, sink: Sink) -> None:
    """The support inbox (nl, BE holidays, 5 business days) writes the date out in Dutch."""
    await bot.send(report(to="support@example.org", subject="Inloggen lukt niet"))
    (ack,) = await sink.wait_for(1)
    assert ack.msg["Subject"] == "[SUP-2026-0001] Re: Inloggen lukt niet"
    # Mon 21 .. Thu 24 are days 1-4; Fri 25 is Christmas in BE; Mon 28 is day 5.
    assert "maandag 28 december 2026" in ack.msg.get_content()


async def test_reporter_language_wins_over_inbox_default(bot: Bot, sink: Sink) -> None:
    """A report marked Content-Language: nl to an English inbox is answered in Dutch."""
    msg = report()
    msg["Content-Language"] = "nl"
    await bot.send(msg)
    (ack,) = await sink.wait_for(1)
    assert "woensdag 23 december 2026" in ack.msg.get_content()


async def test_redelivery_is_stored_once(bot: Bot, sink: Sink) -> None:
    """The same bytes delivered twice make one inbound row, one case and one ack."""
    raw = report().as_bytes()
    await bot.send(raw, mail_from="researcher@example.net", to=["security@example.org"])
    await bot.send(raw, mail_from="researcher@example.net", to=["security@example.org"])
    await sink.wait_for(1)
    await wait_until(lambda: inbound_settled(bot))
    await asyncio.sleep(0.3)
    store = await bot.open_store()
    async with store.read() as db:
        assert await inbound_q.counts(db) == {"done": 1}
        assert len(await case_q.listing(db)) == 1
    assert len(sink.to("researcher@example.net")) == 1


async def test_same_message_id_with_other_bytes_is_not_a_second_case(bot: Bot, sink: Sink) -> None:
    """A relay that re-sends a report with one more Received header does not open a second case."""
    first = report()
    await bot.send(first)
    await sink.wait_for(1)
    again = report()
    again["Received"] = "from relay2.example.net by mx.example.org; Fri, 18 Dec 2026 18:01 +0100"
    await bot.send(again)
    await wait_until(lambda: inbound_settled(bot))
    store = await bot.open_store()
    async with store.read() as db:
        assert len(await case_q.listing(db)) == 1
        assert await inbound_q.counts(db) == {"done": 1, "ignored": 1}
    await asyncio.sleep(0.3)
    assert len(sink.to("researcher@example.net")) == 1


async def test_unknown_recipient_is_refused(bot: Bot) -> None:
    """A recipient that is no configured inbox gets 550 at RCPT."""
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as info:
        await bot.send(report(to="nobody@example.org"))
    assert info.value.recipients[0].code == 550


async def test_plus_address_reaches_its_inbox(bot: Bot, sink: Sink) -> None:
    """security+anything@ is the security inbox (reply addresses build on this)."""
    await bot.send(report(), to=["security+hello@example.org"])
    await sink.wait_for(1)


async def test_oversize_mail_is_refused_with_552(bot: Bot) -> None:
    """A mail over max_message_size is refused (at MAIL FROM SIZE=, or at DATA) and not stored."""
    big = report(body=("x" * 99 + "\n") * 12000)  # 1.2 MB > 1 MB
    with pytest.raises(aiosmtplib.SMTPSenderRefused) as declared:
        await bot.send(big)
    assert declared.value.code == 552
    # A HELO client cannot declare SIZE: the listener refuses at the end of DATA.
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=bot.port, timeout=10)
    await smtp.connect()
    await smtp.helo()
    await smtp.mail("researcher@example.net")
    await smtp.rcpt("security@example.org")
    with pytest.raises(aiosmtplib.SMTPDataError) as at_data:
        await smtp.data(big.as_bytes())
    assert at_data.value.code == 552
    await smtp.quit()
    store = await bot.open_store()
    async with store.read() as db:
        assert await inbound_q.counts(db) == {}


async def test_follow_up_lands_on_its_case_without_new_ack(bot: Bot, sink: Sink) -> None:
    """A reporter's reply to the ack is recorded on the same case; nothing new is opened."""
    await bot.send(report())
    (ack,) = await sink.wait_for(1)
    follow = report(subject="Re: [SEC-2026-0001] Re: XSS in /search", body="Also in /admin.\n",
                    message_id="<report-2@example.net>")
    follow["In-Reply-To"] = str(ack.msg["Message-ID"])
    await bot.send(follow)
    await wait_until(lambda: inbound_settled(bot))
    store = await bot.open_store()
    async with store.read() as db:
        (case,) = await case_q.listing(db)
        kinds = [m["kind"] for m in await case_q.messages(db, case["id"])]
    assert kinds == ["report", "ack", "follow-up"]
    await asyncio.sleep(0.3)
    assert len(sink.to("researcher@example.net")) == 1


async def test_subject_reference_alone_threads(bot: Bot, sink: Sink) -> None:
    """A new mail with [SEC-2026-0001] in the subject (no In-Reply-To) joins that case."""
    await bot.send(report())
    await sink.wait_for(1)
    await bot.send(report(subject="AW: [SEC-2026-0001] more", message_id="<x9@example.net>"))
    await wait_until(lambda: inbound_settled(bot))
    store = await bot.open_store()
    async with store.read() as db:
        assert len(await case_q.listing(db)) == 1


async def test_reference_of_other_inbox_opens_new_case(bot: Bot, sink: Sink) -> None:
    """A SEC reference in a mail to support@ opens a SUP case and learns nothing of SEC."""
    await bot.send(report())
    await sink.wait_for(1)
    await bot.send(report(to="support@example.org", subject="[SEC-2026-0001] hello",
                          message_id="<other@example.net>"))
    acks = await sink.wait_for(2)
    assert acks[1].msg["Subject"] == "[SUP-2026-0001] Re: hello"
    assert "XSS" not in acks[1].msg.get_content()


async def test_bounce_opens_no_case_and_gets_no_reply(bot: Bot, sink: Sink) -> None:
    """A DSN from MAILER-DAEMON with an empty return path is recorded and never answered."""
    dsn = report(subject="Undelivered Mail Returned to Sender",
                 sender="MAILER-DAEMON@mx.example.net", message_id="<dsn-1@mx.example.net>")
    await bot.send(dsn, mail_from="", to=["security@example.org"])
    await wait_until(lambda: inbound_settled(bot))
    store = await bot.open_store()
    async with store.read() as db:
        assert await inbound_q.counts(db) == {"ignored": 1}
        assert await case_q.listing(db) == []
    await asyncio.sleep(0.3)
    assert sink.received == []


async def test_out_of_office_on_case_is_recorded_not_answered(bot: Bot, sink: Sink) -> None:
    """An Exchange-style out-of-office answering the ack is kept on the case, unanswered."""
    await bot.send(report())
    (ack,) = await sink.wait_for(1)
    ooo = report(subject="Automatic reply: [SEC-2026-0001] Re: XSS in /search",
                 body="I am out of the office until January.\n", message_id="<ooo@example.net>",
                 X_Auto_Response_Suppress="All", Auto_Submitted="auto-replied")
    ooo["In-Reply-To"] = str(ack.msg["Message-ID"])
    await bot.send(ooo)
    await wait_until(lambda: inbound_settled(bot))
    store = await bot.open_store()
    async with store.read() as db:
        (case,) = await case_q.listing(db)
        assert case["state"] == "new"
        kinds = [m["kind"] for m in await case_q.messages(db, case["id"])]
    assert kinds == ["report", "ack", "auto-reply"]
    await asyncio.sleep(0.3)
    assert len(sink.to("researcher@example.net")) == 1


async def test_our_own_mail_is_never_answered(bot: Bot, sink: Sink) -> None:
    """A mail carrying our X-Loop (our ack bounced back to us) opens nothing."""
    await bot.send(report(X_Loop="security@example.org", message_id="<loop@example.net>"))
    await wait_until(lambda: inbound_settled(bot))
    await asyncio.sleep(0.3)
    assert sink.received == []


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("malformed MIME", b"From: r@example.net\r\nTo: security@example.org\r\nSubject: broken\r\n"
         b"Content-Type: multipart/mixed\r\n\r\n--nob\r\nContent-Type: text/plain\r\n\r\nhi\r\n"),
        ("undecodable charset", b"From: r@example.net\r\nTo: security@example.org\r\n"
         b"Subject: charset\r\nContent-Type: text/plain; charset=x-klingon\r\n"
         b"Content-Transfer-Encoding: 8bit\r\n\r\n\xff\xfe caf\xe9 \x00\r\n"),
        ("missing Message-ID", b"From: r@example.net\r\nTo: security@example.org\r\n"
         b"Subject: no id\r\n\r\nbody\r\n"),
        ("empty body", b"From: r@example.net\r\nTo: security@example.org\r\n"
         b"Subject: empty\r\n\r\n"),
    ],
)
async def test_bad_input_becomes_a_case(bot: Bot, sink: Sink, name: str, raw: bytes) -> None:
    """Malformed mail is stored and becomes a case with an ack; the daemon goes on."""
    await bot.send(raw, mail_from="r@example.net", to=["security@example.org"])
    (ack,) = await sink.wait_for(1, to="r@example.net")
    assert ack.rcpt_tos == ["r@example.net"]
    await bot.send(report())
    await sink.wait_for(1)


async def test_mail_without_sender_is_quarantined_with_reason(bot: Bot, sink: Sink) -> None:
    """A mail with no From: address cannot be answered: it is kept in quarantine, with why."""
    raw = b"To: security@example.org\r\nSubject: who am I\r\n\r\nbody\r\n"
    await bot.send(raw, mail_from="x@example.net", to=["security@example.org"])
    await wait_until(lambda: inbound_settled(bot))
    store = await bot.open_store()
    async with store.read() as db:
        (q,) = await inbound_q.quarantined(db)
    assert q["reason"] == "no sender address in From:"


async def test_concurrent_reports_get_gapless_references(bot: Bot, sink: Sink) -> None:
    """Twenty reports sent at once get SEC-2026-0001..0020, each once, each acknowledged."""
    await asyncio.gather(*(
        bot.send(report(sender=f"r{i}@example.net", message_id=f"<c{i}@example.net>"))
        for i in range(20)
    ))
    await sink.wait_for(60, to=None)  # 20 acks, and each case to the 2 staff
    store = await bot.open_store()
    async with store.read() as db:
        refs = sorted(c["ref"] for c in await case_q.listing(db))
        assert await outbox_q.counts(db) == {"sent": 60}
    assert refs == [f"SEC-2026-{n:04d}" for n in range(1, 21)]
    reporters = [r.rcpt_tos[0] for r in sink.received if r.rcpt_tos[0].startswith("r")]
    assert sorted(reporters) == sorted(f"r{i}@example.net" for i in range(20))


async def test_relay_down_then_up_delivers_once(
    sink: Sink, write_config: Callable[..., Path]
) -> None:
    """While the relay answers 451 the ack waits; once it accepts, the ack arrives once."""
    sink.refuse_with = "451 4.3.0 try again later"
    clock = MovingClock(FRIDAY_EVENING)
    async with running_bot(load_config(write_config(sink.port)), clock) as bot:
        await bot.send(report())
        store = await bot.open_store()

        async def deferred() -> bool:
            async with store.read() as db:
                row = await one(db, "SELECT attempts FROM outbox")
            return bool(row and row[0] >= 1)

        await wait_until(deferred)
        sink.refuse_with = None
        clock.advance(timedelta(hours=2))
        await bot.send(report(sender="other@example.net", message_id="<wake@example.net>"))
        await sink.wait_for(1)
        await sink.wait_for(1, to="other@example.net")
        await asyncio.sleep(0.3)
    assert len(sink.to("researcher@example.net")) == len(sink.to("other@example.net")) == 1


async def test_lmtp_answers_once_per_recipient(
    sink: Sink, write_config: Callable[..., Path]
) -> None:
    """Over LMTP, a mail to two inboxes gets two 250 replies after one commit."""
    config = load_config(write_config(sink.port, protocol="lmtp"))
    async with running_bot(config, MovingClock(FRIDAY_EVENING)) as bot:
        reader, writer = await asyncio.open_connection("127.0.0.1", bot.port)

        async def expect(code: str) -> list[str]:
            lines = []
            while True:
                line = (await asyncio.wait_for(reader.readline(), 5)).decode()
                lines.append(line)
                if line[3:4] != "-":
                    break
            assert lines[-1].startswith(code), lines
            return lines

        async def say(line: str, code: str) -> list[str]:
            writer.write(line.encode() + b"\r\n")
            await writer.drain()
            return await expect(code)

        await expect("220")
        await say("LHLO client.example.net", "250")
        await say("MAIL FROM:<researcher@example.net>", "250")
        await say("RCPT TO:<security@example.org>", "250")
        await say("RCPT TO:<support@example.org>", "250")
        await say("RCPT TO:<nobody@example.org>", "550")
        await say("DATA", "354")
        writer.write(report().as_bytes().replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n")
                     + b".\r\n")
        await writer.drain()
        first = await expect("250")
        second = await expect("250")
        assert first[0].startswith("250") and second[0].startswith("250")
        await say("QUIT", "221")
        writer.close()
        await sink.wait_for(1)


async def test_flood_from_one_sender_gets_few_acks(
    sink: Sink, write_config: Callable[..., Path]
) -> None:
    """Past acks_per_sender_per_hour, a sender's mails still open cases but get no ack."""
    path = write_config(sink.port)
    path.write_text(path.read_text() + "\n[limits]\nacks_per_sender_per_hour = 3\n")
    async with running_bot(load_config(path), MovingClock(FRIDAY_EVENING)) as bot:
        for i in range(6):
            await bot.send(report(subject=f"finding {i}", message_id=f"<flood{i}@example.net>"))
        await wait_until(lambda: inbound_settled(bot))
        await sink.wait_for(3)
        await asyncio.sleep(0.5)
        store = await bot.open_store()
        async with store.read() as db:
            cases = await case_q.listing(db)
            withheld = [e for c in cases for e in await case_q.events(db, c["id"])
                        if e["action"] == "acknowledgement withheld"]
    assert len(cases) == 6
    assert len(sink.to("researcher@example.net")) == 3
    assert len(withheld) == 3
