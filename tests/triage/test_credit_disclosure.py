"""Rewards, credit, publication by mutual consent and the hall of fame, through the daemon."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailbot.config import load_config
from mailbot.jobs.disclosure import remind, step
from mailbot.mail.render import Templates
from mailbot.store import disclosures as disc_q
from mailbot.triage.policy_commands import agreement
from tests.support import FRIDAY_EVENING, Bot, MovingClock, Sink, report, running_bot, table
from tests.triage.support import staff_reply, triage_config

ALICE = "alice@example.org"
REPORTER = "researcher@example.net"


@pytest.fixture
async def bot(sink: Sink, tmp_path: Path) -> AsyncIterator[Bot]:
    config = load_config(triage_config(tmp_path, sink.port))
    async with running_bot(config, MovingClock(FRIDAY_EVENING)) as b:
        yield b


class Case:
    """One case driven by mail: alice's commands and the reporter's replies."""

    def __init__(self, bot: Bot, sink: Sink) -> None:
        self.bot, self.sink, self.commands, self.note = bot, sink, 0, EmailMessage()

    async def open(self, message_id: str = "<report-1@example.net>") -> Case:
        await self.bot.send(report(body="Stored XSS on https://app.example.com/x, all users.",
                                   message_id=message_id))
        self.note = (await self.sink.wait_for(1, to=ALICE))[-1].msg
        return self

    async def staff(self, body: str) -> str:
        """Alice's command mail; her transcript."""
        self.commands += 1
        before = len(self.sink.to(ALICE))
        await self.bot.send(staff_reply(self.note, body, date=FRIDAY_EVENING,
                                        message_id=f"<cmd-{self.commands}@example.org>"))
        return str((await self.sink.wait_for(before + 1, to=ALICE))[-1].msg.get_content())

    async def reporter(self, text: str, sender: str = REPORTER) -> str:
        """A reply to our last mail to the reporter; the notification alice gets of it."""
        last = self.sink.to(REPORTER)[-1].msg
        msg = EmailMessage()
        msg["From"], msg["To"] = sender, "security@example.org"
        msg["Subject"] = f"Re: {last['Subject']}"
        msg["In-Reply-To"] = msg["References"] = str(last["Message-ID"])
        msg["Message-ID"] = f"<reply-{len(self.sink.received)}@example.net>"
        msg.set_content(f"{text}\n\n> {last.get_content().splitlines()[0]}\n")
        before = len(self.sink.to(ALICE))
        await self.bot.send(msg)
        return str((await self.sink.wait_for(before + 1, to=ALICE))[-1].msg.get_content())


async def test_bounty_defaults_to_the_policy_reward(bot: Bot, sink: Sink) -> None:
    """`#bounty` with no amount records the policy's reward for the severity."""
    case = await Case(bot, sink).open()
    transcript = await case.staff("#severity high\n#bounty")
    assert "#bounty EUR 500: - -> EUR 500" in transcript
    assert table(bot.config.storage.database, "SELECT bounty FROM cases") == [("EUR 500",)]


async def test_bounty_without_severity_or_credit_address_refused(bot: Bot, sink: Sink) -> None:
    """`#bounty` alone before a severity, or a credit that is an address, applies nothing."""
    case = await Case(bot, sink).open()
    transcript = await case.staff("#bounty")
    assert "takes the policy's reward for the severity: set #severity" in transcript
    transcript = await case.staff("#credit rita@example.net")
    assert "never an address" in transcript
    assert table(bot.config.storage.database, "SELECT bounty, credit FROM cases") == [
        (None, None)]


