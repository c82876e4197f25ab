"""PGP mail made the ways real clients make it, with the real `gpg` and the committed keys.

`Client` is the outside world's GnuPG home: the reporters' and staff's secret keys, the
inbox keys' public halves. `bot_home` makes the bot's home: the inbox secret keys and the
staff's public keys, as an operator sets it up.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import tempfile
from email.mime.application import MIMEApplication
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path

from mailbot.mail.pgp import Gpg
from tests.support import FIXTURES

KEYS = FIXTURES / "pgp"
FPR = dict(line.split() for line in (KEYS / "fingerprints.txt").read_text().splitlines())
SUPPORT_PASSPHRASE = "correct horse"
HEAD = ("From: Rita Researcher <researcher@example.net>\r\nTo: security@example.org\r\n"
        "Date: Fri, 18 Dec 2026 17:55:00 +0100\r\n")


def short_home(prefix: str) -> Path:
    # gpg-agent's socket lives in the home: keep its path short (sun_path is 108 bytes).
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


def kill_agent(home: Path) -> None:
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True,
                   check=False)
    shutil.rmtree(home, ignore_errors=True)


def gpg_run(home: Path, *args: str, data: bytes = b"", passphrase: str = "") -> bytes:
    cmd = ["gpg", "--homedir", str(home), "--batch", "--yes", "--pinentry-mode", "loopback",
           "--passphrase", passphrase, "--trust-model", "always", *args]
    return subprocess.run(cmd, input=data, capture_output=True, check=True).stdout


class Client:
    """The reporters' and staff's side."""

    def __init__(self) -> None:
        self.home = short_home("gc")
        for name in ("reporter", "alice", "mallory", "old"):
            gpg_run(self.home, "--import", str(KEYS / f"{name}.sec.asc"))
        for name in ("inbox", "support"):
            gpg_run(self.home, "--import", str(KEYS / f"{name}.pub.asc"))

    def close(self) -> None:
        kill_agent(self.home)

    def encrypt(self, data: bytes, to: str = "inbox", sign_as: str | None = None,
                hidden: bool = False, at: str | None = None) -> bytes:
        """`at` dates the signature (see `detach_sign`)."""
        args = ["--armor", "--encrypt", "--hidden-recipient" if hidden else "--recipient",
                FPR[to]]
        if sign_as:
            args += ["--sign", "--local-user", FPR[sign_as]]
        extra = ["--faked-system-time", at] if at else []
        return gpg_run(self.home, *extra, *args, data=data)

    def clearsign(self, text: str, as_: str = "reporter", at: str | None = None) -> str:
        """`at` dates the signature (see `detach_sign`)."""
        at = "20200101T120000" if as_ == "old" else at
        extra = ["--faked-system-time", at] if at else []
        out = gpg_run(self.home, *extra, "--clearsign", "--local-user", FPR[as_],
                      data=text.encode())
        return out.decode()

    def detach_sign(self, data: bytes, as_: str = "alice", at: str | None = None) -> bytes:
        """`at` (e.g. 20261218T170500) dates the signature as the tests' clock sees it."""
        extra = ["--faked-system-time", at] if at else []
        return gpg_run(self.home, *extra, "--armor", "--detach-sign", "--local-user", FPR[as_],
                       data=data)

    def decrypt(self, data: bytes) -> tuple[bytes, str]:
        """Plaintext and gpg's status lines, as the reporter's client reads our mail."""
        cmd = ["gpg", "--homedir", str(self.home), "--batch", "--status-fd", "2",
               "--pinentry-mode", "loopback", "--passphrase", "", "--decrypt"]
        p = subprocess.run(cmd, input=data, capture_output=True, check=False)
        return p.stdout, p.stderr.decode("utf-8", "replace")


def bot_home(passphrase: str | None = None) -> tuple[Gpg, Path]:
    home = short_home("gb")
    for name in ("inbox", "support"):
        gpg_run(home, "--import", str(KEYS / f"{name}.sec.asc"),
                passphrase=SUPPORT_PASSPHRASE if name == "support" else "")
    gpg_run(home, "--import", str(KEYS / "alice.pub.asc"))
    return Gpg(home, passphrase), home


def crlf(text: str) -> bytes:
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode()


def inline_mail(body: str, subject: str = "Bug", html: bool = False,
                message_id: str = "<inline-1@example.net>") -> bytes:
    ctype = "text/html" if html else "text/plain"
    return crlf(HEAD + f"Subject: {subject}\r\nMessage-ID: {message_id}\r\n"
                f"MIME-Version: 1.0\r\nContent-Type: {ctype}; charset=utf-8\r\n\r\n" + body)


