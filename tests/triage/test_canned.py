"""`#template NAME`: canned replies through the daemon, in the case's language."""

from __future__ import annotations

from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailbot.config import load_config
from mailbot.mail.render import Templates
from mailbot.triage import canned
from tests.support import FRIDAY_EVENING, Bot, MovingClock, Sink, report, running_bot, table
from tests.triage.support import staff_reply, triage_config

ALICE = "alice@example.org"
REPORTER = "researcher@example.net"
SHIPPED = {"out-of-scope", "out-of-scope-host", "need-more-information", "duplicate-of",
           "accepted-with-date", "fixed-please-verify", "reward-offer", "thanks-no-reward"}


@pytest.fixture
async def bot(sink: Sink, tmp_path: Path) -> AsyncIterator[Bot]:
    config = load_config(triage_config(tmp_path, sink.port))
    async with running_bot(config, MovingClock(FRIDAY_EVENING)) as b:
        yield b


async def _case(bot: Bot, sink: Sink, body: str, language: str | None = None) -> EmailMessage:
    """Open a case; return alice's notification."""
    msg = report(body=body)
    if language:
        msg["Content-Language"] = language  # after set_content, which drops Content-*
    await bot.send(msg)
    return (await sink.wait_for(1, to=ALICE))[-1].msg


async def _command(bot: Bot, sink: Sink, note: EmailMessage, body: str, n: int = 1) -> str:
    """Send alice's command mail; return her transcript."""
    await bot.send(staff_reply(note, body, message_id=f"<cmd-{n}@example.org>",
                               date=FRIDAY_EVENING))
    return str((await sink.wait_for(n + 1, to=ALICE))[-1].msg.get_content())


def test_every_shipped_reply_exists_in_both_languages() -> None:
    """The eight canned replies of the issue are there in English and Dutch and render
    with every value present or absent."""
    assert set(canned.names()) >= SHIPPED
    t = Templates()
    for name in SHIPPED:
        for language in ("en", "nl"):
            for text in (None, "Extra words."):
                out = t.render(f"replies/{name}", language, name="", ref="SEC-2026-0001",
                               subject="s", severity="high", reward="EUR 500",
                               class_id="dos", clause="No DoS.", hosts=["x.example.com"],
                               duplicate_of="SEC-2026-0002", due=FRIDAY_EVENING,
                               zone="Europe/Amsterdam", policy_url=None, text=text)
                assert out.strip(), (name, language)
                assert (text or "") in out


async def test_reward_offer_takes_the_policy_reward(bot: Bot, sink: Sink) -> None:
    """`#severity high` + `#template reward-offer` offers the policy's reward for high."""
    note = await _case(bot, sink, "Stored XSS on https://app.example.com/x for all users.")
    transcript = await _command(bot, sink, note, "#severity high\n#template reward-offer")
    assert "#template reward-offer: the canned reply (en) was sent" in transcript
    mail = (await sink.wait_for(2, to=REPORTER))[-1].msg.get_content()
    assert "a reward: EUR 500." in mail


async def test_unknown_or_unfillable_template_applies_nothing(bot: Bot, sink: Sink) -> None:
    """An unknown name, or out-of-scope without a matched class, refuses the whole mail
    with the line and the reason; the reporter gets nothing."""
    note = await _case(bot, sink, "Stored XSS on https://app.example.com/x for all users.")
    transcript = await _command(bot, sink, note, "#status triaged\n#template nope")
    assert "no canned reply 'nope'; there are: accepted-with-date" in transcript
    transcript = await _command(bot, sink, note, "#template out-of-scope", n=2)
    assert "name one: #template out-of-scope CLASS" in transcript
    db = bot.config.storage.database
    assert table(db, "SELECT state FROM cases") == [("new",)]
    assert table(db, "SELECT count(*) FROM outbox WHERE purpose LIKE 'reporter:%'") == [(0,)]


async def test_reply_text_goes_into_the_template_as_data(bot: Bot, sink: Sink) -> None:
    """With `#reply` the staff text is placed in the canned reply, verbatim: template syntax
    an attacker got into it (`{{ ... }}`) is never evaluated."""
    note = await _case(bot, sink, "Something is wrong on app.example.com")
    await _command(bot, sink, note, "#template need-more-information\n#reply\n"
                                    "Which URL? {{ 7 * 7 }} {% raw %}")
    mail = (await sink.wait_for(2, to=REPORTER))[-1].msg.get_content()
    assert "Which URL? {{ 7 * 7 }} {% raw %}" in mail
    assert "49" not in mail


async def test_out_of_scope_names_a_class_given_by_staff(bot: Bot, sink: Sink) -> None:
    """`#template out-of-scope dos` quotes the policy's sentence for dos, in Dutch to a
    Dutch reporter (their mail said Content-Language: nl)."""
    note = await _case(bot, sink, "Ik kan jullie site platleggen.", language="nl")
    await _command(bot, sink, note, "#template out-of-scope dos")
    mail = (await sink.wait_for(2, to=REPORTER))[-1].msg.get_content()
    assert '"Denial of service, waaronder volumetrische aanvallen' in mail


async def test_second_report_is_a_likely_duplicate(bot: Bot, sink: Sink) -> None:
    """A second report of the same flaw names the first case, with the reason, in the
    notification and the stored assessment; the duplicate-of reply names it."""
    first = "Stored XSS in https://app.example.com/tickets/view?id=12 comments, all users."
    await bot.send(report(body=first))
    await sink.wait_for(1, to=ALICE)
    await bot.send(report(body="XSS: <svg onload=alert(1)> in https://app.example.com/tickets"
                               "/view?id=99", message_id="<report-2@example.net>",
                          subject="xss"))
    note = (await sink.wait_for(2, to=ALICE))[-1].msg
    assert ("Likely duplicate of SEC-2026-0001: same xss on app.example.com/tickets/view"
            in note.get_content())
    assert "Suggested reply: #template duplicate-of" in note.get_content()
    await _command(bot, sink, note, "#template duplicate-of", n=2)
    mail = (await sink.wait_for(3, to=REPORTER))[-1].msg.get_content()
    assert "(our reference\r\nSEC-2026-0001)" in mail
