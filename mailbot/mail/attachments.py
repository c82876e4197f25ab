"""Every attachment of a raw mail, read from all of it: the bytes `mailbot attachments`
writes out, and the true sizes a notification states when parse saw only the mail's start.

What is an attachment is decided as parse's walk decides it (the first plain and the first
HTML part without a file name are the body), under the same part and depth bounds, so the
n-th attachment here is the n-th parse lists. `extract` feeds the stdlib parser the whole
mail (a command run by staff, on one mail); `measure` copies no body at all.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Callable
from email import policy
from email.feedparser import BytesFeedParser
from email.message import Message
from email.parser import BytesHeaderParser

from mailbot.mail.parse import MAX_DEPTH, MAX_PARTS, _bounded, _filename, _payload_bytes
from mailbot.models import Attachment

CHUNK = 1 << 20
MAX_HEADER_BLOCK = 64 * 1024  # bytes of one part's header block read by `measure`


def measure(raw: bytes) -> tuple[Attachment, ...]:
    """Every attachment with its decoded size and no data, for a mail too large to parse in
    memory: the MIME structure is found by scanning the bytes for boundary lines, each
    part's header block is parsed alone, and a body's size is counted, never copied."""
    scan = _Scan(raw)
    scan.message(0, len(raw), 0)
    return tuple(scan.found)


_HEADER_END = re.compile(rb"\r?\n\r?\n")
_WHITESPACE = (b"\r", b"\n", b" ", b"\t")


class _Scan:
    """parse._Walker's choice of body and attachments over byte offsets of the raw mail."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.parts = 0
        self.text = self.html = False
        self.found: list[Attachment] = []

    def message(self, start: int, end: int, depth: int) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS or depth > MAX_DEPTH:
            return
        m = _HEADER_END.search(self.raw, start, min(end, start + MAX_HEADER_BLOCK))
        body = m.end() if m else end
        head = BytesHeaderParser(policy=policy.compat32).parsebytes(
            self.raw[start:m.start() if m else end])
        ctype = head.get_content_type()
        boundary = head.get_boundary() if head.get_content_maintype() == "multipart" else None
        if boundary is not None:  # as the stdlib: without the parameter it is a leaf
            if boundary:
                self.multipart(boundary, body, end, depth)
        elif ctype == "message/rfc822":
            self.message(body, end, depth + 1)
        elif ctype == "message/delivery-status":  # header blocks, each a part with no body
            for block in _HEADER_END.split(self.raw[body:end]):
                if block.strip():
                    self.parts += 1
                    self.leaf(Message(), body, body)
        else:
            self.leaf(head, body, end)

    def multipart(self, boundary: str, start: int, end: int, depth: int) -> None:
        line = re.compile(rb"^--" + re.escape(boundary.encode("utf-8", "replace"))
                          + rb"(--)?[ \t]*\r?$", re.M)
        opened: int | None = None
        for m in line.finditer(self.raw, start, end):
            if opened is not None:
                # The line end before a boundary line belongs to the boundary.
                stop = m.start() - 1 if self.raw[m.start() - 1:m.start()] == b"\n" else m.start()
                if self.raw[stop - 1:stop] == b"\r":
                    stop -= 1
                self.message(opened, max(opened, stop), depth + 1)
            if m.group(1):
                return
            opened = min(m.end() + (2 if self.raw[m.end():m.end() + 1] == b"\r" else 1), end)
        if opened is not None:  # no closing line: the last part runs to the end
            self.message(opened, end, depth + 1)

    def leaf(self, head: Message, start: int, end: int) -> None:
        ctype = head.get_content_type()
        disposition = (head.get_content_disposition() or "").lower()
        name = _filename(head)
        is_text = ctype in ("text/plain", "text/html") and disposition != "attachment"
        if is_text and ctype == "text/plain" and not self.text and not name:
            self.text = True
        elif is_text and ctype == "text/html" and not self.html and not name:
            self.html = True
        else:
            self.found.append(Attachment(name, ctype, b"", self.size(head, start, end)))

    def size(self, head: Message, start: int, end: int) -> int:
        """The decoded size, counted: base64 by its alphabet characters, quoted-printable
        decoded (rare in large parts), anything else as it stands."""
        cte = str(head.get("Content-Transfer-Encoding", "")).strip().lower()
        raw = self.raw
        if cte == "base64":
            chars = end - start - sum(raw.count(w, start, end) for w in _WHITESPACE)
            return max(0, chars * 3 // 4 - raw.count(b"=", max(start, end - 4), end))
        if cte == "quoted-printable":
            return len(binascii.a2b_qp(raw[start:end]))
        return end - start


def extract(raw: bytes) -> tuple[Attachment, ...]:
    """Every attachment, whole, as the bytes its sender attached (transfer encoding undone)."""
    return tuple(Attachment(_filename(p), p.get_content_type(), _payload_bytes(p))
                 for p in _leaves(raw, Message))


def _leaves(raw: bytes, factory: Callable[..., Message]) -> list[Message]:
    """The attachment parts, in parse's order."""
    parser = BytesFeedParser(_factory=factory, policy=policy.compat32)
    bounded = _bounded(raw, MAX_PARTS, [], max_bytes=len(raw))
    for start in range(0, len(bounded), CHUNK):
        parser.feed(bounded[start:start + CHUNK])
    walk = _Walk()
    walk.walk(parser.close(), 0)
    return walk.found


class _Walk:
    """parse._Walker's choice of body and attachments, without decoding anything."""

    def __init__(self) -> None:
        self.parts = 0
        self.text = self.html = False
        self.found: list[Message] = []

    def walk(self, part: Message, depth: int) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS or depth > MAX_DEPTH:
            return
        if part.is_multipart():
            payload = part.get_payload()
            if isinstance(payload, list):
                for child in payload:
                    if isinstance(child, Message):
                        self.walk(child, depth + 1)
            return
        ctype = part.get_content_type()
        disposition = (part.get_content_disposition() or "").lower()
        named = _filename(part) is not None
        is_text = ctype in ("text/plain", "text/html") and disposition != "attachment"
        if is_text and ctype == "text/plain" and not self.text and not named:
            self.text = True
        elif is_text and ctype == "text/html" and not self.html and not named:
            self.html = True
        else:
            self.found.append(part)
