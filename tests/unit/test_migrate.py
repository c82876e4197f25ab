"""The migration runner: ordered, recorded, atomic per migration."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import aiosqlite
import pytest

from mailbot.store import Store
from mailbot.store.migrate import discover, migrate, split_statements


async def test_fresh_database_gets_every_migration_once(tmp_path: Path) -> None:
    """Opening a new database applies all migrations; opening again applies none."""
    store = await Store.open(tmp_path / "m.db")
    assert await store.migrate() == []
    await store.close()
    with sqlite3.connect(tmp_path / "m.db") as db:
        versions = [r[0] for r in db.execute("SELECT version FROM schema_migrations")]
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert versions == [m.version for m in discover()]
    assert {"inbound", "cases", "messages", "message_ids", "events", "outbox"} <= tables


async def test_failing_migration_leaves_nothing_behind(tmp_path: Path) -> None:
    """A migration that fails half-way is rolled back with its bookkeeping row."""
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "0001_ok.sql").write_text("CREATE TABLE a (x INTEGER);\n")
    (migrations / "0002_bad.sql").write_text(
        "CREATE TABLE b (x INTEGER);\n-- a comment; with a semicolon\n"
        "INSERT INTO nope VALUES (1);\n"
    )
    async with aiosqlite.connect(tmp_path / "m.db", isolation_level=None) as db:
        with pytest.raises(sqlite3.OperationalError):
            await migrate(db, migrations)
        async with db.execute("SELECT version FROM schema_migrations") as cur:
            assert [r[0] for r in await cur.fetchall()] == [1]
        async with db.execute("SELECT name FROM sqlite_master WHERE name = 'b'") as cur:
            assert await cur.fetchall() == []


def test_statements_split_on_complete_statements() -> None:
    """Semicolons inside strings and comments do not split a statement."""
    script = "CREATE TABLE t (s TEXT DEFAULT ';');\n-- note; here\nINSERT INTO t VALUES ('a;b');\n"
    assert len(split_statements(script)) == 2


def test_badly_named_migration_is_refused(tmp_path: Path) -> None:
    """Migration files must be named NNNN_name.sql."""
    (tmp_path / "1_x.sql").write_text("")
    with pytest.raises(ValueError, match="NNNN_name"):
        discover(tmp_path)
