"""PGP for mail: the one adapter of python-gnupg over the system `gpg`: decrypt and verify
what comes in, encrypt and sign what goes out, keys.

Every method blocks on a gpg process: call them from a thread (the pipeline's parse stage,
`asyncio.to_thread`), never on the event loop. A semaphore bounds the gpg processes running
at once. What a received mail becomes is decided in `pgp_open.py`, status lines are read in
`pgp_status.py`, MIME bytes in `pgp_mime.py`, offered keys' packets in `pgp_packets.py`.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
import secrets
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email import policy
from email.parser import HeaderParser
from email.utils import parseaddr
from pathlib import Path
from typing import Any

import gnupg

from mailbot.config import GpgConfig
from mailbot.errors import MessageError
from mailbot.mail.pgp_mime import content_fields, crlf, field_name, split
from mailbot.mail.pgp_open import Opened, Opener, looks_pgp
from mailbot.mail.pgp_packets import PacketError, public_only
from mailbot.mail.pgp_status import Verdict, timestamp, verdict

__all__ = ["Gpg", "KeyInfo", "Opened", "PgpError", "PgpSetupError", "Verdict", "looks_pgp",
           "offered_keys", "read_passphrase", "verdict"]

log = logging.getLogger(__name__)
# python-gnupg warns of every non-zero gpg exit, which is routine here (see `verdict`).
logging.getLogger("gnupg").setLevel(logging.ERROR)

_MAX_KEY = 64 * 1024  # bytes of one offered public key
# What one decryption may produce: OpenPGP compresses, so a small ciphertext can inflate to
# gigabytes (a compression bomb). gpg stops at --max-output yet still reports success.
MAX_PLAINTEXT = 64 * 1024 * 1024


class PgpSetupError(MessageError):
    """Our side is wrong (the inbox key's passphrase): the mail waits in quarantine for a
    fixed configuration and `mailbot retry`, and the reporter is not told a falsehood."""


@dataclass(frozen=True, slots=True)
class KeyInfo:
    fingerprint: str
    uids: tuple[str, ...]
    expires: datetime | None
    usable: bool  # neither expired nor revoked, and can encrypt


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
        # Told how long each gpg run took (operation, seconds): the daemon's metrics.
        self.observe: Callable[[str, float], None] | None = None

    @contextmanager
    def _slot(self, operation: str) -> Iterator[None]:
        """One of the bounded gpg processes, timed from when it has its slot."""
        with self._slots:
            start = time.perf_counter()
            try:
                yield
            finally:
                if self.observe is not None:
                    self.observe(operation, time.perf_counter() - start)

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
            expires = timestamp(k.get("expires") or "") if k.get("expires") else None
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
        encrypt to `address`: a usable key with `address` in a user ID. Every packet is
        read and only public ones reach gpg: a secret key offered in a mail (in any
        position, armored or binary) is never imported. Whether the key is then used for
        the address is the caller's decision (triage/crypto.py): a From: line proves nothing.
        """
        address = address.lower()
        for data in list(offered)[:3]:
            if len(data) > _MAX_KEY:
                continue
            try:
                public = public_only(data)
            except PacketError as e:
                log.info("an offered key for %s is not readable OpenPGP: %s", address, e)
                continue
            if not public:
                continue
            for fpr in self._import_public(public):
                info = self.key(fpr)
                if info and info.usable and any(_uid_address(u) == address for u in info.uids):
                    return info.fingerprint
        return None

    def _import_public(self, data: bytes) -> tuple[str, ...]:
        with self._slots:
            result = self._gpg.import_keys(data, extra_args=["--import-options",
                                                             "import-minimal"])
        if int(getattr(result, "sec_read", 0) or 0):  # public_only let one through: a bug
            log.error("a secret key reached gpg's import; its fingerprints: %s",
                      ", ".join(map(str, result.fingerprints)))
            return ()
        return tuple(dict.fromkeys(str(f).upper() for f in result.fingerprints))

    # -- incoming --

    def open_mail(self, raw: bytes) -> Opened:
        """Decrypt and verify a received mail (see pgp_open.py)."""
        return Opener(self._decrypt, self._verify).open(raw)

    def _decrypt(self, data: bytes | str) -> tuple[bytes, Verdict]:
        return self._run(lambda: self._gpg.decrypt(data, passphrase=self._passphrase),
                         "decrypt")

    def _verify(self, signed: bytes, signature: bytes) -> Verdict:
        fd, name = tempfile.mkstemp(prefix="mailbot-sig-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(signature)
            _, v = self._run(lambda: self._gpg.verify_data(name, signed), "verify")
        finally:
            os.unlink(name)
        return v

    def _run(self, call: Any, operation: str) -> tuple[bytes, Verdict]:
        with self._slot(operation):
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
        head, body = split(raw)
        content, other = content_fields(head)
        protected = [f for f in other if field_name(f) in _PROTECTED]
        inner_ct = [f for f in content if field_name(f) == "content-type"]
        rest = [f for f in content if field_name(f) not in ("content-type", "mime-version")]
        ctype = inner_ct[0].rstrip(b"\r\n") if inner_ct else b"Content-Type: text/plain"
        inner = (ctype + b'; protected-headers="v1"\r\n' + b"".join(rest)
                 + b"".join(protected) + b"\r\n" + body)
        with self._slot("encrypt"):
            result = self._gpg.encrypt(inner, list(recipients), sign=signer,
                                       passphrase=self._passphrase, always_trust=True,
                                       armor=True)
        status = getattr(result, "stderr", "") or ""
        if "[GNUPG:] END_ENCRYPTION" not in status:
            raise PgpError(f"cannot encrypt to {', '.join(recipients)}: {_last_error(result)}")
        boundary = f"=_mailbot_pgp_{secrets.token_hex(12)}".encode()
        outer = [f for f in other if field_name(f) != "subject"]
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
                + crlf(bytes(result.data)) + b"\r\n--" + boundary + b"--\r\n")


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


_PROTECTED = ("subject", "from", "to", "cc", "date", "message-id", "reply-to")


def _uid_address(uid: str) -> str:
    return parseaddr(uid)[1].lower()


def _last_error(result: Any) -> str:
    lines = [line for line in str(getattr(result, "stderr", "")).splitlines()
             if line.startswith("gpg:")]
    return lines[-1][4:].strip() if lines else str(getattr(result, "status", "unknown"))


def read_passphrase(path: Path | None) -> str | None:
    """The passphrase file's first line; never logged."""
    if path is None:
        return None
    return path.read_text(encoding="utf-8").split("\n", 1)[0].rstrip("\r") or None
