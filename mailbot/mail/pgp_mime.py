"""MIME on bytes, exact, because a signature covers exact bytes: header fields, the parts of
a multipart, a tree of byte ranges, and where PGP structures sit in it (pure; no gpg here).

The tree is walked within the parse limits (`parse.MAX_PARTS` parts, `parse.MAX_DEPTH`
levels): PGP/MIME is found at any depth a parser would read, e.g. the `multipart/encrypted`
that Google Workspace wraps in a `multipart/mixed` beside an empty text part.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from email import policy
from email.message import Message
from email.parser import BytesParser, HeaderParser

from mailbot.mail.parse import (
    HEADER_END,
    MAX_DEPTH,
    MAX_PARTS,
    decode_words,
    html_to_text,
    one_line,
)
from mailbot.mail.pgp_packets import first_tag

# Header fields a client may protect inside a signed or encrypted entity (Thunderbird,
# Enigmail, "protected headers" of draft-autocrypt-lamps): their canonical spelling.
PROTECTED = {"subject": "Subject", "from": "From", "to": "To", "cc": "Cc",
             "reply-to": "Reply-To", "in-reply-to": "In-Reply-To", "references": "References",
             "message-id": "Message-ID", "date": "Date"}
_ENCRYPTED_ARMOR = b"-----BEGIN PGP MESSAGE-----"

_SIG_DELIMITER = re.compile(r"(?m)^--[ \t]*\r?$")


def split(raw: bytes) -> tuple[bytes, bytes]:
    """(header block with a final CRLF, body); an entity without headers has an empty head."""
    if raw.startswith((b"\r\n", b"\n")):
        return b"", raw[2 if raw.startswith(b"\r\n") else 1:]
    m = HEADER_END.search(raw)
    if not m:
        return raw, b""
    return raw[: m.start()] + b"\r\n", raw[m.end():]


def fields(head: bytes) -> list[bytes]:
    """Header fields with their folded continuation lines, each ending in CRLF."""
    out: list[bytes] = []
    for line in re.split(rb"\r?\n", head):
        if not line:
            continue
        if line[:1] in (b" ", b"\t") and out:
            out[-1] += line + b"\r\n"
        else:
            out.append(line + b"\r\n")
    return out


def field_name(f: bytes) -> str:
    return f.split(b":", 1)[0].strip().decode("ascii", "replace").lower()


def content_fields(head: bytes) -> tuple[list[bytes], list[bytes]]:
    """(the Content-* and MIME-Version fields, the others)."""
    content: list[bytes] = []
    other: list[bytes] = []
    for f in fields(head):
        name = field_name(f)
        (content if name.startswith("content-") or name == "mime-version" else other).append(f)
    return content, other


def protected_fields(entity: bytes) -> tuple[tuple[str, str], ...]:
    """The protected header fields of a signed or encrypted entity, in order, with their
    canonical names and decoded one-line values."""
    head, _ = split(entity)
    out = []
    for f in content_fields(head)[1]:
        name = PROTECTED.get(field_name(f))
        if name is None:
            continue
        value = f.split(b":", 1)[1] if b":" in f else b""
        text = value.decode("utf-8", "replace")
        out.append((name, one_line(decode_words(" ".join(text.split())))))
    return tuple(out)


def merge(raw: bytes, entity: bytes) -> bytes:
    """The outer mail's headers with `entity` (a MIME part, headers and body) as its body.
    A Subject inside the entity (protected headers) replaces the outer one."""
    outer_head, _ = split(raw)
    inner_head, body = split(entity)
    inner_content, inner_other = content_fields(inner_head)
    _, outer_other = content_fields(outer_head)
    subject = [f for f in inner_other if field_name(f) == "subject"]
    if subject:
        outer_other = [f for f in outer_other if field_name(f) != "subject"] + subject[:1]
    return b"".join(outer_other) + b"MIME-Version: 1.0\r\n" + b"".join(inner_content) \
        + b"\r\n" + body


def boundary(head: bytes) -> bytes | None:
    msg = HeaderParser(policy=policy.compat32).parsestr(head.decode("ascii", "replace"))
    b = msg.get_boundary()
    return b.encode("ascii", "replace") if b else None


def part_spans(body: bytes, delimiter: bytes) -> list[tuple[int, int]]:
    """(start, end) of each part of a multipart body (RFC 2046: the line break before a
    delimiter belongs to the delimiter)."""
    delims = list(re.finditer(rb"(?m)^--" + re.escape(delimiter) + rb"(--)?[ \t]*\r?$", body))
    spans = []
    for this, nxt in itertools.pairwise(delims):
        if this.group(1):
            break
        start = this.end() + (2 if body[this.end():this.end() + 2] == b"\r\n" else 1)
        end = nxt.start()
        end -= 2 if body[end - 2:end] == b"\r\n" else 1
        spans.append((start, max(start, end)))
    return spans


def crlf(data: bytes) -> bytes:
    return re.sub(rb"\r?\n", b"\r\n", data)


def signed_parts(entity: bytes) -> tuple[bytes, bytes] | None:
    """A multipart/signed entity's signed part, canonical (CRLF), and its signature."""
    head, body = split(entity)
    delimiter = boundary(head)
    if not delimiter:
        return None
    spans = part_spans(body, delimiter)
    if len(spans) != 2:
        return None
    sig = BytesParser(policy=policy.compat32).parsebytes(body[spans[1][0]:spans[1][1]])
    signature = sig.get_payload(decode=True)
    if not isinstance(signature, bytes) or b"PGP SIGNATURE" not in signature:
        return None
    return crlf(body[spans[0][0]:spans[0][1]]), signature


# -- the tree --

