"""The adversarial suite: a real `mailbot run` child process whose DKIM lookups go, through
`[auth] dns_servers`, to a loopback DNS server the test runs; mail signed by the test's own
DKIM keys; every verdict read from the database the daemon writes."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any, cast

import dkim
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.rrset
import pytest

from tests.reliability.harness import Daemon
from tests.support import FIXTURES, Sink, free_port, send, table

KEY = (FIXTURES / "dkim" / "example.org.key").read_bytes()
PUBLIC = (FIXTURES / "dkim" / "example.org.pub.b64").read_text().strip()
# The staff domain, and one of the attacker's own that publishes a key as well.
RECORDS = {
    "mail._domainkey.example.org.": f"v=DKIM1; k=rsa; p={PUBLIC}".encode(),
    "mail._domainkey.evil.example.": f"v=DKIM1; k=rsa; p={PUBLIC}".encode(),
}
# Every header the bot reads: what a careful signer covers.
USED = [b"From", b"To", b"Cc", b"Subject", b"Date", b"Message-ID", b"In-Reply-To",
        b"References"]



def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "world" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)  # a daemon child process per test


class DnsStub(asyncio.DatagramProtocol):
    """A UDP DNS server answering TXT questions from `records` (NXDOMAIN otherwise) and
    keeping every name it was asked."""

    def __init__(self, records: dict[str, bytes]) -> None:
        self.records = records
        self.asked: list[str] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        question = query.question[0]
        name = question.name.to_text().lower()
        self.asked.append(name)
        value = self.records.get(name)
        if value is not None and question.rdtype == dns.rdatatype.TXT:
            chunks = [value[i:i + 255] for i in range(0, len(value), 255)]
            rdata = dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, dns.rdatatype.TXT, chunks)
            response.answer.append(dns.rrset.from_rdata(question.name, 60, rdata))
        else:
            response.set_rcode(dns.rcode.NXDOMAIN)
        assert self.transport is not None
        self.transport.sendto(response.to_wire(), addr)


_ids = itertools.count(1)


def now_date(delta: timedelta = timedelta()) -> str:
    return format_datetime(datetime.now(UTC) + delta)


def mail(headers: Sequence[tuple[str, str]], body: str | bytes,
         content_type: str = "text/plain; charset=utf-8") -> bytes:
    """A mail as bytes, CRLF line ends, headers exactly as given (in order)."""
    lines = [f"{k}: {v}" for k, v in headers]
    lines += ["MIME-Version: 1.0", f"Content-Type: {content_type}"]
    text = body.encode() if isinstance(body, str) else body
    text = text.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return "\r\n".join(lines).encode() + b"\r\n\r\n" + text


def command_mail(ref: str, body: str = "#status rejected\n", *, sender: str = "alice@example.org",
                 subject: str | None = None, date: str | None = None,
                 extra: Sequence[tuple[str, str]] = ()) -> bytes:
    """A staff command mail on case `ref`, unsigned."""
    return mail([("From", f"Alice <{sender}>"), ("To", "security@example.org"),
                 ("Subject", subject or f"Re: [{ref}] XSS in /search"),
                 ("Date", date or now_date()),
                 ("Message-ID", f"<cmd-{next(_ids)}@example.org>"), *extra], body)


def sign(raw: bytes, *, domain: bytes = b"example.org", headers: Sequence[bytes] = USED,
         length: bool = False) -> bytes:
    """`raw` with a DKIM-Signature of `domain` made with the test's key."""
    sig: bytes = dkim.sign(raw, b"mail", domain, KEY, include_headers=list(headers),
                           length=length)
    return sig + raw


