"""The report inside a staff member's forward: who sent it, when, and what it says.

Staff forward reports that reached them personally in two shapes: attached whole as a
`message/rfc822` part (Thunderbird, Outlook "forward as attachment", Apple Mail), or inline
below a forward line ("---------- Forwarded message ---------", "Begin forwarded message:",
"-------- Doorgestuurd bericht --------", ...) followed by a block of header lines. The
attached message is read with the same parser as any mail; the inline block gives only the
sender, the date and the subject. Nothing here raises.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.message import Message
from email.parser import BytesParser
from email.utils import parsedate_to_datetime

from mailbot.mail.parse import MAX_DEPTH, MAX_PARTS, decode_words, one_line, parse

_MAX_FORWARD = 2 * 1024 * 1024  # bytes of an attached message read for its headers
_MAX_LINES = 400  # lines of text searched for an inline forward
_HEADER_LINES = 10
_FORWARD_LINE = re.compile(
    r"[-_*=\s]*(?:forwarded message|doorgestuurd bericht|weitergeleitete nachricht|"
    r"message transféré|mensaje reenviado|messaggio inoltrato|mensagem encaminhada|"
    r"original message|oorspronkelijk bericht|ursprüngliche nachricht|message d'origine|"
    r"mensaje original|messaggio originale|mensagem original)[-_*=\s]*",
    re.IGNORECASE,
)
_BEGIN_LINES = frozenset({
    "begin forwarded message:", "anfang der weitergeleiteten nachricht:",
    "début du message réexpédié :", "début du message réexpédié:", "doorgestuurd bericht:",
    "begin doorgestuurd bericht:", "inicio del mensaje reenviado:",
    "início da mensagem reencaminhada:", "inizio messaggio inoltrato:",
})
_FIELD = re.compile(r"[*\s]{0,3}([^:：*]{1,30}?)\s{0,3}[:：]\*?\s{0,3}(.{0,900})")
_FROM_NAMES = frozenset({"from", "van", "von", "de", "da", "od", "от", "från", "fra"})
_DATE_NAMES = frozenset({"date", "sent", "datum", "verzonden", "gesendet", "envoyé", "enviado",
                         "inviato", "data", "fecha", "envoyé le", "verstuurd"})
_SUBJECT_NAMES = frozenset({"subject", "onderwerp", "betreff", "objet", "asunto", "oggetto",
                            "assunto", "temat", "тема", "ämne", "emne"})
_ADDRESS = re.compile(r"[^\s<>\"'(),;:@]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}")


@dataclass(frozen=True, slots=True)
class Original:
    """The forwarded report as far as the forward shows it."""

    sender: str  # bare address, lower-cased
    sender_name: str
    date: datetime | None
    subject: str
    message_id: str | None
    attached: bool  # a whole message/rfc822 part (else an inline block)


def original(raw: bytes, text: str) -> Original | None:
    """The first forwarded message of a mail: an attached one, else an inline block."""
    return _attached(raw) or _inline(text)


def _attached(raw: bytes) -> Original | None:
    try:
        msg = BytesParser(policy=policy.compat32).parsebytes(raw[:_MAX_FORWARD])
    except Exception:
        return None
    part = _first_rfc822(msg, 0, [0])
    if part is None:
        return None
    try:
        inner = part.as_bytes()
    except Exception:
        return None
    mail = parse(inner[:_MAX_FORWARD])
    if not mail.from_addr:
        return None
    return Original(mail.from_addr, mail.from_name, mail.date, mail.subject, mail.message_id,
                    attached=True)


def _first_rfc822(part: Message, depth: int, seen: list[int]) -> Message | None:
    seen[0] += 1
    if depth > MAX_DEPTH or seen[0] > MAX_PARTS:
        return None
    payload = part.get_payload()
    if part.get_content_type() == "message/rfc822":
        if isinstance(payload, list) and payload and isinstance(payload[0], Message):
            return payload[0]
        return None
    if part.is_multipart() and isinstance(payload, list):
        for child in payload:
            if isinstance(child, Message):
                found = _first_rfc822(child, depth + 1, seen)
                if found is not None:
                    return found
    return None


def _inline(text: str) -> Original | None:
    lines = text.split("\n", _MAX_LINES)[:_MAX_LINES]
    for i, line in enumerate(lines):
        s = line.strip()
        if len(s) > 120 or not s:
            continue
        if s.casefold() in _BEGIN_LINES or (("--" in s or "__" in s)
                                             and _FORWARD_LINE.fullmatch(s)):
            found = _header_block(lines[i + 1:i + 1 + _HEADER_LINES])
            if found is not None:
                return found
    return None


def _header_block(lines: list[str]) -> Original | None:
    sender = name = subject = ""
    moment: datetime | None = None
    for line in lines:
        if not line.strip():
            if sender:
                break
            continue
        m = _FIELD.match(line)
        if not m:
            continue
        field, value = m.group(1).strip().casefold(), m.group(2).strip()
        if field in _FROM_NAMES and not sender:
            address = _ADDRESS.search(value)
            if address:
                sender = address.group(0).lower()
                name = one_line(value[:address.start()].strip(' "<[*'), 200)
        elif field in _DATE_NAMES and moment is None:
            moment = _date(value)
        elif field in _SUBJECT_NAMES and not subject:
            subject = one_line(decode_words(value), 500)
    if not sender:
        return None
    return Original(sender, name, moment, subject, None, attached=False)


def _date(value: str) -> datetime | None:
    """An RFC 5322 date as Gmail and Thunderbird write it in the block; else None (clients
    localise this line: "Fri, 18 Dec 2026 at 17:55" is read, "vr 18 dec." is not)."""
    cleaned = one_line(value.replace(" at ", " ").replace(" um ", " "), 100)
    try:
        moment = parsedate_to_datetime(cleaned)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return moment if moment.tzinfo else None
