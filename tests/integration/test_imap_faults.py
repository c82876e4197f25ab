"""IMAP intake through faults: a server restart, a renumbered folder, a refused login, and a
crash between the commit and the flag. Nothing is lost; nothing is taken twice."""

from __future__ import annotations

import asyncio
import logging
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailbot.config import load_config
from mailbot.intake.watcher import backoff
from tests.dovecot import ImapServer
from tests.imap_support import (
    SEEN,
    imap_table,
    password_file,
    reports,
    rows,
    scalar,
    state,
    until,
    write_imap_config,
)
from tests.support import FRIDAY_EVENING, MovingClock, Sink, direct, report, running_bot


def assert_once_each(db: Path, count: int) -> None:
    """`count` mails stored, each once, each a case of its own, each marked on the server."""
    assert scalar(db, "SELECT count(*) FROM inbound") == count
    assert scalar(db, "SELECT count(DISTINCT message_id) FROM inbound") == count
    assert scalar(db, "SELECT count(*) FROM cases") == count
    assert scalar(db, "SELECT count(*) FROM imap_messages WHERE marked = 0") == 0


async def test_server_restart_mid_session_loses_and_duplicates_nothing(
    own_imap_server: ImapServer, sink: Sink, tmp_path: Path
) -> None:
    """The server stopped while mail is being taken, then started again: every mail once."""
    server = own_imap_server
    user = server.add_user()
    config = load_config(write_imap_config(
        tmp_path, sink.port, imap_table(server, user, password_file(tmp_path))))
    db = config.storage.database
    async with running_bot(config, MovingClock(FRIDAY_EVENING)):
        await asyncio.to_thread(server.append, user, reports(10, "before"))
        await until(lambda: scalar(db, "SELECT count(*) FROM imap_messages") == 10)
        await asyncio.to_thread(server.append, user, reports(200, "during"))
        await asyncio.to_thread(server.stop)  # while those 200 are being fetched and marked
        await until(lambda: (state(db, user) or ("",))[0] == "backing off")
        await asyncio.to_thread(server.start)
        await asyncio.to_thread(server.append, user, reports(5, "after"))
        await until(lambda: scalar(db, "SELECT count(*) FROM inbound WHERE status = 'done'")
                    == 215, timeout=30)
        await until(lambda: (state(db, user) or ("",))[0] == "idle")
    assert_once_each(db, 215)
    flags = server.flags(user)
    assert len(flags) == 215 and all(SEEN in f for f in flags.values())


async def test_uidvalidity_change_resyncs_without_duplicates(
    imap_server: ImapServer, sink: Sink, tmp_path: Path
) -> None:
    """A folder recreated under a new UIDVALIDITY is taken again, minus what was taken:
    the same bytes by digest, a rewritten copy by Message-ID."""
    user = imap_server.add_user()
    old = reports(4, "renumbered")
    await asyncio.to_thread(imap_server.append, user, old, "Reports")
    # Nothing tells an IDLE that its folder was replaced: the renewal (poll_interval) notices.
    config = load_config(write_imap_config(tmp_path, sink.port, imap_table(
        imap_server, user, password_file(tmp_path), folder="Reports", poll_interval=0.3)))
    db = config.storage.database
    async with running_bot(config, MovingClock(FRIDAY_EVENING)):
        await until(lambda: scalar(db, "SELECT count(*) FROM inbound WHERE status = 'done'")
                    == 4)
        (before,) = rows(db, "SELECT uidvalidity FROM imap_folders")[0]
        # Rebuild the folder elsewhere, then put it in place: the watcher sees the new
        # UIDVALIDITY with every message present. A migration rewrote one of them.
        migrated: list[bytes | EmailMessage] = [
            old[0], old[1], b"X-Migrated: yes\r\n" + old[2], old[3],
            report(subject="new after move", message_id="<fresh@example.net>")]
        await asyncio.to_thread(imap_server.append, user, migrated, "Rebuilt")
        with imap_server.client(user) as c:
            c.delete_folder("Reports")
            c.rename_folder("Rebuilt", "Reports")
        await until(lambda: scalar(db, "SELECT count(*) FROM imap_messages"
                                       " WHERE uidvalidity != ? AND marked = 1", (before,)) == 5)
        await until(lambda: scalar(db, "SELECT count(*) FROM inbound WHERE status = 'done'")
                    == 5)
    assert_once_each(db, 5)
    assert rows(db, "SELECT uidvalidity != ?, resync_below FROM imap_folders", (before,)) == [
        (1, 6)]
    assert all(SEEN in f for f in imap_server.flags(user, "Reports").values())


