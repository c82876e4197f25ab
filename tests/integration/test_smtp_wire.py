"""The SMTP listener on the wire: DATA as clients really send it (dot-stuffing, pipelining,
bare LF, CR only, one line, SMTP smuggling, size limits), the listener's caps and timeouts,
STARTTLS, and the paths of MAIL and RCPT, against the bytes stored."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from mailbot.config import load_config
from mailbot.intake.durable import Delivery, accept_many
from mailbot.intake.smtp import IntakeHandler, make_protocol
from mailbot.store import Store, open_store
from mailbot.store import inbound as inbound_q
from tests.support import FRIDAY_EVENING, Bot, MovingClock, Sink, running_bot
from tests.tls_support import make_certificate

BODY = (b"From: Rita <researcher@example.net>\r\nTo: security@example.org\r\n"
        b"Subject: dots\r\nMessage-ID: <dots@example.net>\r\n\r\n"
        b".starts with a dot\r\n..two dots\r\n.\r\nthe line above is a lone dot\r\n")


def stuffed(raw: bytes) -> bytes:
    """What a client puts on the wire for `raw` (RFC 5321 4.5.2)."""
    return b"\r\n".join(b"." + ln if ln.startswith(b".") else ln for ln in raw.split(b"\r\n"))


class Wire:
    """A plain socket client that reads each reply in full."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int, source: str = "127.0.0.1") -> Wire:
        w = cls(*await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0)))
        assert (await w.reply()).startswith("220")
        return w

    async def start_mail(self) -> None:
        """EHLO, MAIL, RCPT and DATA, pipelined; each answered as expected."""
        replies = await self.send(b"EHLO client.example.net\r\nMAIL FROM:<researcher@example.net>"
                                  b"\r\nRCPT TO:<security@example.org>\r\nDATA\r\n", replies=4)
        assert [r[:3] for r in replies] == ["250", "250", "250", "354"], replies

    async def closed(self) -> bool:
        """Whether the server closed the connection (EOF within 10 s)."""
        return await asyncio.wait_for(self.reader.read(1), 10) == b""

    async def reply(self) -> str:
        lines = []
        while True:
            line = (await asyncio.wait_for(self.reader.readline(), 10)).decode()
            lines.append(line.rstrip("\r\n"))
            if line[3:4] != "-":
                return "\n".join(lines)

    async def send(self, data: bytes, replies: int = 1) -> list[str]:
        self.writer.write(data)
        await self.writer.drain()
        return [await self.reply() for _ in range(replies)]

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


async def stored(bot: Bot) -> list[bytes]:
    store = await bot.open_store()
    async with store.read() as db:
        rows = await db.execute_fetchall("SELECT id FROM inbound ORDER BY id")
        out = []
        for r in rows:
            row = await inbound_q.get(db, int(r[0]))
            assert row is not None
            out.append(row.raw)
        return out


async def test_dot_stuffed_lines_are_stored_as_written(bot: Bot) -> None:
    w = await Wire.open(bot.port)
    await w.send(b"EHLO client.example.net\r\n")
    assert (await w.send(b"MAIL FROM:<researcher@example.net>\r\n"))[0].startswith("250")
    assert (await w.send(b"RCPT TO:<security@example.org>\r\n"))[0].startswith("250")
    assert (await w.send(b"DATA\r\n"))[0].startswith("354")
    (done,) = await w.send(stuffed(BODY) + b".\r\n")
    assert done.startswith("250 2.0.0 stored as")
    await w.close()
    assert await stored(bot) == [BODY]


async def test_pipelined_commands_after_the_data_are_not_swallowed(bot: Bot) -> None:
    w = await Wire.open(bot.port)
    await w.send(b"EHLO client.example.net\r\n")
    await w.send(b"MAIL FROM:<researcher@example.net>\r\nRCPT TO:<security@example.org>\r\n"
                 b"DATA\r\n", replies=3)
    second = BODY.replace(b"<dots@", b"<dots-2@")
    # The end of one mail and the next transaction in one segment, as PIPELINING allows.
    replies = await w.send(stuffed(BODY) + b".\r\nMAIL FROM:<researcher@example.net>\r\n"
                           b"RCPT TO:<security@example.org>\r\nDATA\r\n", replies=4)
    assert [r[:3] for r in replies] == ["250", "250", "250", "354"]
    (done,) = await w.send(stuffed(second) + b".\r\n")
    assert done.startswith("250")
    assert (await w.send(b"QUIT\r\n"))[0].startswith("221")
    await w.close()
    assert await stored(bot) == [BODY, second]


