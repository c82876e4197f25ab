"""Bytes → a ParsedMail: headers, text, attachments, and whether a machine sent it.

Never raises: whatever the bytes, the result is a ParsedMail, and what was wrong with them
is listed in `defects`. Hostile mail costs bounded work and memory: the stdlib parser only
sees the first MAX_PARSED bytes, cut before the MAX_PARTS-th boundary line (a part or a
nesting level each), the tree is walked to MAX_PARTS parts and MAX_DEPTH levels, header
values are decoded from their first MAX_HEADER characters, and attachments keep their data
up to MAX_DECODED bytes in all. The whole mail is always kept raw by intake.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from datetime import UTC, datetime
from email import policy
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime
from html.parser import HTMLParser

from mailbot.mail.machine import LIST_HEADERS, SUBJECT_ONLY, auto_reply, list_facts
from mailbot.mail.sender import sender
from mailbot.models import USED_HEADERS, Attachment, ParsedMail

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\x85]+")
HEADER_END = re.compile(rb"\r?\n\r?\n")  # the blank line after the header block
_MSGID = re.compile(r"<[^<>\s]{1,900}>")
_ANGLE_ADDR = re.compile(r"<([^<>\s@]{1,200}@[^<>\s@]{1,200})>")
_MAX_TEXT = 4 * 1024 * 1024
MAX_PARSED = 10 * 1024 * 1024  # bytes of a mail given to the stdlib parser (~8x in memory)
MAX_PARTS = 1000
MAX_DEPTH = 20
MAX_DECODED = 5 * 1024 * 1024  # attachment bytes kept (staff notifications carry them)
MAX_HEADER = 64 * 1024  # characters of one header value that are decoded
_BOUNDARY_LINE = re.compile(rb"^--", re.M)
# The stdlib parser's time grows with the square of the nesting: multipart containers past
# 2 * MAX_DEPTH are cut off before it sees them.
_MULTIPART = re.compile(rb"^content-type:[ \t]*multipart/", re.I | re.M)

_BOUNCE_SENDERS = frozenset({"mailer-daemon", "mailer_daemon", "mail-daemon", "postmaster",
                             "post_master"})


def header_block(raw: bytes) -> bytes:
    """The raw header block, without parsing (the first 64 KB when no blank line ends it)."""
    m = HEADER_END.search(raw)
    return raw[: m.start()] if m else raw[:65536]


def one_line(value: str, limit: int = 998) -> str:
    return " ".join(_CONTROL.sub(" ", value).split())[:limit]


def parse(
    raw: bytes, *, loop_markers: Collection[str] = (), max_parts: int = MAX_PARTS,
    max_depth: int = MAX_DEPTH,
) -> ParsedMail:
    defects: list[str] = []
    try:
        # compat32 keeps headers as text until asked: policy.default builds a header object
        # on every access, which cost more than everything else in a mail's processing.
        msg = BytesParser(policy=policy.compat32).parsebytes(_bounded(raw, max_parts, defects))
    except Exception as e:  # the stdlib parser is lenient; this is the last resort
        defects.append(f"unparseable: {type(e).__name__}")
        msg = Message()
    headers = _Headers(msg)
    walker = _Walker(max_parts, max_depth, defects)
    walker.walk(msg, 0)
    text = walker.text
    if text is None and walker.html is not None:
        text = html_to_text(walker.html)
    from_name, from_addr, from_problem = sender(headers.all("From"))
    reply_to = _first_address(headers.raw("Reply-To"))[1] or None
    subject = one_line(decode_words(headers.raw("Subject")))
    return ParsedMail(
        message_id=_first_id(headers.raw("Message-ID")),
        in_reply_to=tuple(_ids(headers.raw("In-Reply-To"))),
        references=tuple(_ids(headers.raw("References"))),
        subject=subject,
        from_addr=from_addr,
        from_name=from_name,
        reply_to=reply_to,
        to=_addresses(headers.raw("To")),
        cc=_addresses(headers.raw("Cc")),
        date=_date(headers.raw("Date")),
        language=_language(headers.raw("Content-Language")),
        text=(text or "")[:_MAX_TEXT],
        html=walker.html,
        attachments=_listed(raw, walker.attachments),
        machine=machine_reason(msg, headers, from_addr, loop_markers),
        defects=tuple(dict.fromkeys(defects)),
        from_problem=from_problem,
        headers=headers.used(),
        mailing_list=list_facts(headers.raw, lambda v: _first_address(v)[1],
                                msg.get_content_type(), subject),
    )


def _listed(raw: bytes, seen: list[Attachment]) -> tuple[Attachment, ...]:
    """The attachments; when the parser saw only the start of the mail, every one of the
    whole mail with its true size (a cut one's data is not the attachment)."""
    if len(raw) <= MAX_PARSED:
        return tuple(seen)
    from mailbot.mail.attachments import measure  # it walks with this module's bounds

    return measure(raw)


def _bounded(raw: bytes, max_parts: int, defects: list[str],
             max_bytes: int = MAX_PARSED) -> bytes:
    """The part of the mail the parser may see: the first max_bytes, ended before the
    boundary line after 2 * max_parts of them (each part or nesting level has one)."""
    if len(raw) > max_bytes:
        defects.append(f"larger than {max_bytes} bytes: only the start parsed, "
                       "the whole mail kept raw")
        raw = raw[:max_bytes]
    # Each part and each nesting level opens with a boundary line: a count in C tells
    # whether either scan below can find anything (for everyday mail it cannot).
    boundary_lines = raw.count(b"\n--")
    if boundary_lines < 2 * min(MAX_DEPTH, max_parts):
        return raw
    for n, m in enumerate(_MULTIPART.finditer(raw)):
        if n == 2 * MAX_DEPTH:
            defects.append(f"more than {2 * MAX_DEPTH} multiparts; the rest ignored")
            raw = raw[: m.start()]
            break
    if boundary_lines < 2 * max_parts:
        return raw
    for n, m in enumerate(_BOUNDARY_LINE.finditer(raw)):
        if n == 2 * max_parts:
            defects.append(f"more than {max_parts} parts; the rest ignored")
            return raw[: m.start()]
    return raw


class _Headers:
    """The top-level headers by lower-cased name, as raw text (8-bit bytes read as UTF-8),
    each cut at MAX_HEADER characters (an address list or encoded words beyond that cost
    time and can carry nothing a case needs)."""

    def __init__(self, msg: Message) -> None:
        self.by_name: dict[str, list[str]] = {}
        for name, value in msg.raw_items():
            self.by_name.setdefault(name.lower(), []).append(_text(value)[:MAX_HEADER])

    def raw(self, name: str) -> str:
        values = self.by_name.get(name.lower())
        return values[0] if values else ""

    def all(self, name: str) -> list[str]:
        return self.by_name.get(name.lower(), [])

    def used(self) -> tuple[tuple[str, str], ...]:
        return tuple((n, v) for n in USED_HEADERS for v in self.by_name.get(n, ()))


def _text(value: object) -> str:
    """compat32 reads 8-bit header bytes as surrogate escapes; turn them back into UTF-8."""
    text = str(value)
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeError:
        return text.encode("utf-8", "replace").decode("utf-8", "replace")


def decode_words(value: str) -> str:
    """RFC 2047 encoded words decoded; undecodable words are kept as written."""
    if "=?" not in value:
        return value
    try:
        return str(make_header(decode_header(value)))
    except Exception:
        return value


def _first_id(value: str) -> str | None:
    m = _MSGID.search(value)
    return m.group(0) if m else None


def _ids(value: str) -> list[str]:
    return list(dict.fromkeys(_MSGID.findall(value)))[:100]


def _first_address(value: str) -> tuple[str, str]:
    """(display name, bare address), split before decoding so an encoded word can never
    smuggle in an address of its own."""
    if not value:
        return "", ""
    try:
        pairs = getaddresses([value])
    except Exception:
        return "", ""
    for name, addr in pairs:
        addr = one_line(addr, 320).lower()
        if "=?" in addr or "?=" in addr:
            # An encoded word with a ':' in it read as a group name: the <address> is meant.
            angle = _ANGLE_ADDR.search(value)
            addr = angle.group(1).lower() if angle else ""
        if "@" in addr and " " not in addr:
            return one_line(decode_words(name), 200), addr
    return "", ""


def _addresses(value: str) -> tuple[str, ...]:
    if not value:
        return ()
    try:
        pairs = getaddresses([value])
    except Exception:
        return ()
    return tuple(dict.fromkeys(
        a.lower() for _, a in pairs if "@" in a and not _CONTROL.search(a) and " " not in a
    ))[:200]


def _date(value: str) -> datetime | None:
    if not value:
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _language(value: str) -> str | None:
    tag = value.split(",")[0].strip().lower()
    lang = tag.split("-")[0]
    return lang if re.fullmatch(r"[a-z]{2,3}", lang) else None


class _Walker:
    """Walks the MIME tree within bounds, picking the body text and the attachments."""

    def __init__(self, max_parts: int, max_depth: int, defects: list[str]) -> None:
        self.max_parts = max_parts
        self.max_depth = max_depth
        self.defects = defects
        self.parts = 0
        self.text: str | None = None
        self.html: str | None = None
        self.attachments: list[Attachment] = []
        self.decoded = 0  # attachment bytes kept so far

    def walk(self, part: Message, depth: int) -> None:
        self.parts += 1
        if self.parts > self.max_parts:
            if self.parts == self.max_parts + 1:
                self.defects.append(f"more than {self.max_parts} parts; the rest ignored")
            return
        if depth > self.max_depth:
            self.defects.append(f"nested deeper than {self.max_depth}; deeper parts ignored")
            return
        for d in getattr(part, "defects", []):
            self.defects.append(type(d).__name__)
        if part.is_multipart():
            payload = part.get_payload()
            if isinstance(payload, list):
                for child in payload:
                    if isinstance(child, Message):
                        self.walk(child, depth + 1)
            return
        ctype = part.get_content_type()
        disposition = (part.get_content_disposition() or "").lower()
        filename = _filename(part)
        is_text = ctype in ("text/plain", "text/html") and disposition != "attachment"
        if is_text and ctype == "text/plain" and self.text is None and not filename:
            self.text = _decode_text(part, self.defects).replace("\r\n", "\n").replace("\r", "\n")
        elif is_text and ctype == "text/html" and self.html is None and not filename:
            self.html = _decode_text(part, self.defects)[:_MAX_TEXT]
        else:
            data = _payload_bytes(part)
            if self.decoded + len(data) > MAX_DECODED:
                self.defects.append(f"attachments over {MAX_DECODED} bytes in all: the rest "
                                    "kept only in the raw mail")
                # Its size stays: a notification says what it could not carry.
                self.attachments.append(Attachment(filename, ctype, b"", len(data)))
                return
            self.decoded += len(data)
            self.attachments.append(Attachment(filename, ctype, data))


def _filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except Exception:
        return None
    return one_line(decode_words(name), 255) if name else None


def _payload_bytes(part: Message) -> bytes:
    try:
        data = part.get_payload(decode=True)
    except Exception:
        data = None
    if isinstance(data, bytes):
        return data
    raw = part.get_payload()
    return raw.encode("utf-8", "replace") if isinstance(raw, str) else b""


def _decode_text(part: Message, defects: list[str]) -> str:
    data = _payload_bytes(part)
    try:
        charset = part.get_content_charset() or "us-ascii"
    except Exception:
        charset = "us-ascii"
    return _without_nul(_decode(data, charset, defects), defects)


def _decode(data: bytes, charset: str, defects: list[str]) -> str:
    try:
        return data.decode(charset)
    except UnicodeDecodeError:
        defects.append(f"bytes invalid in {one_line(charset, 40)}; replaced")
        return data.decode(charset, "replace")
    except (LookupError, ValueError):  # unknown, or not even a name ("\x00tf-8")
        defects.append(f"unknown charset {one_line(charset, 40)!r}; decoded as UTF-8/Latin-1")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _without_nul(text: str, defects: list[str]) -> str:
    if "\x00" not in text:
        return text
    defects.append("NUL characters in the text; replaced")
    return text.replace("\x00", "\ufffd")


class _TextExtractor(HTMLParser):
    _BREAKS = frozenset({"br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "blockquote",
                         "pre", "table", "ul", "ol"})
    _SKIP = frozenset({"script", "style", "head", "title"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self.skipping += 1
        elif tag in self._BREAKS:
            self.out.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag in self._BREAKS:
            self.out.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.out.append(data)


def html_to_text(html: str) -> str:
    extractor = _TextExtractor()
    try:
        extractor.feed(html[:_MAX_TEXT])
        extractor.close()
    except Exception:
        pass
    lines = [" ".join(line.split()) for line in "".join(extractor.out).splitlines()]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines))
    return text.strip() + "\n" if text.strip() else ""


def machine_reason(
    msg: Message, headers: _Headers, from_addr: str, loop_markers: Collection[str]
) -> str | None:
    """Why this mail was made by a machine and must never be answered; None for a human."""
    markers = {m.lower() for m in loop_markers}
    for value in headers.all("X-Loop"):
        _, addr = _first_address(value)
        if value.strip().lower() in markers or addr in markers:
            return "loop: X-Loop"
    auto = headers.raw("Auto-Submitted").strip().lower()
    if auto and auto.split(";")[0].strip() != "no":
        return f"auto-submitted: {one_line(auto, 40)}"
    if msg.get_content_type() == "multipart/report":
        return "delivery report"
    if headers.raw("Return-Path").strip() == "<>":
        return "empty return path"
    if from_addr.split("@")[0] in _BOUNCE_SENDERS or (
            not from_addr and any(name in headers.raw("From").lower()
                                  for name in _BOUNCE_SENDERS)):
        return "bounce sender"  # also "From: MAILER-DAEMON <>", "From: Postmaster <>"
    precedence = headers.raw("Precedence").strip().lower()
    if precedence in ("bulk", "junk"):
        return f"precedence: {precedence}"
    if precedence == "list" or any(headers.raw(name) for name in LIST_HEADERS):
        # triage/lists.py tells our lists, reports and bulk apart; an autoresponder's
        # reply that a list relayed stays one whatever the list is.
        ooo = _out_of_office(headers)
        if ooo is not None and ooo != SUBJECT_ONLY:
            return ooo
        return "precedence: list" if precedence == "list" else "mailing list"
    return _out_of_office(headers)


def _out_of_office(headers: _Headers) -> str | None:
    """Auto-replies without an Auto-Submitted header: machine.py knows the markers."""
    return auto_reply(headers.raw, list(headers.by_name), decode_words(headers.raw("Subject")))
