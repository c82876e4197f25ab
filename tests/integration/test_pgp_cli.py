"""`mailbot key …`, `mailbot security-txt` and the key checks of `mailbot check`, as a user
runs them: subprocesses over a real GnuPG home."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.integration.test_cli import mailbot
from tests.pgp_support import FPR, KEYS, SUPPORT_PASSPHRASE, Client, gpg_run, kill_agent, short_home


@pytest.fixture
def home() -> Iterator[Path]:
    h = short_home("gk")
    yield h
    kill_agent(h)


def configure(write_config: Callable[..., Path], home: Path, *, extra: str = "",
              inbox_key: str | None = None, staff_key: str | None = None) -> Path:
    path = write_config()
    text = path.read_text()
    text = re.sub(r'(?m)^home = ".*"$', f'home = "{home}"', text)
    if inbox_key:
        text = text.replace('prefix = "SEC"', f'prefix = "SEC"\npgp_key = "{inbox_key}"')
    if staff_key:
        text = text.replace('role = "lead"', f'role = "lead"\npgp_fingerprint = "{staff_key}"')
    path.write_text(text + extra)
    return path


def test_generate_export_and_check(write_config: Callable[..., Path], home: Path) -> None:
    path = configure(write_config, home)
    out = mailbot(path, "key", "generate", "security")
    assert out.returncode == 0, out.stderr
    fpr = re.search(r"pgp_key = \"([0-9A-F]{40})\"", out.stdout)
    assert fpr is not None
    path = configure(write_config, home, inbox_key=fpr.group(1))
    exported = mailbot(path, "key", "export", "security")
    assert exported.stdout.startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    assert mailbot(path, "check", "--offline").returncode == 0
    # What we export is what a reporter imports to write to us.
    client = Client()
    try:
        imported = gpg_run(client.home, "--import", "--status-fd", "1",
                           data=exported.stdout.encode())
        assert fpr.group(1).encode() in imported
    finally:
        client.close()


def test_check_names_missing_and_unusable_keys(write_config: Callable[..., Path],
                                               home: Path) -> None:
    path = configure(write_config, home, inbox_key=FPR["inbox"], staff_key=FPR["alice"])
    out = mailbot(path, "check", "--offline")
    assert out.returncode == 2
    assert f"inbox security: pgp_key {FPR['inbox']} is not in the GnuPG home" in out.stderr
    assert f"staff alice@example.org: pgp_fingerprint {FPR['alice']} is not in" in out.stderr

    gpg_run(home, "--import", str(KEYS / "inbox.pub.asc"))  # the public half only
    assert mailbot(path, "key", "import", str(KEYS / "alice.pub.asc")).returncode == 0
    out = mailbot(path, "check", "--offline")
    assert "has no secret key" in out.stderr and "alice" not in out.stderr

    path = configure(write_config, home, inbox_key=FPR["old"])
    gpg_run(home, "--import", str(KEYS / "old.sec.asc"))
    assert "is expired, revoked or cannot encrypt" in mailbot(path, "check", "--offline").stderr


def test_check_finds_a_missing_passphrase(write_config: Callable[..., Path], home: Path,
                                          tmp_path: Path) -> None:
    gpg_run(home, "--import", str(KEYS / "support.sec.asc"), passphrase=SUPPORT_PASSPHRASE)
    text = configure(write_config, home).read_text().replace(
        'prefix = "SUP"', f'prefix = "SUP"\npgp_key = "{FPR["support"]}"')
    path = tmp_path / "support.toml"
    path.write_text(text)
    out = mailbot(path, "check", "--offline")
    assert out.returncode == 2 and "passphrase wrong or missing" in out.stderr
    secret = tmp_path / "passphrase"
    secret.write_text(SUPPORT_PASSPHRASE + "\n")
    path.write_text(text.replace("[gpg]", f'[gpg]\npassphrase_file = "{secret}"'))
    out = mailbot(path, "check", "--offline")
    assert out.returncode == 0, out.stderr
    assert SUPPORT_PASSPHRASE not in out.stdout + out.stderr


def test_security_txt(write_config: Callable[..., Path], home: Path) -> None:
    gpg_run(home, "--import", str(KEYS / "inbox.sec.asc"))
    extra = ('\n[security_txt]\nencryption = "https://example.org/.well-known/pgp-key.txt"\n'
             'policy = "https://example.org/disclosure"\n'
             'canonical = "https://example.org/.well-known/security.txt"\n'
             'expires = "90 days"\ninboxes = ["security"]\n')
    path = configure(write_config, home, inbox_key=FPR["inbox"], extra=extra)
    out = mailbot(path, "security-txt")
    assert out.returncode == 0, out.stderr
    fields = [line.split(": ", 1) for line in out.stdout.splitlines()]
    names = [name for name, _ in fields]
    assert names == ["Contact", "Expires", "Encryption", "Encryption", "Policy", "Canonical",
                     "Preferred-Languages"]
    values = dict(fields)
    assert values["Contact"] == "mailto:security@example.org"  # not the support inbox
    expires = datetime.strptime(values["Expires"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert timedelta(days=89) < expires - datetime.now(UTC) <= timedelta(days=90)
    assert f"openpgp4fpr:{FPR['inbox'].lower()}" in out.stdout
    assert values["Preferred-Languages"] == "en"

    signed = mailbot(path, "security-txt", "--sign")
    assert signed.stdout.startswith("-----BEGIN PGP SIGNED MESSAGE-----")
    client = Client()
    try:
        status = gpg_run(client.home, "--status-fd", "1", "--verify",
                         data=signed.stdout.encode())
        assert b"GOODSIG" in status and FPR["inbox"].encode() in status
    finally:
        client.close()
