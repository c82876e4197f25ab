"""Queries on `case_lists`: the mailing lists a case's mail came through."""

from __future__ import annotations

from mailbot.store.db import Db


async def remember(db: Db, case_id: int, list_id: str, address: str | None, *,
                   ours: bool) -> None:
    await db.execute(
        "INSERT INTO case_lists (case_id, list_id, address, ours) VALUES (?,?,?,?)"
        " ON CONFLICT (case_id, list_id) DO UPDATE"
        " SET address = coalesce(excluded.address, case_lists.address)",
        (case_id, list_id, address.lower() if address else None, int(ours)))


async def addresses(db: Db, case_id: int) -> set[str]:
    """The own addresses of the lists the case came through."""
    rows = await db.execute_fetchall(
        "SELECT address FROM case_lists WHERE case_id = ? AND address IS NOT NULL", (case_id,))
    return {str(r[0]) for r in rows}


async def of_case(db: Db, case_id: int) -> list[str]:
    rows = await db.execute_fetchall(
        "SELECT list_id FROM case_lists WHERE case_id = ? ORDER BY list_id", (case_id,))
    return [str(r[0]) for r in rows]