async def test_wrong_password_is_reported_and_retried_with_backoff(
    imap_server: ImapServer, sink: Sink, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A refused login backs off and retries, says why (never the password), while the other
    mailbox and the SMTP listener work; a corrected password file is picked up."""
    bad, good = imap_server.add_user(), imap_server.add_user()
    secret = password_file(tmp_path, "hunter2-wrong", "bad.pw")
    config = load_config(write_imap_config(
        tmp_path, sink.port, imap_table(imap_server, bad, secret, backoff_max=0.4),
        imap_table(imap_server, good, password_file(tmp_path))))
    db = config.storage.database
    caplog.set_level(logging.INFO)
    async with running_bot(config, MovingClock(FRIDAY_EVENING)) as bot:
        await until(lambda: (state(db, bad) or ("", 0))[1] >= 3)
        await asyncio.to_thread(imap_server.append, good, reports(1, "other"))
        await bot.send(report(message_id="<by-smtp@example.net>"))
        await until(lambda: scalar(db, "SELECT count(*) FROM cases") == 2)
        status, failures, error = state(db, bad)  # type: ignore[misc]
        assert status in ("backing off", "connecting") and failures >= 3
        assert f"login as '{bad}' refused by 127.0.0.1:{imap_server.port}" in error
        assert "AUTHENTICATIONFAILED" in error
        secret.write_text("secret\n")
        await until(lambda: (state(db, bad) or ("",))[0] == "idle")
    assert state(db, bad) == ("stopped", 0, error)  # the latest failure stays on record
    assert "hunter2" not in caplog.text
    assert f"imap {bad}@127.0.0.1/INBOX: {error}; reconnecting in" in caplog.text


def test_backoff_doubles_up_to_the_cap_with_jitter() -> None:
    """Waits double from 1 s up to the cap, each jittered down by at most half."""
    for failures, ceiling in ((1, 1.0), (2, 2.0), (4, 8.0), (9, 60.0), (200, 60.0)):
        waits = [backoff(failures, 60.0) for _ in range(50)]
        assert all(ceiling / 2 <= w <= ceiling for w in waits)
        assert len(set(waits)) > 1


async def test_crash_after_commit_before_flag_marks_once_and_stores_nothing_again(
    imap_server: ImapServer, sink: Sink, tmp_path: Path
) -> None:
    """Mail committed but never flagged (the process died in between) is flagged at the next
    start, and neither stored nor answered again."""
    user = imap_server.add_user()
    await asyncio.to_thread(imap_server.append, user, reports(3, "crash"))
    config = load_config(write_imap_config(
        tmp_path, sink.port, imap_table(imap_server, user, password_file(tmp_path))))
    db = config.storage.database
    async with running_bot(config, MovingClock(FRIDAY_EVENING)):
        await until(lambda: scalar(db, "SELECT count(*) FROM inbound WHERE status = 'done'")
                    == 3)
        await until(lambda: scalar(db, "SELECT sum(marked) FROM imap_messages") == 3)
        await sink.wait_for(9, to=None)  # an ack and two staff notifications per case
    # What a crash between the commit and the STORE leaves: rows stored, flags not set.
    with imap_server.client(user) as c:
        c.select_folder("INBOX")
        c.remove_flags(c.search("ALL"), [SEEN])
    with direct(db) as conn:
        conn.execute("UPDATE imap_messages SET marked = 0")
    async with running_bot(config, MovingClock(FRIDAY_EVENING)):
        await until(lambda: scalar(db, "SELECT sum(marked) FROM imap_messages") == 3)
        await until(lambda: (state(db, user) or ("",))[0] == "idle")
    assert_once_each(db, 3)
    assert all(SEEN in f for f in imap_server.flags(user).values())
    assert len(sink.received) == 9
