"""The PostgreSQL backend: a psycopg 3 pool behind the same `Db` calls as SQLite.

Queries are written once with SQLite's `?` placeholders (and `?N` for a repeated one);
`translate` turns them into psycopg's `%s` / `%(pN)s` once per distinct text. Within one
process, write transactions take turns as they do on SQLite (the code was written for one
writer at a time per process); several processes share the server, where row locks,
claims and leases (store/claims.py, store/leases.py) keep them apart.

Durability: a durable write (intake, before its 250) commits with `synchronous_commit =
on` whatever the server's default, so the commit is on the server's disk (and on its
synchronous standbys, if the server has any) before the SMTP client hears 250.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import psycopg.errors
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import RowMaker
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from mailbot.errors import StoreBusy
from mailbot.resources import migrations_dir
from mailbot.store.db import Store, instance_name
from mailbot.store.migrate import Migration, discover, refuse_newer

POOL_SIZE = 4
LIVENESS = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10,
            "keepalives_count": 3,
            # A transaction of a hung instance cannot hold its locks for ever.
            "options": "-c idle_in_transaction_session_timeout=300000"}
CONNECT_TIMEOUT = 10.0
# Serialises `mailbot migrate` / start-up migrations of several instances.
MIGRATION_LOCK = 0x6D61696C  # "mail"

_PLACEHOLDER = re.compile(r"'(?:[^']|'')*'|\?(\d*)|%")


@lru_cache(maxsize=1024)
def translate(sql: str) -> tuple[str, int]:
    """SQLite-style placeholders to psycopg's; (text, highest ?N or 0 if none numbered).
    `%` is doubled everywhere, string literals included, since psycopg formats them too."""
    numbered = 0

    def sub(m: re.Match[str]) -> str:
        nonlocal numbered
        token = m.group(0)
        if token == "%":
            return "%%"
        if token.startswith("'"):
            return token.replace("%", "%%")
        if m.group(1):
            numbered = max(numbered, int(m.group(1)))
            return f"%(p{m.group(1)})s"
        return "%s"

    return _PLACEHOLDER.sub(sub, sql), numbered


def bind(parameters: Iterable[Any] | None, numbered: int) -> Sequence[Any] | dict[str, Any]:
    values = list(parameters or ())
    if numbered:
        return {f"p{i + 1}": v for i, v in enumerate(values)}
    return values


class PgRow(tuple[Any, ...]):
    """A row read by position or by column name, like sqlite3.Row."""

    _names: dict[str, int]

    def __new__(cls, values: Sequence[Any], names: dict[str, int]) -> PgRow:
        row = super().__new__(cls, values)
        row._names = names
        return row

    def __getitem__(self, key: Any, /) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._names[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


def _rows(cursor: psycopg.AsyncCursor[Any]) -> RowMaker[PgRow]:
    names = {c.name: i for i, c in enumerate(cursor.description or ())}

    def make(values: Sequence[Any]) -> PgRow:
        return PgRow(values, names)

    return make


class _Done:
    """What `execute` returns: the count of rows a statement touched."""

    __slots__ = ("rowcount",)

    def __init__(self, rowcount: int) -> None:
        self.rowcount = rowcount


class PgDb:
    """One pooled connection, speaking the calls of aiosqlite's connection that store/ uses."""

    dialect = "postgresql"

    def __init__(self, conn: psycopg.AsyncConnection[PgRow]) -> None:
        self._conn = conn

    async def execute(self, sql: str, parameters: Iterable[Any] = (), /) -> _Done:
        text, numbered = translate(sql)
        async with self._conn.cursor() as cur:
            await cur.execute(text, bind(parameters, numbered))
            return _Done(cur.rowcount)

    async def execute_fetchall(self, sql: str, parameters: Iterable[Any] = (), /
                               ) -> list[PgRow]:
        text, numbered = translate(sql)
        async with self._conn.cursor() as cur:
            await cur.execute(text, bind(parameters, numbered))
            return await cur.fetchall() if cur.description else []

    async def executemany(self, sql: str, parameters: Iterable[Iterable[Any]], /) -> _Done:
        text, numbered = translate(sql)
        async with self._conn.cursor() as cur:
            await cur.executemany(text, [bind(p, numbered) for p in parameters])
            return _Done(cur.rowcount)


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class PgStore(Store):
    dialect = "postgresql"

    def __init__(self, pool: AsyncConnectionPool[psycopg.AsyncConnection[PgRow]],
                 url: str) -> None:
        self._pool = pool
        self.url = redact(url)
        super().__init__()

    @classmethod
    async def connect(cls, url: str, *, password: str | None = None,
                      apply_migrations: bool = True) -> PgStore:
        # Every connection carries the instance's name: another instance tells by
        # pg_stat_activity whether this one still lives (store/claims.py, `absent`).
        instance = instance_name()
        kwargs: dict[str, Any] = {"autocommit": True, "row_factory": _rows,
                                  "application_name": instance}
        # A host that dies without closing its connections: the server notices within
        # about a minute (keepalives) and ends its sessions, so the others see it gone
        # (claims.absent) and no row lock of its open transaction outlives it. Whatever
        # the URL says of these wins.
        given = conninfo_to_dict(url)
        for key, value in LIVENESS.items():
            if key not in given:
                kwargs[key] = value
        if password is not None:
            kwargs["password"] = password
        try:
            # One connection first: its error says why (refused, no such role, a password
            # refused), where the pool would only say it timed out.
            probe = await psycopg.AsyncConnection.connect(
                url, connect_timeout=int(CONNECT_TIMEOUT), **kwargs)
            await probe.close()
        except psycopg.Error as e:
            raise StoreBusy(f"cannot connect to the database {redact(url)}: {_first_line(e)}"
                            ) from e
        pool: AsyncConnectionPool[psycopg.AsyncConnection[PgRow]] = AsyncConnectionPool(
            url, kwargs=kwargs, min_size=1, max_size=POOL_SIZE, open=False,
            timeout=CONNECT_TIMEOUT, name="mailbot")
        try:
            await pool.open(wait=True, timeout=CONNECT_TIMEOUT)
        except (PoolTimeout, psycopg.Error) as e:
            await pool.close()
            raise StoreBusy(f"cannot connect to the database {redact(url)}: {_first_line(e)}"
                            ) from e
        store = cls(pool, url)
        store.__dict__["instance"] = instance  # (Store.instance: the name set above)
        try:
            if apply_migrations:
                await store.migrate()
            else:
                await store.check_version()
        except BaseException:
            await pool.close()
            raise
        return store

    async def migrate(self) -> list[Migration]:
        known = discover(migrations_dir() / "postgresql")
        applied = []
        async with self._pool.connection() as conn, _translate(), conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            await conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations ("
                               " version BIGINT PRIMARY KEY, name TEXT NOT NULL,"
                               " applied_at TEXT NOT NULL)")
            done = {int(r[0]) for r in await (
                await conn.execute("SELECT version FROM schema_migrations")).fetchall()}
            refuse_newer(max(done, default=None), known)
            for m in known:
                if m.version in done:
                    continue
                # No parameters: psycopg sends the file as one simple query, every
                # statement inside this one transaction.
                await conn.execute(m.path.read_text(encoding="utf-8").encode())
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at)"
                    " VALUES (%s, %s, %s)",
                    (m.version, m.name, datetime.now(UTC).isoformat(timespec="seconds")))
                applied.append(m)
        return applied

    async def check_version(self) -> None:
        refuse_newer(await self.schema_version(), discover(migrations_dir() / "postgresql"))

    async def schema_version(self) -> int | None:
        async with self._pool.connection() as conn, _translate():
            row = await (await conn.execute(
                "SELECT to_regclass('schema_migrations') IS NOT NULL")).fetchone()
            if row is None or not row[0]:
                return None
            found = await (await conn.execute(
                "SELECT max(version) FROM schema_migrations")).fetchone()
            return None if found is None or found[0] is None else int(found[0])

    async def close(self) -> None:
        self.retire()
        await self._pool.close()

    @asynccontextmanager
    async def write(self, *, durable: bool = False) -> AsyncIterator[PgDb]:
        async with self._turn(durable), self._pool.connection() as conn, _translate(), \
                conn.transaction():
            if durable:
                await conn.execute("SET LOCAL synchronous_commit = on")
            yield PgDb(conn)


    @asynccontextmanager
    async def statement(self) -> AsyncIterator[PgDb]:
        async with self._pool.connection() as conn, _translate():
            yield PgDb(conn)

    def side_read(self) -> AbstractAsyncContextManager[PgDb]:
        return self.read()  # a pooled connection: nothing to wait for

    async def write_problem(self, timeout: float) -> str | None:
        """A standby (after a failover that has not finished) takes no writes."""
        try:
            async with self._pool.connection(timeout=timeout) as conn:
                row = await (await conn.execute("SELECT pg_is_in_recovery()")).fetchone()
        except (psycopg.Error, PoolTimeout) as e:
            return f"database {self.url}: {_first_line(e)}"
        return f"database {self.url}: a standby, read-only" if row and row[0] else None

    async def compact(self) -> None:
        # Marks the erased rows' space for reuse; the server's own autovacuum would too,
        # later. (VACUUM FULL would lock every table: not while mail arrives.)
        async with self.statement() as db:
            await db.execute("VACUUM")

    @asynccontextmanager
    async def read(self) -> AsyncIterator[PgDb]:
        async with self._pool.connection() as conn, _translate():
            yield PgDb(conn)


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


# What a caller may try again: the server away, a failover, a lock or serialisation
# conflict with another instance, a full disk or a cancelled statement.
_TRANSIENT = (psycopg.OperationalError, psycopg.errors.SerializationFailure,
              psycopg.errors.DeadlockDetected, psycopg.errors.LockNotAvailable,
              psycopg.errors.QueryCanceled, psycopg.errors.DiskFull,
              psycopg.errors.ReadOnlySqlTransaction, PoolTimeout)


@asynccontextmanager
async def _translate() -> AsyncIterator[None]:
    try:
        yield
    except _TRANSIENT as e:
        raise StoreBusy(f"database: {_first_line(e)}") from e
