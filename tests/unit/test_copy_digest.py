"""copy-store's checksum: the same rows give the same digest on SQLite and on PostgreSQL,
whatever order they were written in and whatever the column's collation; any change to a
value (NULL against empty, one byte of a blob) gives another."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import psycopg
import pytest

from mailbot.store import copy as q

Row = tuple[str | None, int | None, bytes | None]
ROWS: list[Row] = [(None, 1, b"x"), ("Z", 2, None), ("a", 3, b""), ("\u00e9", None, b"\x00"),
        ("", 4, b"\xff" * 8), ("a", None, None)]


def _sqlite(path: Path, rows: list[Row]) -> None:
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as c:
        c.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT,"
                  " applied_at TEXT)")
        c.execute("CREATE TABLE t (a TEXT, b INTEGER, c BLOB)")  # no key: every column orders
        c.executemany("INSERT INTO t VALUES (?, ?, ?)", rows)


async def _digests(tmp_path: Path, url: str, on_pg: list[Row]
                   ) -> tuple[str, str, int]:
    path = tmp_path / "s.db"
    path.unlink(missing_ok=True)
    _sqlite(path, ROWS)
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("DROP TABLE IF EXISTS t")
        collation = await (await conn.execute(
            "SELECT collname FROM pg_collation WHERE collname = 'und-x-icu'")).fetchone()
        # A linguistic collation sorts 'a' before 'Z'; the digest must not notice.
        text = 'TEXT COLLATE "und-x-icu"' if collation else "TEXT"
        await conn.execute(f"CREATE TABLE t (a {text}, b BIGINT, c BYTEA)".encode())
        async with conn.cursor() as cur:
            await cur.executemany("INSERT INTO t VALUES (%s, %s, %s)", on_pg)
        table = (await q.pg_tables(conn))["t"]
        source = await q.Source.open(path)
        try:
            ours = await q.source_digest(source, table)
        finally:
            await source.close()
        async with conn.transaction():
            theirs = await q.target_digest(conn, table, ours.widest)
    assert ours.rows == theirs.rows == len(ROWS)
    return ours.hexdigest, theirs.hexdigest, ours.widest


async def test_same_rows_same_digest(tmp_path: Path, pg_url: str) -> None:
    """Rows written in another order, with NULLs and non-ASCII text, hash alike."""
    ours, theirs, _ = await _digests(tmp_path, pg_url, list(reversed(ROWS)))
    assert ours == theirs


@pytest.mark.parametrize("index, changed", [(2, ("a", 3, None)), (4, (None, 4, b"\xff" * 8)),
                                            (0, (None, 1, b"y")), (1, ("Z", 20, None))])
async def test_a_changed_value_changes_the_digest(tmp_path: Path, pg_url: str, index: int,
                                                  changed: Row) -> None:
    """An empty blob become NULL, empty text become NULL, a byte or a number changed: the
    digests differ."""
    rows = list(ROWS)
    rows[index] = changed
    ours, theirs, _ = await _digests(tmp_path, pg_url, rows)
    assert ours != theirs


def test_canonical_forms() -> None:
    """A value's type of storage does not count (5 and '5', 'x' and b'x'); NULL, empty and
    a value that ends where the next begins stay apart."""
    assert q.canonical(5) == q.canonical("5")
    assert q.canonical("x") == q.canonical(b"x")
    assert q.canonical(None) not in (q.canonical(""), q.canonical(b""), q.canonical(0))
    assert q.canonical("ab") + q.canonical("c") != q.canonical("a") + q.canonical("bc")
