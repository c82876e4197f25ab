"""Backups as docs/operations.md tells operators to take them: while `mailbot run` works.

A real daemon (child process) takes reports over SMTP from a client that keeps sending
while the backup runs, once with the sqlite3 shell's `.backup` and once with `VACUUM INTO`.
Each copy must open, pass SQLite's integrity check, hold every case the daemon had opened
before the backup began, be consistent mid-load (no processed mail without its case), and
be readable by `mailbot tickets` itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import CONFIG, Sink, free_port, report, send, start_daemon, table

pytestmark = [pytest.mark.slow, pytest.mark.sqlite_only]


def _backup_with_shell(db: Path, copy: Path) -> None:
    subprocess.run(["sqlite3", str(db), f".backup '{copy}'"], check=True, timeout=60)


def _backup_with_vacuum_into(db: Path, copy: Path) -> None:
    with contextlib.closing(sqlite3.connect(db, timeout=10)) as conn:
        conn.execute("VACUUM INTO ?", (str(copy),))


async def _wait_for_cases(db: Path, count: int) -> None:
    async with asyncio.timeout(30):
        while True:
            with contextlib.suppress(sqlite3.OperationalError):
                if table(db, "SELECT count(*) FROM cases")[0][0] >= count:
                    return
            await asyncio.sleep(0.1)


@pytest.mark.parametrize("how", ["sqlite3 .backup", "VACUUM INTO"])
async def test_backup_while_the_daemon_takes_mail(how: str, tmp_path: Path, sink: Sink) -> None:
    """A backup taken while the daemon stores and processes mail opens and holds the cases."""
    if how == "sqlite3 .backup" and shutil.which("sqlite3") is None:
        pytest.skip("the sqlite3 shell is not installed (Debian package sqlite3)")
    db, port = tmp_path / "mailbot.db", free_port()
    config = tmp_path / "mailbot.toml"
    config.write_text(CONFIG.format(db=db, sink_port=sink.port, protocol="smtp", max_size="1MB")
                      .replace("port = 0", f"port = {port}", 1))
    proc = await start_daemon(config, port, log=tmp_path / "daemon.log")
    try:
        before = [f"<before-{i}@example.net>" for i in range(20)]
        for i, mid in enumerate(before):
            await send(port, report(subject=f"Finding {i}", sender=f"r{i}@example.net",
                                    message_id=mid))
        await _wait_for_cases(db, len(before))

        sending = True

        async def keep_sending() -> int:
            n = 0
            while sending:
                await send(port, report(subject=f"During {n}", sender=f"d{n}@example.net",
                                        message_id=f"<during-{n}@example.net>"))
                n += 1
            return n

        client = asyncio.create_task(keep_sending())
        await asyncio.sleep(0.3)  # the daemon is busy: stores, processes, sends
        copy = tmp_path / "backup.db"
        backup = _backup_with_shell if how == "sqlite3 .backup" else _backup_with_vacuum_into
        await asyncio.to_thread(backup, db, copy)
        await asyncio.sleep(0.3)
        sending = False
        during = await client
    finally:
        proc.send_signal(signal.SIGTERM)
        await proc.wait()
    assert during > 0  # mail was coming in while the copy was taken

    assert table(copy, "PRAGMA integrity_check") == [("ok",)]
    in_copy = {r[0]: r[1] for r in table(
        copy, "SELECT i.message_id, c.ref FROM inbound i JOIN cases c ON c.id = i.case_id")}
    assert all(in_copy.get(mid) for mid in before)
    # Consistent mid-load: every mail marked processed has its case, and every case its mail.
    assert table(copy, "SELECT count(*) FROM inbound WHERE status = 'done' AND case_id IS NULL"
                       " OR case_id NOT IN (SELECT id FROM cases)") == [(0,)]
    assert table(copy, "SELECT count(*) FROM cases WHERE id NOT IN"
                       " (SELECT case_id FROM messages WHERE direction = 'in')") == [(0,)]
    assert table(copy, "SELECT count(*) FROM cases")[0][0] <= table(
        db, "SELECT count(*) FROM cases")[0][0]

    # Restored: mailbot itself reads the copy (its migrations are all recorded in it).
    restored = tmp_path / "restored.toml"
    restored.write_text(config.read_text().replace(f'database = "{db}"',
                                                   f'database = "{copy}"'))
    out = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "mailbot", "tickets", "--json", "--config",
                         str(restored)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    refs = {c["ref"] for c in json.loads(out.stdout)}
    assert {in_copy[mid] for mid in before} <= refs
