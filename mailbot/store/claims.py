"""Claims on `inbound` and `outbox` rows: which instance works on a row, and until when.

A claim is taken in a short write transaction of its own: the rows are chosen (unclaimed,
lapsed, or already the claimant's), in the order the work is done, and marked with the
claimant and the moment its claim lapses. On PostgreSQL the choice locks them `FOR UPDATE
SKIP LOCKED`, so a second instance choosing at the same moment passes over them instead of
waiting for them or taking them too. SQLite serialises writers anyway (BEGIN IMMEDIATE),
so the same statements without the clause do the same there. The claims of an instance
that is gone (`absent`) are freed without waiting for them to lapse. The work itself ends a claim
(`inbound.finish`, `outbox.mark_*` clear both columns).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Literal

from mailbot.store.db import OPEN_STORES, Db, dialect, this_host

Table = Literal["inbound", "outbox"]


def _skip_locked(db: Db) -> str:
    return " FOR UPDATE SKIP LOCKED" if dialect(db) == "postgresql" else ""


def _marks(values: Sequence[object]) -> str:
    return ",".join("?" * len(values))


async def claim_inbound(db: Db, holder: str, now: str, until: str, *, after: int = 0,
                        limit: int = 20, max_bytes: int | None = None) -> list[int]:
    """Claim pending inbound rows after the id `after`, in arrival order: up to `limit`,
    taken while the raw bytes before each fit in `max_bytes` (at least one), with the
    other rows of their deliveries (one mail to several inboxes), which are decided
    together and so are only ever claimed with the row that holds the bytes. The ids."""
    sizes = await db.execute_fetchall(
        "SELECT id, length(raw) FROM inbound WHERE status = 'pending' AND id > ?1"
        " AND (claimed_until IS NULL OR claimed_until <= ?2 OR claimed_by = ?3)"
        " AND (raw_of IS NULL OR NOT EXISTS (SELECT 1 FROM inbound h"
        "      WHERE h.id = inbound.raw_of AND h.status = 'pending'))"
        " ORDER BY id LIMIT ?4" + _skip_locked(db), (after, now, holder, limit))
    ids: list[int] = []
    total = 0
    for row_id, size in sizes:  # a row is taken while the bytes before it fit
        if max_bytes is not None and total >= max_bytes:
            break
        ids.append(int(row_id))
        total += size or 0
    if not ids:
        return []
    marks = _marks(ids)
    await db.execute(f"UPDATE inbound SET claimed_by = ?, claimed_until = ? WHERE id IN ({marks})"
                     f" OR (raw_of IN ({marks}) AND status = 'pending')",
                     (holder, until, *ids, *ids))
    rows = await db.execute_fetchall(
        f"SELECT id FROM inbound WHERE raw_of IN ({marks}) AND status = 'pending'", ids)
    return sorted(ids + [int(r[0]) for r in rows])


async def claim_outbox(db: Db, holder: str, now: str, until: str, limit: int) -> list[int]:
    """Claim up to `limit` outgoing mails that are due, the earliest due first; the ids."""
    rows = await db.execute_fetchall(
        "SELECT id FROM outbox WHERE status = 'pending' AND next_attempt_at <= ?1"
        " AND (claimed_until IS NULL OR claimed_until <= ?1 OR claimed_by = ?2)"
        " ORDER BY next_attempt_at, id LIMIT ?3" + _skip_locked(db), (now, holder, limit))
    ids = [int(r[0]) for r in rows]
    if ids:
        await db.execute(f"UPDATE outbox SET claimed_by = ?, claimed_until = ? WHERE id IN"
                         f" ({_marks(ids)})", (holder, until, *ids))
    return ids


async def renew(db: Db, table: Table, holder: str, ids: Sequence[int], until: str) -> int:
    """Move the claims of `holder` on these rows (those still pending) to `until`."""
    if not ids:
        return 0
    cur = await db.execute(
        f"UPDATE {table} SET claimed_until = ? WHERE claimed_by = ? AND status = 'pending'"
        f" AND id IN ({_marks(ids)})", (until, holder, *ids))
    return cur.rowcount


async def release(db: Db, table: Table, holder: str, ids: Sequence[int]) -> None:
    """Give up the claims of `holder` on these rows: another instance may take them now."""
    if ids:
        await db.execute(
            f"UPDATE {table} SET claimed_by = NULL, claimed_until = NULL WHERE claimed_by = ?"
            f" AND id IN ({_marks(ids)})", (holder, *ids))


async def holders(db: Db, table: Table, holder: str) -> list[str]:
    """Who else holds claims on pending rows."""
    rows = await db.execute_fetchall(
        f"SELECT DISTINCT claimed_by FROM {table} WHERE status = 'pending'"
        " AND claimed_by IS NOT NULL AND claimed_by <> ?", (holder,))
    return [str(r[0]) for r in rows]


async def release_holders(db: Db, table: Table, dead: Sequence[str]) -> None:
    """Free the pending rows these (gone) holders claimed."""
    if dead:
        await db.execute(
            f"UPDATE {table} SET claimed_by = NULL, claimed_until = NULL WHERE status = 'pending'"
            f" AND claimed_by IN ({_marks(dead)})", list(dead))


async def inbound_waiting(db: Db, holder: str, now: str, after: int = 0) -> bool:
    """Is there a pending row after `after` that `holder` could claim? (A read, so that an
    idle look takes no write lock.)"""
    rows = await db.execute_fetchall(
        "SELECT 1 FROM inbound WHERE status = 'pending' AND id > ?"
        " AND (claimed_until IS NULL OR claimed_until <= ? OR claimed_by = ?) LIMIT 1",
        (after, now, holder))
    return bool(list(rows))


async def absent(db: Db, holders: Sequence[str]) -> list[str]:
    """The holders whose instance is gone, so that nobody waits for their claims and
    leases to lapse. PostgreSQL: no session of the server carries the holder's name (each
    instance's pooled connections do, as application_name, from start to stop; a host that
    vanished without closing them keeps them until the server notices, and then its claims
    lapse first). SQLite: `gone`."""
    if not holders:
        return []
    if dialect(db) != "postgresql":
        return [h for h in holders if gone(h)]
    rows = await db.execute_fetchall(
        "SELECT DISTINCT application_name FROM pg_stat_activity WHERE application_name IN"
        f" ({_marks(holders)})", list(holders))
    alive = {str(r[0]) for r in rows}
    return [h for h in holders if h not in alive]


def gone(holder: str) -> bool:
    """SQLite's `absent`: a holder (host:pid:random) of this host whose process has ended,
    or a store of this process that was closed, so a restart after a crash need not wait
    for the lapse of its predecessor's claims and leases. (Not on PostgreSQL, where
    containers sharing a hostname could share pids: there `absent` asks the server.) A pid
    reused since reads as alive: we only wait."""
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != this_host() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():  # a store of this process: gone once closed
        return holder not in OPEN_STORES
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


async def earlier_pending(db: Db, holder: str, below: int, message_ids: Sequence[str]
                          ) -> list[tuple[int, str, str | None, str | None]]:
    """Pending rows below the id `below` that carry one of these Message-IDs and are not
    claimed by `holder`: (id, message_id, claimed_by, claimed_until), for the order rule."""
    found: list[tuple[int, str, str | None, str | None]] = []
    wanted = list(dict.fromkeys(message_ids))
    for i in range(0, len(wanted), 500):
        chunk = wanted[i:i + 500]
        rows = await db.execute_fetchall(
            "SELECT id, message_id, claimed_by, claimed_until FROM inbound"
            f" WHERE status = 'pending' AND message_id IN ({_marks(chunk)}) AND id < ?"
            " AND (claimed_by IS NULL OR claimed_by <> ?)", (*chunk, below, holder))
        found += [(int(r[0]), str(r[1]), r[2], r[3]) for r in rows]
    return found