async def test_disclosure_by_mutual_consent(bot: Bot, sink: Sink) -> None:
    """`#disclose DATE` asks the reporter; a stranger's "agree" counts for nothing, a
    disagreeing date neither; the reporter's "agree" records consent and staff are told."""
    case = await Case(bot, sink).open()
    transcript = await case.staff("#disclose 2027-01-15")
    assert "proposed to the reporter, who is asked to agree" in transcript
    proposal = (await sink.wait_for(2))[-1].msg.get_content()
    assert "We would like to publish this issue on Friday 15 January 2027" in proposal
    db = bot.config.storage.database
    agreed = "SELECT proposed_on, agreed_by FROM disclosures"
    assert table(db, agreed) == [("2027-01-15", None)]

    note = await case.reporter("agree", sender="mallory@example.com")
    assert "NOT the reporter" in note
    assert table(db, agreed) == [("2027-01-15", None)]
    note = await case.reporter("I don't agree, rather 2027-02-01")
    assert "AGREED" not in note
    note = await case.reporter("akkoord 2027-02-01")
    assert "another date than the proposed 2027-01-15: no consent recorded" in note
    assert table(db, agreed) == [("2027-01-15", None)]

    note = await case.reporter("Agree.")
    assert "the reporter AGREED to publication on 2027-01-15" in note
    assert table(db, agreed) == [("2027-01-15", REPORTER)]


async def test_reminders_7_and_1_days_before(bot: Bot, sink: Sink) -> None:
    """An agreed date is reminded to staff 7 days and 1 day before, each once."""
    case = await Case(bot, sink).open()
    await case.staff("#disclose 2027-01-15 agreed")
    store = await bot.open_store()
    count = "SELECT count(*) FROM outbox WHERE purpose LIKE 'disclose:%'"
    db = bot.config.storage.database
    t = Templates()
    clock = MovingClock(FRIDAY_EVENING)
    assert not await remind(bot.config, store, t, b"s" * 32, clock)  # 4 weeks ahead
    clock.advance(timedelta(days=20))  # 7 January: 8 days left
    assert not await remind(bot.config, store, t, b"s" * 32, clock)
    clock.advance(timedelta(days=1))
    assert await remind(bot.config, store, t, b"s" * 32, clock)
    assert table(db, count) == [(2,)]  # alice and bob
    assert not await remind(bot.config, store, t, b"s" * 32, clock)
    clock.advance(timedelta(days=6))  # 14 January
    assert await remind(bot.config, store, t, b"s" * 32, clock)
    clock.advance(timedelta(days=3))
    assert not await remind(bot.config, store, t, b"s" * 32, clock)
    assert table(db, count) == [(4,)]
    texts = [r for r in await asyncio.to_thread(
        table, db, "SELECT raw FROM outbox WHERE purpose LIKE 'disclose:%:1:alice%'")]
    assert b"that is tomorrow" in texts[0][0]


@pytest.mark.parametrize(("days_left", "reminded", "expected"), [
    (10, "", (None, "")), (7, "", ("7", "7")), (3, "", ("7", "7")), (3, "7", (None, "7")),
    (1, "7", ("1", "7,1")), (1, "", ("1", "7,1")), (0, "7", ("1", "7,1")),
    (-1, "7", (None, "7,1")), (1, "7,1", (None, "7,1")),
])
def test_reminder_steps(days_left: int, reminded: str, expected: tuple[str | None, str]) -> None:
    """Which reminder is due for the days left and those sent; a passed date ends them."""
    assert step(days_left, reminded) == expected


@pytest.mark.parametrize(("text", "found"), [
    ("agree", ("agree", None)), ("I agree.", ("I agree.", None)), ("Agreed!", ("Agreed!", None)),
    ("akkoord", ("akkoord", None)), ("Ik ga akkoord", ("Ik ga akkoord", None)),
    ("akkoord 2027-01-15", ("akkoord 2027-01-15", "2027-01-15")),
    ("Thanks!\n\nagree\n", ("agree", None)),
    ("I don't agree", None), ("not akkoord", None), ("agree with the fix, not the date", None),
    ("> agree\nno", None), ("disagree", None),
])
def test_agreement_line(text: str, found: tuple[str, str | None] | None) -> None:
    """Only a line that says agreement and nothing else is consent; quoted text is not."""
    assert agreement(text) == found


