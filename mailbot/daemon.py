"""`mailbot run`: build the parts from the config and run them until SIGTERM/SIGINT.

Shutdown runs in reverse order of dependence: stop accepting connections, let the worker
finish the mail in hand (within a deadline), stop the sender, close the database last.

Each loop guards its own items (a mail, an outgoing row, a job run, a folder); should one
still end with an unexpected exception, it is logged and started again after a backoff,
so no bug in one loop ends the daemon or the other loops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Awaitable, Callable

from mailbot import http, logsafe, metrics
from mailbot.clock import Clock, system_clock
from mailbot.config import Config
from mailbot.errors import MailbotError
from mailbot.intake.smtp import IntakeHandler, make_protocol
from mailbot.intake.watcher import Watchers
from mailbot.jobs import schedule
from mailbot.mail.dkim import DnsFunc
from mailbot.outbox import Sender
from mailbot.store import open_store
from mailbot.triage.pipeline import Pipeline
from mailbot.triage.undeliverable import Undeliverable
from mailbot.triage.worker import Worker
from mailbot.waiting import wait_any

log = logging.getLogger(__name__)

SHUTDOWN_DEADLINE = 10.0
RESTART_MAX = 60.0  # seconds: the longest wait before a crashed loop is started again


async def run(
    config: Config,
    *,
    clock: Clock = system_clock,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[int], None] | None = None,
    dkim_dns: DnsFunc | None = None,
) -> None:
    """Run the daemon; `stop` (or a signal) ends it. `on_ready` gets the listening port."""
    logsafe.install()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)

    store = await open_store(config.storage)
    try:
        sender = Sender(store, config.smtp_out, clock, on_failed=Undeliverable(config, clock))
        pipeline = Pipeline.create(config, store, clock)
        if dkim_dns is not None:  # tests answer DKIM lookups themselves
            pipeline.dkim_dns = dkim_dns
        worker = Worker(pipeline, store, on_queued=sender.wake)
        live = metrics.Live()
        if pipeline.crypto.gpg is not None:
            pipeline.crypto.gpg.observe = live.gpg_run
        handler = IntakeHandler(config, store, clock, on_stored=worker.wake)
        handler.commits = metrics.CountedCommit(store, clock, live)
        server = await listen(loop, _counted(make_protocol(handler, config), live),
                              config.smtp_in.host, config.smtp_in.port)
        health = http.Health(config, clock, live, store)
        web = await _serve_http(health, config)
        scheduler = await schedule.start(config, store, pipeline.templates, clock, sender.wake,
                                         pipeline.secret)
        port = server.sockets[0].getsockname()[1]
        log.info("listening for %s on %s:%d", config.smtp_in.protocol.upper(),
                 config.smtp_in.host, port)
        if on_ready:
            on_ready(port)
        watchers = Watchers.start(config, store, clock, on_stored=worker.wake)
        try:
            async with asyncio.TaskGroup() as tg:
                work = tg.create_task(_supervised("worker", worker.run, stop), name="worker")
                send = tg.create_task(_supervised("sender", sender.run, stop), name="sender")
                health.loops = {"worker": lambda: not work.done(),
                                "sender": lambda: not send.done()}
                await stop.wait()
                log.info("stopping: no new connections")
                server.close()
                if web is not None:
                    web.close()
                await watchers.stop()
                # Both loops check `stop` between mails; cancel what overruns the deadline.
                _, pending = await asyncio.wait({work, send}, timeout=SHUTDOWN_DEADLINE)
                for task in pending:
                    task.cancel()
        finally:
            await watchers.stop()
            await scheduler.stop()  # and hands the leader lease on
            server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 5)
            if web is not None:
                web.close()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)
        await store.close()
        log.info("stopped")


def _counted(factory: Callable[[], asyncio.BaseProtocol], live: metrics.Live
             ) -> Callable[[], asyncio.BaseProtocol]:
    """The protocol factory, counting each connection it is called for."""
    def counting() -> asyncio.BaseProtocol:
        live.connections.inc()
        return factory()

    return counting


async def _serve_http(health: http.Health, config: Config) -> asyncio.Server | None:
    """The health and metrics endpoints, when `[http] listen` asks for them."""
    address = config.http.address()
    if address is None:
        return None
    host, port = address
    try:
        web = await http.serve(health, host, port)
    except OSError as e:
        reason = os.strerror(e.errno).lower() if e.errno else str(e)
        raise MailbotError(f"http.listen: cannot listen on {host}:{port}: {reason}") from e
    log.info("health and metrics on http://%s:%d/", host, web.sockets[0].getsockname()[1])
    return web


async def listen(loop: asyncio.AbstractEventLoop, factory: Callable[[], asyncio.BaseProtocol],
                 host: str, port: int) -> asyncio.Server:
    """A listening server; a port taken by another process is the operator's one-line error."""
    try:
        return await loop.create_server(factory, host, port)
    except OSError as e:
        reason = os.strerror(e.errno).lower() if e.errno else str(e)
        raise MailbotError(f"cannot listen on {host}:{port}: {reason}") from e


async def _supervised(name: str, loop: Callable[[asyncio.Event], Awaitable[None]],
                      stop: asyncio.Event) -> None:
    """Run `loop` until `stop`; an exception that escapes it (a bug its own guards missed)
    is logged and the loop started again, after a backoff that grows while it keeps
    failing, instead of ending the TaskGroup and with it the daemon."""
    backoff = 1.0
    while not stop.is_set():
        try:
            await loop(stop)
            return
        except Exception:
            log.exception("%s: unexpected error; restarting it in %.0fs", name, backoff)
        await wait_any(stop, None, backoff)
        backoff = min(backoff * 2, RESTART_MAX)
