"""DKIM header duplication: the bot must read exactly the headers the signature covers."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.security.conftest import USED, World, command_mail, now_date, sign

# (header, a value an attacker would put in a copy of it)
COPIES = [
    ("From", "Alice <alice@example.org>"),
    ("Date", now_date()),
    ("Subject", "Re: [{other}] another case"),
    ("Message-ID", "<fresh-copy@example.org>"),
    ("In-Reply-To", "<somewhere@example.org>"),
    ("References", "<somewhere@example.org>"),
    ("To", "security@example.org"),
    ("Cc", "security@example.org"),
]


def with_copy(raw: bytes, header: str, value: str, *, prepend: bool) -> bytes:
    """`raw` (with its DKIM-Signature on top) with one more `header:` line, placed above
    every header (a relay adds on top) or below them all."""
    head, body = raw.split(b"\r\n\r\n", 1)
    line = f"{header}: {value}".encode()
    if prepend:
        return line + b"\r\n" + head + b"\r\n\r\n" + body
    return head + b"\r\n" + line + b"\r\n\r\n" + body


async def test_a_genuine_signed_command_is_obeyed(world: World) -> None:
    """The control: a staff command signed by alice's own domain over every used header
    is obeyed, and the DKIM key was asked of the configured resolver."""
    ref = await world.open_case()
    raw = sign(command_mail(ref, "#status triaged\n"))
    await world.send(raw)
    await world.settled()
    assert world.verdict(raw)[2:] == ("staff", 1)
    assert world.state(ref) == "triaged"
    assert "mail._domainkey.example.org." in world.dns.asked


@pytest.mark.parametrize("prepend", [True, False], ids=["prepended", "appended"])
async def test_a_second_copy_of_any_used_header_is_never_obeyed(
    world: World, prepend: bool
) -> None:
    """The attacker takes a genuine signed staff command and adds a second copy of one
    header the bot reads (a fresh Message-ID and Date, a Subject naming another case, a
    From:, To:, Cc:, In-Reply-To or References), above or below the signed one, hoping
    the bot reads the copy while the signature vouches for the original."""
    ref = await world.open_case()
    other = await world.open_case(sender="someone@example.net", subject="Other bug")
    tried = []
    for header, value in COPIES:
        raw = sign(command_mail(ref, extra=[("In-Reply-To", "<ack@example.org>"),
                                            ("References", "<ack@example.org>"),
                                            ("Cc", "bob@example.org")]))
        forged = with_copy(raw, header, value.format(other=other), prepend=prepend)
        await world.send(forged)
        tried.append((header, forged))
    await world.settled()
    for header, forged in tried:
        status, reason, kind, trusted = world.verdict(forged)
        assert (status, kind, trusted) == ("done", "untrusted-staff", 0), header
        assert reason is not None and "not authenticated" in reason, (header, reason)
        assert "transcript" not in world.queued_for(forged), header
        assert "notify" in world.queued_for(forged), header  # staff are alerted
    assert world.state(ref) == "new" and world.state(other) == "new"


async def test_headers_outside_the_signature_are_not_trusted(world: World) -> None:
    """The attacker adds a header the signer did not sign (h= lacks it) to steer the mail:
    a References naming another case, a Subject the signer left unsigned."""
    ref = await world.open_case()
    other = await world.open_case(sender="someone@example.net", subject="Other bug")
    # Signed without References: the attacker adds one naming the other case's report.
    (report_id,) = world.rows("SELECT message_id FROM messages WHERE kind = 'report' AND"
                              " case_id = (SELECT id FROM cases WHERE ref = ?)", (other,))[0]
    unsigned_refs = sign(command_mail(other, subject="Re: no reference here"),
                         headers=[h for h in USED if h != b"References"])
    head, body = unsigned_refs.split(b"\r\n\r\n", 1)
    forged_refs = head + f"\r\nReferences: {report_id}".encode() + b"\r\n\r\n" + body
    # Signed without Subject: the subject that names the case is the attacker's.
    forged_subject = sign(command_mail(ref), headers=[h for h in USED if h != b"Subject"])
    for raw in (forged_refs, forged_subject):
        await world.send(raw)
    await world.settled()
    assert world.verdict(forged_refs)[2:] == ("untrusted-staff", 0)
    reason = world.verdict(forged_subject)[1]
    assert reason is not None and "subject not signed" in reason
    assert world.state(ref) == "new" and world.state(other) == "new"


async def test_the_date_checked_is_the_signed_one(world: World) -> None:
    """The attacker replays a genuine signed command from weeks ago: as it is (the signed
    Date is outside the replay window) and with a fresh Date: prepended."""
    ref = await world.open_case()
    old = sign(command_mail(ref, date=now_date(-timedelta(days=20))))
    await world.send(old)
    # A fresh Date on top, and a fresh Message-ID so it is no duplicate of the first.
    refreshed = with_copy(old, "Date", now_date(), prepend=True)
    refreshed = with_copy(refreshed, "Message-ID", "<replayed-old@example.org>", prepend=True)
    await world.send(refreshed)
    await world.settled()
    reason = world.verdict(old)[1]
    assert reason is not None and "replay window" in reason
    assert world.verdict(refreshed)[2:] == ("untrusted-staff", 0)
    assert world.state(ref) == "new"


async def test_a_signed_mail_cannot_be_sent_to_another_case(world: World) -> None:
    """The attacker re-addresses a genuine signed command for one case to another: by an
    envelope recipient naming the other case's reply address, or a Cc: left unsigned."""
    ref = await world.open_case()
    other = await world.open_case(sender="someone@example.net", subject="Other bug")
    raw = sign(command_mail(ref), headers=[h for h in USED if h != b"Cc"])
    fake_reply = f"security+{other}.{'0' * 20}@example.org"
    await world.send(raw, to=[fake_reply])
    head, body = raw.split(b"\r\n\r\n", 1)
    with_cc = (head.replace(b"<cmd-", b"<cmd-cc-") + f"\r\nCc: {fake_reply}".encode()
               + b"\r\n\r\n" + body)
    await world.send(with_cc)
    await world.settled()
    assert world.state(other) == "new"
    for sent in (raw, with_cc):
        assert world.verdict(sent)[2:] == ("untrusted-staff", 0)


async def test_a_signature_by_another_domain_vouches_for_nothing(world: World) -> None:
    """The attacker signs a mail From: alice@example.org with their own domain's key."""
    ref = await world.open_case()
    raw = sign(command_mail(ref), domain=b"evil.example")
    await world.send(raw)
    await world.settled()
    assert world.verdict(raw)[2:] == ("untrusted-staff", 0)
    assert world.state(ref) == "new"
