"""The parser's bounds on hostile mail: parts, nesting, size, decoded bytes, header length."""

from __future__ import annotations

import tracemalloc

from mailbot.mail import parse as parse_mod
from mailbot.mail.parse import MAX_DECODED, MAX_PARSED, parse
from tests.corpus.make_hostile import (
    SMALL,
    attachment,
    big_attachment,
    multipart,
    nested,
    text_part,
)


def test_ten_thousand_parts_keep_at_most_max_parts() -> None:
    """10,000 parts: at most MAX_PARTS walked, and the defect says so."""
    mail = parse(SMALL["many-parts"]())
    assert mail.text == "part 0\n"
    assert len(mail.attachments) < parse_mod.MAX_PARTS
    assert "more than 1000 parts; the rest ignored" in mail.defects


def test_deep_nesting_is_cut_before_the_parser() -> None:
    """100,000 nested multiparts cost no more than 40: the sender survives, the text is gone."""
    mail = parse(nested("deep", 100_000))
    assert mail.from_addr == "hostile-deep@example.net"
    assert "more than 40 multiparts; the rest ignored" in mail.defects


def test_big_mail_is_parsed_from_its_start_in_bounded_memory() -> None:
    """A 50 MB attachment: the report's text is read, memory stays under 15x MAX_PARSED."""
    raw = big_attachment(50_000_000)
    tracemalloc.start()
    try:
        mail = parse(raw)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert mail.text == "Proof attached.\n"
    assert any(d.startswith(f"larger than {MAX_PARSED} bytes") for d in mail.defects)
    assert peak < 15 * MAX_PARSED


def test_attachment_bytes_kept_are_bounded() -> None:
    """Attachments past MAX_DECODED in all are listed with no data (the raw mail has it)."""
    raw = multipart("att", [text_part(b"see\r\n")]
                    + [attachment(2 * 1024 * 1024, f"a{i}.bin") for i in range(3)])
    mail = parse(raw)
    assert [a.filename for a in mail.attachments] == ["a0.bin", "a1.bin", "a2.bin"]
    assert sum(len(a.data) for a in mail.attachments) <= MAX_DECODED
    assert mail.attachments[2].data == b""


def test_rfc2047_bomb_and_huge_headers_stay_one_short_line() -> None:
    """20,000 encoded words and a 1 MB subject (folded or not) decode to one line of at most
    998."""
    for name in ("rfc2047-bomb", "long-header", "long-line"):
        mail = parse(SMALL[name]())
        assert "\n" not in mail.subject and 0 < len(mail.subject) <= 998


def test_header_injection_stays_in_the_subject() -> None:
    """CR/LF, raw or encoded, never splits a subject or a sender into two headers."""
    for name in ("crlf-subject", "encoded-newline", "encoded-newline-from"):
        mail = parse(SMALL[name]())
        assert "\r" not in mail.subject and "\n" not in mail.subject
        assert mail.from_addr == f"hostile-{name}@example.net"