@dataclass
class World:
    """A running daemon, its relay, its DNS and its database."""

    daemon: Daemon
    db: Path
    sink: Sink
    dns: DnsStub
    sent: list[str] = field(default_factory=list)

    async def send(self, raw: bytes, mail_from: str = "alice@example.org",
                   to: Sequence[str] = ("security@example.org",)) -> None:
        await send(self.daemon.port, raw, mail_from=mail_from, to=list(to))

    async def settled(self, timeout: float = 20) -> None:
        """Until the daemon has processed every mail it took (its verdicts, and the mail
        they imply, commit with the inbound row)."""
        async with asyncio.timeout(timeout):
            while True:
                with contextlib.suppress(Exception):  # the daemon may hold the write lock
                    if table(self.db, "SELECT count(*) FROM inbound WHERE status = 'pending'"
                             ) == [(0,)]:
                        return
                await asyncio.sleep(0.05)

    def rows(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        return table(self.db, sql, params)

    async def open_case(self, sender: str = "researcher@example.net",
                        subject: str = "XSS in /search") -> str:
        """A researcher's report; the reference of the case it opened."""
        mid = f"<report-{next(_ids)}@example.net>"
        await self.send(mail([("From", f"Rita <{sender}>"), ("To", "security@example.org"),
                              ("Subject", subject), ("Date", now_date()),
                              ("Message-ID", mid)], "The q parameter is reflected.\n"),
                        mail_from=sender)
        await self.settled()
        (ref,) = self.rows("SELECT c.ref FROM cases c JOIN inbound i ON i.case_id = c.id"
                           " WHERE i.message_id = ?", (mid,))[0]
        return str(ref)

    def verdict(self, raw: bytes) -> tuple[str, str | None, str | None, int | None]:
        """(status, reason, kind, trusted) of the mail with the Message-ID in `raw`."""
        mid = message_id(raw)
        ((status, reason, inbound_id),) = self.rows(
            "SELECT status, reason, id FROM inbound WHERE message_id = ?", (mid,))
        msgs = self.rows("SELECT kind, trusted FROM messages WHERE inbound_id = ?",
                         (inbound_id,))
        kind, trusted = msgs[0] if msgs else (None, None)
        return status, reason, kind, trusted

    def state(self, ref: str) -> str:
        return str(self.rows("SELECT state FROM cases WHERE ref = ?", (ref,))[0][0])

    def queued_for(self, raw: bytes) -> list[str]:
        """The purposes of the outgoing mail the mail with this Message-ID caused."""
        ((inbound_id,),) = self.rows("SELECT id FROM inbound WHERE message_id = ?",
                                     (message_id(raw),))
        purposes = [str(p).split(":") for (p,) in self.rows("SELECT purpose FROM outbox")]
        return [p[0] for p in purposes if len(p) > 1 and p[1] == str(inbound_id)]


def message_id(raw: bytes) -> str:
    for line in raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"message-id:"):
            return line.split(b":", 1)[1].strip().decode()
    raise AssertionError("no Message-ID")


@pytest.fixture
async def world(sink: Sink, write_config: Callable[..., Path],
                tmp_path: Path) -> AsyncIterator[World]:
    """`mailbot run` accepting reply tokens and DKIM, asking the test's DNS server."""
    stub = DnsStub(dict(RECORDS))
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: stub, local_addr=("127.0.0.1", 0))
    dns_port = transport.get_extra_info("sockname")[1]
    port = free_port()
    path = write_config(sink.port)
    text = path.read_text().replace("port = 0", f"port = {port}")
    text = text.replace('prefix = "SEC"', 'prefix = "SEC"\nstaff_auth = ["reply-token", "dkim"]')
    text = text.replace("[auth]\n", f'[auth]\ndns_servers = ["127.0.0.1:{dns_port}"]\n')
    path.write_text(text + "\n[limits]\nacks_per_hour = 100000\n"
                    "acks_per_sender_per_hour = 1000\n")
    daemon = Daemon(path, port, tmp_path / "daemon.log")
    await daemon.start()
    try:
        yield World(daemon, tmp_path / "mailbot.db", sink, stub)
        await World(daemon, tmp_path / "mailbot.db", sink, stub).settled()
        assert daemon.proc is not None and daemon.proc.returncode is None, "the daemon died"
        assert await daemon.stop() == 0
    except BaseException:
        print(daemon.log_tail())
        raise
    finally:
        if daemon.proc is not None and daemon.proc.returncode is None:
            daemon.proc.kill()
        transport.close()
