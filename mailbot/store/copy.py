"""The SQL of `mailbot copy-store`: read a SQLite store, fill a PostgreSQL one, checksum both.

The tables, their columns, primary keys and foreign keys are read from the two databases,
never listed here, so a new migration needs nothing in this file. Rows travel in batches
bounded in bytes (raw mail can be large). A table's checksum is sha256 over its rows in
primary-key order, each value in one canonical form whatever the backend returned it as
(`canonical`): both sides are hashed by the same Python code. Text keys are ordered by
their bytes on both sides (SQLite's BINARY collation, PostgreSQL's "C").
"""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
from psycopg import sql

from mailbot.errors import MailbotError

# Rows read and written at once: at most this many bytes (one larger row goes alone).
BATCH_BYTES = 8 * 1024 * 1024
BATCH_ROWS = 1000
BOOKKEEPING = "schema_migrations"  # made by each side's own migrations, not copied
_NULL = b"\xff" * 8  # no length prefix starts with 0xff: a NULL differs from every value


class CopyRefused(MailbotError, ValueError):
    """copy-store will not (or could not) copy: the reason, in one line."""


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]  # primary key, else every column: the checksum's row order
    types: tuple[str, ...] = ()  # PostgreSQL's type of each column (the target's tables)


@dataclass(slots=True)
class Digest:
    """Rows seen and their running sha256; `widest` is the largest row, in bytes."""

    rows: int = 0
    widest: int = 0
    _sha: Any = field(default_factory=hashlib.sha256)

    def add(self, row: Sequence[Any]) -> int:
        data = b"".join(canonical(v) for v in row)
        self._sha.update(struct.pack(">Q", len(data)))
        self._sha.update(data)
        self.rows += 1
        self.widest = max(self.widest, len(data))
        return len(data)

    @property
    def hexdigest(self) -> str:
        return str(self._sha.hexdigest())


def canonical(value: Any) -> bytes:
    """A value as length-prefixed bytes: text as UTF-8, integers and floats as their
    decimal text, blobs as they are, NULL as a marker no value has. An int stored as text,
    or text stored as a blob, hashes the same: the copy converts such values, losslessly."""
    if value is None:
        return _NULL
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
    elif isinstance(value, str):
        data = value.encode("utf-8", "surrogatepass")
    elif isinstance(value, bool):
        data = b"1" if value else b"0"
    elif isinstance(value, float):
        data = repr(value).encode()
    else:
        data = str(value).encode()
    return struct.pack(">Q", len(data)) + data


# -- the SQLite side ---------------------------------------------------------------------


class Source:
    """A SQLite store opened read-only, all of it read inside one read transaction: a
    consistent snapshot that takes no lock a running daemon waits for (WAL)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    @classmethod
    async def open(cls, path: Path) -> Source:
        return cls(await asyncio.to_thread(_open_source, path))

    async def close(self) -> None:
        await asyncio.to_thread(self._conn.close)

    async def version(self) -> int | None:
        def run() -> int | None:
            rows = self._conn.execute(f"SELECT max(version) FROM {BOOKKEEPING}").fetchall()
            return int(rows[0][0]) if rows and rows[0][0] is not None else None
        return await asyncio.to_thread(run)

    async def tables(self) -> dict[str, Table]:
        return await asyncio.to_thread(self._tables)

    def _tables(self) -> dict[str, Table]:
        names = [r[0] for r in self._conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'"
            " AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name")]
        found = {}
        for name in names:
            if name == BOOKKEEPING:
                continue
            info = self._conn.execute(f"PRAGMA table_info({_sqlite_ident(name)})").fetchall()
            columns = tuple(str(r[1]) for r in info)
            key = tuple(str(r[1]) for r in sorted((r for r in info if r[5]),
                                                   key=lambda r: int(r[5])))
            found[name] = Table(name, columns, key or columns)
        return found

    def _select(self, table: Table, columns: Sequence[str]) -> str:
        cols = ", ".join(_sqlite_ident(c) for c in columns)
        order = ", ".join(_sqlite_ident(c) for c in table.key)
        return f"SELECT {cols} FROM {_sqlite_ident(table.name)} ORDER BY {order}"

    async def rows(self, table: Table, columns: Sequence[str]) -> Batches:
        cursor = await asyncio.to_thread(self._conn.execute, self._select(table, columns))
        return Batches(cursor)


class Batches:
    """A SQLite cursor read in batches of at most BATCH_BYTES (in a thread each)."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor
        self._done = False

    def __aiter__(self) -> Batches:
        return self

    async def __anext__(self) -> list[tuple[Any, ...]]:
        if self._done:
            raise StopAsyncIteration
        batch = await asyncio.to_thread(self._take)
        if not batch:
            raise StopAsyncIteration
        return batch

    def _take(self) -> list[tuple[Any, ...]]:
        batch: list[tuple[Any, ...]] = []
        size = 0
        while size < BATCH_BYTES and len(batch) < BATCH_ROWS:
            row = self._cursor.fetchone()
            if row is None:
                self._done = True
                break
            batch.append(tuple(row))
            size += sum(len(v) if isinstance(v, bytes | str) else 8 for v in row)
        return batch


