"""Build outgoing mail: headers, threading headers, and no way to inject a header.

Everything that reaches a header goes through `one_line`, and headers are set through
email.message.EmailMessage (policy.SMTP), which refuses CR/LF in values as a second guard.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\x85]+")
_MAX_REFERENCES = 20
_CASE_REF = re.compile(r"\[[A-Z][A-Z0-9]{0,9}-\d{4}-\d{4,}\]")


def one_line(value: str, limit: int = 400) -> str:
    """A header-safe single line: control characters (CR, LF, NUL…) become spaces."""
    return " ".join(_CONTROL.sub(" ", value).split())[:limit]


def make_message_id(domain: str, purpose: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9.-]+", ".", purpose).strip(".")[:60] or "mailbot"
    return f"<{slug}.{secrets.token_hex(8)}@{domain}>"


def reply_subject(ref: str, subject: str) -> str:
    """`[REF] Re: subject`, without stacking prefixes or carrying any case reference along
    (a foreign one in our subject would invite the next mail onto the wrong case)."""
    subject = " ".join(_CASE_REF.sub(" ", one_line(subject)).split())
    while True:
        stripped = re.sub(r"^(re|aw|antw|sv|fw|fwd)\s*:\s*", "", subject, flags=re.I)
        if stripped == subject:
            break
        subject = stripped
    return f"[{ref}] Re: {subject}" if subject else f"[{ref}]"


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One mail to build; `headers` are extra headers such as Auto-Submitted."""

    sender: str
    sender_name: str | None
    to: Sequence[str]
    subject: str
    text: str
    message_id: str
    date: datetime
    html: str | None = None
    in_reply_to: str | None = None
    references: Sequence[str] = ()
    reply_to: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


def build(mail: Outgoing) -> EmailMessage:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = _address(mail.sender, mail.sender_name)
    msg["To"] = ", ".join(str(_address(a, None)) for a in mail.to)
    if mail.reply_to:
        msg["Reply-To"] = _address(mail.reply_to, None)
    msg["Subject"] = one_line(mail.subject, limit=900)
    msg["Date"] = format_datetime(mail.date)
    msg["Message-ID"] = mail.message_id
    if mail.in_reply_to:
        msg["In-Reply-To"] = one_line(mail.in_reply_to)
    refs = [one_line(r) for r in mail.references if r][-_MAX_REFERENCES:]
    if refs:
        msg["References"] = " ".join(refs)
    for name, value in mail.headers.items():
        msg[name] = one_line(value)
    msg["MIME-Version"] = "1.0"
    msg.set_content(mail.text, cte="quoted-printable")
    if mail.html is not None:
        msg.add_alternative(mail.html, subtype="html", cte="quoted-printable")
    return msg


def _address(addr: str, name: str | None) -> Address:
    local, _, domain = one_line(addr).rpartition("@")
    return Address(display_name=one_line(name or ""), username=local, domain=domain)
