"""The SMTP listener on the wire: DATA as clients really send it (dot-stuffing, pipelining,
size limits) and the paths of MAIL and RCPT, against the bytes stored."""

from __future__ import annotations

import asyncio

from mailbot.store import inbound as inbound_q
from tests.support import Bot

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
    async def open(cls, port: int) -> Wire:
        w = cls(*await asyncio.open_connection("127.0.0.1", port))
        assert (await w.reply()).startswith("220")
        return w

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
        await self.writer.wait_closed()


async def stored(bot: Bot) -> list[bytes]:
    store = await bot.open_store()
    async with store.read() as db:
        rows = await db.execute_fetchall("SELECT id FROM inbound ORDER BY id")
        return [(await inbound_q.get(db, int(r[0]))).raw for r in rows]  # type: ignore[union-attr]


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
