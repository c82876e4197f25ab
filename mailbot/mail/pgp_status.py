"""gpg's `--status-fd` lines → one `Verdict` (pure; no gpg process here).

Verdicts are read from the status lines (`[GNUPG:] GOODSIG …`), never from gpg's exit code:
gpg exits 2 when decryption worked but the signer's key is missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


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
    signatures: int = 0  # how many signatures gpg reported (one proof needs exactly one)

    @property
    def signed(self) -> bool:
        return self.signature != "none"


_SIG_WORDS = {"GOODSIG": "good", "BADSIG": "bad", "EXPSIG": "expired", "EXPKEYSIG": "expired",
              "REVKEYSIG": "revoked", "ERRSIG": "error"}
_ENCRYPTED = {"ENC_TO", "BEGIN_DECRYPTION", "DECRYPTION_FAILED", "NO_SECKEY", "DECRYPTION_INFO"}


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
            sigs[-1]["at"] = timestamp(args[2])
    encrypted = bool(keys & _ENCRYPTED)
    decrypted = "DECRYPTION_OKAY" in keys and not keys & {"DECRYPTION_FAILED", "BADMDC"}
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
    chosen = choose(sigs)
    counted = [s for s in sigs if "status" in s]
    return Verdict(encrypted, decrypted, chosen.get("status", "none"), chosen.get("signer"),
                   chosen.get("at"), error, chosen.get("id"), len(counted))


def choose(sigs: list[dict[str, Any]]) -> dict[str, Any]:
    """One verdict for several signatures: a bad one taints the mail, else a good one wins."""
    for wanted in ("bad", "good"):
        for sig in sigs:
            if sig.get("status") == wanted:
                return sig
    return sigs[0] if sigs else {}


def timestamp(value: str) -> datetime | None:
    try:
        if value.isdigit():
            return datetime.fromtimestamp(int(value), UTC)
        return datetime.strptime(value, "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        return None
