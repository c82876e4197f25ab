"""Apply `migrations/NNNN_name.sql` in order, each with its bookkeeping row in one transaction.

SQLite's set is `migrations/`, PostgreSQL's `migrations/postgresql/` (the same schema;
a new migration comes in both, a test compares them). sqlite3's executescript() commits
first and ignores the transaction, so a SQLite migration is split into statements
(sqlite3.complete_statement) and run one by one inside BEGIN/COMMIT. A database that
holds a version this code does not know is refused (`SchemaTooNew`).
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiosqlite

from mailbot.errors import SchemaTooNew
from mailbot.resources import migrations_dir

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    path: Path


def discover(directory: Path | None = None) -> list[Migration]:
    """SQLite's migrations (or those in `directory`), in order."""
    directory = directory or migrations_dir()
    found = []
    for path in sorted(directory.glob("*.sql")):
        m = _NAME.match(path.name)
        if not m:
            raise ValueError(f"{path}: migration files are named NNNN_name.sql")
        found.append(Migration(int(m.group(1)), m.group(2), path))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ValueError(f"{directory}: two migrations share a number")
    return found


def split_statements(script: str) -> list[str]:
    statements, buf = [], ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                statements.append(buf.strip())
            buf = ""
    if buf.strip() and not all(
        ln.strip().startswith("--") or not ln.strip() for ln in buf.splitlines()
    ):
        raise ValueError("migration ends with an incomplete statement")
    return statements


BOOKKEEPING = ("CREATE TABLE IF NOT EXISTS schema_migrations ("
               " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)")


def refuse_newer(applied: int | None, known: list[Migration]) -> None:
    newest = max((m.version for m in known), default=0)
    if applied is not None and applied > newest:
        raise SchemaTooNew(applied, newest)


async def applied_version(db: aiosqlite.Connection) -> int | None:
    """The newest migration a SQLite database holds; None before the first."""
    if not list(await db.execute_fetchall(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'")):
        return None
    rows = list(await db.execute_fetchall("SELECT max(version) FROM schema_migrations"))
    return None if rows[0][0] is None else int(rows[0][0])


async def check_version(db: aiosqlite.Connection, directory: Path | None = None) -> None:
    """Refuse a database migrated by a newer mailbot (for opens that do not migrate)."""
    refuse_newer(await applied_version(db), discover(directory))


async def migrate(db: aiosqlite.Connection, directory: Path | None = None) -> list[Migration]:
    """Apply what is missing; return what was applied. The caller holds the write lock."""
    await db.execute(BOOKKEEPING)
    await db.commit()
    await check_version(db, directory)
    applied = []
    for m in discover(directory):
        await db.execute("BEGIN IMMEDIATE")
        try:
            async with db.execute(
                "SELECT 1 FROM schema_migrations WHERE version = ?", (m.version,)
            ) as cur:
                if await cur.fetchone():
                    await db.rollback()
                    continue
            for statement in split_statements(m.path.read_text(encoding="utf-8")):
                await db.execute(statement)
            await db.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (m.version, m.name, datetime.now(UTC).isoformat(timespec="seconds")),
            )
            await db.commit()
        except BaseException:
            await db.rollback()
            raise
        applied.append(m)
    return applied
