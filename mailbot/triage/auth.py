"""Who is speaking, and why: the one place that decides it. Never the From: header alone.

`speaker()` takes the parsed mail, its case, the PGP verdict and the DKIM result (values;
the store lookups it needs are made before) and returns a `Speaker`. Staff proofs, chosen
per inbox (`staff_auth`):
- "reply-token": a mail to the case's tokenised reply address. Staff notifications set
  `Reply-To: <local>+<REF>.<token>@<domain>`, where the token is an HMAC of the case
  reference and that staff member's address under the bot's secret.
- "dkim": a valid signature of the staff address's own domain that covers every header
  the bot reads (h=) and the whole body (no l= short of it), dated within the replay
  window, whose signed headers name the case.
- "pgp": a good signature by the staff member's configured key over exactly the content
  commands are read from (`Opened.whole`), made within the replay window, seen for the
  first time, whose signed content names the case.
No proof holds when From: is not exactly one address or a header the bot reads occurs
twice: the bot would read one copy while a proof covers another. Machine signals
(Auto-Submitted, X-Loop, ...) decide only that a mail is never answered; they never make
a sender trusted.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from mailbot.config import InboxConfig, StaffConfig
from mailbot.mail.dkim import DkimResult, DkimSignature
from mailbot.mail.pgp import Opened
from mailbot.models import ParsedMail

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


def dkim_aligned(domain: str, address: str) -> bool:
    """A signature by the address's own domain (or a parent of it) vouches for it."""
    own = address.rpartition("@")[2].lower()
    return "." in domain and (own == domain or own.endswith("." + domain))


class Kind(StrEnum):
    """Who is speaking; the value is what `messages.kind` records."""

    REPORT = "report"  # a new case's first mail
    FOLLOW_UP = "follow-up"  # the case's reporter
    STAFF = "staff"  # authenticated staff: their commands are obeyed
    UNTRUSTED_STAFF = "untrusted-staff"  # a staff From: without a proof: staff are alerted
    STRANGER = "stranger"  # someone else who found the case: shown to staff, never answered
    MACHINE = "auto-reply"  # machine-made mail (never answered, never commands)


@dataclass(frozen=True, slots=True)
class CaseFacts:
    id: int
    ref: str
    reporter: str


@dataclass(frozen=True, slots=True)
class Speaker:
    kind: Kind
    trusted: bool  # the sender is who the mail says (recorded on the message)
    reason: str | None = None  # why it is not trusted, or what made it machine mail
    proof: str | None = None  # what authenticated staff: reply-token, dkim:<d>, pgp:<fpr>

    @property
    def commands(self) -> bool:
        return self.kind is Kind.STAFF


_MSGID = re.compile(r"<[^<>\s]{1,900}>")


def named_ids(mail: ParsedMail, pgp: Opened) -> tuple[str, ...]:
    """The Message-IDs the mail (and its signed protected headers) answer: `speaker` needs
    to know which case each belongs to (`threads`)."""
    protected = [i for name, value in pgp.protected
                 if name.lower() in ("in-reply-to", "references")
                 for i in _MSGID.findall(value)]
    return tuple(dict.fromkeys((*mail.in_reply_to, *mail.references, *protected)))[:200]


def speaker(
    mail: ParsedMail, case: CaseFacts | None, *, recipients: Sequence[str], inbox: InboxConfig,
    staff: Sequence[StaffConfig], machine: str | None, pgp: Opened, pgp_replayed: bool,
    dkim: DkimResult, threads: Mapping[str, int], secret: bytes, now: datetime,
    window: timedelta,
) -> Speaker:
    """Who speaks in `mail` on `case` (None: it belongs to no case yet).

    `mail.from_addr` is the From: address, or the envelope sender when From: is not one
    plain address (`mail.from_problem`); `machine` is why a machine made it (None: a
    human); `pgp_replayed`: its signature was seen in another mail; `threads`: the case
    of each Message-ID in `named_ids`."""
    if case is None:
        return Speaker(Kind.MACHINE, False, machine) if machine else Speaker(Kind.REPORT, True)
    sender = mail.from_addr.lower()
    member = next((s for s in staff if s.address.lower() == sender), None)
    if member is not None:
        proof, refused = _staff_proof(
            mail, case, member, recipients=recipients, inbox=inbox, pgp=pgp,
            pgp_replayed=pgp_replayed, dkim=dkim, threads=threads, secret=secret, now=now,
            window=window)
        if proof is not None:
            return Speaker(Kind.MACHINE if machine else Kind.STAFF, True, machine, proof)
        reason = f"staff From: not authenticated ({'; '.join(refused)})"
        return Speaker(Kind.UNTRUSTED_STAFF, False,
                       f"{reason}; machine mail ({machine})" if machine else reason)
    if sender == case.reporter.lower():
        return Speaker(Kind.MACHINE if machine else Kind.FOLLOW_UP, True,
                       machine or mail.from_problem)
    if machine:
        return Speaker(Kind.MACHINE, False, f"{machine}; sender is not on the case")
    return Speaker(Kind.STRANGER, False, "sender is not on the case")


