"""`[http] listen` on the real daemon: /healthz, /readyz with the relay down and the database
locked, and /metrics after a known sequence of mails, read with prometheus_client's parser."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mailbot.config import load_config
from mailbot.errors import ConfigErrors
from tests.support import FRIDAY_EVENING, Bot, MovingClock, Sink, free_port, report, running_bot


async def get(port: int, path: str, method: str = "GET") -> tuple[int, str]:
    """One HTTP/1.0 request over a plain socket: the status and the body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"{method} {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 30)
    writer.close()
    head, _, body = data.decode().partition("\r\n\r\n")
    return int(head.split(" ", 2)[1]), body


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a /metrics page by name and labels, through prometheus_client."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


@contextlib.asynccontextmanager
async def web_bot(write_config: Callable[..., Path], relay: int) -> AsyncIterator[
        tuple[Bot, int]]:
    path = write_config(relay)
    port = free_port()
    await asyncio.to_thread(_append, path, f'\n[http]\nlisten = "127.0.0.1:{port}"\n')
    async with running_bot(load_config(path), MovingClock(FRIDAY_EVENING)) as bot:
        yield bot, port


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


async def test_metrics_after_a_known_sequence(write_config: Callable[..., Path],
                                              sink: Sink) -> None:
    """A report, the same bytes again, a follow-up and a mail without sender: the counters
    say 4 received, 1 duplicated, 3 stored, 1 quarantined, 1 case, 1 acknowledgement."""
    async with web_bot(write_config, sink.port) as (bot, port):
        first = report(message_id="<m1@example.net>")
        await bot.send(first)
        await sink.wait_for(1)
        await bot.send(first)  # a redelivery
        follow = report(subject="Re: XSS in /search", body="More.\n",
                        message_id="<m2@example.net>", In_Reply_To="<m1@example.net>")
        await bot.send(follow)
        await bot.send(b"To: security@example.org\r\nSubject: anonymous\r\n\r\nno sender\r\n",
                       mail_from="someone@example.net", to=["security@example.org"])
        store = await bot.open_store()
        for _ in range(200):  # until the worker has handled all three stored mails
            async with store.read() as db:
                left = list(await db.execute_fetchall(
                    "SELECT count(*) FROM inbound WHERE status = 'pending'"))
            if left[0][0] == 0:
                break
            await asyncio.sleep(0.05)
        status, body = await get(port, "/metrics")
        bot.clock.advance(timedelta(days=10))  # past the 3 business days of a first response
        later = samples((await get(port, "/metrics"))[1])
    assert status == 200
    found = samples(body)
    breached = ("mailbot_deadlines_breached", frozenset({("inbox", "security"),
                                                         ("deadline", "first_response")}))
    assert breached not in found and later[breached] == 1

    def value(name: str, **labels: str) -> float:
        return found[(name, frozenset(labels.items()))]

    assert value("mailbot_mails_received_total", source="smtp") == 4
    assert value("mailbot_mails_duplicated_total", source="smtp") == 1
    assert value("mailbot_mails_stored_total", source="smtp") == 3
    assert value("mailbot_mails_quarantined", source="smtp") == 1
    assert value("mailbot_smtp_connections_total") == 4
    assert value("mailbot_cases_opened_total", inbox="security") == 1
    assert ("mailbot_cases_closed", frozenset({("inbox", "security")})) not in found
    assert value("mailbot_ack_latency_seconds_count") == 1
    assert value("mailbot_ack_latency_seconds_bucket", le="+Inf") == 1
    assert value("mailbot_outbox_oldest_pending_seconds") >= 0


async def test_health_with_the_relay_down(write_config: Callable[..., Path]) -> None:
    """A relay that refuses connections: alive (200 on /healthz) but not ready (503 on
    /readyz, naming the relay), and /metrics shows the waiting mail and its age."""
    relay = free_port()
    async with web_bot(write_config, relay) as (bot, port):
        await bot.send(report())
        status, body = await get(port, "/healthz")
        assert status == 200 and json.loads(body)["checks"] == {"worker": "ok", "sender": "ok"}
        status, body = await get(port, "/readyz")
        checks = json.loads(body)["checks"]
        assert status == 503
        assert checks["database"] == "ok" and checks["imap"] == "ok"
        assert checks["outgoing"] == f"relay 127.0.0.1:{relay}: connect: connection refused"
        store = await bot.open_store()
        for _ in range(200):
            async with store.read() as db:
                n = list(await db.execute_fetchall(
                    "SELECT count(*) FROM outbox WHERE status = 'pending'"))
            if n[0][0]:
                break
            await asyncio.sleep(0.05)
        found = samples((await get(port, "/metrics"))[1])
    assert found[("mailbot_outbox", frozenset({("status", "pending")}))] >= 1


@pytest.mark.sqlite_only
async def test_readyz_with_the_database_locked(write_config: Callable[..., Path],
                                               sink: Sink) -> None:
    """Another process holds the database's write lock: /readyz says the database is locked
    (503) while /healthz stays 200; once the lock goes, /readyz is 200."""
    async with web_bot(write_config, sink.port) as (bot, port):
        assert (await get(port, "/readyz"))[0] == 200
        locker = sqlite3.connect(bot.config.storage.database, isolation_level=None,
                                 check_same_thread=False)
        try:
            locker.execute("BEGIN EXCLUSIVE")
            status, body = await get(port, "/readyz")
            assert status == 503 and "locked" in json.loads(body)["checks"]["database"]
            assert (await get(port, "/healthz"))[0] == 200
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        assert (await get(port, "/readyz"))[0] == 200


async def test_unknown_paths_and_methods(write_config: Callable[..., Path], sink: Sink) -> None:
    """Anything but GET on the three paths is refused with 404 or 405, and the server goes on."""
    async with web_bot(write_config, sink.port) as (_, port):
        assert (await get(port, "/admin"))[0] == 404
        assert (await get(port, "/metrics", method="POST"))[0] == 405
        assert (await get(port, "/healthz"))[0] == 200


def test_http_is_off_by_default_and_listen_is_checked(tmp_path: Path,
                                                      write_config: Callable[..., Path]) -> None:
    """No [http] table: no listener; a listen value that is not HOST:PORT is a config error."""
    path = write_config()
    assert load_config(path).http.address() is None
    _append(path, '\n[http]\nlisten = "8026"\n')
    with pytest.raises(ConfigErrors, match=r"http\.listen"):
        load_config(path)
