"""A staff member forwards a report that reached them personally; `#open-for ADDRESS` in
the reply to the notification makes its original sender the case's reporter."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from mailbot.store import cases as case_q
from tests.imap_support import until
from tests.support import FRIDAY_EVENING, Bot, Sink, report, table

ALICE = "alice@example.org"
RITA = "rita@example.net"


def staff_reply(note: EmailMessage, body: str, *, sender: str = ALICE,
                message_id: str = "<alice-cmd-1@example.org>") -> EmailMessage:
    """A reply to a notification, from its personal reply address."""
    msg = EmailMessage()
    msg["From"] = f"Alice <{sender}>"
    msg["To"] = str(note["Reply-To"])
    msg["Subject"] = f"Re: {note['Subject']}"
    msg["Message-ID"] = message_id
    msg["In-Reply-To"] = str(note["Message-ID"])
    msg["Date"] = format_datetime(FRIDAY_EVENING)
    msg.set_content(f"{body}\n\nOn Fri, 18 Dec 2026 at 18:00, mailbot wrote:\n> New case\n")
    return msg


def original() -> EmailMessage:
    """The researcher's mail to alice, as her client keeps it."""
    return report(subject="XSS in /search", sender=RITA, to=ALICE,
                  message_id="<rita-1@example.net>",
                  body="The q parameter is reflected without escaping.\n")


def attached_forward() -> EmailMessage:
    """Alice forwards it as an attachment (message/rfc822) to the inbox."""
    msg = EmailMessage()
    msg["From"] = f"Alice <{ALICE}>"
    msg["To"] = "security@example.org"
    msg["Subject"] = "Fwd: XSS in /search"
    msg["Message-ID"] = "<alice-fwd-1@example.org>"
    msg["Date"] = format_datetime(FRIDAY_EVENING)
    msg.set_content("This reached me directly; please track it.\n")
    msg.add_attachment(original())
    return msg


def inline_forward() -> EmailMessage:
    """Alice forwards it inline, as Gmail writes a forward."""
    msg = EmailMessage()
    msg["From"] = f"Alice <{ALICE}>"
    msg["To"] = "security@example.org"
    msg["Subject"] = "Fwd: XSS in /search"
    msg["Message-ID"] = "<alice-fwd-2@example.org>"
    msg["Date"] = format_datetime(FRIDAY_EVENING)
    msg.set_content("FYI\n\n---------- Forwarded message ---------\n"
                    f"From: Rita Researcher <{RITA}>\n"
                    "Date: Wed, 16 Dec 2026 09:00:00 +0100\n"
                    "Subject: XSS in /search\nTo: <alice@example.org>\n\n"
                    "The q parameter is reflected without escaping.\n")
    return msg


async def opened_by_forward(bot: Bot, sink: Sink, fwd: EmailMessage) -> EmailMessage:
    """Send the forward; return alice's notification of the case it opened."""
    await bot.send(fwd)
    mails = await sink.wait_for(2, to=ALICE)  # her acknowledgement and her notification
    return next(m.msg for m in mails if m.msg["Reply-To"] and "+" in str(m.msg["Reply-To"]))


async def the_case(bot: Bot) -> dict[str, Any]:
    store = await bot.open_store()
    async with store.read() as db:
        found = await case_q.get(db, "SEC-2026-0001")
        assert found is not None
        found["events"] = await case_q.events(db, int(found["id"]))
        return found


async def test_open_for_an_attached_report(bot: Bot, sink: Sink) -> None:
    """The forward opens a case as alice's; her `#open-for` makes Rita the reporter, and
    Rita gets the acknowledgement, threaded on her own mail."""
    note = await opened_by_forward(bot, sink, attached_forward())
    assert (await the_case(bot))["reporter"] == ALICE
    await bot.send(staff_reply(note, f"#open-for {RITA}"), to=[str(note["Reply-To"])])
    (ack,) = await sink.wait_for(1, to=RITA)
    assert ack.msg["In-Reply-To"] == "<rita-1@example.net>"
    assert "SEC-2026-0001" in str(ack.msg["Subject"])
    case = await the_case(bot)
    assert case["reporter"] == RITA
    assert any(e["action"] == "open-for" and e["new"] == RITA
               for e in case["events"])


async def test_open_for_with_the_original_date(bot: Bot, sink: Sink) -> None:
    """`original-date` counts the deadlines from the forwarded message's Date: (Wednesday
    16 December, 09:00 in Amsterdam) instead of from the forward's receipt (Friday 18:00)."""
    note = await opened_by_forward(bot, sink, inline_forward())
    before = await the_case(bot)
    assert str(before["first_response_due"]).startswith("2026-12-23T22:59:59")
    await bot.send(staff_reply(note, f"#open-for {RITA} original-date"),
                   to=[str(note["Reply-To"])])
    await sink.wait_for(1, to=RITA)
    after = await the_case(bot)
    assert after["reporter"] == RITA and after["reporter_name"] == "Rita Researcher"
    # 3 business days after Wednesday: Monday 21; 30 days after 16 December: 15 January
    # (23:59:59 in Amsterdam, stored in UTC).
    assert str(after["first_response_due"]).startswith("2026-12-21T22:59:59")
    assert str(after["resolution_due"]).startswith("2027-01-15T22:59:59")
    assert any(e["action"] == "receipt time" for e in after["events"])


async def test_open_for_without_the_original_date_keeps_the_deadlines(bot: Bot,
                                                                     sink: Sink) -> None:
    """Without `original-date` the deadlines stay counted from the forward's receipt."""
    note = await opened_by_forward(bot, sink, inline_forward())
    before = await the_case(bot)
    await bot.send(staff_reply(note, f"#open-for {RITA}"), to=[str(note["Reply-To"])])
    await sink.wait_for(1, to=RITA)
    after = await the_case(bot)
    assert after["reporter"] == RITA
    assert (after["first_response_due"], after["resolution_due"]) == (
        before["first_response_due"], before["resolution_due"])


async def test_open_for_refused_on_a_researchers_case(bot: Bot, sink: Sink) -> None:
    """An authenticated staff member cannot use `#open-for` to take a researcher's case
    away from them: refused, and the reporter stays."""
    await bot.send(report())
    (note,) = [m.msg for m in await sink.wait_for(1, to=ALICE)]
    await bot.send(staff_reply(note, "#open-for mallory@example.net"),
                   to=[str(note["Reply-To"])])
    transcript = (await sink.wait_for(2, to=ALICE))[-1].msg.get_content()
    assert "#open-for names the reporter of a case you opened" in transcript
    assert (await the_case(bot))["reporter"] == "researcher@example.net"
    assert sink.to("mallory@example.net") == []


async def test_open_for_from_a_stranger_is_not_obeyed(bot: Bot, sink: Sink) -> None:
    """Mallory, who learned the case's reply address, sends `#open-for` to redirect the
    case to herself: it is not staff mail, nothing changes, nothing goes to her."""
    note = await opened_by_forward(bot, sink, attached_forward())
    await bot.send(staff_reply(note, "#open-for mallory@example.net",
                               sender="mallory@example.net",
                               message_id="<mallory-1@example.net>"),
                   mail_from="mallory@example.net", to=[str(note["Reply-To"])])
    assert await until(lambda: table(
        bot.config.storage.database,
        "SELECT kind FROM messages WHERE message_id = '<mallory-1@example.net>'")) == [
        ("stranger",)]
    assert (await the_case(bot))["reporter"] == ALICE
    assert sink.to("mallory@example.net") == []
