"""The SMTP/LMTP listener (aiosmtpd): store the raw mail, then answer.

`250` is answered only after the row is committed; a database that cannot take the mail
gets `451` so the sending MTA keeps it and tries again. LMTP (RFC 2033) gets one reply
per accepted recipient, all after the one commit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session

from mailbot.clock import Clock
from mailbot.config import Config
from mailbot.errors import TransientError
from mailbot.intake.durable import Delivery, GroupCommit
from mailbot.store import Store

log = logging.getLogger(__name__)


class IntakeHandler:
    def __init__(
        self, config: Config, store: Store, clock: Clock, on_stored: Callable[[], None]
    ) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.on_stored = on_stored
        self.protocol = config.smtp_in.protocol
        self.commits = GroupCommit(store, clock)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str,
        rcpt_options: list[str],
    ) -> str:
        if self.config.inbox_for(address) is None:
            return f"550 5.1.1 <{address}>: no such inbox here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        raw = envelope.original_content or b""
        inbox = self.config.inbox_for(envelope.rcpt_tos[0])
        assert inbox is not None  # handle_RCPT let only inbox addresses through
        peer = session.peer
        try:
            accepted = await self.commits.accept(Delivery(
                raw=bytes(raw), source=self.protocol, inbox=inbox.name,
                rcpt_to=list(envelope.rcpt_tos), mail_from=envelope.mail_from,
                peer=f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer),
            ))
        except TransientError as e:
            log.error("intake: cannot store a mail from %s: %s", envelope.mail_from, e)
            return self._replies(envelope, "451 4.3.0 cannot store the mail now; try again later")
        except Exception:
            log.exception("intake: storing a mail failed")
            return self._replies(envelope, "451 4.3.0 internal error; try again later")
        if accepted.new:
            self.on_stored()
            log.info("inbound %d stored (%d bytes)", accepted.inbound_id, len(raw))
        return self._replies(envelope, f"250 2.0.0 stored as {accepted.inbound_id}")

    def _replies(self, envelope: Envelope, reply: str) -> str:
        if self.protocol == "lmtp":
            return "\r\n".join(reply for _ in envelope.rcpt_tos)
        return reply


def make_protocol(handler: IntakeHandler, config: Config) -> Callable[[], Any]:
    """A protocol factory for loop.create_server (aiosmtpd's Controller is for tests only)."""
    cls = LMTP if config.smtp_in.protocol == "lmtp" else SMTP
    loop = asyncio.get_running_loop()

    def factory() -> SMTP:
        return cls(
            handler, data_size_limit=config.smtp_in.max_message_size, enable_SMTPUTF8=True,
            decode_data=False, hostname=config.inboxes[0].domain, ident="mailbot", loop=loop,
            timeout=300,
        )

    return factory
