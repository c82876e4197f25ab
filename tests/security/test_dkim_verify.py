"""mail/dkim.verify over real dkimpy signatures: what each valid signature covers."""

from __future__ import annotations

from mailbot.mail.dkim import verify
from tests.security.conftest import RECORDS, command_mail, sign


def dns(name: bytes, timeout: int = 5) -> bytes | None:
    return RECORDS.get(name.decode())


def test_a_signature_reports_its_domain_headers_and_length() -> None:
    """A valid signature carries its d=, its h= (lower-cased) and whether l= stops short
    of the body; the result carries each used header as dkimpy read it."""
    raw = sign(command_mail("SEC-2026-0001"), headers=[b"From", b"Subject", b"Date"])
    (sig,) = verify(raw, dns).signatures
    assert (sig.domain, sig.signed, sig.partial_body) == (
        "example.org", frozenset({"from", "subject", "date"}), False)
    names = [n for n, _ in verify(raw, dns).headers]
    assert sorted(names) == ["date", "from", "message-id", "subject", "to"]


def test_a_body_length_short_of_the_body_is_reported() -> None:
    """l= equal to the body is whole; text appended after it makes it partial, while the
    signature itself still verifies (which is why it must not prove anything)."""
    raw = sign(command_mail("SEC-2026-0001"), length=True)
    assert verify(raw, dns).signatures[0].partial_body is False
    (sig,) = verify(raw + b"#status rejected\r\n", dns).signatures
    assert sig.partial_body is True


def test_invalid_unknown_and_unreadable_signatures_are_left_out() -> None:
    """A changed body, a key nobody publishes and a broken header block: no signature."""
    raw = sign(command_mail("SEC-2026-0001"))
    assert verify(raw.replace(b"#status rejected", b"#status accepted"), dns).signatures == ()
    assert verify(sign(command_mail("SEC-2026-0001"), domain=b"unknown.example"),
                  dns).signatures == ()
    assert verify(b"\x00garbage", dns).signatures == ()


def test_a_prepended_copy_is_read_twice_and_the_signature_still_verifies() -> None:
    """dkimpy verifies the last copy of a header: a copy put above it leaves the signature
    valid, so the decision must see both copies (it does: both are in `headers`)."""
    raw = sign(command_mail("SEC-2026-0001"))
    forged = b"Subject: Re: [SEC-2026-0002] other\r\n" + raw
    result = verify(forged, dns)
    assert len(result.signatures) == 1
    assert [n for n, _ in result.headers].count("subject") == 2
