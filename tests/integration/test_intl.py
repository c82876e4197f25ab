"""Internationalised addresses (RFC 6530-6533) through a real `mailbot run` and a real
aiosmtpd relay that offers SMTPUTF8 or does not."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from mailbot.mail import intl
from tests.reliability.harness import Daemon, settle
from tests.support import Sink, free_port, report, table

REPORTER = "réporter@exämple.org"


@dataclass
class Relay(Sink):
    """The sink, also noting whether each mail came with SMTPUTF8."""

    utf8: list[bool] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.utf8.append(bool(envelope.smtp_utf8))
        return await super().handle_DATA(server, session, envelope)


@contextlib.asynccontextmanager
async def relay(smtputf8: bool) -> AsyncIterator[Relay]:
    r = Relay()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(r, decode_data=False, enable_SMTPUTF8=smtputf8, loop=loop),
        "127.0.0.1", 0)
    r.port = server.sockets[0].getsockname()[1]
    try:
        yield r
    finally:
        server.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 2)


@contextlib.asynccontextmanager
async def daemon(write_config: Callable[..., Path], tmp_path: Path,
                 relay_port: int) -> AsyncIterator[Daemon]:
    port = free_port()
    path = write_config(relay_port)
    path.write_text(path.read_text().replace("port = 0", f"port = {port}"))
    d = Daemon(path, port, tmp_path / "daemon.log")
    await d.start()
    try:
        yield d
    except BaseException:
        print(d.log_tail())
        raise
    finally:
        if d.proc and d.proc.returncode is None:
            d.proc.kill()
            await d.proc.wait()


def intl_report(sender: str, message_id: str) -> bytes:
    """A report with a UTF-8 From: (RFC 6532), as a mail client that speaks SMTPUTF8 writes."""
    msg = EmailMessage(policy=policy.SMTPUTF8)
    msg["From"] = f"Réné <{sender}>"
    msg["To"] = "security@example.org"
    msg["Subject"] = "Injection dans /recherche"
    msg["Message-ID"] = message_id
    msg["Date"] = "Fri, 18 Dec 2026 17:55:00 +0100"
    msg.set_content("Le paramètre q est réfléchi sans échappement.\n")
    return msg.as_bytes()


async def submit(d: Daemon, raw: bytes, envelope_from: str) -> None:
    options = [] if envelope_from.isascii() else ["SMTPUTF8"]
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=d.port, timeout=10) as smtp:
        await smtp.sendmail(envelope_from, ["security@example.org"], raw, mail_options=options)


async def test_utf8_reporter_is_answered_with_smtputf8(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    """A report from réporter@exämple.org sent with SMTPUTF8 is acknowledged through a relay
    that offers SMTPUTF8, with SMTPUTF8 and the address as it is; the daemon lives on."""
    db = tmp_path / "mailbot.db"
    async with relay(smtputf8=True) as r, daemon(write_config, tmp_path, r.port) as d:
        await submit(d, intl_report(REPORTER, "<intl-1@example.net>"), REPORTER)
        await settle(db, 30)
        assert d.proc is not None and d.proc.returncode is None
        assert await d.stop() == 0
    acks = r.to(REPORTER)
    assert len(acks) == 1
    assert r.utf8[r.received.index(acks[0])] is True
    assert REPORTER in acks[0].msg["To"]
    assert table(db, "SELECT status FROM outbox") == [("sent",)] * 3


async def test_utf8_local_part_without_smtputf8_fails_that_row_and_tells_staff(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    """The same report through a relay without SMTPUTF8: the acknowledgement fails for
    good with a reason naming the address and SMTPUTF8, staff get a notice, and the daemon
    handles the next report, also after a restart."""
    db = tmp_path / "mailbot.db"
    async with relay(smtputf8=False) as r, daemon(write_config, tmp_path, r.port) as d:
        await submit(d, intl_report(REPORTER, "<intl-2@example.net>"), REPORTER)
        await settle(db, 30)
        assert await d.stop() == 0
        await d.start()
        await submit(d, report(sender="next@example.net").as_bytes(), "next@example.net")
        await settle(db, 30)
        assert d.proc is not None and d.proc.returncode is None
        assert await d.stop() == 0
    ((status, reason),) = table(db, "SELECT status, last_error FROM outbox WHERE purpose ="
                                    " 'ack:SEC-2026-0001'")
    assert status == "failed"
    assert REPORTER in reason and "SMTPUTF8" in reason
    assert r.to(REPORTER) == []
    for staff in ("alice@example.org", "bob@example.org"):
        notices = [m for m in r.to(staff) if "Undeliverable" in str(m.msg["Subject"])]
        assert len(notices) == 1
        assert "SEC-2026-0001" in str(notices[0].msg["Subject"])
        assert "SMTPUTF8" in notices[0].msg.get_content()
    assert table(db, "SELECT action FROM events WHERE case_id = 1 AND action = 'delivery"
                     " failed'") == [("delivery failed",)]
    assert len(r.to("next@example.net")) == 1  # the next report's acknowledgement went out


@pytest.mark.parametrize("smtputf8", [True, False])
async def test_utf8_domain_behind_an_ascii_envelope(
    write_config: Callable[..., Path], tmp_path: Path, smtputf8: bool
) -> None:
    """A UTF-8 address only in From:, behind an ASCII envelope, with an ASCII local part:
    acknowledged at the IDNA form of its domain, in the envelope and in To: alike, without
    SMTPUTF8 whether or not the relay offers it (the servers after it may not)."""
    db = tmp_path / "mailbot.db"
    sender = "rita@exämple.org"
    async with relay(smtputf8) as r, daemon(write_config, tmp_path, r.port) as d:
        await submit(d, intl_report(sender, "<intl-3@example.net>"), "bounces@example.net")
        await settle(db, 30)
        assert await d.stop() == 0
    expected = "rita@xn--exmple-cua.org"
    (ack,) = r.to(expected)
    assert r.utf8[r.received.index(ack)] is False
    assert expected in str(ack.msg["To"])
    assert ack.raw.isascii()
    assert table(db, "SELECT count(*) FROM outbox WHERE status = 'sent'") == [(3,)]


@pytest.mark.parametrize(("address", "utf8", "expected", "options"), [
    ("a@example.org", False, "a@example.org", ()),
    ("a@exämple.org", False, "a@xn--exmple-cua.org", ()),
    ("a@exämple.org", True, "a@xn--exmple-cua.org", ()),
    ("ré@exämple.org", True, "ré@exämple.org", ("SMTPUTF8",)),
    ("ré@example.org", True, "ré@example.org", ("SMTPUTF8",)),
])
def test_envelope_forms(address: str, utf8: bool, expected: str,
                        options: tuple[str, ...]) -> None:
    """A domain goes as its A-label; only a non-ASCII local part needs SMTPUTF8."""
    raw = f"To: {address}\r\nSubject: x\r\n\r\nbody\r\n".encode()
    env = intl.envelope("security@example.org", [address], raw, utf8)
    assert (env.rcpt_to, env.options) == ((expected,), options)
    assert f"To: {expected}".encode() in env.raw


def test_non_ascii_local_part_cannot_go_without_smtputf8() -> None:
    """A non-ASCII local part has no ASCII form: Unsendable names the address."""
    with pytest.raises(intl.Unsendable, match=r"ré@example\.org"):
        intl.envelope("security@example.org", ["ré@example.org"], b"To: x\r\n\r\n", False)