async def test_oversize_data_gets_552_and_the_session_goes_on(bot: Bot) -> None:
    w = await Wire.open(bot.port)
    await w.send(b"EHLO client.example.net\r\nMAIL FROM:<researcher@example.net>\r\n"
                 b"RCPT TO:<security@example.org>\r\nDATA\r\n", replies=4)
    big = BODY + b"x" * 998 + b"\r\n"
    (refused,) = await w.send(stuffed(big * 1200) + b".\r\n")  # the test config allows 1MB
    assert refused.startswith("552")
    replies = await w.send(b"MAIL FROM:<researcher@example.net>\r\nRCPT TO:<security@example.org>"
                           b"\r\nDATA\r\n", replies=3)
    assert [r[:3] for r in replies] == ["250", "250", "354"]
    assert (await w.send(stuffed(BODY) + b".\r\n"))[0].startswith("250")
    await w.close()
    assert await stored(bot) == [BODY]


async def test_empty_data_and_unusual_paths(bot: Bot) -> None:
    w = await Wire.open(bot.port)
    await w.send(b"EHLO client.example.net\r\n")
    for path, code in ((b"<>", "250"), (b'<"rita r"@example.net>', "250"),
                       (b"<rita@[192.0.2.1]>", "250"), (b"<bad@@example>", "553"),
                       (b"<researcher@example.net> SIZE=100", "250")):
        (reply,) = await w.send(b"MAIL FROM:" + path + b"\r\n")
        assert reply[:3] == code, (path, reply)
        await w.send(b"RSET\r\n")
    await w.send(b"MAIL FROM:<researcher@example.net>\r\n")
    (rcpt,) = await w.send(b"RCPT TO:<Security+SEC-2026-0001@Example.ORG>\r\n")
    assert rcpt.startswith("250")
    (other,) = await w.send(b"RCPT TO:<sales@example.org>\r\n")
    assert other.startswith("550")
    await w.send(b"DATA\r\n")
    assert (await w.send(b".\r\n"))[0].startswith("250")  # an empty mail is still kept
    await w.close()
    assert await stored(bot) == [b""]


BARE_LF = (b"From: rita@example.net\nTo: security@example.org\nSubject: bare LF\n\n"
           b"Sent by a script with LF line ends.\n.hidden dot line\n")


@pytest.mark.parametrize(("on_wire", "kept"), [
    # smtplib.sendmail(from, to, msg.as_bytes()) with LF line ends: its CRLF and dot follow.
    (BARE_LF + b"\r\n.\r\n", BARE_LF + b"\r\n"),
    (b"Subject: CR only\rFrom: rita@example.net\r\rbody\r\r\n.\r\n",
     b"Subject: CR only\rFrom: rita@example.net\r\rbody\r\r\n"),
    (b"Subject: x\r\n.\r\n", b"Subject: x\r\n"),  # one line
    (b".\r\n", b""),  # empty
    (b"..\r\n.\r\n", b".\r\n"),  # one line, a lone (stuffed) dot
    (b"Subject: no final CRLF\r\n\r\nbody\r\n.\r\n", b"Subject: no final CRLF\r\n\r\nbody\r\n"),
], ids=["bare-lf", "cr-only", "one-line", "empty", "lone-dot", "plain"])
async def test_every_data_shape_is_answered_and_stored_as_sent(
    bot: Bot, on_wire: bytes, kept: bytes
) -> None:
    """A DATA block ends at the first <CRLF>.<CRLF> counting the DATA line's CRLF, so bare-LF,
    CR-only, one-line and empty mails get 250 at once and a QUIT after them is answered."""
    w = await Wire.open(bot.port)
    await w.start_mail()
    (done,) = await w.send(on_wire)
    assert done.startswith("250 2.0.0 stored as"), done
    assert (await w.send(b"QUIT\r\n"))[0].startswith("221")
    await w.close()
    assert await stored(bot) == [kept]


