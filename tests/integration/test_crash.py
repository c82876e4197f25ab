"""A real `mailbot run` process, killed with SIGKILL between intake and processing."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import Sink, free_port, report, send, start_daemon, table

pytestmark = pytest.mark.slow


async def test_sigkill_between_intake_and_processing_loses_nothing(
    sink: Sink, write_config: Callable[..., Path], tmp_path: Path
) -> None:
    """Mail answered 250 survives SIGKILL; after restart each report has one case and one ack."""
    port = free_port()
    path = write_config(sink.port)
    path.write_text(path.read_text().replace("port = 0", f"port = {port}"))
    db = tmp_path / "mailbot.db"

    proc = await start_daemon(path, port, paused=True)
    for i in range(5):
        await send(port, report(sender=f"r{i}@example.net", message_id=f"<k{i}@example.net>"))
    proc.send_signal(signal.SIGKILL)
    await proc.wait()
    # Everything answered 250 is on disk, untouched by the paused worker.
    assert table(db, "SELECT status, count(*) FROM inbound GROUP BY status") == [("pending", 5)]

    proc = await start_daemon(path, port, paused=False)
    try:
        await sink.wait_for(15, timeout=20, to=None)  # 5 acks, 10 staff notifications
        # Kill again once the sends are recorded. (Between the relay's 250 and that record
        # lies the one window where a kill makes a mail go out twice; see the README.)
        async with asyncio.timeout(10):
            while table(db, "SELECT count(*) FROM outbox WHERE status = 'sent'") != [(15,)]:
                await asyncio.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()

    # A third start finds nothing left to do and sends nothing again.
    proc = await start_daemon(path, port, paused=False)
    await asyncio.sleep(1.5)
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), 15) == 0

    assert table(db, "SELECT count(*) FROM cases") == [(5,)]
    assert table(db, "SELECT count(*), count(DISTINCT purpose) FROM outbox") == [(15, 15)]
    assert len(sink.received) == 15
    acks = [r.rcpt_tos[0] for r in sink.received if r.rcpt_tos[0].startswith("r")]
    assert sorted(acks) == [f"r{i}@example.net" for i in range(5)]


async def test_sigterm_stops_cleanly(sink: Sink, write_config: Callable[..., Path]) -> None:
    """SIGTERM stops the listener and the daemon exits 0 with the database closed."""
    port = free_port()
    path = write_config(sink.port)
    path.write_text(path.read_text().replace("port = 0", f"port = {port}"))
    proc = await start_daemon(path, port, paused=False)
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), 15) == 0
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)
