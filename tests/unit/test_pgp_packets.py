"""Offered keys: every packet read, only public material imported (issue 12 item 9), with
the real gpg and secret keys in every position, armored and binary, among several keys."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailbot.mail.pgp import Gpg
from mailbot.mail.pgp_packets import (
    SECRET_KEY,
    SECRET_SUBKEY,
    PacketError,
    packets,
    public_only,
)
from tests.pgp_support import FPR, KEYS, _dearmor, bot_home, gpg_run, kill_agent

VICTIM = "researcher@example.net"


@pytest.fixture
def gpg() -> Iterator[Gpg]:
    g, home = bot_home()
    yield g
    kill_agent(home)


def binary(name: str, secret: bool = False) -> bytes:
    return _dearmor((KEYS / f"{name}.{'sec' if secret else 'pub'}.asc").read_text())


def armor(data: bytes, kind: str = "PUBLIC KEY BLOCK") -> bytes:
    b64 = base64.encodebytes(data).decode()
    return f"-----BEGIN PGP {kind}-----\n\n{b64}-----END PGP {kind}-----\n".encode()


def _secret_subkey_in_public_key() -> bytes:
    """The reporter's public primary key and user ID with the secret encryption subkey."""
    public = packets(binary("reporter"))
    secret = packets(binary("reporter", secret=True))
    sub = next(i for i, p in enumerate(secret) if p.tag == SECRET_SUBKEY)
    head = [p.data for p in public if p.tag in (6, 13)] + [public[2].data]
    return b"".join(head) + secret[sub].data + secret[sub + 1].data


def offers() -> dict[str, bytes]:
    pub, sec, alice = binary("reporter"), binary("mallory", secret=True), binary("alice")
    own_secret = binary("reporter", secret=True)
    return {
        "secret first, binary": sec + pub,
        "secret in the middle, binary": alice + sec + pub,
        "secret last, binary": pub + sec,
        "secret first, one armor": armor(sec + pub),
        "secret last, one armor": armor(pub + alice + sec),
        "secret in a second armor block": armor(pub) + armor(sec, "PRIVATE KEY BLOCK"),
        "secret armor first": armor(sec, "PRIVATE KEY BLOCK") + armor(pub),
        "the victim's own secret key beside its public key": armor(own_secret + pub),
        "a secret subkey inside a public key": _secret_subkey_in_public_key(),
    }


@pytest.mark.parametrize("shape", offers())
def test_a_secret_key_offered_in_any_position_is_never_imported(gpg: Gpg, shape: str) -> None:
    """An attacker hides a secret key among public keys to get it into the bot's keyring
    (where it could decrypt or sign as that key)."""
    offered = offers()[shape]
    # Without its (secret) encryption subkey the public key left cannot encrypt: not taken.
    expected = None if shape == "a secret subkey inside a public key" else FPR["reporter"]
    assert gpg.learn(VICTIM, [offered]) == expected, shape
    for name in ("reporter", "mallory", "alice"):
        assert not gpg.has_secret(FPR[name]), (shape, name)
    filtered = public_only(offered)
    assert SECRET_KEY not in {p.tag for p in packets(filtered)}
    assert SECRET_SUBKEY not in {p.tag for p in packets(filtered)}


def test_secret_keys_alone_import_nothing(gpg: Gpg) -> None:
    """Only secret material offered: nothing reaches gpg."""
    sec = binary("mallory", secret=True)
    for data in (sec, armor(sec, "PRIVATE KEY BLOCK"), (KEYS / "mallory.sec.asc").read_bytes()):
        assert public_only(data) == b""
        assert gpg.learn("mallory@example.com", [data]) is None
    listed = gpg_run(gpg_home(gpg), "--list-keys", "--with-colons").decode()
    assert FPR["mallory"] not in listed


def gpg_home(gpg: Gpg) -> Path:
    return Path(gpg._gpg.gnupghome)  # the test looks into the bot's keyring


@pytest.mark.parametrize("data", [b"\x99\xff\xff", b"\x00not a packet", b"\xc6\xe0" + b"x" * 8])
def test_malformed_packets_are_refused(data: bytes) -> None:
    """Cut, headerless or partial-length packets are not key material."""
    with pytest.raises(PacketError):
        public_only(data)


def test_several_public_keys_are_all_kept() -> None:
    """Filtering keeps every public key of an offer, in order."""
    both = binary("reporter") + binary("alice")
    assert public_only(both) == both
    assert public_only(armor(both)) == both
