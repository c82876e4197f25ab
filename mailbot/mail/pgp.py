"""PGP for mail: decrypt and verify what comes in, encrypt and sign what goes out, keys.

The one adapter of python-gnupg over the system `gpg`. Every method blocks on a gpg process:
call them from a thread (the pipeline's parse stage, `asyncio.to_thread`), never on the
event loop. A semaphore bounds the gpg processes running at once.

Verdicts are read from gpg's status lines (`[GNUPG:] GOODSIG …`), never from its exit
code: gpg exits 2 when decryption worked but the signer's key is missing.

`open_mail` turns a received mail into the mail the rest of the pipeline reads: the
decrypted MIME tree in place of the encrypted one (PGP/MIME, Exchange's re-wrapped
PGP/MIME, inline blocks in text or HTML), the signed part of a `multipart/signed`, and the
inner Subject of protected headers. The raw mail stays as received in the database.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import logging
import os
import re
import secrets
import tempfile
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email import policy
from email.message import Message
from email.parser import BytesParser, HeaderParser
from email.utils import parseaddr
from pathlib import Path
from typing import Any

import gnupg

from mailbot.config import GpgConfig
from mailbot.errors import MessageError
from mailbot.mail.parse import HEADER_END, html_to_text

log = logging.getLogger(__name__)
# python-gnupg warns of every non-zero gpg exit, which is routine here (see `verdict`).
logging.getLogger("gnupg").setLevel(logging.ERROR)

_MAX_PARTS = 200  # parts looked at for inline PGP
_MAX_BLOCKS = 8  # armored blocks decrypted per mail
_MAX_KEY = 64 * 1024  # bytes of one offered public key
# What one decryption may produce: OpenPGP compresses, so a small ciphertext can inflate to
# gigabytes (a compression bomb). gpg stops at --max-output yet still reports success.
MAX_PLAINTEXT = 64 * 1024 * 1024
_INLINE = re.compile(
    r"^[ \t\xa0]*-----BEGIN PGP (MESSAGE|SIGNED MESSAGE)-----[ \t\xa0]*\r?$"
    r"(?:.*?^[ \t\xa0]*-----END PGP (?:MESSAGE|SIGNATURE)-----[ \t\xa0]*\r?$|.*\Z)",
    re.M | re.S,
)
_SIGNED_SPLIT = re.compile(r"^-----BEGIN PGP SIGNATURE-----$", re.M)


class PgpSetupError(MessageError):
    """Our side is wrong (the inbox key's passphrase): the mail waits in quarantine for a
    fixed configuration and `mailbot retry`, and the reporter is not told a falsehood."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """What gpg's status lines say of one decryption or verification."""

    encrypted: bool = False
    decrypted: bool = False
    signature: str = "none"  # good | bad | unknown-key | expired | revoked | error | none
    signer: str | None = None  # the signing key's primary fingerprint
    signed_at: datetime | None = None
    error: str | None = None  # why it could not be decrypted, in words for staff
    sig_id: str | None = None  # gpg's SIG_ID of the signature

    @property
    def signed(self) -> bool:
        return self.signature != "none"


def verdict(status: str) -> Verdict:
    """Read gpg's `--status-fd` lines."""
    lines = [line[9:].split() for line in status.splitlines() if line.startswith("[GNUPG:] ")]
    keys = {words[0] for words in lines if words}
    sigs: list[dict[str, Any]] = []
    enc_to: list[str] = []
    for words in lines:
        if not words:
            continue
        key, args = words[0], words[1:]
        if key == "ENC_TO" and args:
            enc_to.append(args[0])
        elif key == "NEWSIG" or (key in (*_SIG_WORDS, "SIG_ID")
                                 and (not sigs or "status" in sigs[-1])):
            sigs.append({})
        if key in _SIG_WORDS:
            sigs[-1]["status"] = _SIG_WORDS[key]
            if key == "ERRSIG" and len(args) > 5 and args[5] == "9":
                sigs[-1]["status"] = "unknown-key"
            if key == "ERRSIG" and len(args) > 6:  # gpg >= 2.2.7 names the fingerprint
                sigs[-1]["signer"] = args[6].upper()
        elif key == "NO_PUBKEY" and sigs:
            sigs[-1]["status"] = "unknown-key"
        elif key == "SIG_ID" and args:  # unique per signature: what replay checks remember
            sigs[-1]["id"] = args[0]
        elif key == "VALIDSIG" and sigs and len(args) >= 3:
            sigs[-1]["signer"] = (args[9] if len(args) > 9 else args[0]).upper()
            sigs[-1]["at"] = _timestamp(args[2])
    encrypted = bool(keys & {"ENC_TO", "BEGIN_DECRYPTION", "DECRYPTION_FAILED", "NO_SECKEY",
                             "DECRYPTION_INFO"})
    decrypted = ("DECRYPTION_OKAY" in keys and not keys & {"DECRYPTION_FAILED", "BADMDC"})
    error = None
    if encrypted and not decrypted:
        if keys & {"BAD_PASSPHRASE", "MISSING_PASSPHRASE", "NEED_PASSPHRASE"}:
            error = "passphrase"
        elif "NO_SECKEY" in keys:
            error = "encrypted to a key we do not hold (" + ", ".join(enc_to) + ")"
        else:
            error = "decryption failed (corrupt or truncated message)"
    elif not encrypted and not sigs and "NODATA" in keys:
        error = "not an OpenPGP message (corrupt or truncated armor)"
    chosen = _choose(sigs)
    return Verdict(encrypted, decrypted, chosen.get("status", "none"), chosen.get("signer"),
                   chosen.get("at"), error, chosen.get("id"))


_SIG_WORDS = {"GOODSIG": "good", "BADSIG": "bad", "EXPSIG": "expired", "EXPKEYSIG": "expired",
              "REVKEYSIG": "revoked", "ERRSIG": "error"}


def _choose(sigs: list[dict[str, Any]]) -> dict[str, Any]:
    """One verdict for several signatures: a bad one taints the mail, else a good one wins."""
    for wanted in ("bad", "good"):
        for sig in sigs:
            if sig.get("status") == wanted:
                return sig
    return sigs[0] if sigs else {}


def _timestamp(value: str) -> datetime | None:
    try:
        if value.isdigit():
            return datetime.fromtimestamp(int(value), UTC)
        return datetime.strptime(value, "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        return None


@dataclass(frozen=True, slots=True)
class Opened:
    """A received mail after PGP: `raw` is what the parser reads."""

    raw: bytes
    encrypted: bool = False
    readable: bool = True  # False: encrypted and we could not decrypt it
    signature: str = "none"
    signer: str | None = None
    signed_at: datetime | None = None
    whole: bool = False  # the signature covers the mail's whole text, not a part of it
    error: str | None = None
    sig_id: str | None = None
    # Header fields inside the signed content (protected headers), as (name, value).
    protected: tuple[tuple[str, str], ...] = ()

    @property
    def signed(self) -> bool:
        return self.signature != "none"


@dataclass(frozen=True, slots=True)
class KeyInfo:
    fingerprint: str
    uids: tuple[str, ...]
    expires: datetime | None
    usable: bool  # neither expired nor revoked, and can encrypt


def looks_pgp(raw: bytes) -> bool:
    """Cheap test before any parsing: most mail has no PGP at all."""
    return b"-----BEGIN PGP " in raw or b"pgp-" in raw[:200_000].lower()


class Gpg:
    """A GnuPG home with the inbox keys and the keys of reporters and staff."""

    def __init__(self, home: Path, passphrase: str | None = None, max_processes: int = 4,
                 binary: str = "gpg") -> None:
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(home, 0o700)  # gpg warns of (and agents refuse) a home others can read
        self._gpg = gnupg.GPG(gpgbinary=binary, gnupghome=str(home),
                              options=["--pinentry-mode", "loopback", "--no-auto-key-retrieve",
                                       "--max-output", str(MAX_PLAINTEXT)])
        self._gpg.encoding = "utf-8"
        self._passphrase = passphrase
        self._slots = threading.BoundedSemaphore(max_processes)

    @classmethod
    def from_config(cls, config: GpgConfig) -> Gpg:
        """The configured GnuPG home; OSError when gpg cannot run here."""
        return cls(config.home, read_passphrase(config.passphrase_file), config.max_processes)

    # -- keys --

    def keys(self, secret: bool = False, fingerprints: Sequence[str] | None = None
             ) -> list[KeyInfo]:
        with self._slots:
            listed = self._gpg.list_keys(secret=secret, keys=list(fingerprints or []) or None)
        now = datetime.now(UTC)
        out = []
        for k in listed:
            expires = _timestamp(k.get("expires") or "") if k.get("expires") else None
            live = k.get("trust") not in ("e", "r") and (expires is None or expires > now)
            out.append(KeyInfo(str(k["fingerprint"]).upper(), tuple(k.get("uids") or ()),
                               expires, live and "E" in (k.get("cap") or "")))
        return out

    def key(self, fingerprint: str) -> KeyInfo | None:
        found = [k for k in self.keys(fingerprints=[fingerprint])
                 if k.fingerprint == fingerprint.upper()]
        return found[0] if found else None

    def has_secret(self, fingerprint: str) -> bool:
        return any(k.fingerprint == fingerprint.upper()
                   for k in self.keys(secret=True, fingerprints=[fingerprint]))

    def generate(self, name: str, address: str, passphrase: str | None,
                 expire: str = "2y") -> str:
        """A new ed25519 signing key with a cv25519 encryption subkey; its fingerprint."""
        spec = self._gpg.gen_key_input(
            key_type="EDDSA", key_curve="ed25519", key_usage="sign,cert",
            subkey_type="ECDH", subkey_curve="cv25519", subkey_usage="encrypt",
            name_real=name, name_email=address, expire_date=expire,
            passphrase=passphrase or "", no_protection=not passphrase,
        )
        with self._slots:
            result = self._gpg.gen_key(spec)
        if not result.fingerprint:
            raise PgpSetupError(f"gpg could not generate a key: {_last_error(result)}")
        return str(result.fingerprint).upper()

    def sign_text(self, text: str, fingerprint: str) -> str:
        """`text` clear-signed by the key (security.txt); raises PgpSetupError if it cannot."""
        with self._slots:
            result = self._gpg.sign(text, keyid=fingerprint, passphrase=self._passphrase,
                                    clearsign=True)
        if "[GNUPG:] SIG_CREATED" not in (getattr(result, "stderr", "") or ""):
            raise PgpSetupError(f"cannot sign with {fingerprint}: {_last_error(result)}")
        return str(result)

    def export(self, fingerprint: str) -> str:
        with self._slots:
            return str(self._gpg.export_keys([fingerprint], armor=True))

    def import_keys(self, data: bytes | str) -> tuple[str, ...]:
        """Import keys as an operator would (staff keys, an inbox key); their fingerprints."""
        with self._slots:
            result = self._gpg.import_keys(data)
        return tuple(dict.fromkeys(str(f).upper() for f in result.fingerprints))

    def learn(self, address: str, offered: Iterable[bytes]) -> str | None:
        """Import the public keys a mail offers and return the fingerprint of one that may
        encrypt to `address`: a usable key with `address` in a user ID. Never imports a
        secret key, never accepts a key for an address its user IDs do not contain."""
        address = address.lower()
        for data in list(offered)[:3]:
            if len(data) > _MAX_KEY or _first_packet_tag(data) != 6:  # 6: a public key
                continue
            for fpr in self.import_keys(data):
                info = self.key(fpr)
                if info and info.usable and any(_uid_address(u) == address for u in info.uids):
                    return info.fingerprint
        return None

    # -- incoming --

    def open_mail(self, raw: bytes, depth: int = 0) -> Opened:
        """Decrypt and verify a received mail (see the module's docstring)."""
        if not looks_pgp(raw) or depth > 2:  # layers within layers: each costs a gpg run
            return Opened(raw)
        try:
            msg = BytesParser(policy=policy.compat32).parsebytes(raw)
        except RecursionError:  # nested thousands deep: no PGP we would read (parse.py copes)
            return Opened(raw)
        ctype = msg.get_content_type()
        encrypted = _encrypted_payload(msg)
        if encrypted is not None:
            v = self._run(lambda: self._gpg.decrypt(encrypted, passphrase=self._passphrase))
            if not v[1].decrypted:
                return Opened(raw, True, False, error=v[1].error)
            return self._after_decrypt(_merge(raw, v[0]), v[1], depth)
        if ctype == "multipart/signed":
            return self._verify_signed(raw)
        return self._inline(raw, msg)

    def _after_decrypt(self, raw: bytes, v: Verdict, depth: int) -> Opened:
        """The decrypted tree may be signed inside (sign, then encrypt)."""
        inner = self.open_mail(raw, depth + 1) if v.signature == "none" else Opened(raw)
        if inner.signed:
            return replace(inner, encrypted=True)
        return Opened(raw, True, True, v.signature, v.signer, v.signed_at, v.signed,
                      sig_id=v.sig_id)

    def _verify_signed(self, raw: bytes) -> Opened:
        parts = _signed_parts(raw)
        if parts is None:
            return Opened(raw, signature="error", error="malformed multipart/signed")
        signed, signature = parts
        fd, name = tempfile.mkstemp(prefix="mailbot-sig-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(signature)
            _, v = self._run(lambda: self._gpg.verify_data(name, signed))
        finally:
            os.unlink(name)
        return Opened(_merge(raw, signed), False, True, v.signature, v.signer, v.signed_at,
                      v.signed, sig_id=v.sig_id)

    def _inline(self, raw: bytes, msg: Message) -> Opened:
        """Armored blocks in text/plain or text/html parts, decrypted or verified in place."""
        verdicts: list[Verdict] = []
        whole = True
        for part in _leaves(msg):
            ctype = part.get_content_type()
            if ctype not in ("text/plain", "text/html") or part.get_filename():
                continue
            payload = part.get_payload(decode=True)
            if not isinstance(payload, bytes) or b"-----BEGIN PGP " not in payload:
                continue
            text = payload.decode(part.get_content_charset() or "utf-8", "replace")
            if ctype == "text/html":
                text = html_to_text(text)
            new, found, covered = self._inline_text(text)
            if not found:
                continue
            verdicts.extend(found)
            whole = whole and covered
            del part["Content-Transfer-Encoding"]
            if ctype == "text/html":
                part.replace_header("Content-Type", "text/plain")
            part.set_payload(new, "utf-8")
        if not verdicts:
            return Opened(raw)
        encrypted = any(v.encrypted for v in verdicts)
        readable = all(v.decrypted for v in verdicts if v.encrypted)
        signed = [v for v in verdicts if v.signed]
        chosen = next((v for want in ("bad", "good") for v in signed if v.signature == want),
                      signed[0] if signed else Verdict())
        error = next((v.error for v in verdicts if v.error), None)
        out = msg.as_bytes(policy=policy.compat32.clone(linesep="\r\n")) if readable or signed \
            else raw
        return Opened(out, encrypted, readable, chosen.signature, chosen.signer,
                      chosen.signed_at, bool(signed) and whole and len(verdicts) == 1, error,
                      chosen.sig_id)

    def _inline_text(self, text: str) -> tuple[str, list[Verdict], bool]:
        """Each armored block replaced by its plaintext; the verdicts; whether the blocks
        are all there is (no clear text around them)."""
        out, verdicts, last = [], [], 0
        for m in list(_INLINE.finditer(text))[:_MAX_BLOCKS]:
            armor = _clean_armor(m.group(0), signed=m.group(1) == "SIGNED MESSAGE")
            data, v = self._run(lambda a=armor: self._gpg.decrypt(a, passphrase=self._passphrase))
            if m.group(1) == "MESSAGE":  # encrypted, even where gpg could not tell
                v = replace(v, encrypted=True)
            usable = v.decrypted or (v.signed and not v.encrypted)
            if not usable and not v.error:
                v = replace(v, error="not an OpenPGP message (corrupt or truncated armor)")
            out.append(text[last:m.start()])
            out.append(data.decode("utf-8", "replace") if usable else m.group(0))
            verdicts.append(v)
            last = m.end()
        outside = "".join(out[0::2]) + text[last:]
        out.append(text[last:])
        return "".join(out), verdicts, not outside.strip()

    def _run(self, call: Any) -> tuple[bytes, Verdict]:
        with self._slots:
            result = call()
        v = verdict(getattr(result, "stderr", "") or "")
        if v.error == "passphrase":
            raise PgpSetupError("the inbox key's passphrase is wrong or missing")
        data = getattr(result, "data", b"") or b""
        if len(data) >= MAX_PLAINTEXT:
            return b"", replace(v, decrypted=False, signature="none", signer=None,
                                error=f"the decrypted text is over {MAX_PLAINTEXT >> 20} MB "
                                      "(a compression bomb?)")
        return (data if isinstance(data, bytes) else str(data).encode()), v

    # -- outgoing --

    def seal(self, raw: bytes, recipients: Sequence[str], signer: str | None,
             outer_subject: str) -> bytes:
        """A built mail as PGP/MIME (RFC 3156): its content and Subject (protected headers)
        encrypted to `recipients` and signed by `signer`; outside, `outer_subject` only."""
        head, body = _split(raw)
        content, other = _content_fields(head)
        protected = [f for f in other if _field_name(f) in _PROTECTED]
        inner_ct = [f for f in content if _field_name(f) == "content-type"]
        rest = [f for f in content if _field_name(f) not in ("content-type", "mime-version")]
        ctype = inner_ct[0].rstrip(b"\r\n") if inner_ct else b"Content-Type: text/plain"
        inner = (ctype + b'; protected-headers="v1"\r\n' + b"".join(rest)
                 + b"".join(protected) + b"\r\n" + body)
        with self._slots:
            result = self._gpg.encrypt(inner, list(recipients), sign=signer,
                                       passphrase=self._passphrase, always_trust=True,
                                       armor=True)
        status = getattr(result, "stderr", "") or ""
        if "[GNUPG:] END_ENCRYPTION" not in status:
            raise PgpError(f"cannot encrypt to {', '.join(recipients)}: {_last_error(result)}")
        boundary = f"=_mailbot_pgp_{secrets.token_hex(12)}".encode()
        outer = [f for f in other if _field_name(f) != "subject"]
        subject = outer_subject.encode("ascii", "replace")
        return (b"".join(outer) + b"Subject: " + subject + b"\r\nMIME-Version: 1.0\r\n"
                b'Content-Type: multipart/encrypted; protocol="application/pgp-encrypted";'
                b'\r\n boundary="' + boundary + b'"\r\n\r\n'
                b"This is an OpenPGP/MIME encrypted message (RFC 4880 and 3156)\r\n"
                b"--" + boundary + b"\r\nContent-Type: application/pgp-encrypted\r\n"
                b"Content-Description: PGP/MIME version identification\r\n\r\nVersion: 1\r\n\r\n"
                b"--" + boundary + b"\r\nContent-Type: application/octet-stream;"
                b' name="encrypted.asc"\r\nContent-Description: OpenPGP encrypted message\r\n'
                b'Content-Disposition: inline; filename="encrypted.asc"\r\n\r\n'
                + _crlf(bytes(result.data)) + b"\r\n--" + boundary + b"--\r\n")


class PgpError(MessageError):
    """A gpg operation on our side failed (no usable key to encrypt to)."""


def offered_keys(raw_head: bytes, attachments: Iterable[tuple[str, str | None, bytes]]
                 ) -> list[bytes]:
    """Public keys a mail offers: `application/pgp-keys` or armored `.asc` attachments, and
    the `keydata` of an Autocrypt header (binary, base64)."""
    found = []
    for ctype, filename, data in attachments:
        if ctype == "application/pgp-keys" or (
                b"-----BEGIN PGP PUBLIC KEY BLOCK-----" in data[:4096]
                and (filename or "").lower().endswith((".asc", ".key", ".pub", ".gpg"))):
            found.append(data)
    if b"autocrypt:" not in raw_head.lower():  # most mail: no header parse needed
        return found
    head = HeaderParser(policy=policy.compat32).parsestr(raw_head.decode("ascii", "replace"))
    for value in head.get_all("Autocrypt") or []:
        m = re.search(r"keydata\s*=\s*([A-Za-z0-9+/=\s]+)", str(value))
        if m:
            try:
                found.append(base64.b64decode("".join(m.group(1).split()), validate=True))
            except (binascii.Error, ValueError):
                continue
    return found


# -- MIME on bytes: exact, because a signature covers exact bytes --

_PROTECTED = ("subject", "from", "to", "cc", "date", "message-id", "reply-to")


def _split(raw: bytes) -> tuple[bytes, bytes]:
    m = HEADER_END.search(raw)
    if not m:
        return raw, b""
    return raw[: m.start()] + b"\r\n", raw[m.end():]


def _fields(head: bytes) -> list[bytes]:
    """Header fields with their folded continuation lines, each ending in CRLF."""
    fields: list[bytes] = []
    for line in re.split(rb"\r?\n", head):
        if not line:
            continue
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line + b"\r\n"
        else:
            fields.append(line + b"\r\n")
    return fields


def _field_name(field: bytes) -> str:
    return field.split(b":", 1)[0].strip().decode("ascii", "replace").lower()


def _content_fields(head: bytes) -> tuple[list[bytes], list[bytes]]:
    content: list[bytes] = []
    other: list[bytes] = []
    for f in _fields(head):
        name = _field_name(f)
        (content if name.startswith("content-") or name == "mime-version" else other).append(f)
    return content, other


def _merge(raw: bytes, entity: bytes) -> bytes:
    """The outer mail's headers with `entity` (a MIME part, headers and body) as its body.
    A Subject inside the entity (protected headers) replaces the outer one."""
    outer_head, _ = _split(raw)
    inner_head, body = _split(entity)
    inner_content, inner_other = _content_fields(inner_head)
    _, outer_other = _content_fields(outer_head)
    subject = [f for f in inner_other if _field_name(f) == "subject"]
    if subject:
        outer_other = [f for f in outer_other if _field_name(f) != "subject"] + subject[:1]
    return b"".join(outer_other) + b"MIME-Version: 1.0\r\n" + b"".join(inner_content) \
        + b"\r\n" + body


def _boundary(head: bytes) -> bytes | None:
    msg = HeaderParser(policy=policy.compat32).parsestr(head.decode("ascii", "replace"))
    b = msg.get_boundary()
    return b.encode("ascii", "replace") if b else None


def _body_parts(raw: bytes) -> list[bytes] | None:
    """The exact bytes of each part of a multipart mail (RFC 2046: the line break before a
    delimiter belongs to the delimiter)."""
    head, body = _split(raw)
    boundary = _boundary(head)
    if not boundary:
        return None
    delims = list(re.finditer(rb"(?m)^--" + re.escape(boundary) + rb"(--)?[ \t]*\r?$", body))
    parts = []
    for this, nxt in itertools.pairwise(delims):
        if this.group(1):
            break
        start = this.end() + (2 if body[this.end():this.end() + 2] == b"\r\n" else 1)
        end = nxt.start()
        end -= 2 if body[end - 2:end] == b"\r\n" else 1
        parts.append(body[start:end])
    return parts


def _signed_parts(raw: bytes) -> tuple[bytes, bytes] | None:
    """A multipart/signed mail's signed part, canonical (CRLF), and its signature."""
    parts = _body_parts(raw)
    if not parts or len(parts) != 2:
        return None
    sig = BytesParser(policy=policy.compat32).parsebytes(parts[1])
    signature = sig.get_payload(decode=True)
    if not isinstance(signature, bytes) or b"PGP SIGNATURE" not in signature:
        return None
    return _crlf(parts[0]), signature


def _encrypted_payload(msg: Message) -> bytes | None:
    """The ciphertext of PGP/MIME, also as Exchange and Google Workspace re-wrap it
    (multipart/mixed with the version part and the ciphertext as an attachment)."""
    ctype = msg.get_content_type()
    if ctype not in ("multipart/encrypted", "multipart/mixed") or not msg.is_multipart():
        return None
    payload: list[Any] = list(msg.get_payload())[:_MAX_PARTS]
    children = [c for c in payload if isinstance(c, Message)]
    if not any(c.get_content_type() == "application/pgp-encrypted" for c in children):
        return None
    for child in children:
        data = child.get_payload(decode=True)
        if isinstance(data, bytes) and b"-----BEGIN PGP MESSAGE-----" in data:
            return data
    return None


def _leaves(msg: Message, max_parts: int = _MAX_PARTS, max_depth: int = 20) -> list[Message]:
    """The non-multipart parts, walked without recursion and within bounds: a hostile mail
    nests thousands deep (Message.walk would hit the recursion limit)."""
    out: list[Message] = []
    stack: list[tuple[Message, int]] = [(msg, 0)]
    seen = 0
    while stack and seen < max_parts:
        part, depth = stack.pop()
        seen += 1
        payload = part.get_payload()
        if isinstance(payload, list):
            if depth < max_depth:
                stack.extend((p, depth + 1) for p in reversed(payload) if isinstance(p, Message))
        else:
            out.append(part)
    return out


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


def _crlf(data: bytes) -> bytes:
    return re.sub(rb"\r?\n", b"\r\n", data)


def _uid_address(uid: str) -> str:
    return parseaddr(uid)[1].lower()


def _first_packet_tag(data: bytes) -> int | None:
    """The OpenPGP packet tag that starts a key, armored or binary (RFC 4880 4.2)."""
    if data.lstrip().startswith(b"-----BEGIN PGP"):
        text = data.decode("ascii", "replace").replace("\r\n", "\n")
        body = text.split("\n\n", 1)[1] if "\n\n" in text else ""
        lines = [ln.strip() for ln in body.split("\n")
                 if ln.strip() and not ln.startswith(("=", "-----"))]
        try:
            data = base64.b64decode("".join(lines)[:64] + "==", validate=False)
        except (binascii.Error, ValueError):
            return None
    if not data or not data[0] & 0x80:
        return None
    return data[0] & 0x3F if data[0] & 0x40 else (data[0] >> 2) & 0x0F


def _last_error(result: Any) -> str:
    lines = [line for line in str(getattr(result, "stderr", "")).splitlines()
             if line.startswith("gpg:")]
    return lines[-1][4:].strip() if lines else str(getattr(result, "status", "unknown"))


def read_passphrase(path: Path | None) -> str | None:
    """The passphrase file's first line; never logged."""
    if path is None:
        return None
    return path.read_text(encoding="utf-8").split("\n", 1)[0].rstrip("\r") or None
