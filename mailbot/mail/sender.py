"""From: as RFC 5322 reads it: the addr-spec of exactly one mailbox, or no address.

Mail systems disagree about malformed From: lines, and an attacker writes whatever makes
one system (a DKIM signer, a mail client) read one address and a careless parser another:
a display name that looks like an address, an encoded word that decodes to one, a group,
a second mailbox or a second From:. Here the address is only ever the addr-spec that the
email package's RFC 5322 parser reads, and anything that is not exactly one plain mailbox
reads as no address, with the reason (the pipeline then answers the envelope sender and
never takes the mail as staff's).
"""

from __future__ import annotations

import re
from email import errors
from email._encoded_words import decode as _ew_decode
from email._header_value_parser import get_address_list

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\x85]+")
# `Name <local@domain>` or a bare `local@domain`, the name of plain atoms and RFC 2047
# encoded words (of phrase-safe characters) only: no quotes, comments, specials or raw
# non-ASCII, so RFC 5322 reads it exactly as this does (tests/security/test_from_parse.py
# checks it against the email package). Its parser, at ~150 us a call, reads the rest.
_DOT_ATOM_ADDR = r"[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"
_EW = r"=\?[A-Za-z0-9_-]{1,40}\?[QqBb]\?[A-Za-z0-9!*+/=_.-]{0,300}\?="
_PHRASE = rf"(?:{_EW}|[A-Za-z0-9][A-Za-z0-9.'_-]*)(?:[ \t]+(?:{_EW}|[A-Za-z0-9.'_-]+))*"
_PLAIN_FROM = re.compile(
    rf"[ \t]*(?:({_PHRASE})?[ \t]*<({_DOT_ATOM_ADDR})>|({_DOT_ATOM_ADDR}))[ \t]*"
)
_FOLD = re.compile(r"\r?\n(?=[ \t])")  # RFC 5322 unfolding
_ODD_ADDR = re.compile(r"[\s\"\\<>()\x00-\x1f\x7f]")


def _line(value: str, limit: int) -> str:
    """One line of text: control characters out, white space collapsed (parse.one_line)."""
    return " ".join(_CONTROL.sub(" ", value).split())[:limit]


def sender(values: list[str]) -> tuple[str, str, str | None]:
    """(display name, address, problem) of the From: header(s) as RFC 5322 reads them: the
    addr-spec of exactly one mailbox, never a fragment of a display name; an encoded word
    is decoded only inside the display name, so it never makes an address. ("", "", why)
    when there is not exactly one plain mailbox: a second From:, two addresses, a group,
    a parse defect (what other mail systems read is then anyone's guess)."""
    if not values:
        return "", "", None
    if len(values) > 1:
        return "", "", f"{len(values)} From: headers"
    value = _FOLD.sub("", values[0])
    plain = _PLAIN_FROM.fullmatch(value)
    # An encoded word right before "<" is malformed to RFC 2047: the full parser says so.
    if plain and not (plain.group(1) and value[plain.end(1)] == "<"
                      and plain.group(1).endswith("?=")):
        name, angle, bare = plain.groups()
        decoded = _phrase(name or "")
        if decoded is not None:
            return decoded, (angle or bare).lower(), None
    return _registry_sender(value)


def _phrase(name: str) -> str | None:
    """A display name of atoms and encoded words, decoded as the email package's address
    parser decodes it (each word kept, one space between); None if a word is bad."""
    if "=?" not in name:
        return _line(name, 200)
    words = []
    for token in name.split():
        if token.startswith("=?"):
            try:
                token, _, _, defects = _ew_decode(token)
            except Exception:  # a malformed word: the full parser says what it is
                return None
            if defects:
                return None
        words.append(token)
    return _line(" ".join(words), 200)


def _registry_sender(value: str) -> tuple[str, str, str | None]:
    # The header registry's own parser: its Address objects refuse a display name whose
    # encoded words decode to CR/LF, though the address itself is plain.
    try:
        parsed, rest = get_address_list(value)
    except Exception as e:  # the parser is lenient; this is the last resort
        return "", "", f"From: unreadable ({type(e).__name__})"
    # Obsolete syntax reads one way only; a control character (an encoded CR/LF) in the
    # display name is dropped from the name below, and one in the address refused.
    bad = [d for d in parsed.all_defects
           if not isinstance(d, errors.ObsoleteHeaderDefect | errors.NonPrintableDefect)]
    if bad or rest:
        return "", "", f"From: {_line(str(bad[0]) if bad else 'text after the address', 80)}"
    if any(a.display_name is not None for a in parsed.addresses):
        return "", "", "From: is a group"
    mailboxes = parsed.all_mailboxes
    if len(mailboxes) != 1:
        return "", "", f"From: has {len(mailboxes)} addresses"
    (mailbox,) = mailboxes
    addr = f"{mailbox.local_part or ''}@{mailbox.domain or ''}"
    if (addr.count("@") != 1 or addr.startswith("@") or addr.endswith("@")
            or _ODD_ADDR.search(addr) or len(addr) > 320):
        return "", "", "From: address is not a plain addr-spec"
    return _line(mailbox.display_name or "", 200), addr.lower(), None


def envelope_address(value: str | None) -> str:
    """The envelope sender (MAIL FROM) as an address to answer, "" when it is not one."""
    addr = (value or "").strip().lower()
    return addr if "@" in addr and not _ODD_ADDR.search(addr) and len(addr) <= 320 else ""
