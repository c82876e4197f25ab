"""Build outgoing mail: headers, threading headers, and no way to inject a header.

Everything that reaches a header goes through `one_line` (no CR, LF or other control
character survives), and non-ASCII text is RFC 2047-encoded by email.header.Header.
The compat32 classes are used on purpose: EmailMessage re-parses every header it is given,
which made building an acknowledgement cost more than parsing the report.
"""

from __future__ import annotations

import binascii
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.encoders import encode_base64
from email.header import Header
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.utils import format_datetime, formataddr

from mailbot.models import Attachment

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
    attachments: Sequence[Attachment] = ()


def _text_part(text: str, subtype: str) -> Message:
    """A UTF-8 text part: 7bit when it is ASCII in short lines (most of our mail), else
    quoted-printable by binascii's C encoder (the email package's own is pure Python and
    cost more than the rest of building an acknowledgement)."""
    body = text.replace("\r\n", "\n")
    part = Message()
    part["Content-Type"] = f'text/{subtype}; charset="utf-8"'
    part["MIME-Version"] = "1.0"
    if body.isascii() and max(map(len, body.split("\n"))) <= 998:
        part["Content-Transfer-Encoding"] = "7bit"
    else:
        part["Content-Transfer-Encoding"] = "quoted-printable"
        body = binascii.b2a_qp(body.encode("utf-8"), istext=True).decode("ascii")
    part.set_payload(body)
    return part


def build(mail: Outgoing) -> bytes:
    """The mail as the bytes to send (CRLF line ends)."""
    text = _text_part(mail.text, "plain")
    msg: Message = text
    if mail.html is not None:
        msg = MIMEMultipart("alternative")
        msg.attach(text)
        msg.attach(_text_part(mail.html, "html"))
    if mail.attachments:
        body, msg = msg, MIMEMultipart("mixed")
        msg.attach(body)
        for a in mail.attachments:
            msg.attach(_attachment(a))
    head: dict[str, str | Header | None] = {
        "From": _address(mail.sender, mail.sender_name),
        "To": ", ".join(_address(a, None) for a in mail.to),
        "Reply-To": _address(mail.reply_to, None) if mail.reply_to else None,
        "Subject": _text(one_line(mail.subject, limit=900)),
        "Date": format_datetime(mail.date),
        "Message-ID": one_line(mail.message_id),
        "In-Reply-To": one_line(mail.in_reply_to) if mail.in_reply_to else None,
        "References": " ".join([one_line(r) for r in mail.references if r][-_MAX_REFERENCES:]),
    }
    head |= {one_line(k): _text(one_line(v)) for k, v in mail.headers.items()}
    # The MIME classes encode the parts; ours go first, in the usual order.
    top = [(k, v) for k, v in head.items() if v]
    return _serialize(msg, top).encode("utf-8")


def _serialize(part: Message, extra: list[tuple[str, str | Header]]) -> str:
    """A part as wire text. Written directly: compat32's generator folded every header
    through Header objects and cost more than all the rest of building a mail."""
    fields: list[tuple[str, str | Header]] = [*extra, *part.items()]
    if not part.is_multipart():
        payload = str(part.get_payload()).replace("\r\n", "\n").replace("\n", "\r\n")
        return "\r\n".join(_fold(k, v) for k, v in fields) + "\r\n\r\n" + payload
    boundary = f"=_mailbot_{secrets.token_hex(12)}"
    fields = [(k, f'{v}; boundary="{boundary}"' if k.lower() == "content-type" else v)
              for k, v in fields]
    children = [c for c in part.get_payload() if isinstance(c, Message)]
    body = "".join(f"\r\n--{boundary}\r\n" + _serialize(child, []) for child in children)
    head = "\r\n".join(_fold(k, v) for k, v in fields)
    return f"{head}\r\n{body}\r\n--{boundary}--\r\n"


def _attachment(a: Attachment) -> Message:
    if not a.whole:  # a part of none or some of its bytes would promise what it lacks
        raise ValueError(f"attachment {a.filename!r} is not kept whole: name it, never attach it")
    maintype, _, subtype = a.content_type.partition("/")
    if not (maintype.isascii() and subtype.isascii()) or not subtype:
        maintype, subtype = "application", "octet-stream"
    part = MIMEBase(maintype, subtype)
    part.set_payload(a.data)
    encode_base64(part)
    filename = one_line(a.filename or "attachment", 200)
    part.add_header("Content-Disposition", "attachment",
                    filename=filename if filename.isascii() else ("utf-8", "", filename))
    return part


def _fold(name: str, value: str | Header) -> str:
    """`Name: value`, ASCII, folded at spaces to lines of at most 78 where it can be."""
    if isinstance(value, Header):
        return f"{name}: " + value.encode(linesep="\r\n")
    words, lines, line = value.split(" "), [], f"{name}:"
    for word in words:
        if len(line) + 1 + len(word) > 78 and line.strip() != f"{name}:":
            lines.append(line)
            line = ""
        line += " " + word
    lines.append(line)
    return "\r\n".join(lines)


def _text(value: str) -> str | Header:
    return value if value.isascii() else Header(value, "utf-8", header_name="Subject")


def _address(addr: str, name: str | None) -> str:
    addr = one_line(addr)
    if not addr.isascii():  # an internationalised address (RFC 6532) can only go as UTF-8
        return addr
    return formataddr((one_line(name or ""), addr), charset="utf-8")
