"""What the rest of the code sees of the database, whichever backend runs.

`Db` is the connection a transaction hands out: aiosqlite's own connection, or the
PostgreSQL adapter (`mailbot.store.pg`) that speaks the same three calls. Queries in
store/ are written once, in the SQL both backends accept, with `?` placeholders.
`Store.open` picks the backend from the configured database: a path is SQLite, a
`postgresql://` URL is PostgreSQL.
"""

from __future__ import annotations

import asyncio
import functools
import os
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Iterable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from mailbot.errors import ConfigError
from mailbot.store.migrate import Migration

if TYPE_CHECKING:
    from mailbot.config import StorageConfig

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


class Row(Protocol):
    """A result row, read by position or by column name (sqlite3.Row or the adapter's)."""

    def __getitem__(self, key: Any, /) -> Any: ...
    def __iter__(self) -> Iterator[Any]: ...
    def __len__(self) -> int: ...
    def keys(self) -> list[str]: ...


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...


class Db(Protocol):
    def execute(self, sql: str, parameters: Iterable[Any] = ..., /) -> Awaitable[Cursor]: ...

    def execute_fetchall(
        self, sql: str, parameters: Iterable[Any] = ..., /
    ) -> Awaitable[Iterable[Row]]: ...

    def executemany(
        self, sql: str, parameters: Iterable[Iterable[Any]], /
    ) -> Awaitable[Cursor]: ...


async def one(db: Db, sql: str, params: Sequence[Any] = ()) -> Row | None:
    """The first row of a query, in one trip to the database (a cursor costs three)."""
    rows = await db.execute_fetchall(sql, params)
    return next(iter(rows), None)


def dialect(db: Db) -> str:
    """"sqlite" or "postgresql", for the rare query that must differ (a planner hint)."""
    return str(getattr(db, "dialect", "sqlite"))


def instance_name() -> str:
    """host:pid:random, at most 63 characters (PostgreSQL's application_name)."""
    return f"{this_host()}:{os.getpid()}:{secrets.token_hex(4)}"


def is_postgres(database: str | Path) -> bool:
    return str(database).startswith(POSTGRES_SCHEMES)


@functools.cache
def this_host() -> str:
    """The host part of an instance's name: its hostname and the kernel's boot id, so that
    a pid is only ever judged on the machine (and boot) that gave it out. Instances in
    containers of one host need hostnames of their own (Docker's default)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
    except OSError:
        boot = "noboot"
    return f"{socket.gethostname()[:30]}~{boot}".replace(":", "-")


# The instance names of this process's stores that are open (claims.gone).
OPEN_STORES: set[str] = set()


class Store:
    """One database, shared by every task of the process; see the backends for how."""

    dialect: str = ""
    # The SQLite file (its sent journal lives beside it); None for a server database.
    path: Path | None = None

    @cached_property
    def instance(self) -> str:
        """Who this store's process is to the other instances on the database (claims,
        leases): host, pid and a random part, new for every store opened."""
        name = instance_name()
        OPEN_STORES.add(name)
        return name

    def retire(self) -> None:
        """Closed: this store's claims and leases are a gone holder's from now on."""
        OPEN_STORES.discard(self.__dict__.get("instance", ""))

    @classmethod
    async def open(cls, database: str | Path, *, apply_migrations: bool = True,
                   password: str | None = None) -> Store:
        if is_postgres(database):
            from mailbot.store.pg import PgStore

            return await PgStore.connect(str(database), password=password,
                                         apply_migrations=apply_migrations)
        from mailbot.store.sqlite import SqliteStore

        return await SqliteStore.connect(Path(database), apply_migrations=apply_migrations)

    async def migrate(self) -> list[Migration]:
        raise NotImplementedError

    async def schema_version(self) -> int | None:
        """The newest migration applied; None for a database never migrated."""
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    def write(self, *, durable: bool = False) -> AbstractAsyncContextManager[Db]:
        """One write transaction, committed at the end, rolled back on any error.
        `durable`: committed to stable storage before this returns (intake, before 250)."""
        raise NotImplementedError

    def statement(self) -> AbstractAsyncContextManager[Db]:
        """The connection for ONE write statement outside a transaction."""
        raise NotImplementedError

    def read(self) -> AbstractAsyncContextManager[Db]:
        raise NotImplementedError

    def side_read(self) -> AbstractAsyncContextManager[Db]:
        """A read on a connection of its own, which never waits for this process's
        transaction (a probe, a scrape)."""
        raise NotImplementedError

    async def write_problem(self, timeout: float) -> str | None:
        """Why a write transaction could not begin now (a readiness probe), or None."""
        raise NotImplementedError

    async def compact(self) -> None:
        """Give back the space of deleted data (after an erasure)."""
        raise NotImplementedError

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._durable_waiting = 0

    @property
    def intake_waiting(self) -> bool:
        """A durable write (a delivery whose sender waits for 250) waits for its turn: a
        long transaction should commit what it has and let it in."""
        return self._durable_waiting > 0

    @asynccontextmanager
    async def _turn(self, durable: bool) -> AsyncIterator[None]:
        """This process's write transactions take turns; a durable one is counted while it
        waits (`intake_waiting`)."""
        if durable:
            self._durable_waiting += 1
        try:
            await self._lock.acquire()
        finally:
            if durable:
                self._durable_waiting -= 1
        try:
            yield
        finally:
            self._lock.release()



async def open_store(storage: StorageConfig, *, apply_migrations: bool = True) -> Store:
    """The configured database: its password read from `password_file` when one is named
    (else libpq's own: the URL, $PGPASSWORD, ~/.pgpass)."""
    password = None
    if storage.url and storage.password_file:
        try:
            text = await asyncio.to_thread(storage.password_file.read_text, encoding="utf-8")
        except OSError as e:
            raise ConfigError(None, "storage.password_file",
                              f"cannot read {storage.password_file}: {e.strerror}") from e
        password = text.strip()
    return await Store.open(storage.target, apply_migrations=apply_migrations,
                            password=password)