async def test_the_end_marker_split_byte_by_byte_still_ends_the_data(bot: Bot) -> None:
    """A client that writes one byte per segment (a slow link) is answered after the marker."""
    w = await Wire.open(bot.port)
    await w.start_mail()
    for byte in b"Subject: slow\r\n\r\nx\r\n.\r\n":
        w.writer.write(bytes([byte]))
        await w.writer.drain()
        await asyncio.sleep(0)
    assert (await w.reply()).startswith("250")
    await w.close()
    assert await stored(bot) == [b"Subject: slow\r\n\r\nx\r\n"]


SMUGGLED = (b"MAIL FROM:<ceo@example.org>\r\nRCPT TO:<security@example.org>\r\nDATA\r\n"
            b"From: ceo@example.org\r\nSubject: smuggled\r\n\r\nforged\r\n")


@pytest.mark.parametrize("fake_end", [b"\n.\r\n", b"\r\n.\n", b"\r.\r\n", b"\n.\n"],
                         ids=["lf-dot-crlf", "crlf-dot-lf", "cr-dot-crlf", "lf-dot-lf"])
async def test_smuggling_shapes_never_end_the_data(bot: Bot, fake_end: bytes) -> None:
    """An attacker hides a second transaction behind an end marker that another MTA would
    take (SMTP smuggling): it stays inside the one mail, and only one mail is stored."""
    w = await Wire.open(bot.port)
    await w.start_mail()
    first = b"From: rita@example.net\r\nSubject: carrier\r\n\r\nhello" + fake_end + SMUGGLED
    (done,) = await w.send(first + b".\r\n")
    assert done.startswith("250")
    assert (await w.send(b"QUIT\r\n"))[0].startswith("221")
    await w.close()
    # Sent unstuffed, as an attacker does: a dot that starts a line is transparency.
    assert await stored(bot) == [first.replace(b"\r\n.", b"\r\n")]


