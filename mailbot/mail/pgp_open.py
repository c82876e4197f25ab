"""A received mail after PGP: what the parser reads, and what its signatures prove.

`open_mail` finds the PGP structures of a mail at any depth within the parse limits
(PGP/MIME `multipart/encrypted` and `multipart/signed`, their Exchange and Google Workspace
re-wraps, armored blocks in text or HTML, and, when the mail shows no text otherwise, an
encrypted attachment), decrypts or verifies each, and puts the result in its place.

When one structure holds all the mail's content (everything else is blank), it becomes the
message: the outer headers with its entity as the body, and its protected Subject. Only
then can a signature speak for the mail (`Opened.whole`): a signature over one part never
authenticates text beside it, because the parser would read that text too.

A mail with PGP in it never passes as an empty clear mail: it is decrypted, or it is
marked unreadable with the reason.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from mailbot.mail import pgp_mime as mime
from mailbot.mail.parse import html_to_text, parse
from mailbot.mail.pgp_status import Verdict

MAX_NESTING = 2  # encrypted or signed layers opened within one another
_MAX_STRUCTURES = 8  # PGP structures opened per mail
_MAX_RUNS = 16  # gpg runs per mail, all layers together
_INLINE = re.compile(
    r"^[ \t\xa0]*-----BEGIN PGP (MESSAGE|SIGNED MESSAGE)-----[ \t\xa0]*\r?$"
    r"(?:.*?^[ \t\xa0]*-----END PGP (?:MESSAGE|SIGNATURE)-----[ \t\xa0]*\r?$|.*\Z)",
    re.M | re.S,
)
# What an encrypted or signed mail carries somewhere (a key alone is not one).
_PGP_SIGNS = re.compile(rb"-----BEGIN PGP (?:SIGNED )?MESSAGE-----|application/pgp-(?:encrypted|"
                        rb"signature)|multipart/(?:encrypted|signed)", re.I)
_SIGNED_SPLIT = re.compile(r"^-----BEGIN PGP SIGNATURE-----$", re.M)

Decrypt = Callable[[bytes | str], tuple[bytes, Verdict]]
Verify = Callable[[bytes, bytes], Verdict]


@dataclass(frozen=True, slots=True)
class Opened:
    """A received mail after PGP: `raw` is what the parser reads."""

    raw: bytes
    encrypted: bool = False
    readable: bool = True  # False: encrypted and we could not decrypt it
    signature: str = "none"
    signer: str | None = None
    signed_at: datetime | None = None
    # One good-or-not signature covers exactly what the parser reads from `raw` (the signed
    # text itself, or the whole body of a multipart/signed) and nothing outside it.
    whole: bool = False
    error: str | None = None
    sig_id: str | None = None
    # Header fields inside the signature-covered entity (protected headers: Subject, From,
    # To, Cc, Reply-To, In-Reply-To, References, Message-ID, Date), canonical names and
    # decoded one-line values; empty unless `whole`.
    protected: tuple[tuple[str, str], ...] = ()

    @property
    def signed(self) -> bool:
        return self.signature != "none"


def looks_pgp(raw: bytes) -> bool:
    """Cheap test before any parsing: most mail has no PGP at all."""
    return b"-----BEGIN PGP " in raw or b"pgp-" in raw[:200_000].lower() or \
        b".pgp" in raw[:200_000].lower() or b".gpg" in raw[:200_000].lower()


@dataclass(frozen=True, slots=True)
class _Piece:
    """One PGP structure, opened."""

    found: mime.Found
    entity: bytes | None  # what takes the structure's place; None: left as received
    encrypted: bool = False
    readable: bool = True
    signature: str = "none"
    signer: str | None = None
    signed_at: datetime | None = None
    sig_id: str | None = None
    covers_all: bool = False  # one signature covers all of `entity`
    protected: tuple[tuple[str, str], ...] = ()
    error: str | None = None


class Opener:
    """Opens mail with a gpg that decrypts and verifies (the adapter in pgp.py)."""

    def __init__(self, decrypt: Decrypt, verify: Verify) -> None:
        self._decrypt = decrypt
        self._verify = verify
        self._runs = 0

    def open(self, raw: bytes, depth: int = 0) -> Opened:
        if not looks_pgp(raw) or depth > MAX_NESTING:
            return Opened(raw)
        try:
            root = mime.tree(raw)
        except RecursionError:
            return Opened(raw)
        found = mime.find(root)
        if not found:
            if _PGP_SIGNS.search(raw) and _blank(raw):  # beyond the parse limits
                return Opened(raw, True, False, error="PGP content nested beyond the limits "
                                                      "this bot reads")
            return Opened(raw)
        chosen = [f for f in found if f.kind in (mime.ENCRYPTED, mime.SIGNED, mime.INLINE)]
        if not chosen and not _has_text(root, found):
            # No text at all beside an encrypted attachment: that attachment is the message.
            chosen = [f for f in found if f.kind == mime.ATTACHED]
        pieces = [p for p in (self._piece(f, raw, depth) for f in chosen[:_MAX_STRUCTURES])
                  if p is not None]
        opened = _assemble(raw, root, found, pieces)
        if not opened.encrypted and not opened.signed and _blank(opened.raw):
            # PGP is there yet nothing of it could be read: never an empty clear mail.
            return Opened(raw, True, False, error=opened.error or _unreadable(found))
        return opened

    # -- one structure --

    def _piece(self, f: mime.Found, raw: bytes, depth: int) -> _Piece | None:
        if f.kind in (mime.ENCRYPTED, mime.ATTACHED):
            return self._encrypted(f, depth)
        if f.kind == mime.SIGNED:
            return self._signed(f, raw[f.node.start:f.node.end], depth)
        return self._inline(f)

    def _run_decrypt(self, data: bytes | str) -> tuple[bytes, Verdict] | None:
        if self._runs >= _MAX_RUNS:
            return None
        self._runs += 1
        return self._decrypt(data)

    def _encrypted(self, f: mime.Found, depth: int) -> _Piece:
        ran = self._run_decrypt(f.ciphertext)
        if ran is None:
            return _Piece(f, None, True, False, error="too many PGP parts in one mail")
        data, v = ran
        usable = v.decrypted or (v.signed and not v.encrypted and bool(data))
        if not usable:
            return _Piece(f, None, True, False, v.signature, v.signer, v.signed_at, v.sig_id,
                          error=v.error or "decryption failed")
        entity = data if f.kind == mime.ENCRYPTED else _as_entity(data, f.node)
        if v.signed:  # signed and encrypted in one: the signature covers all the plaintext
            return _Piece(f, entity, v.encrypted, True, v.signature, v.signer, v.signed_at,
                          v.sig_id, v.signatures == 1, mime.protected_fields(entity))
        inner = self.open(entity, depth + 1)  # signed inside (sign, then encrypt)?
        return _Piece(f, inner.raw, True, inner.readable, inner.signature, inner.signer,
                      inner.signed_at, inner.sig_id, inner.whole, inner.protected, inner.error)

    def _signed(self, f: mime.Found, entity: bytes, depth: int) -> _Piece:
        parts = mime.signed_parts(entity)
        if parts is None or self._runs >= _MAX_RUNS:
            return _Piece(f, None, signature="error", error="malformed multipart/signed")
        self._runs += 1
        signed, signature = parts
        v = self._verify(signed, signature)
        inner = self.open(signed, depth + 1)  # PGP inside what was signed
        untouched = inner.raw == signed
        return _Piece(f, inner.raw, inner.encrypted, inner.readable, v.signature, v.signer,
                      v.signed_at, v.sig_id, v.signatures == 1 and untouched,
                      mime.protected_fields(signed), inner.error)

    def _inline(self, f: mime.Found) -> _Piece | None:
        node = f.node
        charset = node.msg.get_content_charset() or "utf-8"
        try:
            text = node.payload().decode(charset, "replace")
        except LookupError:
            text = node.payload().decode("utf-8", "replace")
        if node.ctype == "text/html":
            text = html_to_text(text)
        new, verdicts, alone = self._inline_text(text)
        if not verdicts:
            return None
        signed = [v for v in verdicts if v.signed]
        chosen = next((v for want in ("bad", "good") for v in signed if v.signature == want),
                      signed[0] if signed else Verdict())
        usable = any(v.decrypted or (v.signed and not v.encrypted) for v in verdicts)
        one = len(verdicts) == 1 and chosen.signatures == 1 and alone
        return _Piece(f, _text_entity(new) if usable else None,
                      any(v.encrypted for v in verdicts),
                      all(v.decrypted for v in verdicts if v.encrypted),
                      chosen.signature, chosen.signer, chosen.signed_at, chosen.sig_id, one,
                      (), next((v.error for v in verdicts if v.error), None))

    def _inline_text(self, text: str) -> tuple[str, list[Verdict], bool]:
        """Each armored block replaced by its plaintext; the verdicts; whether the blocks
        are all there is (no clear text around them)."""
        out, verdicts, last = [], [], 0
        for m in _INLINE.finditer(text):
            armor = _clean_armor(m.group(0), signed=m.group(1) == "SIGNED MESSAGE")
            ran = self._run_decrypt(armor)
            if ran is None:
                break
            data, v = ran
            if m.group(1) == "MESSAGE" and (v.encrypted or not v.signed or not data):
                v = _encrypted(v)  # encrypted, even where gpg could not tell
            usable = v.decrypted or (v.signed and not v.encrypted)
            if not usable and not v.error:
                v = _with_error(v, "not an OpenPGP message (corrupt or truncated armor)")
            out.append(text[last:m.start()])
            out.append(data.decode("utf-8", "replace") if usable else m.group(0))
            verdicts.append(v)
            last = m.end()
        outside = "".join(out[0::2]) + text[last:]
        out.append(text[last:])
        return "".join(out), verdicts, not outside.strip()


def _encrypted(v: Verdict) -> Verdict:
    return Verdict(True, v.decrypted, v.signature, v.signer, v.signed_at, v.error, v.sig_id,
                   v.signatures)


def _with_error(v: Verdict, error: str) -> Verdict:
    return Verdict(v.encrypted, v.decrypted, v.signature, v.signer, v.signed_at, error,
                   v.sig_id, v.signatures)


def _assemble(raw: bytes, root: mime.Node, found: list[mime.Found],
              pieces: list[_Piece]) -> Opened:
    """The pieces put in place; the verdict over all of them."""
    if not pieces:
        return Opened(raw)
    first = pieces[0]
    # The one structure that holds all the content becomes the message.
    promoted = len(pieces) == 1 and not first.found.node.in_message and all(
        mime.ignorable(leaf) or _marker(leaf, found) for leaf in mime.leaves(root)
        if not mime.inside(leaf, first.found.node))
    encrypted = any(p.encrypted for p in pieces)
    readable = all(p.readable for p in pieces if p.encrypted)
    signed = [p for p in pieces if p.signature != "none"]
    chosen = next((p for want in ("bad", "good") for p in signed if p.signature == want),
                  signed[0] if signed else None)
    error = next((p.error for p in pieces if p.error), None)
    if promoted:
        out = raw if first.entity is None else mime.merge(raw, first.entity)
        whole = first.covers_all and first.signature != "none"
    else:
        out = raw
        for p in sorted(pieces, key=lambda p: p.found.node.start, reverse=True):
            if p.entity is not None:
                node = p.found.node
                out = out[:node.start] + p.entity + out[node.end:]
        whole = False
    if chosen is None:
        return Opened(out, encrypted, readable, error=error)
    return Opened(out, encrypted, readable, chosen.signature, chosen.signer, chosen.signed_at,
                  whole, error, chosen.sig_id, chosen.protected if whole else ())


def _marker(leaf: mime.Node, found: list[mime.Found]) -> bool:
    """A stray PGP version or signature part, or an unopened PGP attachment."""
    return any(f.node is leaf and f.kind == mime.MARKER for f in found)


def _has_text(root: mime.Node, found: list[mime.Found]) -> bool:
    """Some text part of the mail, outside every PGP structure, says something."""
    return any(leaf.ctype in ("text/plain", "text/html") and not leaf.attachment
               and not mime.ignorable(leaf) for leaf in mime.leaves(root)
               if not any(mime.inside(leaf, f.node) for f in found))


def _blank(raw: bytes) -> bool:
    mail = parse(raw)
    return not mail.text.strip() and not (mail.html and html_to_text(mail.html).strip())


def _unreadable(found: list[mime.Found]) -> str:
    kinds = ", ".join(dict.fromkeys(f.node.ctype for f in found))
    return f"PGP content ({kinds}) that could not be read"


def _text_entity(text: str) -> bytes:
    """A text/plain entity in base64: no line of it can pose as a MIME boundary."""
    body = base64.encodebytes(text.encode("utf-8")).replace(b"\n", b"\r\n")
    return (b"Content-Type: text/plain; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n" + body)


def _as_entity(data: bytes, node: mime.Node) -> bytes:
    """A decrypted attachment as a MIME entity: itself when it is one, else its text, else
    the file under its name without .asc/.pgp/.gpg."""
    if re.match(rb"(?i)\s*(content-type|mime-version):", data[:200]):
        return data
    if b"\0" not in data:
        try:
            return _text_entity(data.decode("utf-8"))
        except UnicodeDecodeError:
            pass
    name = (node.msg.get_filename() or "decrypted").rsplit("/", 1)[-1]
    name = re.sub(r"(?i)\.(asc|pgp|gpg)$", "", name) or "decrypted"
    name = re.sub(r'["\\\r\n]', "_", name)[:100]
    body = base64.encodebytes(data).replace(b"\n", b"\r\n")
    return (b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
            b'Content-Disposition: attachment; filename="' + name.encode("utf-8", "replace")
            + b'"\r\n\r\n' + body)


def _clean_armor(block: str, *, signed: bool) -> str:
    """An armored block as gpg wants it, from what mail clients and HTML made of it: CRLF,
    non-breaking spaces, indentation, blank lines inside the base64, a missing blank line
    after the armor headers."""
    text = block.replace("\r\n", "\n").replace("\xa0", " ")
    if signed:  # the signed text must stay as it is; only the signature armor is cleaned
        m = _SIGNED_SPLIT.search(text)
        if m is None:
            return text.strip() + "\n"
        return text[: m.start()].lstrip() + _clean_armor(text[m.start():], signed=False)
    lines = [line.strip() for line in text.split("\n")]
    lines = [line for line in lines if line]
    if not lines:
        return ""
    begin, rest = lines[0], lines[1:]
    headers = []
    while rest and re.match(r"^[A-Za-z-]+: ", rest[0]):
        headers.append(rest.pop(0))
    return "\n".join([begin, *headers, "", *rest]) + "\n"
