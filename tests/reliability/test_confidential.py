"""The confidentiality check itself: it finds case text sent to an outsider."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from tests.support import Bot, Received, Sink, leaks, report


async def test_leaks_finds_case_text_sent_to_an_outsider(
    bot: Bot, sink: Sink, tmp_path: Path
) -> None:
    """Real traffic (two reports, a stranger naming a case) is clean; the same mails
    readdressed to the other reporter or to a stranger are reported as leaks."""
    await bot.send(report(sender="r0@example.net", message_id="<c0@example.net>",
                          subject="SQL injection in the login form",
                          body="The username field concatenates into the query string.\n"))
    await bot.send(report(sender="r1@example.net", message_id="<c1@example.net>",
                          subject="Open redirect after logout",
                          body="The next parameter accepts any absolute URL at all.\n"))
    await sink.wait_for(1, to="r1@example.net")
    await bot.send(report(sender="mallory@example.net", message_id="<m@example.net>",
                          subject="[SEC-2026-0001] what is this about?"))
    await sink.wait_for(8, to=None)  # 2 acks, 6 staff notices (reports and the stranger)
    db = tmp_path / "mailbot.db"
    assert leaks(sink.received, db, bot.config) == []
    assert sink.to("mallory@example.net") == []

    (ack0,) = sink.to("r0@example.net")
    notice = next(r for r in sink.to("alice@example.org") if b"Open redirect" in r.raw)
    forged: list[Received] = [replace(ack0, rcpt_tos=["r1@example.net"]),
                              replace(notice, rcpt_tos=["mallory@example.net"])]
    found = leaks(forged, db, bot.config)
    assert any(f.startswith("r1@example.net got 'SEC-2026-0001'") for f in found), found
    assert any(f.startswith("mallory@example.net got") and "Open redirect" in f
               for f in found), found
