"""The SMTP/LMTP listener (aiosmtpd): store the raw mail, then answer.

`250` is answered only after the row is committed; a database that cannot take the mail
gets `451` so the sending MTA keeps it and tries again. LMTP (RFC 2033) gets one reply
per accepted recipient, all after the one commit.
"""

from __future__ import annotations

import asyncio
import logging
import re
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
        # One row per addressed inbox (each opens its own case), the bytes stored once;
        # handle_RCPT let only inbox addresses through.
        inboxes = [self._inbox_of(r) for r in envelope.rcpt_tos]
        names = list(dict.fromkeys(inboxes))
        peer = session.peer
        try:
            accepted = await self.commits.accept(Delivery(
                raw=bytes(raw), source=self.protocol, inbox=names[0],
                rcpt_to=list(envelope.rcpt_tos), mail_from=envelope.mail_from,
                peer=f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer),
                also=names[1:],
            ))
        except TransientError as e:
            log.error("intake: cannot store a mail from %s: %s", envelope.mail_from, e)
            return self._replies(inboxes, lambda _: "451 4.3.0 cannot store the mail now; try"
                                                    " again later")
        except Exception:
            log.exception("intake: storing a mail failed")
            return self._replies(inboxes, lambda _: "451 4.3.0 internal error; try again later")
        if accepted.new:
            self.on_stored()
            log.info("inbound %s stored (%d bytes)",
                     ", ".join(str(accepted.row_for(n)) for n in names), len(raw))
        return self._replies(inboxes, lambda inbox: f"250 2.0.0 stored as"
                                                    f" {accepted.row_for(inbox)}")

    def _inbox_of(self, address: str) -> str:
        inbox = self.config.inbox_for(address)
        assert inbox is not None  # handle_RCPT let only inbox addresses through
        return inbox.name

    def _replies(self, inboxes: list[str], reply: Callable[[str], str]) -> str:
        """SMTP: one reply. LMTP (RFC 2033): one per accepted recipient, each from what was
        stored for that recipient's inbox."""
        if self.protocol == "lmtp":
            return "\r\n".join(reply(inbox) for inbox in inboxes)
        return reply(inboxes[0])


# An everyday reverse or forward path: <local@domain> with nothing to unquote or decode.
_PLAIN_PATH = re.compile(
    r"\s*<([A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+=-]+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>(.*)\Z",
    re.S)
_END = b"\r\n.\r\n"


class _Fast(SMTP):
    """Two aiosmtpd hot spots, measured in the SMTP flood: DATA read one line per coroutine
    step (with two joins and a debug call per line), and every MAIL/RCPT address run
    through the email package's header grammar. The rest of the protocol is aiosmtpd's."""

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        m = _PLAIN_PATH.match(arg)
        if m is None or len(m.group(1).rpartition("@")[0]) > (self.local_part_limit or 1 << 30):
            return super()._getaddr(arg)  # quoting, comments, UTF-8, <>, an overlong local part
        return m.group(1), m.group(2)

    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        data = await self._read_data()
        if data is None:
            self._set_post_data_state()  # type: ignore[no-untyped-call]
            await self.push("552 Error: Too much mail data")
            return
        # RFC 5321 4.5.2: a line that starts with a dot lost that dot.
        content = (b"\r\n" + data).replace(b"\r\n.", b"\r\n")[2:]
        self.envelope.content = self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()  # type: ignore[no-untyped-call]
        await self.push(status)

    async def _read_data(self) -> bytes | None:
        """The mail up to <CRLF>.<CRLF> in one read; None when it is over the size limit
        (then what the client sends is drained up to the end marker)."""
        reader = self._reader
        limit = self.data_size_limit or 1 << 30
        # The stream's limit is one line's length (aiosmtpd reads commands by the line);
        # for the DATA block it is the size limit. A private attribute of StreamReader,
        # stable since Python 3.4 and set back below.
        saved = reader._limit  # type: ignore[attr-defined]
        reader._limit = limit + len(_END)  # type: ignore[attr-defined]
        try:
            first = await reader.readuntil(b"\r\n")
            if first == b".\r\n":
                return b""
            data = first + (await reader.readuntil(_END))[:-3]
            return data if len(data) <= limit else None
        except asyncio.LimitOverrunError:
            tail = b""
            while True:  # drain without keeping it; the marker may straddle two reads
                chunk = await reader.read(1 << 16)
                if not chunk or _END in tail + chunk:
                    return None
                tail = chunk[-4:]
        finally:
            reader._limit = saved  # type: ignore[attr-defined]


class _FastLMTP(_Fast, LMTP):
    pass


def make_protocol(handler: IntakeHandler, config: Config) -> Callable[[], Any]:
    """A protocol factory for loop.create_server (aiosmtpd's Controller is for tests only)."""
    cls = _FastLMTP if config.smtp_in.protocol == "lmtp" else _Fast
    loop = asyncio.get_running_loop()

    def factory() -> SMTP:
        return cls(
            handler, data_size_limit=config.smtp_in.max_message_size, enable_SMTPUTF8=True,
            decode_data=False, hostname=config.inboxes[0].domain, ident="mailbot", loop=loop,
            timeout=300,
        )

    return factory
