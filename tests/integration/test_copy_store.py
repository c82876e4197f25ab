"""`mailbot copy-store`: a SQLite store that real mail filled, copied into a real PostgreSQL.

The source is made by the daemon (reports, a staff reply with commands, a follow-up, an
auto-reply) and the store's own writes for the tables that mail alone leaves empty here
(IMAP, PGP, escalations, notices, assessments, disclosures, lists, the ops audit). The
copy is judged by what reads it: the store's functions, `mailbot show` and `status` run
against the URL, the next case it opens, and counts taken independently of the copier.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sqlite3
import sys
from collections.abc import AsyncIterator
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

import aiosqlite
import psycopg
import pytest

from mailbot.store import Store
from mailbot.store import cases as case_q
from mailbot.store import inbound as inbound_q
from mailbot.store.migrate import discover, migrate
from mailbot.store.pg import redact
from tests.support import (
    CONFIG,
    FRIDAY_EVENING,
    Bot,
    Sink,
    free_port,
    report,
    send,
    start_daemon,
    table,
)
from tests.unit.test_pg_store_types import WRITES

# The source is a SQLite file whatever --backend says; the target is the session's PostgreSQL.
pytestmark = pytest.mark.sqlite_only

ALICE = "alice@example.org"
ROW = re.compile(r"^(\S+)\s+(\d+) ([0-9a-f]{16}) ok$")


async def cli(*args: str, config: Path | None = None, database: str | None = None
              ) -> tuple[int, str, str]:
    """`python -m mailbot ARGS` as a child process: its exit code, stdout and stderr."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAILBOT_DATABASE", "PGPASSWORD")}
    if database:
        env["MAILBOT_DATABASE"] = database
    command = [args[0], *(["--config", str(config)] if config else []), *args[1:]]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mailbot", *command, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def staff_reply(note: EmailMessage, body: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = f"Alice <{ALICE}>"
    msg["To"] = str(note["Reply-To"])
    msg["Subject"] = f"Re: {note['Subject']}"
    msg["Message-ID"] = "<alice-1@example.org>"
    msg["In-Reply-To"] = str(note["Message-ID"])
    msg["Date"] = format_datetime(FRIDAY_EVENING)
    msg.set_content(body)
    return msg


def sqlite_tables(db: Path) -> list[str]:
    return [r[0] for r in table(db, "SELECT name FROM sqlite_master WHERE type = 'table'"
                                    " AND name NOT LIKE 'sqlite_%' ORDER BY name")]


def fill_the_rest(db: Path) -> None:
    """The store's writes (tests/unit/test_pg_store_types.py) for each table mail left
    empty; they name case 1 and inbound rows 1 and 2, which the mail made."""
    with contextlib.closing(sqlite3.connect(db, timeout=10, isolation_level=None)) as conn:
        conn.execute("PRAGMA foreign_keys = ON")
        empty = {t for t in sqlite_tables(db)
                 if not conn.execute(f'SELECT 1 FROM "{t}" LIMIT 1').fetchall()}
        for _, sql, params in WRITES:
            target = re.search(r"^(?:INSERT INTO|UPDATE) (\w+)", sql)
            if target and target.group(1) in empty:
                conn.execute(sql, params).fetchall()


@pytest.fixture
async def filled(bot: Bot, sink: Sink) -> AsyncIterator[Path]:
    """A SQLite store the running daemon filled with real mail; its path (the daemon
    still runs, idle)."""
    db = bot.config.storage.database
    await bot.send(report())
    (note,) = await sink.wait_for(1, to=ALICE)
    await bot.send(report(subject="Open redirect", sender="other@example.net",
                          to="support@example.org", message_id="<report-2@example.net>"))
    await bot.send(staff_reply(note.msg, "#status accepted\n#severity high\n#reply\n"
                                         "Thanks, we are on it."),
                   to=[str(note.msg["Reply-To"])])
    await sink.wait_for(2)  # the ack, then the reply
    follow = report(subject="Re: XSS in /search", message_id="<report-1b@example.net>",
                    body="Also in /find.\n", In_Reply_To="<report-1@example.net>")
    await bot.send(follow)
    await bot.send(report(subject="Out of office", message_id="<ooo@example.net>",
                          Auto_Submitted="auto-replied"))
    async with asyncio.timeout(20):
        while table(db, "SELECT count(*) FROM inbound WHERE status = 'pending'")[0][0] \
                or table(db, "SELECT count(*) FROM inbound")[0][0] < 5:
            await asyncio.sleep(0.05)
    fill_the_rest(db)
    yield db


