"""Staff triage by mail, end to end: replies written as mail clients write them."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

import pytest

from mailbot.store import cases as case_q
from tests.support import FRIDAY_EVENING, Bot, Sink, plain_text, report

REPORTER = "researcher@example.net"
ALICE = "alice@example.org"


async def notified(bot: Bot, sink: Sink, **kw: str) -> EmailMessage:
    """Open a case; return the notification alice got."""
    await bot.send(report(**kw))
    (note,) = await sink.wait_for(1, to=ALICE)
    return note.msg


def staff_reply(note: EmailMessage, body: str, *, sender: str = ALICE,
                message_id: str = "<alice-cmd-1@example.org>", date: str | None = None
                ) -> EmailMessage:
    """A reply as Gmail writes one: our text on top, the notification quoted below."""
    msg = EmailMessage()
    msg["From"] = f"Alice <{sender}>"
    msg["To"] = str(note["Reply-To"])
    msg["Subject"] = f"Re: {note['Subject']}"
    msg["Message-ID"] = message_id
    msg["In-Reply-To"] = str(note["Message-ID"])
    msg["Date"] = date or format_datetime(FRIDAY_EVENING)  # the bot's clock starts there
    quoted = "\n".join(f"> {line}" for line in note.get_content().splitlines()[:5])
    msg.set_content(f"{body}\n\nOn Fri, 18 Dec 2026 at 18:00, mailbot wrote:\n{quoted}\n")
    return msg


async def case(bot: Bot, ref: str = "SEC-2026-0001") -> dict[str, Any]:
    store = await bot.open_store()
    async with store.read() as db:
        found = await case_q.get(db, ref)
        assert found is not None
        found["events"] = await case_q.events(db, int(found["id"]))
        return found


async def transcript_for(sink: Sink, count: int = 1) -> str:
    mails = await sink.wait_for(count + 1, to=ALICE)  # the notification, then transcripts
    text = mails[-1].msg.get_content()
    assert isinstance(text, str)
    return text


async def test_triage_by_reply_changes_case_and_tells_reporter(bot: Bot, sink: Sink) -> None:
    """Commands from alice's reply address are applied, audited, relayed and transcribed."""
    note = await notified(bot, sink)
    await bot.send(staff_reply(note, "#status accepted\n"
                                     "#severity CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H\n"
                                     "#due 2027-01-08\n#assign bob\n#reply\n"
                                     "Thanks, we reproduced it."),
                   to=[str(note["Reply-To"])])
    transcript = await transcript_for(sink)
    assert "Applied to SEC-2026-0001" in transcript
    assert "#status accepted: new -> accepted" in transcript
    assert "(CVSS 9.8)" in transcript

    (_, update) = await sink.wait_for(2)  # the ack, then the update
    body = update.msg.get_content()
    assert update.mail_from == "security@example.org"
    assert update.msg["From"] == "security@example.org"
    assert update.msg["Subject"] == "[SEC-2026-0001] Re: XSS in /search"
    assert "Thanks, we reproduced it." in body
    assert "confirmed the issue" in body
    assert "Friday 8 January 2027" in body
    assert ALICE not in update.raw.decode() and "mailbot wrote" not in body

    c = await case(bot)
    assert (c["state"], c["severity"], c["assignee"]) == ("accepted", "critical", "bob")
    assert c["resolution_due"] == "2027-01-08T22:59:59+00:00"
    assert c["first_responded_at"] is not None
    actions = [(e["action"], e["old"], e["new"]) for e in c["events"]]
    assert ("status", "new", "accepted") in actions
    assert ("assign", None, "bob") in actions


async def test_one_bad_line_applies_nothing(bot: Bot, sink: Sink) -> None:
    """A mail with an unknown status changes nothing; the transcript names line and reason."""
    note = await notified(bot, sink)
    await bot.send(staff_reply(note, "#severity high\n#status fixd\n#reply\nFixed!"),
                   to=[str(note["Reply-To"])])
    transcript = await transcript_for(sink)
    assert "Nothing was applied" in transcript
    assert "line 2: unknown status 'fixd'; expected one of: triaged" in transcript
    c = await case(bot)
    assert (c["state"], c["severity"]) == ("new", None)
    await asyncio.sleep(0.3)
    assert len(sink.to(REPORTER)) == 1  # only the ack


async def test_forged_command_changes_nothing(bot: Bot, sink: Sink) -> None:
    """alice's From: without her reply address is not obeyed and gets no transcript."""
    await notified(bot, sink)
    forged = report(sender=ALICE, subject="Re: [SEC-2026-0001] XSS in /search",
                    body="#status resolved\n#reply\nAll fixed, go public.\n",
                    message_id="<forged-cmd@evil.example>")
    await bot.send(forged)
    (_, alert) = await sink.wait_for(2, to="bob@example.org")
    assert alert.msg["X-Mailbot-Kind"] == "untrusted-staff"
    text = plain_text(alert.msg)
    assert "NOT obeyed:\n  #status resolved\n  #reply" in text.replace("\r\n", "\n")
    c = await case(bot)
    assert c["state"] == "new"
    await asyncio.sleep(0.3)
    assert len(sink.to(REPORTER)) == 1
    assert all(m.msg["X-Mailbot-Kind"] != "transcript" for m in sink.to(ALICE))


