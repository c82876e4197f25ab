"""mailbot behind and in front of a real Postfix (Debian's package, a config of its own):
mail submitted with Postfix's sendmail reaches mailbot over LMTP and over SMTP byte for
byte, Postfix keeps mail while mailbot is down or its database is locked, and mailbot's
acknowledgements go out through Postfix into a Maildir."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
import time
from collections.abc import Callable
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest

from mailbot.config import Config
from tests.postfix import Postfix, free_port
from tests.support import FRIDAY_EVENING, MovingClock, running_bot, table

pytestmark = pytest.mark.slow


async def until(postfix: Postfix, fn: Callable[[], object], what: str,
                timeout: float = 60) -> None:
    """Poll `fn`; on a timeout, show Postfix's log (it says what Postfix did)."""
    deadline = time.monotonic() + timeout
    while not fn():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{postfix.log()[-4000:]}")
        await asyncio.sleep(0.1)


def inbound(config: Config) -> list[tuple[str, bytes]]:
    return [(str(r[0]), bytes(r[1])) for r in table(
        config.storage.database, "SELECT mail_from, raw FROM inbound ORDER BY id")]


DOTS = (b"From: Rita Researcher <researcher@example.net>\nTo: security@example.org\n"
        b"Subject: dots and bare LF\nMessage-ID: <dots@example.net>\n\n"
        b".a line that starts with a dot\n..two dots\n.\nthe line above is a lone dot\n")


def utf8_report() -> bytes:
    return ("From: Rita Researcher <researcher@example.net>\nTo: security@example.org\n"
            "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\nMessage-ID: <utf8@example.net>\n"
            "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
            "Content-Transfer-Encoding: 8bit\n\n"
            "Grüße aus Köln — the ✓ is 8-bit UTF-8, not encoded.\n").encode()


ATTACHMENT = os.urandom(10 * 1024 * 1024)


def big_report() -> bytes:
    msg = EmailMessage()
    msg["From"] = "Rita Researcher <researcher@example.net>"
    msg["To"] = "security@example.org"
    msg["Subject"] = "packet capture"
    msg["Message-ID"] = "<big@example.net>"
    msg.set_content("The capture is attached.\n")
    msg.add_attachment(ATTACHMENT, maintype="application", subtype="vnd.tcpdump.pcap",
                       filename="capture.pcap")
    return msg.as_bytes().replace(b"\r\n", b"\n")  # what a local program pipes in


@pytest.mark.parametrize("protocol", ["lmtp", "smtp"])
async def test_postfix_delivers_what_sendmail_was_given_and_acks_come_back_through_it(
    make_postfix: Callable[..., Postfix], config_for: Callable[..., Config], protocol: str
) -> None:
    """Bare-LF input with dot lines, 8-bit UTF-8 and a 10 MB attachment, submitted with
    Postfix's sendmail and delivered by Postfix over LMTP or SMTP: stored as Postfix sent
    them (dots where the author wrote them, the UTF-8 bytes, the attachment intact), one
    case each, and each acknowledgement relayed through Postfix into the reporter's Maildir."""
    port = free_port()
    postfix = make_postfix(port, protocol)
    config = config_for(port, postfix.port, protocol)
    await asyncio.to_thread(postfix.start)
    async with running_bot(config, MovingClock(FRIDAY_EVENING)):
        for raw in (DOTS, utf8_report(), big_report()):
            await asyncio.to_thread(postfix.sendmail, raw, "researcher@example.net",
                                    "security@example.org")
        await until(postfix, lambda: len(inbound(config)) == 3, "three mails stored")
        await until(postfix, lambda: len(postfix.maildir("researcher@example.net")) == 3,
                    "three acknowledgements in the reporter's Maildir")
    stored = {message_from_bytes(raw, policy=policy.default)["Message-ID"]: raw
              for _, raw in inbound(config)}
    assert b"\r\n\r\n.a line that starts with a dot\r\n..two dots\r\n.\r\nthe line above" \
        in stored["<dots@example.net>"]
    assert "Grüße aus Köln — the ✓".encode() in stored["<utf8@example.net>"]
    big = message_from_bytes(stored["<big@example.net>"], policy=policy.default)
    (part,) = list(big.iter_attachments())
    assert hashlib.sha256(part.get_content()).digest() == hashlib.sha256(ATTACHMENT).digest()
    assert table(config.storage.database, "SELECT count(*) FROM cases")[0][0] == 3
    acks = [message_from_bytes(m, policy=policy.default)
            for m in postfix.maildir("researcher@example.net")]
    assert all(str(a["Subject"]).startswith("[SEC-2026-") for a in acks), \
        [a["Subject"] for a in acks]
    assert "status=sent" in postfix.log()