def counts_sqlite(db: Path) -> dict[str, int]:
    return {t: table(db, f'SELECT count(*) FROM "{t}"')[0][0] for t in sqlite_tables(db)
            if t != "schema_migrations"}


def counts_pg(url: str) -> dict[str, int]:
    with psycopg.connect(url) as c:
        names = [r[0] for r in c.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            " AND tablename <> 'schema_migrations'")]
        return {t: int(c.execute(f'SELECT count(*) FROM "{t}"'.encode()).fetchone()[0])  # type: ignore[index]
                for t in names}


def pg_config(tmp_path: Path, sqlite_config: Path, url: str) -> Path:
    """The daemon's config with the database swapped for the URL."""
    path = tmp_path / "pg.toml"
    text = sqlite_config.read_text()
    path.write_text(re.sub(r'(?m)^database = ".*"$', f'database = "{url}"', text, count=1))
    return path


async def test_copy_is_complete_and_works(filled: Path, pg_url: str, tmp_path: Path) -> None:
    """Every table arrives with its rows, and the copy serves the store, show, status and
    the next case as the SQLite file did."""
    expected = counts_sqlite(filled)
    known = {m.group(1) for _, sql, _ in WRITES
             if (m := re.search(r"^(?:INSERT INTO|UPDATE) (\w+)", sql))}
    assert [t for t, n in expected.items() if not n and t in known] == [], "left empty"
    config = tmp_path / "mailbot.toml"
    code, out, err = await cli("copy-store", "--from", str(filled), "--to", pg_url,
                               config=config)
    assert code == 0, err
    lines = out.splitlines()
    rows = {m.group(1): int(m.group(2)) for m in map(ROW.match, lines[:-1]) if m}
    assert rows == expected, out
    assert lines[-1].startswith("copied and verified")
    assert counts_pg(pg_url) == expected

    store = await Store.open(pg_url, apply_migrations=False)
    try:
        async with store.read() as db:
            case = await case_q.get(db, "SEC-2026-0001")
            assert case is not None and case["state"] == "accepted"
            texts = [m["new_text"] for m in await case_q.messages(db, case["id"])]
            ids = await case_q.inbound_ids(db, case["id"])
            rows_pg = [await inbound_q.get(db, i) for i in ids]
    finally:
        await store.close()
    assert any("Also in /find." in t for t in texts)
    raw = {i: r for i, r in table(filled, "SELECT id, raw FROM inbound")}
    assert [r.raw for r in rows_pg if r] == [raw[i] for i in ids]

    on_pg = pg_config(tmp_path, config, pg_url)
    for command in (["show", "SEC-2026-0001", "--json"], ["tickets", "--json"], ["status"]):
        code, want, err = await cli(*command, config=config)
        assert code == 0, err
        code, got, err = await cli(*command, config=on_pg)
        assert code == 0, err
        assert got == want, command

    # The next case takes the next id and reference: the sequences went on past the copy.
    mbox = tmp_path / "new.mbox"
    mail = report(subject="SQLi in /login", sender="third@example.net",
                  message_id="<report-3@example.net>")
    mbox.write_bytes(b"From third@example.net Fri Dec 18 17:55:00 2026\n" + mail.as_bytes())
    code, out, err = await cli("import", str(mbox), config=on_pg)
    assert code == 0, err
    last_id = max(r[0] for r in table(filled, "SELECT id FROM cases"))
    with psycopg.connect(pg_url) as c:
        new = c.execute("SELECT id, ref FROM cases WHERE reporter = 'third@example.net'"
                        ).fetchall()
        inbound_max = c.execute("SELECT max(id) FROM inbound").fetchone()
    assert new == [(last_id + 1, "SEC-2026-0002")]
    assert inbound_max == (max(raw) + 1,)


