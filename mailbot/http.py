"""`[http] listen`: /healthz, /readyz and /metrics on the daemon's own event loop.

A few lines of HTTP/1.0 over `asyncio.start_server` are enough for a probe and a scraper;
a web framework would weigh more than the rest of the daemon's dependencies together.
The database is asked on a connection of its own (`Store.side_read`, `write_problem`),
never waiting for the worker's transaction; the relay is asked over asyncio.

- /healthz: 200 while the worker and the sender run (the loop answers, so it runs too).
- /readyz: 200 when the database takes a write, the relay answers EHLO (or the maildir
  takes a file) and no IMAP watcher is stopped or failing again and again.
- /metrics: mailbot/metrics.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from mailbot import metrics
from mailbot.clock import Clock
from mailbot.config import Config
from mailbot.errors import StoreBusy
from mailbot.relaycheck import relay_problem
from mailbot.store import Store
from mailbot.store.imap import stuck_folders

log = logging.getLogger(__name__)

READ_TIMEOUT = 5.0
CHECK_TIMEOUT = 3.0  # seconds per readiness check: a probe must answer before it times out
STUCK_FAILURES = 3  # an IMAP watcher that failed this often in a row is not ready


@dataclass
class Health:
    """What the endpoints look at: the daemon hands over its parts once they run."""

    config: Config
    clock: Clock
    live: metrics.Live
    store: Store
    loops: Mapping[str, Callable[[], bool]] = dataclasses.field(default_factory=dict)

    def alive(self) -> dict[str, bool]:
        return {name: running() for name, running in self.loops.items()}

    async def ready(self) -> dict[str, str]:
        """Each check's verdict: 'ok' or why not."""
        checks: dict[str, str] = {}
        checks["database"] = await _bounded(self.store.write_problem(CHECK_TIMEOUT))
        out = dataclasses.replace(self.config.smtp_out,
                                  timeout=min(self.config.smtp_out.timeout, CHECK_TIMEOUT))
        checks["outgoing"] = await _bounded(relay_problem(out))
        checks["imap"] = await _bounded(self._watchers_problem())
        return checks

    async def _watchers_problem(self) -> str | None:
        try:
            async with self.store.side_read() as db:
                rows = await stuck_folders(db, STUCK_FAILURES)
        except StoreBusy as e:
            return str(e)
        if not rows:
            return None
        return "; ".join(f"{m}: {s}, {f} failures in a row" for m, s, f in rows)


async def _bounded(check: Awaitable[str | None]) -> str:
    try:
        problem = await asyncio.wait_for(check, CHECK_TIMEOUT + 1)
    except TimeoutError:
        return "no answer in time"
    return problem or "ok"


async def serve(health: Health, host: str, port: int) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, kind, body = await _answer(health, reader)
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError, ValueError):
            status, kind, body = 400, "text/plain", b"bad request\n"
        except Exception:  # a bug in one answer: logged, and the server keeps serving
            log.exception("http: unexpected error")
            status, kind, body = 500, "text/plain", b"internal error\n"
        head = (f"HTTP/1.0 {status} {_REASONS[status]}\r\nContent-Type: {kind}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
        with contextlib.suppress(ConnectionError):
            writer.write(head + body)
            await writer.drain()
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()

    return await asyncio.start_server(handle, host, port, limit=8192)


_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            500: "Internal Server Error", 503: "Service Unavailable"}
JSON = "application/json"


async def _answer(health: Health, reader: asyncio.StreamReader) -> tuple[int, str, bytes]:
    line = await asyncio.wait_for(reader.readline(), READ_TIMEOUT)
    while (await asyncio.wait_for(reader.readline(), READ_TIMEOUT)).strip():
        pass  # headers: nothing here needs them
    method, target, _ = line.decode("latin-1").split(" ", 2)
    path = target.split("?", 1)[0]
    if path not in ("/healthz", "/readyz", "/metrics"):
        return 404, "text/plain", b"not found\n"
    if method != "GET":
        return 405, "text/plain", b"GET only\n"
    if path == "/metrics":
        page = await metrics.page(health.store, health.live, health.clock())
        return 200, "text/plain; version=0.0.4; charset=utf-8", page
    if path == "/healthz":
        alive = health.alive()
        ok = all(alive.values())
        return 200 if ok else 503, JSON, json.dumps(
            {"status": "ok" if ok else "failing",
             "checks": {k: "ok" if v else "stopped" for k, v in alive.items()}}).encode()
    checks = await health.ready()
    ok = all(v == "ok" for v in checks.values())
    return 200 if ok else 503, JSON, json.dumps(
        {"status": "ok" if ok else "failing", "checks": checks}).encode()
