"""An IMAP folder is watched by one instance at a time (its lease); when the holder dies,
another instance takes the folder over and goes on taking its mail."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from mailbot import leasing
from mailbot.config import load_config
from mailbot.intake.watcher import Watchers
from mailbot.store import Store
from tests.dovecot import Dovecot
from tests.imap_support import imap_table, password_file, write_imap_config
from tests.integration.test_leases import Clock
from tests.support import FRIDAY_EVENING, report


async def inbound_count(store: Store) -> int:
    async with store.read() as db:
        rows = await db.execute_fetchall("SELECT count(*) FROM inbound")
    return int(next(iter(rows))[0])


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.05)


async def test_an_imap_folder_moves_to_another_instance_when_its_holder_dies(
    dovecot: Dovecot, tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two instances watch one folder: only the lease holder takes its mail; when the
    holder dies (it renews nothing more), the other takes the folder once the lease lapses
    and takes the mail that arrives after (PostgreSQL, where instances share a database)."""
    monkeypatch.setattr(leasing, "RENEW_EVERY", 0.1)  # the keepers look often; time is fake
    user = dovecot.add_user()
    path = write_imap_config(tmp_path, 1, imap_table(dovecot, user, password_file(tmp_path)))
    text = path.read_text()
    line = next(x for x in text.splitlines() if x.startswith("database = "))
    path.write_text(text.replace(line, f'database = "{pg_url}"', 1))
    config = load_config(path)
    a, b = await Store.open(pg_url), await Store.open(pg_url)
    clock = Clock(FRIDAY_EVENING)
    first = Watchers.start(config, a, clock, lambda: None)
    second: Watchers | None = None
    try:
        held_a = first.watchers[0].lease

        async def a_holds() -> bool:
            return held_a.held

        await until(a_holds)
        second = Watchers.start(config, b, clock, lambda: None)
        held_b = second.watchers[0].lease
        await asyncio.to_thread(dovecot.append, user, [report(message_id="<one@example.net>")
                                                       .as_bytes()])

        async def stored(n: int) -> bool:
            return await inbound_count(a) == n

        await until(lambda: stored(1))
        assert not held_b.held
        # The holder dies: its keeper and thread stop, and nobody hands the lease on.
        for task in first.keepers:
            task.cancel()
        for w in first.watchers:
            w.stop()
            await asyncio.to_thread(w.thread.join, 5)
        clock.advance(leasing.LEASE.total_seconds())

        async def b_holds() -> bool:
            return held_b.held

        await until(b_holds)
        await asyncio.to_thread(dovecot.append, user, [report(message_id="<two@example.net>")
                                                       .as_bytes()])
        await until(lambda: stored(2))
        async with b.read() as db:
            rows = await db.execute_fetchall("SELECT holder FROM leases")
        assert [tuple(r) for r in rows] == [(b.instance,)]
    finally:
        if second is not None:
            await second.stop()
        first.keepers = []
        await first.stop()
        await a.close()
        await b.close()