IDN = "réporter@exämple.org"


def idn_report(*headers: str) -> bytes:
    return "".join(f"{h}\n" for h in (
        f"From: Réporter <{IDN}>", "To: security@example.org", "Subject: idn",
        "Message-ID: <idn@example.net>", *headers)).encode() + b"\nHallo.\n"


async def test_an_internationalised_sender_reaches_mailbot_with_smtputf8(
    make_postfix: Callable[..., Postfix], config_for: Callable[..., Config]
) -> None:
    """A mail from réporter@exämple.org (UTF-8 in the envelope and in From:) is relayed by
    Postfix with SMTPUTF8 and stored with that envelope sender. (Auto-Submitted keeps the
    bot from answering: the answer is the next test's.)"""
    port = free_port()
    postfix = make_postfix(port, "smtp")
    config = config_for(port, postfix.port, "smtp")
    await asyncio.to_thread(postfix.start)
    async with running_bot(config, MovingClock(FRIDAY_EVENING)):
        await asyncio.to_thread(postfix.sendmail, idn_report("Auto-Submitted: auto-generated"),
                                IDN, "security@example.org")
        await until(postfix, lambda: len(inbound(config)) == 1, "the mail stored")
    ((mail_from, stored),) = inbound(config)
    assert mail_from == IDN
    assert f"From: Réporter <{IDN}>".encode() in stored


async def test_an_internationalised_reporter_gets_the_acknowledgement_through_postfix(
    make_postfix: Callable[..., Postfix], config_for: Callable[..., Config]
) -> None:
    """The acknowledgement to réporter@exämple.org goes out with SMTPUTF8 through Postfix
    into that reporter's Maildir, and the daemon lives."""
    port = free_port()
    postfix = make_postfix(port, "smtp")
    config = config_for(port, postfix.port, "smtp")
    await asyncio.to_thread(postfix.start)
    async with running_bot(config, MovingClock(FRIDAY_EVENING)):
        await asyncio.to_thread(postfix.sendmail, idn_report(), IDN, "security@example.org")
        await until(postfix, lambda: len(postfix.maildir(IDN)) == 1,
                    "the acknowledgement in the reporter's Maildir", timeout=20)


async def test_postfix_keeps_the_mail_while_mailbot_is_down_and_delivers_after_a_flush(
    make_postfix: Callable[..., Postfix], config_for: Callable[..., Config]
) -> None:
    """With mailbot down Postfix defers the mail (connection refused is temporary); once
    mailbot is up, `postqueue -f` delivers it, once."""
    port = free_port()
    postfix = make_postfix(port, "lmtp")
    config = config_for(port, postfix.port, "lmtp")
    await asyncio.to_thread(postfix.start)
    await asyncio.to_thread(postfix.sendmail, DOTS, "researcher@example.net",
                            "security@example.org")
    await until(postfix, lambda: "status=deferred" in postfix.log(), "Postfix deferring the mail")
    assert "security@example.org" in await asyncio.to_thread(postfix.queue)
    async with running_bot(config, MovingClock(FRIDAY_EVENING)):
        await asyncio.to_thread(postfix.flush)
        await until(postfix, lambda: len(inbound(config)) == 1, "the mail stored after the flush")
        await until(postfix, lambda: "Mail queue is empty" in postfix.queue(), "an empty queue")
    assert len(inbound(config)) == 1


@pytest.mark.sqlite_only
async def test_a_locked_database_gets_451_and_postfix_delivers_later(
    make_postfix: Callable[..., Postfix], config_for: Callable[..., Config]
) -> None:
    """Another process holds the database's write lock past the busy timeout: mailbot
    answers 451, Postfix defers, and delivers once the lock is gone and the queue flushed."""
    port = free_port()
    postfix = make_postfix(port, "lmtp")
    config = config_for(port, postfix.port, "lmtp")
    await asyncio.to_thread(postfix.start)
    async with running_bot(config, MovingClock(FRIDAY_EVENING)):
        lock = sqlite3.connect(config.storage.database, isolation_level=None)
        try:
            lock.execute("BEGIN EXCLUSIVE")
            await asyncio.to_thread(postfix.sendmail, DOTS, "researcher@example.net",
                                    "security@example.org")
            await until(postfix, lambda: "451 4.3.0" in postfix.log(), "a 451 from mailbot")
            assert "status=deferred" in postfix.log()
        finally:
            lock.close()
        await asyncio.to_thread(postfix.flush)
        await until(postfix, lambda: len(inbound(config)) == 1, "the mail stored after the flush")
