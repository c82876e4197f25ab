"""PGP around the pipeline: open what comes in, learn reporters' keys, seal what goes out,
and the PGP proof that a command mail is staff's.

Reporters' keys are never pinned from a claim: anyone can write a From: line and attach a
key whose user ID names someone else. A key offered in a mail is bound only to the case that
mail opened (or to a case that has none yet, by an answer to our mail on it), and becomes
the address's key for every case only after a round trip: from that address, signed by that
key, the reporter answers a mail we sent them on that case encrypted to that key. A
confirmed key, and a case's key, is replaced only by a mail signed by it. See `remember`.

Every outgoing mail to a reporter goes through one decision, `Sealer.__call__`: encrypted
to the key on file; or, when that fails or there is none, withheld if the policy requires
encryption for that kind of mail (staff are told why), else sent in clear.

The gpg calls of the parse stage run in the worker's thread; sealing happens while a mail is
queued, in a thread of its own (`asyncio.to_thread`), never on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from mailbot.clock import iso
from mailbot.config import Config, InboxConfig
from mailbot.mail.parse import header_block
from mailbot.mail.pgp import (
    Gpg,
    Opened,
    PgpError,
    PgpSetupError,
    offered_keys,
)
from mailbot.models import ParsedMail
from mailbot.store import Db
from mailbot.store import cases as case_q
from mailbot.store import keys as keys_q

log = logging.getLogger(__name__)

# Answers the bytes to send (sealed, or clear), or None: withheld (see `Sealer`).
Seal = Callable[[bytes], Awaitable[bytes | None]]


class Crypto:
    def __init__(self, config: Config, gpg: Gpg | None) -> None:
        self.config = config
        self.gpg = gpg

    @classmethod
    def create(cls, config: Config) -> Crypto:
        """PGP with the configured GnuPG home, or none at all when gpg cannot run here."""
        try:
            gpg = Gpg.from_config(config.gpg)
        except (OSError, ValueError) as e:
            log.warning("PGP is off: gpg cannot run (%s)", e)
            gpg = None
        return cls(config, gpg)

    # -- the parse stage (a thread) --

    def open(self, raw: bytes) -> tuple[Opened, str | None]:
        """The mail to parse, and a reason to quarantine it if our side is broken."""
        if self.gpg is None:
            return Opened(raw), None
        try:
            return self.gpg.open_mail(raw), None
        except PgpSetupError as e:
            return Opened(raw), str(e)
        except OSError as e:  # gpg itself failed to run: keep the mail for `retry`
            return Opened(raw), f"gpg failed: {e}"
        except Exception as e:  # a bug, or a mail our MIME walk cannot take: quarantined
            log.exception("PGP processing failed")
            return Opened(raw), f"PGP processing failed: {type(e).__name__}: {e}"

    def learn(self, opened: Opened, mail: ParsedMail) -> str | None:
        """Import a key the mail offers for its sender (attachment or Autocrypt)."""
        if self.gpg is None or not mail.from_addr or mail.machine:
            return None
        offered = offered_keys(header_block(opened.raw), [(a.content_type, a.filename, a.data)
                                                     for a in mail.attachments])
        if not offered:
            return None
        try:
            return self.gpg.learn(mail.from_addr, offered)
        except Exception as e:  # a key we cannot take never stops the mail itself
            log.warning("could not import a key offered by %s: %s", mail.from_addr, e)
            return None

    # -- in the transaction --

    async def remember(self, db: Db, *, case_id: int, kind: str, mail: ParsedMail,
                       opened: Opened, offered: str | None, at: datetime,
                       inbound_id: int) -> str | None:
        """Bind the key a reporter's mail offers, and confirm a case's key by a round trip
        (see the module's docstring); a line for staff when a key was taken or refused."""
        address = mail.from_addr
        if kind not in ("report", "follow-up") or not address:
            return None
        pinned, current = await keys_q.both_keys(db, case_id, address)
        signed_by = opened.signer if opened.signature == "good" else None
        answers = kind == "follow-up" and await keys_q.answers_our_mail(
            db, case_id, address, (*mail.in_reply_to, *mail.references))
        note = None
        if offered and pinned and offered != pinned.fingerprint:
            if signed_by != pinned.fingerprint:
                log.warning("inbound %d: a new key for %s not taken (not signed by the "
                            "confirmed key)", inbound_id, address)
                return (f"PGP: the key {offered} offered in this mail was NOT taken: "
                        f"{address} has the confirmed key {pinned.fingerprint}, and only a "
                        "mail signed by that key may replace it")
            await keys_q.remember(db, address, offered, at=iso(at), inbound_id=inbound_id,
                                  how=f"replaced on {await _ref(db, case_id)} by a mail signed "
                                      "by the previous key")
            note = f"PGP: {address}'s key is now {offered} (signed by the previous key)"
        if offered and offered != current and (pinned is None or offered == pinned.fingerprint
                                               or note):
            # A case's key is set by the mail that opened it, or by an answer to our mail
            # while the case has none; once set, only a mail it signed replaces it.
            if kind == "report" or (current is None and answers) or (
                    current is not None and signed_by == current):
                await keys_q.set_case_key(db, case_id, address, offered, at=iso(at),
                                          inbound_id=inbound_id)
                current = offered
                note = note or (f"PGP: key {offered} offered by {address}: used for this case "
                                "only, until the reporter answers our mail signed by it")
            elif note is None:
                note = (f"PGP: the key {offered} offered in this mail was NOT taken: the mail "
                        "did not open this case, and is neither signed by the case's key "
                        f"({current}) nor, where there is none, an answer to our mail")
        if (answers and signed_by and signed_by == current and pinned is None
                and await self._answers_sealed(db, case_id, mail)):
            await keys_q.remember(db, address, signed_by, at=iso(at), inbound_id=inbound_id,
                                  how=f"confirmed on {await _ref(db, case_id)}: the reporter "
                                      "answered our mail, signed by it")
            note = f"PGP: key {signed_by} confirmed for {address} (a signed answer)"
        return note

    async def _answers_sealed(self, db: Db, case_id: int, mail: ParsedMail) -> bool:
        """The mail answers one we sent to its sender encrypted to the case's key (sent
        after the key was bound): a Message-ID that leaked before cannot confirm a key."""
        bound = await keys_q.case_key_since(db, case_id, mail.from_addr)
        return bound is not None and bound[1] is not None and await keys_q.answers_our_mail(
            db, case_id, mail.from_addr, (*mail.in_reply_to, *mail.references),
            encrypted_after=bound[1])

    async def reporter_key(self, db: Db, case_id: int, address: str) -> KeyChoice:
        """The key a mail to this reporter on this case is encrypted to: the address's
        confirmed key, else the key bound to this case, else none."""
        pinned, fpr = await keys_q.both_keys(db, case_id, address)
        if pinned is not None:
            return KeyChoice(pinned.fingerprint, pinned.how or "confirmed")
        if fpr is not None:
            return KeyChoice(fpr, "offered on this case, not yet confirmed by a signed answer")
        return KeyChoice(None, "no key of the reporter is known")

    def sealer(self, inbox: InboxConfig, fingerprint: str | None, ref: str, *,
               required: bool = False) -> Sealer:
        """The one decision for a mail to `fingerprint`'s owner (see `Sealer`)."""
        return Sealer(self.gpg, inbox, fingerprint, ref, required)


@dataclass(frozen=True, slots=True)
class KeyChoice:
    fingerprint: str | None
    why: str  # how it came to be the key, in words for staff

    def line(self) -> str:
        """What staff read in a notification or transcript."""
        if self.fingerprint is None:
            return "PGP: mail to the reporter goes in clear: no key of theirs is known"
        return f"PGP: mail to the reporter is encrypted to {self.fingerprint} ({self.why})"


class Sealer:
    """Encrypt, withhold or send in clear: one decision for every outgoing kind.

    Called with the built mail, it answers the bytes to send, or None: withheld, with the
    reason in `withheld`. A mail whose kind the policy requires encrypted is withheld when
    there is no key or gpg cannot encrypt to it (expired, revoked, unusable, gpg failed);
    any other goes in clear then, and `clear_reason` says why when a key was on file.
    """

    def __init__(self, gpg: Gpg | None, inbox: InboxConfig, fingerprint: str | None, ref: str,
                 required: bool) -> None:
        self.gpg, self.inbox, self.fingerprint, self.ref = gpg, inbox, fingerprint, ref
        self.required = required
        self.withheld: str | None = None
        self.clear_reason: str | None = None
        self.encrypted_to: str | None = None

    async def __call__(self, raw: bytes) -> bytes | None:
        gpg, fpr = self.gpg, self.fingerprint
        if fpr is None:
            return self._fallback(raw, "no key of the recipient is known")
        if gpg is None:
            return self._fallback(raw, f"cannot encrypt to {fpr}: gpg cannot run here")
        try:
            sealed = await asyncio.to_thread(gpg.seal, raw, [fpr], self.inbox.pgp_key,
                                             f"[{self.ref}] ...")
        except (PgpError, OSError) as e:
            log.warning("%s: cannot encrypt to %s: %s", self.ref, fpr, e)
            return self._fallback(raw, f"cannot encrypt to {fpr}: {e}")
        self.encrypted_to = fpr
        return sealed

    def _fallback(self, raw: bytes, why: str) -> bytes | None:
        if self.required:
            self.withheld = why
            return None
        if self.fingerprint is not None:
            self.clear_reason = why
        return raw


async def _ref(db: Db, case_id: int) -> str:
    case = await case_q.get_by_id(db, case_id)
    return str(case["ref"]) if case else f"case {case_id}"


def note(opened: Opened) -> str | None:
    """What staff should know of a mail's PGP, in one line; None for plain mail."""
    parts = []
    if opened.encrypted:
        parts.append("encrypted, decrypted" if opened.readable
                     else f"encrypted and COULD NOT BE DECRYPTED ({opened.error})")
    if opened.signed:
        who = f" by {opened.signer}" if opened.signer else ""
        parts.append(f"signature {opened.signature}{who}"
                     + ("" if opened.whole else " (over part of the mail only)"))
    return "; ".join(parts) or None
