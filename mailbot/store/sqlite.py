"""The SQLite backend: one connection, PRAGMAs, migrations, transactions under a lock.

One aiosqlite connection is one thread with one transaction state, so every use of it,
read or write, holds `_lock`: concurrent tasks never see each other's half-transactions.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite

from mailbot.errors import StoreBusy
from mailbot.private import create_file, make_dirs, tighten
from mailbot.store.db import Store
from mailbot.store.migrate import Migration, applied_version, check_version, migrate


class SqliteStore(Store):
    dialect = "sqlite"
    path: Path

    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        self._db = db
        self.path = path
        super().__init__()

    @classmethod
    async def connect(cls, path: Path, *, apply_migrations: bool = True) -> SqliteStore:
        if str(path) != ":memory:":
            # What fails here (a read-only or full disk) fails SQLite's open below too,
            # which says so in its own words.
            with contextlib.suppress(OSError):
                await asyncio.to_thread(_private, path)
        try:
            db = await aiosqlite.connect(path, isolation_level=None)
        except sqlite3.Error as e:
            raise StoreBusy(f"cannot open database {path}: {e}") from e
        db.row_factory = aiosqlite.Row
        store = cls(db, path)
        try:
            await db.execute("PRAGMA journal_mode = WAL")
            # NORMAL: in WAL mode every commit survives a crash of the process; only a power
            # failure can undo the latest ones. Intake asks for FULL (see `write`).
            await db.execute("PRAGMA synchronous = NORMAL")
            await db.execute("PRAGMA foreign_keys = ON")
            await db.execute("PRAGMA busy_timeout = 10000")
            if apply_migrations:
                await store.migrate()
            else:
                async with store._lock:
                    await check_version(db)
        except sqlite3.Error as e:
            await db.close()
            raise StoreBusy(f"cannot open database {path}: {e}{_why(path)}") from e
        except BaseException:
            await db.close()
            raise
        return store

    async def migrate(self) -> list[Migration]:
        async with self._lock, _translate():
            return await migrate(self._db)

    async def schema_version(self) -> int | None:
        async with self.read() as db:
            return await applied_version(db)

    async def close(self) -> None:
        self.retire()
        async with self._lock:
            await self._db.close()

    @asynccontextmanager
    async def write(self, *, durable: bool = False) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction (BEGIN IMMEDIATE … COMMIT), rolled back on any error.

        `durable`: the commit is synced to disk (synchronous=FULL) before this returns, as
        intake needs before it answers 250. Syncing the WAL also makes every earlier commit
        durable, so a power failure can only ever cost work that is redone from raw mail.
        """
        async with self._turn(durable), self._transaction(durable) as db:
            yield db

    @asynccontextmanager
    async def _transaction(self, durable: bool) -> AsyncIterator[aiosqlite.Connection]:
        async with _translate():
            if durable:
                await self._db.execute("PRAGMA synchronous = FULL")
            try:
                await self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                    await self._db.execute("COMMIT")
                except BaseException:
                    # A failed COMMIT (disk full) can leave the transaction open: end it.
                    with contextlib.suppress(sqlite3.Error):
                        await self._db.execute("ROLLBACK")
                    raise
            finally:
                if durable:
                    await self._db.execute("PRAGMA synchronous = NORMAL")

    @asynccontextmanager
    async def statement(self) -> AsyncIterator[aiosqlite.Connection]:
        """The connection for ONE write statement, which SQLite makes its own transaction:
        a round trip to the database thread instead of three."""
        async with self._lock, _translate():
            yield self._db

    @asynccontextmanager
    async def side_read(self) -> AsyncIterator[aiosqlite.Connection]:
        # Read-only, its own thread: WAL readers do not block on the writer.
        try:
            db = await aiosqlite.connect(f"file:{self.path}?mode=ro", uri=True, timeout=5)
        except sqlite3.Error as e:
            raise StoreBusy(f"database {self.path}: {e}") from e
        try:
            async with _translate():
                yield db
        finally:
            await db.close()

    async def write_problem(self, timeout: float) -> str | None:
        try:
            db = await aiosqlite.connect(self.path, timeout=timeout, isolation_level=None)
            try:
                await db.execute("BEGIN IMMEDIATE")
                await db.execute("ROLLBACK")
            finally:
                await db.close()
        except sqlite3.Error as e:
            return f"database {self.path}: {e}"
        return None

    async def compact(self) -> None:
        """Rewrite the file without the freed pages, and empty the WAL that still holds
        them: erased bytes must not linger on disk."""
        async with self.statement() as db:
            await db.execute("VACUUM")
        async with self.statement() as db:
            await db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    @asynccontextmanager
    async def read(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._lock, _translate():
            yield self._db


def _private(path: Path) -> None:
    """The database file exists 0600 before SQLite opens it: SQLite gives its -wal and -shm
    the database file's mode, so they are private too, whatever the umask."""
    make_dirs(path.parent)
    create_file(path)
    for extra in ("-wal", "-shm", "-journal"):
        tighten(Path(f"{path}{extra}"))


def _why(path: Path) -> str:
    """What SQLite's "unable to open database file" most often means."""
    if str(path) != ":memory:" and not os.access(path.parent, os.W_OK):
        return f" ({path.parent} is read-only: SQLite needs to write its WAL next to the file)"
    return ""


@asynccontextmanager
async def _translate() -> AsyncIterator[None]:
    """sqlite3's operational errors (locked, full, read-only) are transient for the caller."""
    try:
        yield
    except sqlite3.OperationalError as e:
        raise StoreBusy(f"database: {e}") from e
