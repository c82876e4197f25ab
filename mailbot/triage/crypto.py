"""PGP around the pipeline: open what comes in, learn reporters' keys, seal what goes out,
and the PGP proof that a command mail is staff's.

The gpg calls of the parse stage run in the worker's thread; sealing happens while a mail is
queued, in a thread of its own (`asyncio.to_thread`), never on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

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
from mailbot.store import keys as keys_q

log = logging.getLogger(__name__)

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

    async def remember(self, db: Db, address: str, fingerprint: str, opened: Opened,
                       at: datetime, inbound_id: int) -> bool:
        """Record the sender's key. A known address keeps its key unless the mail that
        offers another is signed by the known one: anyone can forge a From: line."""
        known = await keys_q.key_of(db, address)
        if known == fingerprint:
            return False
        if known is not None and not (opened.signature == "good" and opened.signer == known):
            log.warning("inbound %d: a new key for %s not taken (not signed by the known key)",
                        inbound_id, address)
            return False
        await keys_q.remember(db, address, fingerprint, at=iso(at), inbound_id=inbound_id)
        return True

    def staff_signed(self, address: str, opened: Opened, now: datetime,
                     window: timedelta) -> bool:
        """A good signature over the whole mail by this staff member's configured key,
        made within the replay window (an old signed mail replayed proves nothing)."""
        staff = next((s for s in self.config.staff if s.address.lower() == address.lower()),
                     None)
        return bool(
            staff is not None and staff.pgp_fingerprint and opened.signature == "good"
            and opened.signer == staff.pgp_fingerprint and opened.whole
            and opened.signed_at is not None and abs(now - opened.signed_at) <= window
        )

    def sealer(self, inbox: InboxConfig, fingerprint: str | None, ref: str) -> Seal | None:
        """Seal a mail to `fingerprint`, signed by the inbox key; None: no key, send clear.
        The seal answers None when gpg cannot encrypt to the key (expired since)."""
        gpg = self.gpg
        if gpg is None or fingerprint is None:
            return None

        async def seal(raw: bytes) -> bytes | None:
            try:
                return await asyncio.to_thread(gpg.seal, raw, [fingerprint], inbox.pgp_key,
                                               f"[{ref}] ...")
            except (PgpError, OSError) as e:
                log.warning("%s: cannot encrypt to %s: %s", ref, fingerprint, e)
                return None

        return seal


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
