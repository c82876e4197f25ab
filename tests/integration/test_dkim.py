"""DKIM as proof of staff: a real signature (dkimpy), DNS answered by the test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from email.utils import format_datetime
from pathlib import Path

import dkim
import pytest

from mailbot.config import load_config
from mailbot.store import cases as case_q
from tests.support import FIXTURES, FRIDAY_EVENING, Bot, MovingClock, Sink, report, running_bot

KEY = (FIXTURES / "dkim" / "example.org.key").read_bytes()
PUBLIC = (FIXTURES / "dkim" / "example.org.pub.b64").read_text().strip()
RECORDS = {  # the same key published for two domains: only alignment tells them apart
    b"mail._domainkey.example.org.": f"v=DKIM1; k=rsa; p={PUBLIC}".encode(),
    b"mail._domainkey.evil.example.": f"v=DKIM1; k=rsa; p={PUBLIC}".encode(),
}


def dns(name: bytes, timeout: int = 5) -> bytes | None:
    return RECORDS.get(name)


def signed_command(body: str, *, domain: bytes = b"example.org") -> bytes:
    msg = report(sender="alice@example.org", subject="Re: [SEC-2026-0001] XSS in /search",
                 body=body, message_id="<dkim-cmd@example.org>")
    msg.replace_header("Date", format_datetime(FRIDAY_EVENING))
    raw = msg.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return dkim.sign(raw, b"mail", domain, KEY,  # type: ignore[no-any-return]
                     include_headers=[b"From", b"To", b"Subject", b"Date", b"Message-ID"]) + raw


def with_dkim(write_config: Callable[..., Path], sink: Sink, enabled: bool = True) -> Path:
    path = write_config(sink.port)
    if enabled:
        text = path.read_text().replace(
            'prefix = "SEC"', 'prefix = "SEC"\nstaff_auth = ["reply-token", "dkim"]')
        path.write_text(text)
    return path


@pytest.fixture
async def dkim_bot(sink: Sink, write_config: Callable[..., Path]) -> AsyncIterator[Bot]:
    config = load_config(with_dkim(write_config, sink))
    async with running_bot(config, MovingClock(FRIDAY_EVENING), dkim_dns=dns) as b:
        yield b


async def kind_of_last(bot: Bot) -> tuple[str, bool, str]:
    store = await bot.open_store()
    async with store.read() as db:
        case = await case_q.get(db, "SEC-2026-0001")
        assert case is not None
        last = [m for m in await case_q.messages(db, case["id"]) if m["direction"] == "in"][-1]
    return str(last["kind"]), bool(last["trusted"]), str(case["state"])


async def test_aligned_dkim_signature_authenticates(dkim_bot: Bot, sink: Sink) -> None:
    """A command signed by example.org for alice@example.org is obeyed without a token."""
    await dkim_bot.send(report())
    await sink.wait_for(1, to="alice@example.org")
    await dkim_bot.send(signed_command("#status triaged\n"), mail_from="alice@example.org",
                        to=["security@example.org"])
    (_, transcript) = await sink.wait_for(2, to="alice@example.org")
    assert "Applied to SEC-2026-0001" in transcript.msg.get_content()
    assert await kind_of_last(dkim_bot) == ("staff", True, "triaged")


async def test_unaligned_signature_does_not_count(dkim_bot: Bot, sink: Sink) -> None:
    """A valid signature by another domain vouches for nothing at example.org."""
    await dkim_bot.send(report())
    await sink.wait_for(1, to="alice@example.org")
    raw = signed_command("#status triaged\n", domain=b"evil.example")
    await dkim_bot.send(raw, mail_from="alice@example.org", to=["security@example.org"])
    await sink.wait_for(2, to="bob@example.org")  # the alert
    assert await kind_of_last(dkim_bot) == ("untrusted-staff", False, "new")


async def test_altered_mail_fails_its_signature(dkim_bot: Bot, sink: Sink) -> None:
    """Changing the signed body after signing breaks the proof."""
    await dkim_bot.send(report())
    await sink.wait_for(1, to="alice@example.org")
    raw = signed_command("#status triaged\n").replace(b"#status triaged", b"#status rejected")
    await dkim_bot.send(raw, mail_from="alice@example.org", to=["security@example.org"])
    await sink.wait_for(2, to="bob@example.org")
    assert await kind_of_last(dkim_bot) == ("untrusted-staff", False, "new")


async def test_dkim_counts_only_where_the_inbox_accepts_it(
    sink: Sink, write_config: Callable[..., Path]
) -> None:
    """An inbox that accepts only reply tokens does not take a DKIM signature as proof."""
    config = load_config(with_dkim(write_config, sink, enabled=False))
    async with running_bot(config, MovingClock(FRIDAY_EVENING), dkim_dns=dns) as bot:
        await bot.send(report())
        await sink.wait_for(1, to="alice@example.org")
        await bot.send(signed_command("#status triaged\n"), mail_from="alice@example.org",
                       to=["security@example.org"])
        await sink.wait_for(2, to="bob@example.org")
        assert await kind_of_last(bot) == ("untrusted-staff", False, "new")