def _staff_proof(
    mail: ParsedMail, case: CaseFacts, member: StaffConfig, *, recipients: Sequence[str],
    inbox: InboxConfig, pgp: Opened, pgp_replayed: bool, dkim: DkimResult,
    threads: Mapping[str, int], secret: bytes, now: datetime, window: timedelta,
) -> tuple[str | None, list[str]]:
    """(the proof that holds, or None; why each accepted proof failed)."""
    if mail.from_problem:
        return None, [mail.from_problem]
    twice = [f"{name}: occurs {n} times" for name, n in
             Counter(name for name, _ in mail.headers).items() if n > 1]
    if twice:
        return None, twice
    refused: list[str] = []
    if "reply-token" in inbox.staff_auth:
        if any(r.ref == case.ref and token_valid(secret, r, mail.from_addr)
               for r in reply_refs(recipients, inbox.address)):
            return "reply-token", []
        refused.append("no valid reply token")
    if "dkim" in inbox.staff_auth:
        why = _dkim_refusal(mail, case, dkim, inbox, threads, now, window)
        if why is None:
            return f"dkim:{mail.from_addr.rpartition('@')[2]}", []
        refused.append(why)
    if "pgp" in inbox.staff_auth:
        why = _pgp_refusal(mail, case, member, pgp, pgp_replayed, inbox, threads, now, window)
        if why is None:
            return f"pgp:{pgp.signer}", []
        refused.append(why)
    return None, refused


def _dkim_refusal(
    mail: ParsedMail, case: CaseFacts, dkim: DkimResult, inbox: InboxConfig,
    threads: Mapping[str, int], now: datetime, window: timedelta,
) -> str | None:
    """Why no DKIM signature proves this mail (None: one does)."""
    aligned = [s for s in dkim.signatures if dkim_aligned(s.domain, mail.from_addr)]
    if not aligned:
        return f"no valid DKIM signature of {mail.from_addr.rpartition('@')[2]}"
    if _normal(dkim.headers) != _normal(mail.headers):
        return "DKIM: the headers verified are not the headers read"
    reasons = [_signature_refusal(s, mail) for s in aligned]
    if all(reasons):
        return reasons[0]
    # Each header the bot reads occurs once and is signed: the mail's fields are signed.
    if mail.date is None or abs(now - mail.date) > window:
        return "DKIM: the signed Date is outside the replay window"
    in_to = [*mail.to, *mail.cc]
    if not (case.ref in refs_in(mail.subject, inbox.prefix)
            or any(r.ref == case.ref for r in reply_refs(in_to, inbox.address))
            or any(threads.get(i) == case.id for i in (*mail.in_reply_to, *mail.references))):
        return f"DKIM: the signed headers do not name {case.ref}"
    return None


def _signature_refusal(sig: DkimSignature, mail: ParsedMail) -> str | None:
    if sig.partial_body:
        return f"DKIM ({sig.domain}): l= signs only the start of the body"
    unsigned = sorted({n for n, _ in mail.headers} - sig.signed | ({"from", "date"} - sig.signed))
    if unsigned:
        return f"DKIM ({sig.domain}): {', '.join(unsigned)} not signed (h=)"
    return None


def _normal(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    return sorted((n, " ".join(v.split())) for n, v in headers)


def _pgp_refusal(
    mail: ParsedMail, case: CaseFacts, member: StaffConfig, pgp: Opened, replayed: bool,
    inbox: InboxConfig, threads: Mapping[str, int], now: datetime, window: timedelta,
) -> str | None:
    """Why the PGP signature proves nothing here (None: it proves staff)."""
    if not member.pgp_fingerprint:
        return "PGP: no key configured for this staff member"
    if pgp.signature != "good" or pgp.signer != member.pgp_fingerprint:
        return "PGP: no good signature by the staff member's key"
    if not pgp.whole:
        return "PGP: the signature covers only part of the mail"
    if pgp.signed_at is None or abs(now - pgp.signed_at) > window:
        return "PGP: signed outside the replay window"
    if replayed:
        return "PGP: this signature was seen in an earlier mail (a replay)"
    # The case a command acts on is the one the signer named, never an unsigned header.
    named: set[int | str] = set()
    header_names = False
    for name, value in pgp.protected:
        low = name.lower()
        if low == "subject":
            header_names = True
            named.update(refs_in(value, inbox.prefix))
        elif low in ("in-reply-to", "references"):
            header_names = True
            named.update(c for i in _MSGID.findall(value) if (c := threads.get(i)) is not None)
    if not header_names:
        named.update(refs_in(mail.text, inbox.prefix))
    if case.ref not in named and case.id not in named:
        return f"PGP: the signed content does not name {case.ref}"
    return None


def refs_in(text: str, prefix: str) -> set[str]:
    """The case references of the inbox with `prefix` that a text mentions."""
    return {m.upper() for m in re.findall(
        rf"(?<![A-Za-z0-9]){re.escape(prefix)}-\d{{4}}-\d{{4,}}(?!\d)", text, re.I)}
