"""Outgoing mail: well-formed, threaded, and impossible to inject headers into."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest

from mailbot.mail.compose import Outgoing, build, make_message_id, reply_subject

AT = datetime(2026, 12, 18, 17, tzinfo=UTC)


def mail(**overrides: object) -> Outgoing:
    fields: dict[str, object] = dict(
        sender="security@example.org", sender_name=None, to=["rita@example.net"],
        subject="[SEC-2026-0001] Re: XSS", text="Hello,\n\nThanks.\n",
        message_id="<ack.1@example.org>", date=AT, in_reply_to="<r1@example.net>",
        references=["<r0@example.net>", "<r1@example.net>"],
        headers={"Auto-Submitted": "auto-replied"},
    )
    fields.update(overrides)
    return Outgoing(**fields)  # type: ignore[arg-type]


def parsed(raw: bytes) -> EmailMessage:
    return message_from_bytes(raw, policy=policy.default)


def test_round_trip() -> None:
    """What we build parses back to the same fields and text."""
    m = parsed(build(mail()))
    assert m["Subject"] == "[SEC-2026-0001] Re: XSS"
    assert m["To"] == "rita@example.net"
    assert m["In-Reply-To"] == "<r1@example.net>"
    assert m["References"].split() == ["<r0@example.net>", "<r1@example.net>"]
    assert m["Auto-Submitted"] == "auto-replied"
    assert m.get_content().replace("\r\n", "\n") == "Hello,\n\nThanks.\n"


@pytest.mark.parametrize("evil", [
    "XSS\r\nBcc: victim@example.com", "XSS\nBcc: victim@example.com", "XSS\rBcc: v@example.com",
    "XSS\x00\u2028Bcc: victim@example.com",
])
def test_no_header_injection_through_subject_or_names(evil: str) -> None:
    """CR, LF, NUL and Unicode line breaks in any value never start a new header."""
    raw = build(mail(subject=evil, sender_name=evil, headers={"X-Mailbot-Case": evil}))
    m = parsed(raw)
    assert m["Bcc"] is None
    assert list(m.keys()).count("Subject") == 1
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert not any(line.lower().startswith(b"bcc") for line in head.split(b"\r\n"))


def test_long_values_are_folded_and_non_ascii_encoded() -> None:
    """Long headers are folded under 998 octets; non-ASCII subjects and names are encoded."""
    raw = build(mail(subject="Fallo de autenticación " + "x" * 600, sender_name="Sécurité",
                     references=[f"<r{i}.{'z' * 60}@example.net>" for i in range(30)]))
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()
    m = parsed(raw)
    assert m["Subject"].startswith("Fallo de autenticación xxx")
    assert m["From"].addresses[0].display_name == "Sécurité"
    assert len(m["References"].split()) == 20  # the newest 20 are kept


def test_reply_subject_strips_prefixes_and_references() -> None:
    """No stacked Re:/AW:, and no case reference (ours or another) carried along."""
    assert reply_subject("SEC-2026-0001", "Re: AW: [SEC-2026-0001] XSS") == (
        "[SEC-2026-0001] Re: XSS")
    assert reply_subject("SUP-2026-0001", "[SEC-2026-0007] hi") == "[SUP-2026-0001] Re: hi"
    assert reply_subject("SEC-2026-0001", "") == "[SEC-2026-0001]"


def test_message_ids_are_unique_and_safe() -> None:
    """Message-IDs carry the purpose, our domain, and a random part."""
    a, b = make_message_id("example.org", "ack.SEC-2026-0001"), make_message_id("example.org", "x")
    assert a != b and a.endswith("@example.org>") and a.startswith("<ack.SEC-2026-0001.")
    assert make_message_id("example.org", "a b\r\nc").count(" ") == 0
