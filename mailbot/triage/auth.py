"""Is this sender authenticated staff? Never decided by the From: header alone.

Proofs, chosen per inbox (`staff_auth`):
- "reply-token": a reply to the case's tokenised reply address. Staff notifications set
  `Reply-To: <local>+<REF>.<token>@<domain>`, where the token is an HMAC of the case
  reference and that staff member's address under the bot's secret; a mail to that
  address from that staff address is theirs.
- "dkim": a valid DKIM signature by the staff address's own domain (dkimpy).
A PGP signature by the staff member's key is the third proof SPEC.md names; it plugs in here
with the PGP issue.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import dkim

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


DnsFunc = Callable[..., bytes | None]


def dkim_domains(raw: bytes, dnsfunc: DnsFunc | None = None) -> tuple[str, ...]:
    """The domains whose DKIM signatures on this mail verify. Blocking (DNS): call it in
    a thread. `dnsfunc` answers TXT lookups (tests give one; None asks the real DNS)."""
    try:
        checker = dkim.DKIM(raw, timeout=5)
        count = len([h for h in checker.headers if h[0].lower() == b"dkim-signature"])
    except Exception:  # a header block dkimpy cannot read carries no valid signature
        return ()
    found = []
    for idx in range(min(count, 5)):
        try:
            checker = dkim.DKIM(raw, timeout=5)
            ok = checker.verify(idx, dnsfunc=dnsfunc) if dnsfunc else checker.verify(idx)
        except Exception:  # dkimpy raises on a bad signature as well as returning False
            continue
        if ok and checker.domain:
            found.append(checker.domain.decode("ascii", "replace").lower())
    return tuple(found)


def dkim_aligned(domains: Iterable[str], address: str) -> bool:
    """A signature by the staff address's own domain (or a parent of it) vouches for it."""
    own = address.rpartition("@")[2].lower()
    return any(own == d or own.endswith("." + d) for d in domains if "." in d)
