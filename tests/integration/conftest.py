"""Fixtures for tests of several instances on one database (claims, leases)."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from mailbot.config import Config, load_config
from mailbot.store import Store
from mailbot.store.db import is_postgres


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The database both instances share: an SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "mailbot.db")
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
async def two(database: str) -> AsyncIterator[tuple[Store, Store]]:
    """Two instances' stores on the same database."""
    a = await Store.open(database)
    b = await Store.open(database)
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


@pytest.fixture
def other(database: str) -> Iterator[str]:
    """The name of another instance that is alive: a process of its own (SQLite frees the
    claims of this host's processes that are gone, and of other stores of this one, which
    only a restart leaves behind) with, on PostgreSQL, a session carrying its name."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    name = f"{socket.gethostname()[:40]}:{proc.pid}:other"
    session = (psycopg.connect(database, application_name=name) if is_postgres(database)
               else None)
    try:
        yield name
    finally:
        if session is not None:
            session.close()
        proc.kill()
        proc.wait()


@pytest.fixture
def shared_config(database: str, write_config: Callable[..., Path]) -> Callable[..., Config]:
    """The test config with the shared database (and the relay's port, when given)."""
    def make(sink_port: int = 1) -> Config:
        path = write_config(sink_port)
        text = path.read_text()
        line = next(x for x in text.splitlines() if x.startswith("database = "))
        path.write_text(text.replace(line, f'database = "{database}"', 1))
        return load_config(path)

    return make