def _mailbot(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mailbot", *args, "--config", str(config)],
                          capture_output=True, text=True, timeout=60)


async def test_hall_of_fame(bot: Bot, sink: Sink, tmp_path: Path) -> None:
    """Credited resolved cases made public or past their agreed date are listed, newest
    first, by the name chosen: never an address, never the anonymous, markup escaped."""
    names = ["pseudonym <b>Zero</b>Cool", "anonymous", "Rita Researcher", "Not Resolved"]
    for i, credit in enumerate(names):
        case = Case(bot, sink)
        case.commands = 10 * i
        await bot.send(report(body=f"XSS number {i} on https://app.example.com/{i}",
                              message_id=f"<r{i}@example.net>", subject=f"xss {i}"))
        await sink.wait_for(2 * i + 1, to=ALICE)  # each case: a notification, a transcript
        case.note = sink.to(ALICE)[-1].msg
        assert case.note["X-Mailbot-Kind"] == "new"
        status = "#status resolved\n" if credit != "Not Resolved" else ""
        disclose = "#disclose public" if i != 2 else "#disclose 2026-12-20 agreed"
        transcript = await case.staff(f"{status}#credit {credit}\n{disclose}")
        assert "applied" in transcript.lower(), transcript
    config = tmp_path / "mailbot.toml"
    shown = await asyncio.to_thread(_mailbot, config, "hall-of-fame", "--format", "html")
    assert shown.returncode == 0, shown.stderr
    assert "&lt;b&gt;Zero&lt;/b&gt;Cool" in shown.stdout and "<b>Zero" not in shown.stdout
    for absent in ("anonymous", "Anonymous", "Not Resolved", "@"):
        assert absent not in shown.stdout
    store = await bot.open_store()
    async with store.read() as db:
        later = await disc_q.hall_of_fame(db, "2026-12-21")
    assert [r["credit"] for r in later] == [  # newest first: Rita's date is 2026-12-20
        "Rita Researcher", "anonymous", "pseudonym <b>Zero</b>Cool"]
    shown = await asyncio.to_thread(_mailbot, config, "hall-of-fame", "--inbox", "security")
    assert shown.stdout.startswith("# Hall of fame")
    assert "\\<b\\>Zero\\</b\\>Cool" in shown.stdout


async def test_digest_lists_upcoming_publications(bot: Bot, sink: Sink) -> None:
    """The weekly digest names the proposed and the agreed publications of the coming week
    among what is due, saying which have consent."""
    from mailbot.jobs import digest

    first = await Case(bot, sink).open()
    await first.staff("#disclose 2026-12-23 agreed")
    await bot.send(report(body="Another: https://app.example.com/y", subject="second",
                          message_id="<report-2@example.net>"))
    await sink.wait_for(3, to=ALICE)
    second = Case(bot, sink)
    second.note, second.commands = sink.to(ALICE)[-1].msg, 10
    await second.staff("#disclose 2026-12-21")
    await bot.send(report(body="Later: https://app.example.com/z", subject="third",
                          message_id="<report-3@example.net>"))
    await sink.wait_for(5, to=ALICE)
    third = Case(bot, sink)
    third.note, third.commands = sink.to(ALICE)[-1].msg, 20
    await third.staff("#disclose 2027-01-15 agreed")  # beyond the week: not yet
    store = await bot.open_store()
    [security, _] = await digest.build(store, bot.config, FRIDAY_EVENING)
    listed = [(line.ref, line.promise) for line in security.due_soon
              if line.note == "publication"]
    assert listed == [("SEC-2026-0002", "publication proposed, no consent yet"),
                      ("SEC-2026-0001", "publication agreed")]
    text, _ = digest.render(Templates(), [security], "en", "Europe/Amsterdam")
    assert "SEC-2026-0001" in text and "publication agreed" in text
