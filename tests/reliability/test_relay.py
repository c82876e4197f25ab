"""The relay down for a while, and the journal of mails it took."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from mailbot.clock import system_clock
from mailbot.config import load_config
from mailbot.outbox import Sender, SentJournal
from mailbot.store import open_store
from mailbot.store import outbox as outbox_q
from tests.reliability.harness import (
    Daemon,
    Ledger,
    check_ledger,
    check_relay,
    client,
    relay,
    settle,
    workload,
)
from tests.support import Sink, assert_confidential, free_port, table

pytestmark = pytest.mark.slow


async def test_relay_down_then_back_delivers_everything_once(
    write_config: Callable[..., Path], tmp_path: Path, rng: random.Random
) -> None:
    """With the relay refusing connections (and a kill meanwhile), nothing is lost: once it
    is back every queued mail arrives, each once."""
    sink, relay_port, port = Sink(), free_port(), free_port()
    path = write_config(relay_port)
    path.write_text(path.read_text().replace("port = 0", f"port = {port}"))
    daemon, db = Daemon(path, port, tmp_path / "daemon.log"), tmp_path / "mailbot.db"
    ledger = Ledger()
    await daemon.start()
    try:
        await asyncio.gather(*(client(port, p, ledger) for p in workload(12, 1, 3, rng)))
        async with asyncio.timeout(30):  # every queued mail tried once and deferred
            while table(db, "SELECT count(*) FROM outbox WHERE attempts = 0") != [(0,)] or \
                    table(db, "SELECT count(*) FROM inbound WHERE status = 'pending'") != [(0,)]:
                await asyncio.sleep(0.1)
        assert table(db, "SELECT count(*) FROM outbox WHERE status = 'sent'") == [(0,)]
        await daemon.kill()
        await daemon.start()
        async with relay(sink, relay_port):
            await settle(db, 60)
            assert await daemon.stop() == 0
    except BaseException:
        print(daemon.log_tail())
        raise
    finally:
        if daemon.proc and daemon.proc.returncode is None:
            daemon.proc.kill()
    check_ledger(db, ledger)
    assert check_relay(db, sink.received, ledger, kills=0) == 0
    assert len(sink.received) == 12 * 3 + 12 * 2  # acks, notices of reports and follow-ups
    assert_confidential(sink.received, db, path)


@pytest.mark.sqlite_only("the sent journal beside the SQLite file (PostgreSQL: claims)")
async def test_journal_marks_what_the_relay_took(
    sink: Sink, write_config: Callable[..., Path], tmp_path: Path
) -> None:
    """A mail the journal names (taken by the relay, then a crash) is not sent again."""
    config = load_config(write_config(sink.port))
    store = await open_store(config.storage)
    try:
        async with store.write() as db:
            ids = [await outbox_q.enqueue(
                db, purpose=f"p{i}", case_id=None, created_at="2026-01-01T00:00:00+00:00",
                mail_from="security@example.org", rcpt_to=["x@example.net"],
                message_id=f"<m{i}@example.org>",
                raw=f"Message-ID: <m{i}@example.org>\r\n\r\nbody\r\n".encode())
                for i in range(2)]
        SentJournal(Path(f"{config.storage.database}.sent")).record(int(ids[0] or 0))
        sender, stop = Sender(store, config.smtp_out, system_clock), asyncio.Event()
        task = asyncio.create_task(sender.run(stop))
        await sink.wait_for(1, to="x@example.net")
        stop.set()
        sender.wake()
        await asyncio.wait_for(task, 10)
        async with store.read() as db:
            assert await outbox_q.counts(db) == {"sent": 2}
    finally:
        await store.close()
    assert [str(r.msg["Message-ID"]) for r in sink.received] == ["<m1@example.org>"]
