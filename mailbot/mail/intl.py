"""Internationalised addresses on the way out (RFC 6530-6533): what a relay must offer.

A non-ASCII *domain* has an ASCII form, its IDNA A-label (`xn--…`): it is written so in the
envelope and the address headers, and the mail needs nothing special of any relay (nor of
the servers after it, which may not speak SMTPUTF8 even when our relay does). A non-ASCII
*local part* has no ASCII form at all: such a mail goes with SMTPUTF8, as it is, through a
relay that offers it, and cannot go through one that does not.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from mailbot.mail.parse import header_block


class Unsendable(ValueError):
    """This mail cannot go through this relay, whatever we try: the reason says why."""


@dataclass(frozen=True, slots=True)
class Envelope:
    mail_from: str
    rcpt_to: tuple[str, ...]
    raw: bytes
    options: tuple[str, ...]  # MAIL FROM parameters: ("SMTPUTF8",) or ()


def needs_smtputf8(mail_from: str, rcpt_to: Sequence[str], raw: bytes) -> bool:
    """Any non-ASCII in the envelope or in the header block."""
    return not (mail_from.isascii() and all(r.isascii() for r in rcpt_to)
                and header_block(raw).isascii())


def ascii_address(address: str) -> str:
    """`local@domain` with the domain as its IDNA A-label; Unsendable when the local part
    is not ASCII or the domain has no A-label."""
    if address.isascii():
        return address
    local, at, domain = address.rpartition("@")
    if not at or not local.isascii():
        raise Unsendable(f"the address {address} has a non-ASCII local part, which only a "
                         "relay offering SMTPUTF8 can carry")
    try:
        return f"{local}@{domain.encode('idna').decode('ascii')}"
    except UnicodeError as e:
        raise Unsendable(f"the domain of {address} has no IDNA form: {e}") from None


def envelope(mail_from: str, rcpt_to: Sequence[str], raw: bytes, smtputf8: bool) -> Envelope:
    """What to send to a relay that offers SMTPUTF8 (`smtputf8`) or does not: ASCII when
    it can be, else UTF-8 with SMTPUTF8; Unsendable when neither will do."""
    if not needs_smtputf8(mail_from, rcpt_to, raw):
        return Envelope(mail_from, tuple(rcpt_to), raw, ())
    try:
        sender = ascii_address(mail_from) if mail_from else mail_from
        rcpts = tuple(ascii_address(r) for r in rcpt_to)
        return Envelope(sender, rcpts, _ascii_headers(raw), ())
    except Unsendable:
        if smtputf8:
            return Envelope(mail_from, tuple(rcpt_to), raw, ("SMTPUTF8",))
        raise


_UTF8_ADDRESS = re.compile(rb"[^\s<>,;:\"()@]+@([^\s<>,;:\"()@]+)")


def _ascii_headers(raw: bytes) -> bytes:
    """The header block with every non-ASCII address domain in its A-label form.

    Our own mail writes UTF-8 in a header only for an internationalised address (the rest is
    RFC 2047-encoded, see compose.py), so once the domains are A-labels the header is ASCII;
    a header that still is not means a local part that cannot be carried."""
    head = header_block(raw)
    if head.isascii():
        return raw

    def label(m: re.Match[bytes]) -> bytes:
        text = m.group(0).decode("utf-8", "replace")
        return ascii_address(text).encode("ascii") if not text.isascii() else m.group(0)

    fixed = _UTF8_ADDRESS.sub(label, head)
    if not fixed.isascii():
        raise Unsendable("the mail's headers carry non-ASCII text that only a relay offering "
                         "SMTPUTF8 can carry")
    return fixed + raw[len(head):]
