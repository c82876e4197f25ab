"""Named leases (`leases` table): one holder at a time for the scheduler and each IMAP folder.

Portable SQL: an upsert that writes only when the lease is free, lapsed or already the
taker's, and tells by RETURNING whether it did. Moments are ISO 8601 UTC text.
"""

from __future__ import annotations

from mailbot.store.db import Db, one


async def take(db: Db, name: str, holder: str, now: str, until: str) -> bool:
    """Take or renew the lease `name` for `holder` until `until`; False while another
    holds it (its `until` is after `now`)."""
    row = await one(
        db,
        "INSERT INTO leases (name, holder, until) VALUES (?1, ?2, ?3)"
        " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until"
        " WHERE leases.holder = excluded.holder OR leases.until <= ?4 RETURNING holder",
        (name, holder, until, now))
    return row is not None


async def take_from(db: Db, name: str, holder: str, previous: str, until: str) -> bool:
    """Take the lease from `previous` (known to be gone) whatever its moment."""
    cur = await db.execute("UPDATE leases SET holder = ?, until = ? WHERE name = ? AND holder = ?",
                           (holder, until, name, previous))
    return cur.rowcount == 1


async def holder(db: Db, name: str) -> tuple[str, str] | None:
    """(holder, until) of the lease, or None when nobody took it yet."""
    row = await one(db, "SELECT holder, until FROM leases WHERE name = ?", (name,))
    return (str(row[0]), str(row[1])) if row else None


async def every(db: Db) -> list[tuple[str, str, str]]:
    """(name, holder, until) of each lease, by name (for `mailbot status`)."""
    return [(str(n), str(h), str(u)) for n, h, u in await db.execute_fetchall(
        "SELECT name, holder, until FROM leases ORDER BY name")]


async def fence(db: Db, name: str, holder: str, until: str) -> bool:
    """Inside a write transaction: True while `holder` still holds the lease, renewed to
    `until`. On PostgreSQL the row stays locked until the transaction ends, so another
    instance's `take` waits for it: the work of two holders never overlaps. (Its moment is
    not checked: a lease that lapsed while nobody else took it is still this holder's.)"""
    cur = await db.execute("UPDATE leases SET until = ? WHERE name = ? AND holder = ?",
                           (until, name, holder))
    return cur.rowcount == 1


async def release(db: Db, name: str, holder: str) -> None:
    """Give the lease up (a clean stop): another instance may take it at once."""
    await db.execute("DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder))
