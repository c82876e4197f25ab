"""The SMTP/LMTP listener (aiosmtpd): store the raw mail, then answer.

Sessions past `[smtp_in] max_connections` (or `max_connections_per_ip`) get `421`; a DATA
block is bounded in size, in time without a byte and in total time; a large block is
spooled to disk and loaded under a memory budget (see `datablock.py`, `limits.py`).

`250` is answered only after the row is committed; a database that cannot take the mail
gets `451` so the sending MTA keeps it and tries again. LMTP (RFC 2033) gets one reply
per accepted recipient, all after the one commit.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session

from mailbot.clock import Clock
from mailbot.config import Config, SmtpInConfig
from mailbot.errors import TransientError
from mailbot.intake.datablock import Block, Refused, read_block
from mailbot.intake.durable import Delivery, GroupCommit
from mailbot.intake.limits import (
    Connections,
    MemoryGate,
    quiet_accept_errors,
    return_large_blocks,
    session_cap,
)
from mailbot.intake.tls import is_loopback, server_context
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
DATA_TIMEOUT = "421 4.4.2 timeout while receiving data; closing"
LOAD_FAILED = "451 4.3.0 cannot read the spooled mail back; try again later"


@dataclass(slots=True)
class Listener:
    """What the sessions of one listener share: their caps, the memory gate, TLS."""

    config: SmtpInConfig
    connections: Connections
    memory: MemoryGate
    spool_dir: Path
    tls: ssl.SSLContext | None
    # Which peers are exempt from `require_tls`; a test seam, as no peer outside loopback
    # can connect in the test suite.
    is_local: Callable[[object], bool] = is_loopback


class _Fast(SMTP):
    """aiosmtpd's protocol with the listener's limits, and two hot spots measured in the
    SMTP flood replaced: DATA read one line per coroutine step (with two joins and a debug
    call per line), and every MAIL/RCPT address run through the email package's header
    grammar. The rest of the protocol is aiosmtpd's."""

    def __init__(self, handler: IntakeHandler, listener: Listener, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.listener = listener
        # aiosmtpd reads commands from a buffer and keeps what follows DATA (see
        # `read_block`), so it can announce PIPELINING (RFC 2920; LMTP requires it).
        self._handle_hooks["EHLO"] = self._ehlo
        self._ehlo_hook_ver = "new"
        self._ip: str | None = None  # set while the session counts against the caps
        self._refused = False
        self._data_deadline: float | None = None  # set while a DATA block is read
        self._last_byte = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._original_transport is None:  # a new connection, not TLS after STARTTLS
            peer = transport.get_extra_info("peername")
            ip = str(peer[0]) if isinstance(peer, tuple) else str(peer)
            refusal = self.listener.connections.admit(ip)
            if refusal is not None:
                self._refused = True
                transport.write(refusal.encode() + b"\r\n")  # type: ignore[attr-defined]
                transport.close()
                return
            self._ip = ip
            self.require_starttls = bool(self.tls_context and self.listener.config.require_tls
                                         and not self.listener.is_local(peer))
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self._refused:
            return
        if self._ip is not None:
            self.listener.connections.release(self._ip)
            self._ip = None
        super().connection_lost(error)

    def eof_received(self) -> bool | None:
        return False if self._refused else super().eof_received()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._data_deadline is not None:
            self._last_byte = self.loop.time()
        super().data_received(data)

    def _timeout_cb(self) -> None:
        if self._data_deadline is not None:  # in DATA: inactivity, or the whole block's time
            c = self.listener.config
            now = self.loop.time()
            due = min(self._last_byte + c.data_timeout, self._data_deadline)
            if now < due:
                self._reset_timeout(due - now)
                return
            log.info("%r: DATA timed out after %.0f s", self.session and self.session.peer,
                     now - (self._data_deadline - c.data_max_seconds))
            self._writer.write(DATA_TIMEOUT.encode() + b"\r\n")
        super()._timeout_cb()  # type: ignore[no-untyped-call]

    async def _ehlo(self, server: SMTP, session: Session, envelope: Envelope, hostname: str,
                    responses: list[str]) -> list[str]:
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

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
        try:
            block = await self._read_block()
        except Refused as e:
            self._set_post_data_state()  # type: ignore[no-untyped-call]
            await self.push(e.reply)
            return
        try:
            if block.spool is None:
                status = await self._deliver(block.content or b"")
            else:
                async with self.listener.memory.hold(block.size):
                    try:
                        content = await block.load()
                    except OSError as e:
                        log.error("intake: cannot read a spooled mail back: %s", e)
                        status = LOAD_FAILED
                    else:
                        status = await self._deliver(content)
                        del content
        finally:
            await block.close()
        self._set_post_data_state()  # type: ignore[no-untyped-call]
        await self.push(status)

    async def _read_block(self) -> Block:
        c = self.listener.config
        self._last_byte = now = self.loop.time()
        self._data_deadline = now + c.data_max_seconds
        self._reset_timeout(min(c.data_timeout, c.data_max_seconds))
        try:
            return await read_block(self._reader, max_size=self.data_size_limit or 1 << 30,
                                    spool_dir=self.listener.spool_dir)
        finally:
            self._data_deadline = None
            self._reset_timeout()

    async def _deliver(self, content: bytes) -> str:
        assert self.envelope is not None
        self.envelope.content = self.envelope.original_content = content
        status: str = await self._call_handler_hook("DATA")
        return status


class _FastLMTP(_Fast, LMTP):
    pass


def make_protocol(
    handler: IntakeHandler, config: Config, *, is_local: Callable[[object], bool] = is_loopback
) -> Callable[[], SMTP]:
    """A protocol factory for loop.create_server (aiosmtpd's Controller is for tests only)."""
    c = config.smtp_in
    cls = _FastLMTP if c.protocol == "lmtp" else _Fast
    loop = asyncio.get_running_loop()
    quiet_accept_errors(loop)
    return_large_blocks()
    listener = Listener(
        config=c, connections=Connections(session_cap(c.max_connections),
                                          c.max_connections_per_ip),
        memory=MemoryGate(c.memory_budget), spool_dir=config.storage.database.parent,
        tls=server_context(c), is_local=is_local,
    )

    def factory() -> SMTP:
        return cls(
            handler, listener, data_size_limit=c.max_message_size, enable_SMTPUTF8=True,
            decode_data=False, hostname=config.inboxes[0].domain, ident="mailbot", loop=loop,
            timeout=300, tls_context=listener.tls,
        )

    return factory
