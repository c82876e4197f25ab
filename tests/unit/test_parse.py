"""Parsing real-world and hostile mail: fields, machine signals, and never a crash."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbot.mail.parse import parse

MAIL = Path(__file__).resolve().parents[1] / "fixtures" / "mail"
LOOP = ("security@example.org",)


def fixture(name: str) -> bytes:
    return (MAIL / name).read_bytes()


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("exchange-ooo.eml", "out of office (x-ms-exchange-generated-message-source)"),
        ("icloud-vacation.eml", "out of office (x-autoreply)"),
        ("gmail-vacation.eml", "auto-submitted: auto-replied"),
        ("postfix-dsn.eml", "delivery report"),
        ("mailing-list.eml", "precedence: list"),
        ("report-with-attachment.eml", None),
        ("html-only.eml", None),
    ],
)
def test_machine_signals(name: str, reason: str | None) -> None:
    """Bounces, out-of-office replies and list mail are recognised; people's mail is not."""
    assert parse(fixture(name), loop_markers=LOOP).machine == reason


def test_our_own_x_loop_is_a_loop() -> None:
    """A mail carrying our own X-Loop is ours coming back."""
    raw = b"From: a@example.net\r\nX-Loop: security@example.org\r\nSubject: x\r\n\r\nhi\r\n"
    assert parse(raw, loop_markers=LOOP).machine == "loop: X-Loop"
    assert parse(raw, loop_markers=("other@example.org",)).machine is None


@pytest.mark.parametrize("sender", [b"MAILER-DAEMON <>", b"Postmaster <>"])
def test_bounce_sender_without_address_is_a_bounce(sender: bytes) -> None:
    """A bounce whose From: names the mailer daemon or postmaster with an empty address
    (DragonFly; the gateway of flufl.bounce's simple_24) is machine mail, never answered."""
    raw = b"From: " + sender + b"\r\nSubject: Undeliverable: x\r\n\r\nunknown user\r\n"
    assert parse(raw).machine == "bounce sender"


def test_out_of_office_subject_alone_is_a_person() -> None:
    """A human may title a report "Out of office"; without another signal it is answered."""
    raw = b"From: a@example.net\r\nSubject: Out of office portal leaks data\r\n\r\nhi\r\n"
    assert parse(raw).machine is None


def test_report_with_attachment_fields() -> None:
    """Encoded names and subjects are decoded; threading ids kept in order; PDF kept."""
    mail = parse(fixture("report-with-attachment.eml"))
    assert mail.from_addr == "jose@example.net"
    assert mail.from_name == "José García"
    assert mail.subject == "Fallo de autenticación"
    assert mail.message_id == "<att-1@example.net>"
    assert mail.in_reply_to == ("<r1@example.net>",)
    assert mail.references == ("<r0@example.net>", "<r1@example.net>")
    assert mail.text.strip() == "See the attached proof of concept."
    assert mail.html is not None
    assert [(a.filename, a.content_type, a.data[:4]) for a in mail.attachments] == [
        ("poc.pdf", "application/pdf", b"%PDF")]
    assert mail.date is not None and mail.date.utcoffset() is not None


def test_html_only_mail_becomes_text_without_script() -> None:
    """An HTML-only mail is read as text; script and style never reach it."""
    mail = parse(fixture("html-only.eml"))
    assert mail.subject == "SQL injection in “login”"
    assert mail.language == "nl"
    assert "Het login-formulier & de API zijn kwetsbaar." in mail.text
    assert "alert" not in mail.text and "color" not in mail.text


def test_encoded_newline_in_subject_stays_one_line() -> None:
    """An encoded word that decodes to CRLF + Bcc: stays inside a one-line subject."""
    mail = parse(fixture("header-injection.eml"))
    assert mail.subject == "hi Bcc: victim@example.com"
    assert "\n" not in mail.subject and "\r" not in mail.subject


@pytest.mark.parametrize(
    "name", ["nul-bytes.eml", "multipart-no-boundary.eml", "unknown-charset.eml"]
)
def test_malformed_mail_is_read_with_defects(name: str) -> None:
    """Broken MIME, NUL bytes and unknown charsets give a result and a list of defects."""
    mail = parse(fixture(name))
    assert mail.defects
    assert "\x00" not in mail.subject


def test_unknown_charset_falls_back() -> None:
    """Text in an unknown charset is decoded as UTF-8 or Latin-1 rather than lost."""
    mail = parse(fixture("unknown-charset.eml"))
    assert "café" in mail.text
    assert any("x-klingon" in d for d in mail.defects)


def test_many_parts_are_bounded() -> None:
    """A mail with 10,000 parts is read up to the limit and says so."""
    parts = b"".join(b"--B\r\nContent-Type: text/plain\r\n\r\npart\r\n" for _ in range(10_000))
    raw = (b"From: a@example.net\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n"
           + parts + b"--B--\r\n")
    mail = parse(raw, max_parts=1000)
    assert len(mail.attachments) < 1000
    assert any("more than 1000 parts" in d for d in mail.defects)


def test_deep_nesting_is_bounded() -> None:
    """Multiparts nested 500 deep are cut at the depth limit without recursion errors."""
    raw = b"From: a@example.net\r\n"
    for i in range(500):
        raw += b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i)
    raw += b"Content-Type: text/plain\r\n\r\ndeep\r\n"
    mail = parse(raw, max_depth=20)
    assert any("nested deeper than 20" in d for d in mail.defects)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=4000))
def test_any_bytes_parse(raw: bytes) -> None:
    """No byte string makes the parser raise, and the subject is always one line."""
    mail = parse(raw)
    assert "\n" not in mail.subject and "\r" not in mail.subject


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_fixtures_parse(data: st.DataObject) -> None:
    """A real mail with random bytes overwritten still parses."""
    raw = bytearray(fixture("report-with-attachment.eml"))
    for _ in range(data.draw(st.integers(1, 20))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    mail = parse(bytes(raw))
    assert "\n" not in mail.subject