async def test_a_second_copy_is_refused(filled: Path, pg_url: str, tmp_path: Path) -> None:
    """An operator runs the copy twice: the second finds rows and changes nothing."""
    code, _, err = await cli("copy-store", "--from", str(filled), "--to", pg_url)
    assert code == 0, err
    before = counts_pg(pg_url)
    code, out, err = await cli("copy-store", "--from", str(filled), "--to", pg_url)
    assert code == 1 and out == ""
    assert re.fullmatch(r"error: .* is not empty \(.*\): copy-store only fills an empty "
                        r"database\n", err), err
    assert counts_pg(pg_url) == before


async def test_an_older_source_is_refused(tmp_path: Path, pg_url: str) -> None:
    """A source one migration behind is refused before the target is touched, with the
    command that brings it up to date."""
    older = tmp_path / "older"
    older.mkdir()
    for m in discover()[:-1]:
        (older / m.path.name).write_bytes(m.path.read_bytes())
    db = tmp_path / "old.db"
    async with aiosqlite.connect(db, isolation_level=None) as conn:
        await migrate(conn, older)
    code, out, err = await cli("copy-store", "--from", str(db), "--to", pg_url)
    assert code == 1 and out == ""
    assert "run `mailbot migrate` on the source first" in err and err.count("\n") == 1, err
    with psycopg.connect(pg_url) as c:
        assert c.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
                         ).fetchone() == (0,)


async def test_a_tampered_copy_fails_verification(filled: Path, pg_url: str) -> None:
    """A row changed on the target after the copy (or a copy that went wrong) is found:
    the table is named, the others pass, the exit status says so."""
    code, _, err = await cli("copy-store", "--from", str(filled), "--to", pg_url)
    assert code == 0, err
    code, out, err = await cli("copy-store", "--verify-only", "--from", str(filled),
                               "--to", pg_url)
    assert code == 0, err
    with psycopg.connect(pg_url) as c:
        c.execute("UPDATE messages SET body = body || '.' WHERE id = 1")
    code, out, err = await cli("copy-store", "--verify-only", "--from", str(filled),
                               "--to", pg_url)
    assert code == 1
    bad = [line for line in out.splitlines() if not ROW.match(line)]
    assert len(bad) == 1 and bad[0].startswith("messages") and "MISMATCH" in bad[0], out
    assert err == "error: the target does not match the source in messages\n"


@pytest.mark.parametrize("problem", ["missing source", "not a database", "no server",
                                     "not a URL", "missing password file"])
async def test_bad_input_is_one_line(problem: str, tmp_path: Path, filled: Path,
                                     pg_url: str) -> None:
    """A wrong path, a file that is no mailbot database, a server that does not answer
    (with a password in its URL), a target that is not a URL or a password file that is
    not there: one line on stderr, no traceback, no password."""
    source, target, extra = str(filled), pg_url, []
    if problem == "missing source":
        source = str(tmp_path / "nowhere.db")
    elif problem == "not a database":
        source = str(tmp_path / "mailbot.toml")
    elif problem == "no server":
        target = f"postgresql://postgres:s3cret-pw@127.0.0.1:{free_port()}/mailbot"
    elif problem == "not a URL":
        target = str(tmp_path / "copy.db")
    else:
        extra = ["--password-file", str(tmp_path / "pg-password")]
    code, out, err = await cli("copy-store", "--from", source, "--to", target, *extra)
    assert code in (1, 2) and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and "s3cret-pw" not in err
    if problem == "no server":
        assert redact(target) in err


