"""Threading over real mail flows: out of order, list-style chains, replies to staff mail."""

from __future__ import annotations

import asyncio
from typing import Any

from mailbot.store import cases as case_q
from mailbot.store import inbound as inbound_q
from tests.support import Bot, Sink, report


async def settled(bot: Bot) -> list[dict[str, Any]]:
    store = await bot.open_store()
    async with asyncio.timeout(10):
        while True:
            async with store.read() as db:
                if "pending" not in await inbound_q.counts(db):
                    return await case_q.listing(db)
            await asyncio.sleep(0.05)


async def test_follow_up_before_its_report_ends_on_one_case(bot: Bot, sink: Sink) -> None:
    """A reply that overtakes the report it answers, and then the report: one case."""
    follow = report(subject="Re: XSS in /search", body="Also /admin.\n",
                    message_id="<follow@example.net>")
    follow["In-Reply-To"] = "<report-1@example.net>"
    follow["References"] = "<report-1@example.net>"
    await bot.send(follow)
    await settled(bot)
    await bot.send(report())  # Message-ID <report-1@example.net>
    cases = await settled(bot)
    assert len(cases) == 1
    store = await bot.open_store()
    async with store.read() as db:
        kinds = [m["kind"] for m in await case_q.messages(db, int(cases[0]["id"]))]
    assert kinds.count("ack") == 1 and "report" in kinds and "follow-up" in kinds


async def test_long_reference_chain_threads(bot: Bot, sink: Sink) -> None:
    """A list-style chain whose In-Reply-To is unknown still threads by References."""
    await bot.send(report())
    await sink.wait_for(1)
    deep = report(subject="Re: Re: Re: XSS", message_id="<deep@example.net>")
    deep["In-Reply-To"] = "<someone-elses@lists.example>"
    deep["References"] = "<report-1@example.net> <x1@example.net> <someone-elses@lists.example>"
    await bot.send(deep)
    assert len(await settled(bot)) == 1


async def test_several_follow_ups_in_a_row(bot: Bot, sink: Sink) -> None:
    """Each reply to the previous one lands on the same case."""
    await bot.send(report())
    await sink.wait_for(1)
    previous = "<report-1@example.net>"
    for i in range(5):
        m = report(subject="Re: XSS", message_id=f"<f{i}@example.net>", body=f"More {i}\n")
        m["In-Reply-To"] = previous
        await bot.send(m)
        previous = f"<f{i}@example.net>"
    assert len(await settled(bot)) == 1


async def test_encoded_subject_reference_threads(bot: Bot, sink: Sink) -> None:
    """A reference inside an RFC 2047-encoded, Dutch-prefixed subject threads."""
    await bot.send(report())
    await sink.wait_for(1)
    raw = (b"From: researcher@example.net\r\nTo: security@example.org\r\n"
           b"Subject: =?UTF-8?Q?Antw:_[SEC-2026-0001]_caf=C3=A9?=\r\n"
           b"Message-ID: <enc@example.net>\r\n\r\nnog iets\r\n")
    await bot.send(raw, mail_from="researcher@example.net", to=["security@example.org"])
    assert len(await settled(bot)) == 1