def _open_source(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise CopyRefused(f"no SQLite database at {path}")
    try:
        conn = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True,
                               isolation_level=None, check_same_thread=False, timeout=10)
    except sqlite3.Error as e:
        raise CopyRefused(f"cannot open {path}: {e}") from e
    try:
        # One read transaction for the whole copy: its snapshot begins at the first read.
        conn.execute("BEGIN")
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                            (BOOKKEEPING,)).fetchall():
            raise CopyRefused(f"{path} is not a mailbot database (no {BOOKKEEPING} table)")
    except sqlite3.Error as e:
        conn.close()
        raise CopyRefused(f"cannot read {path}: {e}") from e
    except BaseException:
        conn.close()
        raise
    return conn


def _sqlite_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# -- the PostgreSQL side -----------------------------------------------------------------

Conn = psycopg.AsyncConnection[tuple[Any, ...]]


async def pg_version(conn: Conn) -> int | None:
    cur = await conn.execute("SELECT to_regclass(%s) IS NOT NULL", (BOOKKEEPING,))
    row = await cur.fetchone()
    if not row or not row[0]:
        return None
    cur = await conn.execute(sql.SQL("SELECT max(version) FROM {}")
                             .format(sql.Identifier(BOOKKEEPING)))
    found = await cur.fetchone()
    return int(found[0]) if found and found[0] is not None else None


async def pg_tables(conn: Conn) -> dict[str, Table]:
    """The current schema's tables, with their columns in order and primary keys."""
    cur = await conn.execute(
        "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod)"
        " FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid"
        " WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r'"
        " AND a.attnum > 0 AND NOT a.attisdropped ORDER BY c.relname, a.attnum")
    columns: dict[str, list[tuple[str, str]]] = {}
    for table, column, type_ in await cur.fetchall():
        columns.setdefault(str(table), []).append((str(column), str(type_)))
    cur = await conn.execute(
        "SELECT c.relname, a.attname FROM pg_index i"
        " JOIN pg_class c ON c.oid = i.indrelid"
        " JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) ON true"
        " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum"
        " WHERE i.indisprimary AND c.relnamespace = current_schema()::regnamespace"
        " ORDER BY c.relname, k.n")
    keys: dict[str, list[str]] = {}
    for table, column in await cur.fetchall():
        keys.setdefault(str(table), []).append(str(column))
    return {name: Table(name, tuple(c for c, _ in cols),
                        tuple(keys.get(name) or (c for c, _ in cols)),
                        tuple(t for _, t in cols))
            for name, cols in columns.items() if name != BOOKKEEPING}


async def pg_holding_rows(conn: Conn) -> list[str]:
    """The current schema's tables that hold a row (the bookkeeping aside)."""
    found = []
    for name in sorted(await pg_tables(conn)):
        cur = await conn.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {})")
                                 .format(sql.Identifier(name)))
        row = await cur.fetchone()
        if row and row[0]:
            found.append(name)
    return found


async def pg_dependency_order(conn: Conn, tables: Sequence[str]) -> list[str]:
    """The tables in an order where each foreign key names a table already filled (a table
    that refers to itself is filled in key order, each row after the one it names)."""
    cur = await conn.execute(
        "SELECT c.relname, f.relname FROM pg_constraint k"
        " JOIN pg_class c ON c.oid = k.conrelid JOIN pg_class f ON f.oid = k.confrelid"
        " WHERE k.contype = 'f' AND k.connamespace = current_schema()::regnamespace")
    needs: dict[str, set[str]] = {t: set() for t in tables}
    for table, parent in await cur.fetchall():
        if table in needs and parent in needs and table != parent:
            needs[str(table)].add(str(parent))
    order: list[str] = []
    while needs:
        ready = sorted(t for t, parents in needs.items() if parents <= set(order))
        if not ready:
            raise CopyRefused(f"foreign keys form a cycle among {', '.join(sorted(needs))}")
        order += ready
        for t in ready:
            del needs[t]
    return order


