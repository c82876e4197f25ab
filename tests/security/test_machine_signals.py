"""Machine signals (Auto-Submitted, X-Loop, ...) decide whether the bot answers; they never
make a sender trusted."""

from __future__ import annotations

from tests.security.conftest import World, command_mail, mail, now_date


async def test_forged_machine_mail_from_staff_is_untrusted_and_alerts(world: World) -> None:
    """The attacker forges From: alice with Auto-Submitted, X-Loop naming the inbox, or an
    Exchange auto-reply header, hoping to be filed quietly as a trusted auto-reply (no
    alert) with their text on the case as alice's."""
    ref = await world.open_case()
    forged = [
        command_mail(ref, extra=[("Auto-Submitted", "auto-replied")]),
        command_mail(ref, extra=[("X-Loop", "security@example.org")]),
        command_mail(ref, extra=[("X-MS-Exchange-Generated-Message-Source", "Mailbox Rules")]),
        command_mail(ref, extra=[("Precedence", "bulk")]),
    ]
    for raw in forged:
        await world.send(raw)
    await world.settled()
    for raw in forged:
        status, reason, kind, trusted = world.verdict(raw)
        assert (status, kind, trusted) == ("done", "untrusted-staff", 0), reason
        assert reason is not None and "machine mail" in reason
        assert "notify" in world.queued_for(raw)  # staff are alerted
        assert "transcript" not in world.queued_for(raw)
    assert world.state(ref) == "new"


async def test_a_strangers_machine_mail_is_recorded_untrusted(world: World) -> None:
    """The attacker (not on the case) sends mail with X-Loop: security@… and the case
    reference, hoping it is kept as a trusted auto-reply: it is kept untrusted and
    never answered."""
    ref = await world.open_case()
    raw = mail([("From", "<mallory@evil.example>"), ("To", "security@example.org"),
                ("Subject", f"Re: [{ref}] XSS in /search"), ("Date", now_date()),
                ("Message-ID", "<loop-forged@evil.example>"),
                ("X-Loop", "security@example.org")], "Trust me.\n")
    await world.send(raw, mail_from="mallory@evil.example")
    await world.settled()
    status, reason, kind, trusted = world.verdict(raw)
    assert (status, kind, trusted) == ("done", "auto-reply", 0)
    assert reason is not None and "not on the case" in reason
    assert world.queued_for(raw) == []  # never answered
    assert not any("mallory" in r for (r,) in world.rows("SELECT rcpt_to FROM outbox"))


async def test_the_reporters_auto_reply_stays_unanswered(world: World) -> None:
    """The control: the reporter's own out-of-office is kept on the case as theirs and
    never answered (no loop), and it reopens nothing."""
    ref = await world.open_case()
    (reporter,) = world.rows("SELECT reporter FROM cases WHERE ref = ?", (ref,))[0]
    raw = mail([("From", f"<{reporter}>"), ("To", "security@example.org"),
                ("Subject", f"Automatic reply: [{ref}] XSS in /search"), ("Date", now_date()),
                ("Message-ID", "<ooo@example.net>"), ("Auto-Submitted", "auto-replied")],
               "I am away.\n")
    await world.send(raw, mail_from=reporter)
    await world.settled()
    assert world.verdict(raw)[2:] == ("auto-reply", 1)
    assert world.queued_for(raw) == []