ENCRYPTED, SIGNED, INLINE, ATTACHED, MARKER = "encrypted", "signed", "inline", "attached", "marker"


@dataclass(slots=True)
class Node:
    """One MIME entity as a byte range [start, end) of the whole mail."""

    start: int
    end: int
    ctype: str
    msg: Message  # its header fields (and, for a leaf, its payload) as the stdlib reads them
    depth: int
    in_message: bool  # inside an attached message/rfc822: another mail, not this one
    children: list[Node] = field(default_factory=list)

    def payload(self) -> bytes:
        try:
            data = self.msg.get_payload(decode=True)
        except Exception:
            return b""
        return data if isinstance(data, bytes) else b""

    @property
    def attachment(self) -> bool:
        try:
            return bool(self.msg.get_filename()) or \
                (self.msg.get_content_disposition() or "") == "attachment"
        except Exception:
            return True


@dataclass(frozen=True, slots=True)
class Found:
    """A PGP structure: what kind, the node that holds it, and (encrypted) its ciphertext."""

    kind: str
    node: Node
    ciphertext: bytes = b""


def tree(raw: bytes, max_parts: int = MAX_PARTS, max_depth: int = MAX_DEPTH) -> Node:
    """The MIME tree of `raw` as byte ranges, walked without recursion within bounds."""
    root = _node(raw, 0, len(raw), 0, False)
    stack = [root]
    seen = 1
    while stack:
        node = stack.pop()
        if node.depth >= max_depth:
            continue
        head, body = split(raw[node.start:node.end])
        offset = node.end - len(body)
        spans: list[tuple[int, int]] = []
        if node.ctype.startswith("multipart/"):
            delimiter = boundary(head)
            spans = part_spans(body, delimiter) if delimiter else []
        elif node.ctype == "message/rfc822":
            spans = [(0, len(body))]
        for start, end in spans:
            if seen >= max_parts:
                break
            seen += 1
            child = _node(raw, offset + start, offset + end, node.depth + 1,
                          node.in_message or node.ctype == "message/rfc822")
            node.children.append(child)
            stack.append(child)
    return root


def _node(raw: bytes, start: int, end: int, depth: int, in_message: bool) -> Node:
    entity = raw[start:end]
    head, _ = split(entity)
    msg = BytesParser(policy=policy.compat32).parsebytes(head + b"\r\n")
    ctype = msg.get_content_type()
    if not ctype.startswith("multipart/") and ctype != "message/rfc822":
        # A leaf: the stdlib reads its payload too. A container's body is walked by `tree`.
        msg = BytesParser(policy=policy.compat32).parsebytes(entity)
    return Node(start, end, ctype, msg, depth, in_message)


def leaves(root: Node) -> list[Node]:
    out, stack = [], [root]
    while stack:
        node = stack.pop()
        if node.children:
            stack.extend(reversed(node.children))
        elif not node.ctype.startswith("multipart/"):
            out.append(node)
    return out


def find(root: Node) -> list[Found]:
    """The PGP structures of the tree, in order, outermost first (none inside another)."""
    out: list[Found] = []
    stack = [root]
    while stack:
        node = stack.pop()
        found = _structure(node)
        if found is not None:
            out.append(found)
        elif node.children:
            stack.extend(reversed(node.children))
    return out


def _structure(node: Node) -> Found | None:
    if node.ctype == "multipart/signed":
        return Found(SIGNED, node)
    if node.ctype.startswith("multipart/"):
        # RFC 3156, and as Exchange re-wraps it: a multipart with the version part and
        # the ciphertext as an attachment.
        kinds = [c.ctype for c in node.children]
        if node.ctype != "multipart/encrypted" and "application/pgp-encrypted" not in kinds:
            return None
        for child in node.children:
            data = child.payload()
            if _ENCRYPTED_ARMOR in data or (child.ctype != "application/pgp-encrypted"
                                            and first_tag(data) in (1, 3)):
                return Found(ENCRYPTED, node, data)
        return Found(MARKER, node) if node.ctype == "multipart/encrypted" else None
    if node.children:  # message/rfc822
        return None
    data = node.payload()
    if node.ctype in ("text/plain", "text/html") and not node.attachment:
        return Found(INLINE, node) if b"-----BEGIN PGP " in data else None
    if _ENCRYPTED_ARMOR in data[:65536] or (
            node.ctype in ("application/pgp-encrypted", "application/octet-stream")
            and first_tag(data) in (1, 3) and _named_pgp(node)):
        return Found(ATTACHED, node, data)
    if node.ctype in ("application/pgp-encrypted", "application/pgp-signature"):
        return Found(MARKER, node)
    return None


def _named_pgp(node: Node) -> bool:
    try:
        name = (node.msg.get_filename() or "").lower()
    except Exception:
        return False
    return node.ctype == "application/pgp-encrypted" or name.endswith((".pgp", ".gpg", ".asc"))


def ignorable(node: Node) -> bool:
    """A leaf that carries nothing a reader would miss: a text part that is blank."""
    if node.ctype not in ("text/plain", "text/html") or node.attachment:
        return False
    data = node.payload()
    charset = node.msg.get_content_charset() or "utf-8"
    try:
        text = data.decode(charset, "replace")
    except LookupError:
        text = data.decode("utf-8", "replace")
    if node.ctype == "text/html":
        text = html_to_text(text)
    # A bare signature delimiter ("-- " with no signature under it, as Google Workspace
    # leaves beside a re-wrapped PGP/MIME part) says nothing either.
    return not _SIG_DELIMITER.sub("", text).strip()


def inside(node: Node, ancestor: Node) -> bool:
    return ancestor.start <= node.start and node.end <= ancestor.end