async def lock_and_quiet(conn: Conn, tables: Sequence[str]) -> None:
    """Inside the copy's transaction: keep every other session out of the tables until it
    commits, and silence their triggers (a trigger would add rows the copy also brings,
    such as message_ids for each message). Foreign keys stay checked. A session that
    holds a table (an instance started too early) makes this fail, not wait for ever."""
    await conn.execute("SET LOCAL lock_timeout = '30s'")
    await conn.execute(sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(
        sql.SQL(", ").join(sql.Identifier(t) for t in tables)))
    for t in tables:
        await conn.execute(sql.SQL("ALTER TABLE {} DISABLE TRIGGER USER")
                           .format(sql.Identifier(t)))


async def wake_triggers(conn: Conn, tables: Sequence[str]) -> None:
    for t in tables:
        await conn.execute(sql.SQL("ALTER TABLE {} ENABLE TRIGGER USER")
                           .format(sql.Identifier(t)))


def converter(pg_type: str) -> Any:
    """How a value SQLite stored becomes one the PostgreSQL column takes (SQLite lets any
    column hold any type; the conversions are the lossless ones)."""
    if pg_type == "bytea":
        return lambda v: v.encode("utf-8") if isinstance(v, str) else v
    if pg_type in ("bigint", "integer", "smallint"):
        return lambda v: int(v) if isinstance(v, str) and v.strip().lstrip("-").isdigit() else v
    if pg_type == "text":
        return lambda v: (v.decode("utf-8") if isinstance(v, bytes)
                          else repr(v) if isinstance(v, float)
                          else str(v) if isinstance(v, int) else v)
    return lambda v: v


async def fill(conn: Conn, source: Source, table: Table) -> Digest:
    """COPY the source's rows of `table` (the target's Table) into it; the source digest."""
    digest = Digest()
    convert = [converter(t) for t in table.types]
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table.name), sql.SQL(", ").join(sql.Identifier(c) for c in table.columns))
    source_table = Table(table.name, table.columns, table.key)
    async with conn.cursor() as cur, cur.copy(statement) as copy:
        async for batch in await source.rows(source_table, table.columns):
            for row in batch:
                digest.add(row)
                await copy.write_row([f(v) for f, v in zip(convert, row, strict=True)])
    return digest


async def source_digest(source: Source, table: Table) -> Digest:
    digest = Digest()
    async for batch in await source.rows(table, table.columns):
        for row in batch:
            digest.add(row)
    return digest


async def target_digest(conn: Conn, table: Table, widest: int) -> Digest:
    """The digest of the target's rows, read through a server-side cursor a few at a time:
    as many as fit BATCH_BYTES at the width of the source's widest row."""
    digest = Digest()
    # SQLite's order: text by its bytes, NULL first (a table without a key orders by
    # every column, nullable ones included).
    order = sql.SQL(", ").join(
        sql.SQL("{} COLLATE \"C\" NULLS FIRST" if t == "text" else "{} NULLS FIRST")
        .format(sql.Identifier(c))
        for c, t in zip(table.key, _types_of(table, table.key), strict=True))
    query = sql.SQL("SELECT {} FROM {} ORDER BY {}").format(
        sql.SQL(", ").join(sql.Identifier(c) for c in table.columns),
        sql.Identifier(table.name), order)
    step = max(1, min(BATCH_ROWS, BATCH_BYTES // max(widest, 1)))
    async with conn.cursor(name=f"verify_{table.name}") as cur:
        await cur.execute(query)
        while rows := await cur.fetchmany(step):
            for row in rows:
                digest.add(row)
    return digest


def _types_of(table: Table, columns: Sequence[str]) -> list[str]:
    kinds = dict(zip(table.columns, table.types, strict=True))
    return [kinds[c] for c in columns]


async def continue_sequences(conn: Conn, tables: Sequence[str]) -> None:
    """Each identity (or serial) column's sequence goes on after the highest copied id."""
    cur = await conn.execute(
        "SELECT c.relname, a.attname, pg_get_serial_sequence(quote_ident(c.relname),"
        " a.attname) FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid"
        " WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r'"
        " AND a.attnum > 0 AND NOT a.attisdropped")
    for table, column, sequence in await cur.fetchall():
        if sequence is None or table not in tables:
            continue
        await conn.execute(
            sql.SQL("SELECT setval(%s, coalesce((SELECT max({}) FROM {}), 0) + 1, false)")
            .format(sql.Identifier(column), sql.Identifier(table)), (sequence,))