async def test_copy_while_the_daemon_writes(tmp_path: Path, sink: Sink, pg_url: str) -> None:
    """A copy taken while a daemon stores and processes mail succeeds, matches the moment
    it began, and leaves the daemon undisturbed."""
    db, port = tmp_path / "mailbot.db", free_port()
    config = tmp_path / "mailbot.toml"
    config.write_text(CONFIG.format(db=db, sink_port=sink.port, protocol="smtp",
                                    max_size="1MB").replace("port = 0", f"port = {port}", 1))
    proc = await start_daemon(config, port, log=tmp_path / "daemon.log")
    sent = 0
    stop = asyncio.Event()

    async def keep_sending() -> None:
        nonlocal sent
        while not stop.is_set():
            await send(port, report(subject=f"Finding {sent}", sender=f"r{sent}@example.net",
                                    message_id=f"<live-{sent}@example.net>"))
            sent += 1

    try:
        for _ in range(5):
            await send(port, report(subject=f"Finding {sent}", sender=f"r{sent}@example.net",
                                    message_id=f"<live-{sent}@example.net>"))
            sent += 1
        sender = asyncio.create_task(keep_sending())
        code, out, err = await cli("copy-store", "--from", str(db), "--to", pg_url)
        during = sent
        stop.set()
        await sender
        assert code == 0, err
        assert all(ROW.match(line) or "recorded as sent" in line
                   for line in out.splitlines()[:-1]), out
        copied = counts_pg(pg_url)
        # At most one mail more than had its 250 when the copy ended: the one in flight.
        assert 5 <= copied["inbound"] <= during + 1
        assert sent > 5, "no mail arrived during the copy"
        # The daemon went on: every mail sent is stored, in the SQLite file.
        async with asyncio.timeout(20):
            while table(db, "SELECT count(*) FROM inbound")[0][0] < sent:
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 15)


async def test_a_copy_that_reads_back_wrong_commits_nothing(filled: Path, pg_url: str) -> None:
    """A target whose column changes what it stores (here: blank-padded) fails the
    comparison inside the copy's transaction, and not one row stays behind."""
    await (await Store.open(pg_url)).close()
    with psycopg.connect(pg_url) as c:
        c.execute("ALTER TABLE cases ALTER COLUMN subject TYPE char(300)")
    code, out, err = await cli("copy-store", "--from", str(filled), "--to", pg_url)
    assert code == 1, err
    bad = [line.split()[0] for line in out.splitlines() if "MISMATCH" in line]
    assert bad == ["cases"], (out, err)
    assert err == "error: the target does not match the source in cases: nothing was committed\n"
    assert set(counts_pg(pg_url).values()) == {0}


async def test_the_sent_journal_is_folded_in(filled: Path, pg_url: str, tmp_path: Path) -> None:
    """Mail the relay took but the SQLite file still holds as pending (a crash between the
    relay's 250 and the update; the journal beside the file names it) is not sent again
    by the instances on PostgreSQL."""
    source = tmp_path / "crashed.db"
    with contextlib.closing(sqlite3.connect(filled, timeout=10)) as conn:
        conn.execute("VACUUM INTO ?", (str(source),))
    with contextlib.closing(sqlite3.connect(source, isolation_level=None)) as conn:
        conn.execute("UPDATE outbox SET status = 'pending', sent_at = NULL WHERE id IN (1, 2)")
    (tmp_path / "crashed.db.sent").write_bytes(b"2\n" + bytes(100))  # as the journal leaves it
    code, out, err = await cli("copy-store", "--from", str(source), "--to", pg_url)
    assert code == 0, err
    assert f"1 outbox ids in {source}.sent recorded as sent" in out.splitlines()
    with psycopg.connect(pg_url) as c:
        rows = c.execute("SELECT id, status FROM outbox WHERE id IN (1, 2) ORDER BY id"
                         ).fetchall()
    assert rows == [(1, "pending"), (2, "sent")]


async def test_a_target_with_another_schema_is_refused(filled: Path, pg_url: str) -> None:
    """A target whose tables differ from the source's (a column of another program, a
    hand-made change) is refused before any row is written, naming the table."""
    await (await Store.open(pg_url)).close()
    with psycopg.connect(pg_url) as c:
        c.execute("ALTER TABLE events ADD COLUMN note TEXT")
    code, out, err = await cli("copy-store", "--from", str(filled), "--to", pg_url)
    assert code == 1 and out == ""
    assert err.startswith("error: the two schemas differ: table events has columns ")
    assert err.count("\n") == 1
    assert set(counts_pg(pg_url).values()) == {0}
