"""Is this sender authenticated staff? Never decided by the From: header alone.

Today one proof is implemented: a reply to the case's tokenised reply address. Staff
notifications set `Reply-To: <local>+<REF>.<token>@<domain>`, where the token is an HMAC
of the case reference and that staff member's address under the bot's secret; a mail to
that address from that staff address is theirs. (PGP signatures and aligned DKIM are the
other proofs SPEC.md names; they plug in here.)
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass

_TOKEN_LEN = 20  # hex digits: 80 bits, short enough for a local part
# Case-insensitive: mail systems and our own parser lower-case addresses on the way.
_REPLY = re.compile(
    rf"^([^+@]+)\+([a-z][a-z0-9]{{0,9}}-\d{{4}}-\d{{4,}})\.([0-9a-f]{{{_TOKEN_LEN}}})@(.+)$", re.I
)


def reply_token(secret: bytes, ref: str, staff_address: str) -> str:
    mac = hmac.new(secret, f"{ref}\0{staff_address.lower()}".encode(), hashlib.sha256)
    return mac.hexdigest()[:_TOKEN_LEN]


def reply_address(inbox_address: str, ref: str, token: str) -> str:
    local, _, domain = inbox_address.partition("@")
    return f"{local}+{ref}.{token}@{domain}"


@dataclass(frozen=True, slots=True)
class ReplyAddress:
    inbox_address: str
    ref: str
    token: str


def parse_reply_address(address: str) -> ReplyAddress | None:
    m = _REPLY.match(address.strip())
    if not m:
        return None
    return ReplyAddress(f"{m.group(1)}@{m.group(4)}".lower(), m.group(2).upper(),
                        m.group(3).lower())


def reply_refs(addresses: Iterable[str], inbox_address: str) -> list[ReplyAddress]:
    """The case reply addresses of this inbox among a mail's recipients."""
    found = []
    for a in addresses:
        parsed = parse_reply_address(a)
        if parsed is not None and parsed.inbox_address == inbox_address.lower():
            found.append(parsed)
    return found


def token_valid(secret: bytes, reply: ReplyAddress, sender: str) -> bool:
    """The reply address was made for this sender on this case."""
    return hmac.compare_digest(reply_token(secret, reply.ref, sender), reply.token)
