"""From: as RFC 5322 reads it: the addr-spec of exactly one mailbox, never a fragment of a
display name, never an address made by decoding an encoded word."""

from __future__ import annotations

import json

import pytest

from tests.security.conftest import USED, World, mail, now_date, sign

# From: lines an attacker with an account at the staff domain (mallory@example.org, who
# can have mail DKIM-signed by d=example.org) writes to be read as alice@example.org.
CONFUSIONS = {
    "encoded word holding a group": "=?us-ascii?q?a:alice@example.org,?= <mallory@example.org>",
    "address as display name": "alice@example.org <mallory@example.org>",
    "bracket before the angle": "alice@example.org]<mallory@example.org>",
    "quoted address as name": '"alice@example.org" <mallory@example.org>',
    "comment holding the address": "(alice@example.org) <mallory@example.org>",
    "two addresses": "alice@example.org, mallory@example.org",
    "group": "staff: alice@example.org;",
    "empty group then address": "staff:; alice@example.org",
    "quoted local part with @": '"alice@example.org"@example.org',
    "encoded-word address": "=?utf-8?b?YWxpY2VAZXhhbXBsZS5vcmc=?=",
    "encoded CRLF and From:": "=?utf-8?q?x=0D=0AFrom:_alice@example.org?= <mallory@example.org>",
    "unicode lookalike brackets": "Alice \u2039alice@example.org\u203a <mallory@example.org>",
    "second angle address": "Alice <alice@example.org> <mallory@example.org>",
    "route": "<@example.org:mallory@example.org>",
}


def staff_command(ref: str, from_lines: list[str], n: int) -> bytes:
    headers = [("From", line) for line in from_lines]
    headers += [("To", "security@example.org"), ("Subject", f"Re: [{ref}] XSS in /search"),
                ("Date", now_date()), ("Message-ID", f"<confusion-{n}@example.org>")]
    return sign(mail(headers, "#status rejected\n#reply Closed.\n"),
                headers=[h for h in USED if h != b"From"] + [b"From"] * len(from_lines))


@pytest.mark.parametrize("envelope", ["mallory@example.org", "alice@example.org"])
async def test_no_from_confusion_is_read_as_staff(world: World, envelope: str) -> None:
    """The attacker (any user of the staff domain, so the DKIM signature is valid and
    aligned) writes a From: that some parser might read as alice@example.org, with their
    own envelope sender or alice's: never obeyed, recorded untrusted."""
    ref = await world.open_case()
    sent = []
    for n, line in enumerate(CONFUSIONS.values()):
        raw = staff_command(ref, [line], n)
        await world.send(raw, mail_from=envelope)
        sent.append((line, raw))
    two = staff_command(ref, ["Alice <alice@example.org>", "Mallory <mallory@example.org>"], 99)
    await world.send(two, mail_from=envelope)
    sent.append(("two From: headers", two))
    await world.settled()
    for line, raw in sent:
        status, reason, kind, trusted = world.verdict(raw)
        assert status == "done" and trusted == 0, (line, reason)
        assert kind in ("stranger", "untrusted-staff"), (line, kind)
        assert "transcript" not in world.queued_for(raw), line
    assert world.state(ref) == "new"
    assert world.rows("SELECT count(*) FROM outbox WHERE purpose LIKE 'reporter:%'") == [(0,)]


async def test_encoded_crlf_in_a_display_name_never_makes_a_recipient(world: World) -> None:
    """The attacker hides `CRLF Bcc: mallory@…` in an encoded display name hoping the
    acknowledgement goes to (or also to) an address of theirs."""
    raw = mail([("From", "=?utf-8?q?Rita=0D=0ABcc:_mallory@evil.example=0D=0Ax-injected?="
                         " <rita2@example.net>"),
                ("To", "security@example.org"), ("Subject", "Report"), ("Date", now_date()),
                ("Message-ID", "<crlf-name@example.net>")], "A report.\n")
    await world.send(raw, mail_from="rita2@example.net")
    await world.settled()
    ((reporter, name),) = world.rows("SELECT reporter, reporter_name FROM cases")
    assert reporter == "rita2@example.net"
    assert "\n" not in (name or "") and "\r" not in (name or "")
    recipients = {a for (r,) in world.rows("SELECT rcpt_to FROM outbox") for a in json.loads(r)}
    assert "rita2@example.net" in recipients
    assert not any("evil" in a or "mallory" in a for a in recipients)


async def test_an_ambiguous_from_is_answered_at_the_envelope_sender_only(world: World) -> None:
    """The attacker sends a report whose From: reads one way to one parser and another way
    to the next (`victim@… <attacker@…>`), hoping the acknowledgement and later updates go
    to the address they chose, or that the victim gets mail about a case they never
    opened: the case answers only the envelope sender."""
    raw = mail([("From", "researcher@example.net <mallory@evil.example>"),
                ("To", "security@example.org"), ("Subject", "Report"), ("Date", now_date()),
                ("Message-ID", "<ambiguous@example.net>")], "A report.\n")
    await world.send(raw, mail_from="bounces-7@sender.example")
    await world.settled()
    ((reporter,),) = world.rows("SELECT reporter FROM cases")
    assert reporter == "bounces-7@sender.example"
    ((ack_to,),) = world.rows("SELECT rcpt_to FROM outbox WHERE purpose LIKE 'ack:%'")
    assert json.loads(ack_to) == ["bounces-7@sender.example"]