def dotted(size: int) -> bytes:
    """A mail of about `size` bytes whose every third line starts with a dot."""
    head = b"From: rita@example.net\r\nSubject: big\r\n\r\n"
    lines = [(b"." if i % 3 == 0 else b"") + b"%07d " % i + b"y" * 70 for i in range(size // 80)]
    return head + b"\r\n".join(lines) + b"\r\n"


async def test_a_large_block_is_spooled_unstuffed_and_stored_byte_for_byte(
    bot: Bot, tmp_path: Path
) -> None:
    """A block past the in-memory size goes through the spool file, written in segments of
    every size; the dots come off only at line starts, and no spool file is left behind."""
    raw = dotted(900_000)
    wire = stuffed(raw) + b".\r\n"
    w = await Wire.open(bot.port)
    await w.start_mail()
    for at in range(0, len(wire), 65_537):  # segments that cut lines and markers anywhere
        w.writer.write(wire[at:at + 65_537])
        await w.writer.drain()
    assert (await w.reply()).startswith("250")
    await w.close()
    assert await stored(bot) == [raw]
    assert open_spools(tmp_path) == []


def open_spools(directory: Path) -> list[str]:
    """Unlinked files under `directory` this process still holds open (a leaked spool)."""
    links = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            links.append(os.readlink(f"/proc/self/fd/{fd}"))
    return [ln for ln in links if ln.startswith(str(directory)) and ln.endswith("(deleted)")]


@contextlib.asynccontextmanager
async def bot_with(tmp_path: Path, sink: Sink, smtp_in: str,
                   write_config: Callable[..., Path]) -> AsyncIterator[Bot]:
    """The daemon with extra `[smtp_in]` keys."""
    path = write_config(sink.port)
    text = path.read_text().replace('max_message_size = "1MB"',
                                    f'max_message_size = "1MB"\n{smtp_in}')
    path.write_text(text)
    async with running_bot(load_config(path), MovingClock(FRIDAY_EVENING)) as b:
        yield b


async def test_a_silent_client_in_data_is_closed_after_data_timeout(
    tmp_path: Path, sink: Sink, write_config: Callable[..., Path]
) -> None:
    """An attacker opens DATA, sends a little and goes quiet to hold the slot: 421 and closed
    after `data_timeout`; nothing is stored."""
    async with bot_with(tmp_path, sink, "data_timeout = 0.5", write_config) as bot:
        w = await Wire.open(bot.port)
        await w.start_mail()
        await w.send(b"Subject: half\r\n", replies=0)
        started = time.monotonic()
        assert (await w.reply()).startswith("421 4.4.2")
        assert await w.closed()
        assert time.monotonic() - started < 5
        await w.close()
        assert await stored(bot) == []


async def test_a_trickling_client_is_closed_after_data_max_seconds(
    tmp_path: Path, sink: Sink, write_config: Callable[..., Path]
) -> None:
    """An attacker sends a byte now and then, never silent for `data_timeout`, to hold the
    slot for ever: 421 once the block took `data_max_seconds`."""
    async with bot_with(tmp_path, sink, "data_timeout = 5\ndata_max_seconds = 1",
                        write_config) as bot:
        w = await Wire.open(bot.port)
        await w.start_mail()
        started = time.monotonic()
        with contextlib.suppress(ConnectionError):
            while not w.reader.at_eof() and time.monotonic() - started < 10:
                w.writer.write(b"x")
                await w.writer.drain()
                with contextlib.suppress(TimeoutError):
                    if (await asyncio.wait_for(w.reply(), 0.1)).startswith("421 4.4.2"):
                        break
        assert 1 <= time.monotonic() - started < 5
        await w.close()
        assert await stored(bot) == []


async def test_connections_past_the_caps_get_421_and_the_rest_go_on(
    tmp_path: Path, sink: Sink, write_config: Callable[..., Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An attacker opens idle sessions to take every slot: past `max_connections_per_ip`
    his next one gets 421, another address still gets in until `max_connections`, a slot
    freed is taken again, and no error is logged on the way."""
    async with bot_with(tmp_path, sink, "max_connections = 3\nmax_connections_per_ip = 2",
                        write_config) as bot:
        held = [await Wire.open(bot.port), await Wire.open(bot.port)]
        refused = Wire(*await asyncio.open_connection("127.0.0.1", bot.port))
        assert (await refused.reply()).startswith("421 4.7.0 too many connections from your")
        assert await refused.closed()
        other = await Wire.open(bot.port, source="127.0.0.2")
        full = Wire(*await asyncio.open_connection("127.0.0.1", bot.port,
                                                  local_addr=("127.0.0.3", 0)))
        assert (await full.reply()).startswith("421 4.7.0 too many connections;")
        for w in (refused, full):
            await w.close()
        await other.start_mail()
        assert (await other.send(b"Subject: x\r\n.\r\n"))[0].startswith("250")
        await held[0].send(b"QUIT\r\n")
        await held[0].close()
        for _ in range(100):  # the server notices the close within a few loop turns
            with contextlib.suppress(AssertionError):
                again = await Wire.open(bot.port)
                break
            await asyncio.sleep(0.02)
        await again.start_mail()
        assert (await again.send(b"Subject: y\r\n.\r\n"))[0].startswith("250")
        for w in (held[1], other, again):
            await w.close()
        assert await stored(bot) == [b"Subject: x\r\n", b"Subject: y\r\n"]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_spooled_mails_wait_for_the_memory_budget_and_are_all_stored(
    tmp_path: Path, sink: Sink, write_config: Callable[..., Path]
) -> None:
    """Four clients send spooled mails at once under a 1MB memory budget: each waits for
    its turn to be stored, none is refused or lost."""
    async with bot_with(tmp_path, sink, 'memory_budget = "1MB"', write_config) as bot:
        mails = [dotted(700_000).replace(b"big", b"big %d" % i) for i in range(4)]

        async def one(raw: bytes) -> str:
            w = await Wire.open(bot.port)
            await w.start_mail()
            (done,) = await w.send(stuffed(raw) + b".\r\n")
            await w.close()
            return done

        replies = await asyncio.gather(*(one(m) for m in mails))
        assert all(r.startswith("250") for r in replies), replies
        assert sorted(await stored(bot)) == sorted(mails)


async def test_starttls_is_offered_and_mail_goes_over_it(
    tmp_path: Path, sink: Sink, write_config: Callable[..., Path]
) -> None:
    """With tls_cert/tls_key, EHLO offers STARTTLS; after the handshake (checked against the
    test's certificate) the mail is stored, and plain text sent with STARTTLS is dropped."""
    cert, key = make_certificate(tmp_path)
    async with bot_with(tmp_path, sink, f'tls_cert = "{cert}"\ntls_key = "{key}"',
                        write_config) as bot:
        w = await Wire.open(bot.port)
        (ehlo,) = await w.send(b"EHLO client.example.net\r\n")
        assert "250-STARTTLS" in ehlo
        # A command injected behind STARTTLS in the same segment (CVE-2011-0411) is ignored.
        (ready,) = await w.send(b"STARTTLS\r\nMAIL FROM:<injected@example.net>\r\n")
        assert ready.startswith("220")
        context = ssl.create_default_context(cafile=str(cert))
        await w.writer.start_tls(context, server_hostname="localhost")
        (ehlo,) = await w.send(b"EHLO client.example.net\r\n")
        assert "STARTTLS" not in ehlo
        replies = await w.send(b"MAIL FROM:<researcher@example.net>\r\nRCPT TO:"
                               b"<security@example.org>\r\nDATA\r\n", replies=3)
        assert [r[:3] for r in replies] == ["250", "250", "354"], replies
        assert (await w.send(b"Subject: secret\r\n.\r\n"))[0].startswith("250")
        await w.close()
        store = await bot.open_store()
        async with store.read() as db:
            rows = await db.execute_fetchall("SELECT mail_from FROM inbound")
        assert [r[0] for r in rows] == ["researcher@example.net"]


async def test_require_tls_refuses_mail_in_clear_from_outside_loopback(
    tmp_path: Path, sink: Sink, write_config: Callable[..., Path]
) -> None:
    """With require_tls, a peer outside loopback (simulated: none can connect here) gets 530
    for MAIL in clear and is served after STARTTLS."""
    cert, key = make_certificate(tmp_path)
    path = write_config(sink.port)
    path.write_text(path.read_text().replace(
        'max_message_size = "1MB"',
        f'max_message_size = "1MB"\ntls_cert = "{cert}"\ntls_key = "{key}"\nrequire_tls = true'))
    config = load_config(path)
    store = await open_store(config.storage)
    handler = IntakeHandler(config, store, MovingClock(FRIDAY_EVENING), on_stored=lambda: None)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(make_protocol(handler, config, is_local=lambda _: False),
                                      "127.0.0.1", 0)
    try:
        w = await Wire.open(server.sockets[0].getsockname()[1])
        await w.send(b"EHLO client.example.net\r\n")
        (refused,) = await w.send(b"MAIL FROM:<researcher@example.net>\r\n")
        assert refused.startswith("530")
        await w.send(b"STARTTLS\r\n")
        await w.writer.start_tls(ssl.create_default_context(cafile=str(cert)),
                                 server_hostname="localhost")
        await w.send(b"EHLO client.example.net\r\n")
        (ok,) = await w.send(b"MAIL FROM:<researcher@example.net>\r\n")
        assert ok.startswith("250")
        await w.close()
    finally:
        server.close()
        await server.wait_closed()
        await store.close()


async def test_the_worker_takes_large_mails_in_batches_bounded_by_bytes(tmp_path: Path) -> None:
    """Pending rows come in batches of at most `max_bytes` of raw mail (at least one row),
    so a burst of large mails is never parsed twenty at once."""
    store = await Store.open(tmp_path / "mailbot.db")
    try:
        await accept_many(store, [
            Delivery(raw=b"x" * size + b"%d" % i, source="smtp", inbox="security",
                     rcpt_to=["security@example.org"])
            for i, size in enumerate((10, 10, 10, 100))], MovingClock(FRIDAY_EVENING))
        async with store.read() as db:
            batches = [[len(r.raw) for r in await inbound_q.pending(db, limit=20, max_bytes=m)]
                       for m in (15, 25, 5)]
            after = await inbound_q.pending(db, after=3, limit=20, max_bytes=5)
    finally:
        await store.close()
    assert batches == [[11, 11], [11, 11, 11], [11]]
    assert [len(r.raw) for r in after] == [101]
