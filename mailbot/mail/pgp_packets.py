"""OpenPGP packets of an offered key (RFC 4880 section 4), read without gpg: what a mail
offers is filtered down to public key material before gpg ever imports it.

Every packet is read, not only the first: a public key followed by a secret one (in the same
armor, in a second armor block, or in binary) must not smuggle the secret key in.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

PUBLIC_KEY, PUBLIC_SUBKEY = 6, 14
SECRET_KEY, SECRET_SUBKEY = 5, 7
# What a transferable public key consists of (RFC 4880 11.1): keys, user IDs and
# attributes, their signatures, and gpg's trust packets (dropped by gpg on import anyway).
_PUBLIC = {PUBLIC_KEY, PUBLIC_SUBKEY, 13, 17, 2, 12}
_ARMOR = re.compile(rb"-----BEGIN PGP ([A-Z ,0-9/]+)-----(.*?)-----END PGP \1-----", re.S)
_MAX_PACKETS = 2000


@dataclass(frozen=True, slots=True)
class Packet:
    tag: int
    data: bytes  # the whole packet: header and body


class PacketError(ValueError):
    """Not a well-formed sequence of OpenPGP packets."""


def packets(data: bytes) -> list[Packet]:
    """Every packet of binary OpenPGP data; PacketError when any is cut or malformed."""
    out: list[Packet] = []
    pos = 0
    while pos < len(data):
        if len(out) >= _MAX_PACKETS:
            raise PacketError("too many packets")
        first = data[pos]
        if not first & 0x80:
            raise PacketError(f"no packet header at byte {pos}")
        if first & 0x40:  # new format
            tag = first & 0x3F
            length, head = _new_length(data, pos + 1)
        else:
            tag = (first >> 2) & 0x0F
            length, head = _old_length(data, pos + 1, first & 0x03)
        end = pos + 1 + head + length
        if end > len(data):
            raise PacketError(f"packet {tag} cut short")
        out.append(Packet(tag, data[pos:end]))
        pos = end
    return out


def _new_length(data: bytes, at: int) -> tuple[int, int]:
    """(body length, octets of the length) of a new-format header."""
    if at >= len(data):
        raise PacketError("cut in a length")
    o1 = data[at]
    if o1 < 192:
        return o1, 1
    if o1 < 224:
        if at + 1 >= len(data):
            raise PacketError("cut in a length")
        return ((o1 - 192) << 8) + data[at + 1] + 192, 2
    if o1 == 255:
        if at + 4 >= len(data):
            raise PacketError("cut in a length")
        return int.from_bytes(data[at + 1:at + 5], "big"), 5
    # Partial body lengths are for data packets only, never in a key (RFC 4880 4.2.2.4).
    raise PacketError("partial body length in a key")


def _old_length(data: bytes, at: int, kind: int) -> tuple[int, int]:
    if kind == 3:
        return len(data) - at, 0  # indeterminate: to the end
    size = (1, 2, 4)[kind]
    if at + size > len(data):
        raise PacketError("cut in a length")
    return int.from_bytes(data[at:at + size], "big"), size


def binary_blocks(data: bytes) -> list[bytes] | None:
    """The binary content of each armored block of `data`, or `data` itself when it is
    not armored; None when an armor's base64 cannot be read. Armor kinds other than
    PUBLIC KEY BLOCK (a PRIVATE KEY BLOCK, a MESSAGE) are dropped whole."""
    if b"-----BEGIN PGP " not in data:
        return [data]
    blocks = []
    for m in _ARMOR.finditer(data.replace(b"\r\n", b"\n")):
        if m.group(1) != b"PUBLIC KEY BLOCK":
            continue
        body = m.group(2)
        parts = re.split(rb"\n[ \t]*\n", body, maxsplit=1)  # armor headers, then base64
        b64 = parts[1] if len(parts) == 2 else parts[0]
        lines = [ln.strip() for ln in b64.split(b"\n")]
        lines = [ln for ln in lines if ln and not ln.startswith(b"=")]  # CRC line
        try:
            blocks.append(base64.b64decode(b"".join(lines), validate=True))
        except (binascii.Error, ValueError):
            return None
    return blocks


def public_only(data: bytes) -> bytes:
    """The public keys of `data` (armored or binary, one or several keys), as binary
    packets: a secret primary key is dropped with everything that belongs to it, a secret
    subkey with its binding signature. Raises PacketError when the data cannot be read."""
    blocks = binary_blocks(data)
    if blocks is None:
        raise PacketError("unreadable armor")
    kept: list[bytes] = []
    for block in blocks:
        keep = False  # inside a public primary key's packets
        skip_sub = False  # inside a secret subkey's packets
        for p in packets(block):
            if p.tag == PUBLIC_KEY:
                keep, skip_sub = True, False
            elif p.tag == SECRET_KEY:
                keep = False
            elif p.tag == SECRET_SUBKEY:
                skip_sub = True
                continue
            elif p.tag in (PUBLIC_SUBKEY, 13, 17):
                skip_sub = False
            if keep and not skip_sub and p.tag in _PUBLIC:
                kept.append(p.data)
    return b"".join(kept)


def first_tag(data: bytes) -> int | None:
    """The tag of the first packet of binary data; None when it starts no packet."""
    if not data or not data[0] & 0x80:
        return None
    return data[0] & 0x3F if data[0] & 0x40 else (data[0] >> 2) & 0x0F