async def test_replayed_and_stale_commands_are_refused(bot: Bot, sink: Sink) -> None:
    """The same command mail twice is applied once; one dated weeks ago is refused."""
    note = await notified(bot, sink)
    first = staff_reply(note, "#severity low")
    await bot.send(first, to=[str(note["Reply-To"])])
    await transcript_for(sink)
    await bot.send(first, to=[str(note["Reply-To"])])  # the same bytes again
    replay = staff_reply(note, "#severity low", message_id="<other-id@example.org>")
    replay.replace_header("Message-ID", "<alice-cmd-1@example.org>")
    await bot.send(replay, to=[str(note["Reply-To"])])  # same Message-ID, other bytes
    stale = staff_reply(note, "#severity high", message_id="<stale@example.org>",
                        date="Mon, 02 Nov 2026 10:00:00 +0100")
    await bot.send(stale, to=[str(note["Reply-To"])])
    transcript = await transcript_for(sink, 2)
    assert "outside the replay window" in transcript
    c = await case(bot)
    assert c["severity"] == "low"
    assert [e["action"] for e in c["events"]].count("severity") == 1


async def test_reply_text_cannot_inject_headers(bot: Bot, sink: Sink) -> None:
    """Header-like lines in a #reply stay in the body of the reporter's mail."""
    note = await notified(bot, sink)
    await bot.send(staff_reply(note, "#reply\nBcc: victim@example.com\r\nSubject: pwned"),
                   to=[str(note["Reply-To"])])
    (_, update) = await sink.wait_for(2)
    assert update.rcpt_tos == [REPORTER]
    assert update.msg["Bcc"] is None
    assert update.msg["Subject"] == "[SEC-2026-0001] Re: XSS in /search"


async def test_dutch_reporter_hears_in_dutch(bot: Bot, sink: Sink) -> None:
    """A case in Dutch gets its updates in Dutch, with the date written out in Dutch."""
    msg = report(to="support@example.org", subject="Lek in login")
    await bot.send(msg)
    (note,) = await sink.wait_for(1, to=ALICE)
    await bot.send(staff_reply(note.msg, "#due 2027-01-08"), to=[str(note.msg["Reply-To"])])
    (_, update) = await sink.wait_for(2)
    assert "vrijdag 8 januari 2027" in update.msg.get_content()


QUOTE_STYLES = {
    "gmail": "On Fri, 18 Dec 2026 at 18:00, mailbot security <security@example.org> wrote:\n"
             "> New report SEC-2026-0001\n",
    "outlook": "________________________________\nFrom: mailbot security <security@example.org>\n"
               "Sent: Friday, December 18, 2026 6:00 PM\nTo: Alice\nSubject: [SEC-2026-0001] X\n"
               "\nNew report SEC-2026-0001\n",
    "apple mail": "> On 18 Dec 2026, at 18:00, mailbot security <security@example.org> wrote:\n"
                  "> \n> New report SEC-2026-0001\n",
    "thunderbird": "On 18/12/2026 18:00, mailbot security wrote:\n> New report\n",
    "gmail dutch": "Op vr 18 dec. 2026 om 18:00 schreef mailbot security "
                   "<security@example.org>:\n> Nieuwe melding\n",
}


@pytest.mark.parametrize("style", QUOTE_STYLES)
async def test_commands_above_each_clients_quote(bot: Bot, sink: Sink, style: str) -> None:
    """Commands written above the quote of each common client are applied; the quote is not
    relayed to the reporter."""
    note = await notified(bot, sink)
    reply = staff_reply(note, "x")
    reply.set_content("#status triaged\n#reply\nWe are on it.\n\n" + QUOTE_STYLES[style])
    await bot.send(reply, to=[str(note["Reply-To"])])
    transcript = await transcript_for(sink)
    assert "Applied to SEC-2026-0001" in transcript
    (_, update) = await sink.wait_for(2)
    body = update.msg.get_content()
    assert "We are on it." in body
    assert "New report" not in body and "Nieuwe melding" not in body


async def test_needs_info_pause_moves_the_deadlines(bot: Bot, sink: Sink) -> None:
    """Waiting 3 business days on the reporter moves both deadlines by 3 business days."""
    note = await notified(bot, sink)
    # No #reply: a question sent to the reporter would itself be the first response.
    await bot.send(staff_reply(note, "#status needs-info"), to=[str(note["Reply-To"])])
    await transcript_for(sink)
    paused = await case(bot)
    assert paused["state"] == "needs-info" and paused["paused_at"] is not None
    bot.clock.advance(timedelta(days=5))  # Fri 18 Dec evening -> Wed 23 Dec evening
    answer = report(subject="Re: [SEC-2026-0001] XSS in /search", body="Version 2.3.\n",
                    message_id="<answer@example.net>")
    await bot.send(answer)
    async with asyncio.timeout(10):
        while (c := await case(bot))["state"] == "needs-info":
            await asyncio.sleep(0.05)
    assert c["state"] == "new"  # back where it was before the question
    # Mon 21, Tue 22, Wed 23 waited; Thu 24, Mon 28, Tue 29 (25, 26 holidays, 27 Sunday)
    assert c["first_response_due"] == "2026-12-29T22:59:59+00:00"
    assert c["resolution_due"] == "2027-01-20T22:59:59+00:00"
    assert c["paused_at"] is None
