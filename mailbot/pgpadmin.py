"""What an operator does with keys and security.txt: check, generate, export, publish.

Blocking (gpg): the CLI calls these in a thread.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from mailbot.config import Config
from mailbot.errors import MailbotError
from mailbot.mail.pgp import Gpg, PgpSetupError, read_passphrase


def open_gpg(config: Config) -> Gpg:
    try:
        return Gpg.from_config(config.gpg)
    except OSError as e:
        raise MailbotError(f"gpg cannot run: {e}") from None


def key_problems(config: Config) -> list[str]:
    """Every configured key that is missing, expired, revoked or unusable, in words."""
    wanted = any(i.pgp_key for i in config.inboxes) or any(s.pgp_fingerprint
                                                           for s in config.staff)
    if not wanted:
        return []
    if config.gpg.passphrase_file and not config.gpg.passphrase_file.is_file():
        return [f"gpg.passphrase_file: {config.gpg.passphrase_file} does not exist"]
    try:
        gpg = open_gpg(config)
    except MailbotError as e:
        return [str(e)]
    home, problems = config.gpg.home, []
    for inbox in config.inboxes:
        if not inbox.pgp_key:
            continue
        where = f"inbox {inbox.name}: pgp_key {inbox.pgp_key}"
        info = gpg.key(inbox.pgp_key)
        if info is None:
            problems.append(f"{where} is not in the GnuPG home {home} "
                            f"(mailbot key generate {inbox.name}, or import it)")
        elif not gpg.has_secret(inbox.pgp_key):
            problems.append(f"{where} has no secret key in {home}: mail to it cannot be "
                            "decrypted")
        elif not info.usable:
            problems.append(f"{where} is expired, revoked or cannot encrypt"
                            + (f" (expires {info.expires:%Y-%m-%d})" if info.expires else ""))
        else:
            try:
                gpg.sign_text("check", inbox.pgp_key)
            except PgpSetupError:
                problems.append(f"{where}: the secret key cannot be used (passphrase wrong "
                                "or missing: gpg.passphrase_file)")
    for staff in config.staff:
        if not staff.pgp_fingerprint:
            continue
        info = gpg.key(staff.pgp_fingerprint)
        where = f"staff {staff.address}: pgp_fingerprint {staff.pgp_fingerprint}"
        if info is None:
            problems.append(f"{where} is not in the GnuPG home {home} (mailbot key import FILE)")
        elif not info.usable:
            problems.append(f"{where} is expired, revoked or cannot encrypt")
        elif staff.address.lower() not in " ".join(info.uids).lower():
            problems.append(f"{where}: no user ID of the key names {staff.address}")
    return problems


def generate(config: Config, inbox_name: str, expire: str) -> str:
    inbox = config.inbox(inbox_name)
    gpg = open_gpg(config)
    return gpg.generate(f"{inbox.name} ({inbox.domain})", inbox.address,
                        read_passphrase(config.gpg.passphrase_file), expire)


def export(config: Config, inbox_name: str) -> str:
    inbox = config.inbox(inbox_name)
    if not inbox.pgp_key:
        raise MailbotError(f"inbox {inbox.name} has no pgp_key in the config")
    armored = open_gpg(config).export(inbox.pgp_key)
    if "BEGIN PGP PUBLIC KEY BLOCK" not in armored:
        raise MailbotError(f"no key {inbox.pgp_key} in the GnuPG home {config.gpg.home}")
    return armored


def import_file(config: Config, path: Path) -> tuple[str, ...]:
    found = open_gpg(config).import_keys(path.read_bytes())
    if not found:
        raise MailbotError(f"{path}: no OpenPGP key found")
    return found


def security_txt(config: Config, now: datetime, sign: bool = False) -> str:
    """RFC 9116: Contact per inbox, Expires, Encryption, Preferred-Languages, and the URLs
    of the config. Signed (clear-signed by the first inbox key) when asked."""
    st = config.security_txt
    inboxes = [i for i in config.inboxes if not st.inboxes or i.name in st.inboxes]
    lines = [f"Contact: mailto:{i.address}" for i in inboxes]
    expires = (now + st.expires).astimezone(UTC).replace(microsecond=0)
    lines.append(f"Expires: {expires:%Y-%m-%dT%H:%M:%SZ}")
    keys = [i.pgp_key for i in inboxes if i.pgp_key]
    if st.encryption:
        lines.append(f"Encryption: {st.encryption}")
    lines += [f"Encryption: openpgp4fpr:{k.lower()}" for k in keys]
    for name, value in (("Acknowledgments", st.acknowledgments), ("Policy", st.policy),
                        ("Hiring", st.hiring), ("Canonical", st.canonical)):
        if value:
            lines.append(f"{name}: {value}")
    languages = st.languages or tuple(dict.fromkeys(i.language for i in inboxes))
    lines.append(f"Preferred-Languages: {', '.join(languages)}")
    text = "\n".join(lines) + "\n"
    if sign:
        if not keys:
            raise MailbotError("no inbox has a pgp_key to sign security.txt with")
        text = open_gpg(config).sign_text(text, keys[0])
    return text
