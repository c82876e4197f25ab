"""Disk full, a database locked by another process, a read-only database.

The disk is a real tmpfs of a few MB, mounted for the test (root only; skipped elsewhere):
SQLite then meets a real ENOSPC, not a simulation of one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import aiosmtplib
import pytest

from mailbot.config import load_config
from tests.support import CONFIG, FRIDAY_EVENING, MovingClock, Sink, report, running_bot, table

pytestmark = [pytest.mark.slow, pytest.mark.sqlite_only(
    "a full disk, a lock or a read-only file under the SQLite database")]


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def config_on(disk: Path, sink_port: int) -> Path:
    path = disk / "mailbot.toml"
    text = CONFIG.format(db=disk / "mailbot.db", sink_port=sink_port, protocol="smtp",
                         max_size="1MB")
    # gpg-agent keeps files open in its home: that home stays off the disk under test.
    path.write_text(text.replace(f"{disk / 'mailbot.db'}.gnupg", f"{disk.parent / 'gnupg'}"))
    return path


def fill(disk: Path) -> Path:
    """Fill the file system to the last block."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        for chunk in (65536, 512):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * chunk)
    finally:
        os.close(fd)
    return filler


def big_report(n: int) -> bytes:
    return report(sender=f"r{n}@example.net", message_id=f"<big-{n}@example.net>",
                  subject=f"Finding {n}: details attached",
                  body="A long proof of concept.\n" + "x" * 76 * 2000).as_bytes()


async def test_disk_full_answers_4xx_then_resumes(tmpfs: Path, sink: Sink) -> None:
    """Disk full: the sender gets 451 and nothing half-stored; with space back, the same
    mail is taken and processed, and nothing is sent twice."""
    config = load_config(config_on(tmpfs, sink.port))
    async with running_bot(config, MovingClock(FRIDAY_EVENING)) as bot:
        await bot.send(report(sender="r0@example.net", message_id="<before@example.net>"))
        await sink.wait_for(1, to="r0@example.net")
        filler = await asyncio.to_thread(fill, tmpfs)
        told = []
        for n in range(3):
            try:
                await bot.send(big_report(n), mail_from=f"r{n}@example.net",
                               to=["security@example.org"])
                told.append((n, 250))
            except aiosmtplib.SMTPResponseException as e:
                told.append((n, e.code))
        assert {code for _, code in told} == {451}, told
        await asyncio.to_thread(filler.unlink)
        for n in range(3):
            await bot.send(big_report(n), mail_from=f"r{n}@example.net",
                           to=["security@example.org"])
        await sink.wait_for(1, to="r2@example.net", timeout=30)
        await sink.wait_for(12, to=None, timeout=30)
    db = tmpfs / "mailbot.db"
    assert table(db, "SELECT status, count(*) FROM inbound GROUP BY status") == [("done", 4)]
    assert table(db, "SELECT count(*) FROM cases") == [(4,)]
    ids = [str(r.msg["Message-ID"]) for r in sink.received]
    assert len(ids) == len(set(ids)) == 12  # an ack and two staff notices per case


async def test_locked_database_answers_4xx_not_250(tmp_path: Path, sink: Sink) -> None:
    """Another process holding the write lock past the busy timeout: 451, then 250."""
    path = tmp_path / "mailbot.toml"
    path.write_text(CONFIG.format(db=tmp_path / "mailbot.db", sink_port=sink.port,
                                  protocol="smtp", max_size="1MB"))
    config = load_config(path)
    async with running_bot(config, MovingClock(FRIDAY_EVENING)) as bot:
        holding, release = threading.Event(), threading.Event()

        def hold_lock() -> None:
            conn = sqlite3.connect(tmp_path / "mailbot.db", isolation_level=None)
            conn.execute("BEGIN IMMEDIATE")
            holding.set()
            release.wait(30)
            conn.execute("ROLLBACK")
            conn.close()

        holder = threading.Thread(target=hold_lock)
        holder.start()
        try:
            await asyncio.to_thread(holding.wait)
            # A real MTA waits minutes for the answer to DATA; the busy timeout is 10 s.
            with pytest.raises(aiosmtplib.SMTPResponseException) as refused:
                await bot.send(report(), timeout=60)
            assert refused.value.code == 451
        finally:
            release.set()
            await asyncio.to_thread(holder.join)
        await bot.send(report())
        await sink.wait_for(1)
    assert table(tmp_path / "mailbot.db", "SELECT count(*) FROM inbound") == [(1,)]


async def test_read_only_database_is_refused_with_a_clear_error(
    tmpfs: Path, sink: Sink
) -> None:
    """On a file system gone read-only, `mailbot run` and `mailbot import` exit 1 naming the
    database and the reason; nothing is claimed stored."""
    path = config_on(tmpfs, sink.port)
    config = load_config(path)
    async with running_bot(config, MovingClock(FRIDAY_EVENING)) as bot:
        await bot.send(report(sender="r0@example.net", message_id="<r0@example.net>"))
        await sink.wait_for(1, to="r0@example.net")
    mbox = tmpfs.parent / "one.mbox"
    mbox.write_bytes(b"From r1@example.net Fri Dec 18 17:55:00 2026\n"
                     + report(sender="r1@example.net", message_id="<r1@example.net>").as_bytes())
    await run(["mount", "-o", "remount,ro", str(tmpfs)])
    try:
        runs = [await run([sys.executable, "-m", "mailbot", *args, "--config", str(path)])
                for args in (["run"], ["import", str(mbox)])]
    finally:
        await run(["mount", "-o", "remount,rw", str(tmpfs)])
    for done in runs:
        assert done.returncode == 1, done.stderr
        assert "mailbot.db" in done.stderr, done.stderr
        assert "readonly" in done.stderr.replace("-", "").replace(" ", ""), done.stderr
    assert table(tmpfs / "mailbot.db", "SELECT message_id FROM inbound") == [("<r0@example.net>",)]


async def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True,
                                   timeout=60, check=argv[0] != sys.executable)


async def test_disk_full_while_sending_sends_nothing_twice(tmpfs: Path, sink: Sink) -> None:
    """The relay takes a mail the full database cannot record as sent: the journal keeps
    the fact, the sender waits for space, and the mail is not sent again."""
    config = load_config(config_on(tmpfs, sink.port))
    async with running_bot(config, MovingClock(FRIDAY_EVENING)) as bot:
        sink.refuse_with = "451 4.3.0 down for a moment"
        await bot.send(report(sender="r0@example.net", message_id="<r0@example.net>"))
        db = tmpfs / "mailbot.db"
        async with asyncio.timeout(20):  # queued, tried once, deferred
            while table(db, "SELECT count(*) FROM outbox WHERE attempts > 0") != [(3,)]:
                await asyncio.sleep(0.05)
        filler = await asyncio.to_thread(fill, tmpfs)
        sink.refuse_with = None
        await sink.wait_for(1, to=None, timeout=30)  # the retry, 5 s later, is taken
        await asyncio.sleep(2)  # the old sender sent it again every 50 ms here
        assert len(sink.received) == 1  # and nothing more until it can be recorded
        await asyncio.to_thread(filler.unlink)
        async with asyncio.timeout(30):
            while table(db, "SELECT count(*) FROM outbox WHERE status = 'sent'") != [(3,)]:
                await asyncio.sleep(0.1)
    ids = [str(r.msg["Message-ID"]) for r in sink.received]
    assert len(ids) == len(set(ids)) == 3, ids