def report_part(text: str, attachment: bytes | None = None, subject: str | None = None,
                key: bytes | None = None) -> bytes:
    """The MIME entity a client encrypts: text, maybe a file, maybe protected headers."""
    part: MIMEBase = MIMEText(text, "plain", "utf-8")
    if attachment is not None or key is not None:
        mixed = MIMEMultipart("mixed")
        mixed.attach(part)
        if attachment is not None:
            att = MIMEApplication(attachment, "octet-stream")
            att.add_header("Content-Disposition", "attachment", filename="poc.py")
            mixed.attach(att)
        if key is not None:
            k = MIMEApplication(key, "pgp-keys")
            k.add_header("Content-Disposition", "attachment", filename="OpenPGP_0xRITA.asc")
            mixed.attach(k)
        part = mixed
    if subject is not None:  # Thunderbird's protected headers
        part.set_param("protected-headers", "v1")
        part["Subject"] = subject
    del part["MIME-Version"]
    return part.as_bytes()


def pgp_mime(ciphertext: bytes, subject: str = "...", message_id: str = "<mime-1@example.net>",
             exchange: bool = False) -> bytes:
    """RFC 3156 multipart/encrypted, or as Exchange re-wraps it: multipart/mixed with the
    version part and the ciphertext as a base64 attachment."""
    outer = MIMEMultipart("mixed" if exchange else "encrypted")
    if not exchange:
        outer.set_param("protocol", "application/pgp-encrypted")
    version = MIMEApplication(b"Version: 1\r\n", "pgp-encrypted")
    if not exchange:
        del version["Content-Transfer-Encoding"]
        version.set_payload("Version: 1\r\n")
    body = MIMEApplication(ciphertext, "octet-stream")
    if exchange:
        body.add_header("Content-Disposition", "attachment", filename="encrypted.asc")
    else:
        del body["Content-Transfer-Encoding"]
        body.set_payload(ciphertext.decode())
    outer.attach(version)
    outer.attach(body)
    for k, v in (("From", "Rita Researcher <researcher@example.net>"),
                 ("To", "security@example.org"), ("Subject", subject),
                 ("Date", "Fri, 18 Dec 2026 17:55:00 +0100"), ("Message-ID", message_id)):
        outer[k] = v
    return outer.as_bytes()


def signed_mime(client: Client, entity: bytes, as_: str = "alice", sender: str = "alice",
                subject: str = "Re: [SEC-2026-0001] XSS", transport_lf: bool = False,
                tamper: bool = False, extra_headers: str = "", at: str | None = None) -> bytes:
    """RFC 3156 multipart/signed over the CRLF-canonical bytes of `entity`."""
    canonical = entity.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    signature = client.detach_sign(canonical, as_, at)
    if tamper:  # one header added inside the signed part after signing
        canonical = canonical.replace(b"\r\n\r\n", b"\r\nX-Tampered: yes\r\n\r\n", 1)
    boundary = "sig-boundary-42"
    raw = (f"From: {sender}@example.org\r\nTo: security@example.org\r\nSubject: {subject}\r\n"
           f"Date: Fri, 18 Dec 2026 18:05:00 +0100\r\nMessage-ID: <signed-{as_}@example.org>\r\n"
           f"{extra_headers}MIME-Version: 1.0\r\nContent-Type: multipart/signed; "
           f'micalg=pgp-sha256; protocol="application/pgp-signature"; boundary="{boundary}"'
           f"\r\n\r\n--{boundary}\r\n").encode() + canonical + (
        f"\r\n--{boundary}\r\nContent-Type: application/pgp-signature; name=signature.asc\r\n"
        f"\r\n").encode() + signature + f"\r\n--{boundary}--\r\n".encode()
    return raw.replace(b"\r\n", b"\n") if transport_lf else raw


def autocrypt(address: str, name: str) -> str:
    """An Autocrypt header value with the binary key, as Thunderbird and Delta Chat send it."""
    data = _dearmor((KEYS / f"{name}.pub.asc").read_text())
    return f"addr={address}; prefer-encrypt=mutual; keydata={base64.b64encode(data).decode()}"


def _dearmor(armored: str) -> bytes:
    body = armored.replace("\r\n", "\n").split("\n\n", 1)[1]
    lines = [ln for ln in body.split("\n") if ln and not ln.startswith(("=", "-----"))]
    return base64.b64decode("".join(lines))


# -- MIME shapes built from entities (issue 12 item 1, issue 14 item 1) --

ALICE_HEAD = ("From: Alice Lead <alice@example.org>\r\nTo: security@example.org\r\n"
              "Subject: Re: [SEC-2026-0001] XSS\r\nDate: Fri, 18 Dec 2026 18:05:00 +0100\r\n"
              "Message-ID: <shape-1@example.org>\r\n")


def text_part(text: str, ctype: str = "text/plain", headers: str = "") -> bytes:
    """A text entity, 8bit, CRLF."""
    return crlf(f"Content-Type: {ctype}; charset=utf-8\r\n{headers}"
                "Content-Transfer-Encoding: 8bit\r\n\r\n" + text)


