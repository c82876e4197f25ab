"""`mailbot copy-store`: move a SQLite store, live or not, into an empty PostgreSQL database.

The order of things, each refusing in one line before anything is written: the source
opens read-only and at this mailbot's schema version; the target connects and holds no
row; the target is migrated; the two have the same version, tables and columns. Then one
PostgreSQL transaction copies every table (foreign keys first, triggers silenced, ids kept,
sequences moved past them), reads every table back and compares it with the source, row
count and checksum per table, and commits only if all match. The SQL is in store/copy.py.

The sent journal beside a SQLite file (outbox.py) names mail the relay took that the file
may still hold as pending; the copy records those as sent, in its transaction, as a
restart on the SQLite file would, so the new instances do not send them again.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import psycopg

from mailbot.clock import iso, system_clock
from mailbot.outbox import SentJournal
from mailbot.store import Store
from mailbot.store import copy as q
from mailbot.store import outbox as outbox_q
from mailbot.store.copy import CopyRefused, Digest, Source, Table
from mailbot.store.migrate import discover
from mailbot.store.pg import PgDb, redact

CONNECT_TIMEOUT = 10


@dataclass(frozen=True, slots=True)
class Check:
    """One table compared: the source's rows and checksum against the target's."""

    table: str
    source: Digest
    target: Digest

    @property
    def ok(self) -> bool:
        return (self.source.rows, self.source.hexdigest) == (self.target.rows,
                                                              self.target.hexdigest)

    def line(self) -> str:
        if self.ok:
            return f"{self.table:<18} {self.source.rows:>9} {self.source.hexdigest[:16]} ok"
        return (f"{self.table:<18} MISMATCH: source {self.source.rows} rows "
                f"{self.source.hexdigest[:16]}, target {self.target.rows} rows "
                f"{self.target.hexdigest[:16]}")


async def read_password(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        text = await asyncio.to_thread(path.read_text, encoding="utf-8")
    except OSError as e:
        raise CopyRefused(f"cannot read the password file {path}: {e.strerror}") from e
    return text.strip()


async def copy_store(source_path: Path, url: str, *, password: str | None = None,
                     verify_only: bool = False, say: Callable[[str], None] = print
                     ) -> list[Check]:
    """Copy (or with `verify_only`, only compare) every table; `say` gets one line per
    table. Raises CopyRefused, with nothing committed, when anything does not match."""
    source = await Source.open(source_path)
    try:
        return await _run(source, source_path, url, password, verify_only, say)
    except sqlite3.Error as e:
        raise CopyRefused(f"cannot read {source_path}: {e}") from e
    except psycopg.Error as e:
        raise CopyRefused(f"{redact(url)}: {_first_line(e)}") from e
    finally:
        await source.close()


async def _run(source: Source, source_path: Path, url: str, password: str | None,
               verify_only: bool, say: Callable[[str], None]) -> list[Check]:
    version = await _source_version(source, source_path)
    async with await _connect(url, password) as conn:
        if not verify_only:
            await _refuse_rows(conn, url)
            await _migrate(url, password)
        tables = await _matching_tables(source, conn, url, version)
        order = await q.pg_dependency_order(conn, list(tables))
        if verify_only:
            checks = await _compare(source, conn, tables, order, say)
        else:
            journal = SentJournal(Path(f"{source_path}.sent"))
            checks = await _copy(source, conn, url, tables, order, say, journal)
    bad = [c.table for c in checks if not c.ok]
    if bad:
        raise CopyRefused(f"the target does not match the source in {', '.join(bad)}"
                          + ("" if verify_only else ": nothing was committed"))
    return checks


async def _source_version(source: Source, path: Path) -> int:
    found = await source.version()
    newest = max(m.version for m in discover())
    if found is None or found < newest:
        raise CopyRefused(f"{path} is at schema version {found or 0}, this mailbot's is "
                          f"{newest}: run `mailbot migrate` on the source first "
                          f"(MAILBOT_DATABASE={path} mailbot migrate)")
    if found > newest:
        raise CopyRefused(f"{path} is at schema version {found}, newer than this mailbot's "
                          f"{newest}: copy it with the mailbot that migrated it")
    return found


async def _connect(url: str, password: str | None) -> q.Conn:
    kwargs: dict[str, object] = {"connect_timeout": CONNECT_TIMEOUT, "autocommit": True}
    if password is not None:
        kwargs["password"] = password
    try:
        return await psycopg.AsyncConnection.connect(url, **kwargs)  # type: ignore[arg-type]
    except psycopg.Error as e:
        raise CopyRefused(f"cannot connect to {redact(url)}: {_first_line(e)}") from e


async def _migrate(url: str, password: str | None) -> None:
    """The schema, in its own transaction as `mailbot migrate` makes it."""
    try:
        await (await Store.open(url, password=password)).close()
    except psycopg.Error as e:
        raise CopyRefused(f"cannot migrate {redact(url)}: {_first_line(e)}") from e


async def _refuse_rows(conn: q.Conn, url: str) -> None:
    if holding := await q.pg_holding_rows(conn):
        raise CopyRefused(f"{redact(url)} is not empty ({', '.join(holding[:5])} "
                          f"{'hold' if len(holding) > 1 else 'holds'} rows): copy-store only "
                          f"fills an empty database")


async def _matching_tables(source: Source, conn: q.Conn, url: str, version: int
                           ) -> dict[str, Table]:
    target_version = await q.pg_version(conn)
    if target_version != version:
        raise CopyRefused(f"{redact(url)} is at schema version {target_version or 0}, the "
                          f"source at {version}: both must be migrated by the same mailbot")
    ours, theirs = await source.tables(), await q.pg_tables(conn)
    if set(ours) != set(theirs):
        only = sorted(set(ours) ^ set(theirs))
        raise CopyRefused(f"the two schemas differ: table(s) {', '.join(only)} on one side only")
    for name, table in ours.items():
        if set(table.columns) != set(theirs[name].columns):
            raise CopyRefused(f"the two schemas differ: table {name} has columns "
                              f"{', '.join(sorted(set(table.columns)))} in the source and "
                              f"{', '.join(sorted(set(theirs[name].columns)))} in the target")
    return theirs


async def _copy(source: Source, conn: q.Conn, url: str, tables: dict[str, Table],
                order: list[str], say: Callable[[str], None], journal: SentJournal
                ) -> list[Check]:
    copied: dict[str, Digest] = {}
    checks: list[Check] = []
    current = ""
    try:
        async with conn.transaction():
            await q.lock_and_quiet(conn, order)
            await _refuse_rows(conn, url)  # a second copy that raced this one
            for current in order:
                copied[current] = await q.fill(conn, source, tables[current])
            current = ""
            await q.wake_triggers(conn, order)
            await q.continue_sequences(conn, order)
            for name in order:
                checks.append(Check(name, copied[name], await q.target_digest(
                    conn, tables[name], copied[name].widest)))
                say(checks[-1].line())
            if not all(c.ok for c in checks):
                raise _RollBack
            # Read last: it holds whatever the relay took up to now (a live source).
            if sent := await asyncio.to_thread(journal.read):
                db = PgDb(cast("psycopg.AsyncConnection[Any]", conn))  # UPDATEs: no rows read
                for outbox_id in sent:
                    await outbox_q.mark_sent(db, outbox_id, iso(system_clock()))
                say(f"{len(sent)} outbox ids in {journal.path} recorded as sent")
    except _RollBack:
        pass
    except psycopg.Error as e:
        where = f" in table {current}" if current else ""
        raise CopyRefused(f"the copy failed{where}: {_first_line(e)}; nothing was committed"
                          ) from e
    return checks


async def _compare(source: Source, conn: q.Conn, tables: dict[str, Table], order: list[str],
                   say: Callable[[str], None]) -> list[Check]:
    checks = []
    async with conn.transaction():
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        for name in order:
            ours = await q.source_digest(source, tables[name])
            checks.append(Check(name, ours, await q.target_digest(conn, tables[name],
                                                                  ours.widest)))
            say(checks[-1].line())
    return checks


class _RollBack(Exception):
    """Leaves the copy's transaction without committing (a checksum did not match)."""


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]
