"""swaks (a real SMTP/LMTP client, Debian's package) against mailbot's own listener:
PIPELINING, LMTP with several recipients, 8BITMIME and SMTPUTF8 mail, STARTTLS."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from mailbot.config import load_config
from tests.support import FRIDAY_EVENING, Bot, MovingClock, Sink, running_bot, table
from tests.tls_support import make_certificate

pytestmark = pytest.mark.skipif(shutil.which("swaks") is None,
                                reason="swaks is not installed (bash scripts/test.sh does)")


async def swaks(port: int, *args: str) -> str:
    """Run swaks against 127.0.0.1:port; its whole transcript, after checking it succeeded."""
    proc = await asyncio.create_subprocess_exec(
        "swaks", "--server", "127.0.0.1", "--port", str(port), "--helo", "client.example.net",
        "--from", "researcher@example.net", "--timeout", "20", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    transcript = out.decode("utf-8", "replace")
    assert proc.returncode == 0, transcript
    return transcript


def raws(bot: Bot) -> list[bytes]:
    return [bytes(r[0]) for r in table(bot.config.storage.database,
                                       "SELECT raw FROM inbound ORDER BY id")]


async def test_swaks_pipelines_the_transaction(bot: Bot) -> None:
    """mailbot announces PIPELINING; swaks sends MAIL, RCPT and DATA in one go and gets
    each answer in order, the mail stored once."""
    out = await swaks(bot.port, "--pipeline", "--to", "security@example.org",
                      "--header", "Subject: pipelined", "--body", "hello")
    assert "250-PIPELINING" in out
    assert "250 2.0.0 stored as 1" in out
    assert len(raws(bot)) == 1


async def test_swaks_over_lmtp_gets_one_answer_per_recipient(
    sink: Sink, write_config: Callable[..., Path]
) -> None:
    """Over LMTP with two recipients (two inboxes), DATA gets two answers, one each."""
    config = load_config(write_config(sink.port, protocol="lmtp"))
    async with running_bot(config, MovingClock(FRIDAY_EVENING)) as bot:
        out = await swaks(bot.port, "--protocol", "LMTP",
                          "--to", "security@example.org,support@example.org",
                          "--header", "Subject: two inboxes")
    after_data = out.split(" -> .", 1)[1]
    assert after_data.count("<-  250 2.0.0 stored as") == 2, after_data


async def test_swaks_8bit_utf8_mail_is_stored_byte_for_byte(bot: Bot) -> None:
    """mailbot announces 8BITMIME and SMTPUTF8; a mail with raw UTF-8 in a header and the
    body is stored with exactly those bytes."""
    out = await swaks(bot.port, "--to", "security@example.org",
                      "--header", "Subject: Grüße aus Köln",
                      "--add-header", "Content-Type: text/plain; charset=utf-8",
                      "--add-header", "Content-Transfer-Encoding: 8bit",
                      "--body", "Ünïcödé — ✓ 8-bit, not encoded.")
    assert "250-8BITMIME" in out and "250-SMTPUTF8" in out
    (raw,) = raws(bot)
    assert "Subject: Grüße aus Köln".encode() in raw
    assert "Ünïcödé — ✓ 8-bit, not encoded.".encode() in raw


async def test_swaks_starttls_with_a_verified_certificate(
    tmp_path: Path, sink: Sink, write_config: Callable[..., Path]
) -> None:
    """With tls_cert/tls_key, swaks negotiates STARTTLS, verifies the test's certificate,
    and the mail is stored."""
    cert, key = make_certificate(tmp_path)
    path = write_config(sink.port)
    path.write_text(path.read_text().replace(
        'max_message_size = "1MB"',
        f'max_message_size = "1MB"\ntls_cert = "{cert}"\ntls_key = "{key}"'))
    async with running_bot(load_config(path), MovingClock(FRIDAY_EVENING)) as bot:
        out = await swaks(bot.port, "-tls", "--tls-verify", "--tls-ca-path", str(cert),
                          "--to", "security@example.org", "--header", "Subject: over TLS")
        assert "250-STARTTLS" in out
        assert "TLS started" in out
        assert len(raws(bot)) == 1