def multipart(*entities: bytes, subtype: str = "mixed", params: str = "") -> bytes:
    """A multipart entity of `entities`, with a boundary of its own."""
    boundary = f"b-{subtype}-{len(entities)}-{abs(hash(entities)) % 10**8}"
    out = f'Content-Type: multipart/{subtype}; boundary="{boundary}"{params}\r\n\r\n'.encode()
    for e in entities:
        out += f"--{boundary}\r\n".encode() + e + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def signed_part(client: Client, entity: bytes, as_: str = "alice",
                at: str | None = "20261218T170500") -> bytes:
    """A multipart/signed entity over `entity` (RFC 3156), made by `as_`."""
    canonical = entity.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    signature = client.detach_sign(canonical, as_, at)
    boundary = f"sig-{abs(hash(entity)) % 10**8}"
    return (f'Content-Type: multipart/signed; micalg=pgp-sha256; '
            f'protocol="application/pgp-signature"; boundary="{boundary}"\r\n\r\n'
            f"--{boundary}\r\n").encode() + canonical + (
        f"\r\n--{boundary}\r\nContent-Type: application/pgp-signature; name=signature.asc\r\n"
        f"\r\n").encode() + signature + f"\r\n--{boundary}--\r\n".encode()


def encrypted_part(ciphertext: bytes) -> bytes:
    """A multipart/encrypted entity (RFC 3156) holding `ciphertext`."""
    boundary = f"enc-{abs(hash(ciphertext)) % 10**8}"
    return (f'Content-Type: multipart/encrypted; protocol="application/pgp-encrypted"; '
            f'boundary="{boundary}"\r\n\r\n--{boundary}\r\n'
            "Content-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n"
            f"--{boundary}\r\nContent-Type: application/octet-stream; name=encrypted.asc\r\n"
            "\r\n").encode() + ciphertext + f"\r\n--{boundary}--\r\n".encode()


def as_mail(entity: bytes, head: str = ALICE_HEAD) -> bytes:
    """A mail whose body is `entity`."""
    return crlf(head) + b"MIME-Version: 1.0\r\n" + entity


def command_part(text: str, subject: str) -> bytes:
    """A staff command entity that names its case inside what is signed: Thunderbird's
    protected headers (the staff decision acts only on the case the signed content names)."""
    return text_part(text, headers=f"Subject: {subject}\r\n").replace(
        b"Content-Type: text/plain; charset=utf-8",
        b'Content-Type: text/plain; charset=utf-8; protected-headers="v1"', 1)


def clearsigned_part(client: Client, text: str, as_: str = "alice",
                     at: str | None = None) -> bytes:
    return text_part(client.clearsign(text, as_, at))


# -- a daemon with PGP, and keys made by the tests --

SIGNED_AT = "20261218T170500"  # the tests' clock (support.FRIDAY_EVENING) plus 5 minutes


def pgp_config_text(text: str, db: Path, home: Path, require: str = "",
                    staff_auth: str = '["reply-token", "pgp"]') -> str:
    """The tests' config (support.CONFIG) with a GnuPG home, the inbox key, alice's key
    and PGP as a staff proof; `require` is a policy line such as require_encryption."""
    text = text.replace(f'home = "{db}.gnupg"', f'home = "{home}"')
    text = text.replace('prefix = "SEC"', f'prefix = "SEC"\npgp_key = "{FPR["inbox"]}"\n'
                        f"staff_auth = {staff_auth}")
    text = text.replace('role = "lead"', f'role = "lead"\npgp_fingerprint = "{FPR["alice"]}"')
    return text.replace('warn_before = "1 business day"',
                        f'warn_before = "1 business day"\n{require}')


def daemon_home() -> Path:
    """The daemon's GnuPG home: the inbox key and alice's public key."""
    home = short_home("gd")
    gpg_run(home, "--import", str(KEYS / "inbox.sec.asc"))
    gpg_run(home, "--import", str(KEYS / "alice.pub.asc"))
    return home


def make_key(home: Path, uid: str, expire: str = "0") -> str:
    """A new ed25519 key with an encryption subkey in `home`; its fingerprint."""
    gpg_run(home, "--quick-gen-key", uid, "ed25519", "sign,cert", expire)
    listed = gpg_run(home, "--with-colons", "--list-keys", uid).decode()
    fpr = next(line.split(":")[9] for line in listed.splitlines() if line.startswith("fpr"))
    gpg_run(home, "--quick-add-key", fpr, "cv25519", "encr", expire)
    return fpr


def revocation(home: Path, fpr: str) -> bytes:
    """The revocation certificate gpg made with the key, made importable."""
    cert = (home / "openpgp-revocs.d" / f"{fpr}.rev").read_bytes()
    return cert.replace(b":-----BEGIN PGP PUBLIC KEY BLOCK-----",
                        b"-----BEGIN PGP PUBLIC KEY BLOCK-----")
