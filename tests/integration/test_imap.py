"""IMAP intake against real servers (Dovecot and pymap): IDLE, initial sync, marking,
moving, two mailboxes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from mailbot.config import load_config
from tests.dovecot import PLAIN_CAPABILITIES, Dovecot, ImapServer
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
from tests.support import FRIDAY_EVENING, MovingClock, Sink, report, running_bot


async def test_appended_mail_becomes_a_case_within_two_seconds(
    imap_server: ImapServer, sink: Sink, tmp_path: Path
) -> None:
    """A mail APPENDed by another client is a case within 2 s (IDLE: polling is hourly)."""
    user = imap_server.add_user()
    config = load_config(write_imap_config(
        tmp_path, sink.port, imap_table(imap_server, user, password_file(tmp_path))))
    db = config.storage.database
    async with running_bot(config, MovingClock(FRIDAY_EVENING)):
        await until(lambda: (state(db, user) or ("",))[0] == "idle")
        started = time.monotonic()
        await asyncio.to_thread(imap_server.append, user, [report()])
        await until(lambda: scalar(db, "SELECT count(*) FROM cases"), timeout=2)
        took = time.monotonic() - started
        await until(lambda: rows(db, "SELECT marked FROM imap_messages") == [(1,)])
        stopping = time.monotonic()
    assert time.monotonic() - stopping < 2, "SIGTERM-style stop waits on an IDLE"
    assert took < 2
    assert list(imap_server.flags(user).values()) == [(SEEN,)]
    (ref,) = rows(db, "SELECT source_ref FROM inbound")[0]
    assert ref.startswith(f"imap:{user}@127.0.0.1/INBOX:") and ref.endswith(":1")
    assert state(db, user) == ("stopped", 0, None)


async def test_thousand_waiting_messages_are_processed_once_each(
    imap_server: ImapServer, sink: Sink, tmp_path: Path
) -> None:
    """1,000 messages in the folder at start become 1,000 cases, each marked \\Seen once
    (200 on pymap, whose maildir takes 40 s for a thousand)."""
    n = 1000 if imap_server.name == "dovecot" else 200
    user = imap_server.add_user()
    await asyncio.to_thread(imap_server.append, user, reports(n, "bulk"))
    config = load_config(write_imap_config(
        tmp_path, sink.port, imap_table(imap_server, user, password_file(tmp_path))))
    db = config.storage.database
    async with running_bot(config, MovingClock(FRIDAY_EVENING)):
        await until(lambda: scalar(db, "SELECT count(*) FROM inbound WHERE status = 'done'")
                    == n, timeout=60)
        await until(lambda: (state(db, user) or ("",))[0] == "idle")
    assert scalar(db, "SELECT count(*) FROM cases") == n
    assert scalar(db, "SELECT count(DISTINCT message_id) FROM inbound") == n
    assert rows(db, "SELECT count(*), sum(marked) FROM imap_messages") == [(n, n)]
    flags = imap_server.flags(user)
    assert len(flags) == n and all(SEEN in f for f in flags.values())


async def test_quarantined_mail_is_still_marked_taken(
    imap_server: ImapServer, sink: Sink, tmp_path: Path
) -> None:
    """A mail the pipeline cannot handle is kept in quarantine, and marked on the server
    (by the keyword where the server keeps it)."""
    user = imap_server.add_user()
    await asyncio.to_thread(imap_server.append, user, [
        b"To: security@example.org\r\nSubject: anonymous\r\nMessage-ID: <anon@x>\r\n\r\nhi\r\n"])
    config = load_config(write_imap_config(
        tmp_path, sink.port,
        imap_table(imap_server, user, password_file(tmp_path), mark="keyword")))
    db = config.storage.database
    async with running_bot(config, MovingClock(FRIDAY_EVENING)):
        await until(lambda: rows(db, "SELECT status FROM inbound") == [("quarantined",)])
        await until(lambda: rows(db, "SELECT marked FROM imap_messages") == [(1,)])
    # pymap answers OK to the keyword but keeps none (no \\* in PERMANENTFLAGS): \\Seen instead.
    with imap_server.client(user) as c:
        keeps = rb"\*" in c.select_folder("INBOX")[b"PERMANENTFLAGS"]
    assert list(imap_server.flags(user).values()) == [(b"$MailbotTaken",) if keeps else (SEEN,)]


async def test_two_inboxes_watch_two_mailboxes(
    imap_server: ImapServer, sink: Sink, tmp_path: Path
) -> None:
    """Each inbox takes mail from its own mailbox, at the same time, into its own cases."""
    sec, sup = imap_server.add_user(), imap_server.add_user()
    config = load_config(write_imap_config(
        tmp_path, sink.port, imap_table(imap_server, sec, password_file(tmp_path)),
        imap_table(imap_server, sup, password_file(tmp_path))))
    db = config.storage.database
    async with running_bot(config, MovingClock(FRIDAY_EVENING)):
        await asyncio.gather(
            asyncio.to_thread(imap_server.append, sec, reports(5, "sec")),
            asyncio.to_thread(imap_server.append, sup, reports(3, "sup", "klant@example.nl")))
        await until(lambda: scalar(db, "SELECT count(*) FROM cases") == 8)
    assert rows(db, "SELECT inbox, count(*) FROM cases GROUP BY inbox ORDER BY inbox") == [
        ("security", 5), ("support", 3)]


async def test_taken_mail_moves_to_processed_folder(
    imap_server: ImapServer, sink: Sink, tmp_path: Path
) -> None:
    """With processed_folder, taken mail is MOVEd there (the folder is created if missing)."""
    user = imap_server.add_user()
    await asyncio.to_thread(imap_server.append, user, reports(3, "move"))
    config = load_config(write_imap_config(tmp_path, sink.port, imap_table(
        imap_server, user, password_file(tmp_path), processed_folder="Processed")))
    db = config.storage.database
    async with running_bot(config, MovingClock(FRIDAY_EVENING)):
        await until(lambda: scalar(db, "SELECT sum(marked) FROM imap_messages") == 3)
    assert imap_server.flags(user) == {}
    assert len(imap_server.flags(user, "Processed")) == 3


async def test_server_without_idle_or_move_is_polled_and_mail_copied(
    make_dovecot: Callable[..., Dovecot], sink: Sink, tmp_path: Path
) -> None:
    """Without IDLE the watcher polls; without MOVE it copies, flags \\Deleted, UID EXPUNGEs."""
    plain = make_dovecot(PLAIN_CAPABILITIES)
    user = plain.add_user()
    config = load_config(write_imap_config(tmp_path, sink.port, imap_table(
        plain, user, password_file(tmp_path), processed_folder="Done", poll_interval=0.2)))
    db = config.storage.database
    async with running_bot(config, MovingClock(FRIDAY_EVENING)):
        await until(lambda: (state(db, user) or ("",))[0] == "polling")
        await asyncio.to_thread(plain.append, user, reports(2, "plain"))
        await until(lambda: scalar(db, "SELECT sum(marked) FROM imap_messages") == 2)
        # Stored and marked is not yet processed: the worker may still be at it.
        await until(lambda: scalar(db, "SELECT count(*) FROM cases") == 2)
    assert plain.flags(user) == {}
    assert len(plain.flags(user, "Done")) == 2
