"""Staff hear of every case; a staff reply counts only through its personal reply address."""

from __future__ import annotations

import asyncio

from mailbot.store import cases as case_q
from tests.support import Bot, Received, Sink, plain_text, report

REPORTER = "researcher@example.net"
STAFF = ("alice@example.org", "bob@example.org")


async def open_case(bot: Bot, sink: Sink, **kw: str) -> dict[str, Received]:
    """Send a report; return the notification each staff member got, by address."""
    await bot.send(report(**kw))
    notes = {}
    for address in STAFF:
        (notes[address],) = await sink.wait_for(1, to=address)
    return notes


async def messages(bot: Bot, ref: str = "SEC-2026-0001") -> list[dict[str, object]]:
    store = await bot.open_store()
    async with store.read() as db:
        case = await case_q.get(db, ref)
        assert case is not None
        return await case_q.messages(db, case["id"])


async def settle(bot: Bot, count: int) -> list[dict[str, object]]:
    """Wait until the case holds `count` messages."""
    async with asyncio.timeout(10):
        while len(found := await messages(bot)) < count:
            await asyncio.sleep(0.05)
    return found


async def test_each_staff_member_is_notified_with_a_personal_reply_address(
    bot: Bot, sink: Sink
) -> None:
    """A new report reaches every staff member with its text and deadlines, each with a
    reply address of their own."""
    notes = await open_case(bot, sink, subject="XSS in /search")
    for address, received in notes.items():
        m = received.msg
        assert received.rcpt_tos == [address]
        assert m["Subject"] == "[SEC-2026-0001] XSS in /search"
        reply_to = str(m["Reply-To"])
        assert reply_to.startswith("security+SEC-2026-0001.")
        assert reply_to.endswith("@example.org")
        body = plain_text(m)
        assert "The q parameter is reflected." in body
        assert "Wednesday 23 December 2026" in body
        assert REPORTER in body
    assert notes["alice@example.org"].msg["Reply-To"] != notes["bob@example.org"].msg["Reply-To"]


async def test_notification_carries_the_reports_attachments(bot: Bot, sink: Sink) -> None:
    """The original attachments are attached to the staff notification."""
    msg = report()
    msg.add_attachment(b"%PDF-1.4 poc", maintype="application", subtype="pdf",
                       filename="poc.pdf")
    await bot.send(msg)
    (note,) = await sink.wait_for(1, to="alice@example.org")
    files = [(p.get_filename(), p.get_content()) for p in note.msg.iter_attachments()]
    assert files == [("poc.pdf", b"%PDF-1.4 poc")]


async def test_reply_through_personal_address_is_authenticated_staff(
    bot: Bot, sink: Sink
) -> None:
    """Alice replying to her own reply address is trusted staff; nobody else is mailed."""
    notes = await open_case(bot, sink)
    reply = report(sender="alice@example.org", subject="Re: [SEC-2026-0001] XSS in /search",
                   body="Looking into it.\n", message_id="<alice-1@example.org>")
    reply["In-Reply-To"] = str(notes["alice@example.org"].msg["Message-ID"])
    await bot.send(reply, to=[str(notes["alice@example.org"].msg["Reply-To"])])
    found = await settle(bot, 3)
    staff_mail = found[2]
    assert (staff_mail["kind"], staff_mail["trusted"]) == ("staff", True)
    await asyncio.sleep(0.3)
    assert len(sink.to(REPORTER)) == 1  # the ack only: a staff note never reaches the reporter
    assert len(sink.to("bob@example.org")) == 1


async def test_forged_staff_from_is_untrusted_and_alerts_staff(bot: Bot, sink: Sink) -> None:
    """A mail with alice's From: but not her reply address changes nothing and alerts staff."""
    await open_case(bot, sink)
    forged = report(sender="alice@example.org", subject="Re: [SEC-2026-0001] close it",
                    body="#close fixed\n", message_id="<forged@evil.example>")
    await bot.send(forged)
    found = await settle(bot, 3)
    assert (found[2]["kind"], found[2]["trusted"]) == ("untrusted-staff", False)
    (_, alert) = await sink.wait_for(2, to="bob@example.org")
    assert alert.msg["X-Mailbot-Kind"] == "untrusted-staff"
    assert "could not be authenticated" in plain_text(alert.msg)
    store = await bot.open_store()
    async with store.read() as db:
        case = await case_q.get(db, "SEC-2026-0001")
    assert case is not None and case["state"] == "new"


async def test_one_staff_members_reply_address_does_not_work_for_another(
    bot: Bot, sink: Sink
) -> None:
    """Bob writing to alice's reply address is not authenticated: the token is per person."""
    notes = await open_case(bot, sink)
    await bot.send(
        report(sender="bob@example.org", subject="Re: x", message_id="<b1@example.org>"),
        to=[str(notes["alice@example.org"].msg["Reply-To"])],
    )
    found = await settle(bot, 3)
    assert (found[2]["kind"], found[2]["trusted"]) == ("untrusted-staff", False)


async def test_stranger_on_a_case_learns_nothing(bot: Bot, sink: Sink) -> None:
    """Someone who knows the reference is kept on the case, flagged, and sent nothing."""
    await open_case(bot, sink, body="Secret details of the bug.\n")
    await bot.send(report(sender="snoop@example.com", subject="Re: [SEC-2026-0001] status?",
                          body="Any news?\n", message_id="<snoop@example.com>"))
    found = await settle(bot, 3)
    assert (found[2]["kind"], found[2]["trusted"]) == ("stranger", False)
    (_, warning) = await sink.wait_for(2, to="alice@example.org")
    assert "NOT the reporter" in plain_text(warning.msg)
    await asyncio.sleep(0.3)
    assert sink.to("snoop@example.com") == []


async def test_case_text_only_ever_goes_to_reporter_and_staff(bot: Bot, sink: Sink) -> None:
    """Across a case's life, mail carrying its text goes to no third address."""
    await open_case(bot, sink, body="Secret details of the bug.\n")
    await bot.send(report(sender="snoop@example.com", subject="Re: [SEC-2026-0001] hi",
                          message_id="<snoop2@example.com>"))
    await settle(bot, 3)
    await asyncio.sleep(0.3)
    allowed = {REPORTER, *STAFF}
    for received in sink.received:
        if "Secret details" in received.raw.decode("utf-8", "replace"):
            assert set(received.rcpt_tos) <= allowed


async def test_template_syntax_in_subject_stays_text(bot: Bot, sink: Sink) -> None:
    """A subject holding jinja2 syntax reaches staff and reporter as the same characters."""
    notes = await open_case(bot, sink, subject="{{ config }} {% for x in y %}")
    subject = notes["alice@example.org"].msg["Subject"]
    assert subject == "[SEC-2026-0001] {{ config }} {% for x in y %}"
    body = plain_text(notes["alice@example.org"].msg)
    assert "{{ config }}" in body
    (ack,) = await sink.wait_for(1)
    assert "{{ config }}" in ack.msg.get_content()
