"""The From: parser alone: what each confusion reads as, and the fast path for plain
`Name <a@b>` agreeing with RFC 5322's reading (the email package's) on every input."""

from __future__ import annotations

from email import base64mime, quoprimime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailbot.mail.parse import parse
from mailbot.mail.sender import _PLAIN_FROM, _registry_sender, sender

# (From: value, the address read, or None: no address, untrusted)
TABLE = [
    ("Rita Researcher <rita@example.net>", "rita@example.net"),
    ("Rita R. Researcher <rita@example.net>", "rita@example.net"),
    ("rita@example.net", "rita@example.net"),
    ("<rita@example.net>", "rita@example.net"),
    ('"Researcher, Rita" <rita@example.net>', "rita@example.net"),
    ("rita@example.net (Rita)", "rita@example.net"),
    ("Rit\u00e9 \u0420\u0438\u0442\u0430 <rita@example.net>", "rita@example.net"),
    ("=?utf-8?q?R=C3=A9ne?= <rene@example.net>", "rene@example.net"),
    ('"rita"@example.net', "rita@example.net"),
    ("=?us-ascii?q?a:alice@example.org,?= <mallory@example.org>", "mallory@example.org"),
    ("(alice@example.org) <mallory@example.org>", "mallory@example.org"),
    ('"alice@example.org" <mallory@example.org>', "mallory@example.org"),
    ("=?utf-8?q?Rita=0D=0ABcc:_x@evil.example?= <rita2@example.net>", "rita2@example.net"),
    ("alice@example.org <mallory@example.org>", None),
    ("alice@example.org]<mallory@example.org>", None),
    ("Alice <alice@example.org> <mallory@example.org>", None),
    ("alice@example.org, mallory@example.org", None),
    ("staff: alice@example.org;", None),
    ("staff:; alice@example.org", None),
    ('"alice@example.org"@evil.example', None),
    ('"a b"@example.org', None),
    ("=?utf-8?b?YWxpY2VAZXhhbXBsZS5vcmc=?=", None),
    ("alice", None),
    ("Rita <rita@example.net", None),
    ("", None),
]


@pytest.mark.parametrize(("value", "address"), TABLE)
def test_from_reads_as_rfc_5322_does(value: str, address: str | None) -> None:
    """Each From: is read as the one addr-spec RFC 5322 gives it, or as no address (with
    a reason, when a From: was there) when it is not exactly one plain mailbox."""
    name, addr, problem = sender([value] if value else [])
    assert addr == (address or "")
    assert (problem is None) == (address is not None or not value)
    assert "\n" not in name and "\r" not in name


def test_two_from_headers_read_as_none() -> None:
    """A second From: header makes the sender unknown (mail systems pick either one)."""
    raw = (b"From: Alice <alice@example.org>\r\nFrom: Mallory <mallory@example.org>\r\n"
           b"To: security@example.org\r\nSubject: x\r\n\r\nbody\r\n")
    mail = parse(raw)
    assert (mail.from_addr, mail.from_problem) == ("", "2 From: headers")
    assert [n for n, _ in mail.headers].count("from") == 2


def test_a_folded_from_reads_as_one_line() -> None:
    """A From: folded over two lines (RFC 5322 folding) is one plain mailbox."""
    mail = parse(b"From: Rita\r\n Researcher <rita@example.net>\r\nSubject: x\r\n\r\nb\r\n")
    assert (mail.from_name, mail.from_addr, mail.from_problem) == (
        "Rita Researcher", "rita@example.net", None)


_ATOM = st.from_regex(r"\A[A-Za-z0-9_+-]{1,8}\Z")
_LABEL = st.from_regex(r"\A[A-Za-z0-9-]{1,8}\Z")
_ADDR = st.builds(lambda local, domain: f"{'.'.join(local)}@{'.'.join(domain)}",
                  st.lists(_ATOM, min_size=1, max_size=3), st.lists(_LABEL, min_size=2,
                                                                    max_size=3))
_WORD = st.from_regex(r"\A[A-Za-z0-9.'_-]{1,8}\Z")
_ENCODED = st.builds(
    lambda text, b64: (base64mime if b64 else quoprimime).header_encode(
        text.encode(), "utf-8"),
    st.text(min_size=1, max_size=8), st.booleans())
_NAME = st.builds(
    lambda first, rest, gaps: first + "".join(g + t for g, t in zip(gaps, rest, strict=False)),
    st.one_of(st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9.'_-]{0,6}\Z"), _ENCODED),
    st.lists(st.one_of(_WORD, _ENCODED), max_size=4),
    st.lists(st.sampled_from([" ", "\t", "  "]), min_size=4, max_size=4))


@given(name=st.one_of(st.none(), _NAME), addr=_ADDR,
       pad=st.sampled_from(["", " ", "\t", "  "]))
def test_the_fast_path_reads_as_the_email_package_does(
    name: str | None, addr: str, pad: str
) -> None:
    """For every plain `Name <local@domain>` (atoms and encoded words) and bare
    `local@domain` the fast path takes, the name and the address are those the email
    package's RFC 5322 parser reads."""
    value = f"{pad}{addr}{pad}" if name is None else f"{pad}{name}{pad}<{addr}>{pad}"
    assert _PLAIN_FROM.fullmatch(value)
    assert sender([value]) == _registry_sender(value)


@given(st.text(st.sampled_from("ab@.<>\"(),:;[] \\=?\u00e9\r\n"), max_size=30))
def test_any_from_reads_as_one_plain_address_or_none(value: str) -> None:
    """Whatever the header holds, the result is one plain address (no space, quote,
    bracket or control character) with no problem, or no address with a reason."""
    _, addr, problem = sender([value])
    if problem is None and addr:
        assert addr.count("@") == 1 and not any(c in addr for c in " \"<>()\\\r\n\t")
    assert bool(addr) != bool(problem) or (not addr and not problem and not value.strip())
