"""Queries on what staff are told: attachment bytes per staff member, cases held for the
summary, and the summaries that listed them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mailbot.store.db import Db, one


async def attachment_bytes(db: Db, address: str, since: str) -> int:
    """Attachment bytes the notifications to `address` carried since `since`."""
    row = await one(db, "SELECT coalesce(sum(bytes), 0) FROM notice_bytes"
                        " WHERE address = ? AND at >= ?", (address.lower(), since))
    return int(row[0]) if row else 0


async def spend(db: Db, address: str, at: str, size: int) -> None:
    await db.execute("INSERT INTO notice_bytes (address, at, bytes) VALUES (?, ?, ?)",
                     (address.lower(), at, size))


async def forget_spent(db: Db, before: str) -> None:
    """The budget looks back one hour: older rows only take room."""
    await db.execute("DELETE FROM notice_bytes WHERE at < ?", (before,))


async def hold(db: Db, case_id: int, at: str, reason: str) -> None:
    """The case goes into the next summary instead of a notification of its own."""
    await db.execute("INSERT INTO held_notices (case_id, held_at, reason) VALUES (?, ?, ?)"
                     " ON CONFLICT (case_id) DO NOTHING", (case_id, at, reason))


@dataclass(frozen=True, slots=True)
class Held:
    case_id: int
    ref: str
    inbox: str
    sender: str
    subject: str
    created_at: str
    reason: str


async def waiting(db: Db, limit: int) -> tuple[list[Held], int]:
    """The oldest `limit` held cases no summary listed yet, and how many wait in all."""
    rows = await db.execute_fetchall(
        "SELECT h.case_id, c.ref, c.inbox, c.reporter, c.subject, c.created_at, h.reason"
        " FROM held_notices h JOIN cases c ON c.id = h.case_id"
        " WHERE h.summary_id IS NULL ORDER BY h.case_id LIMIT ?", (limit,))
    total = await one(db, "SELECT count(*) FROM held_notices WHERE summary_id IS NULL")
    return [Held(*r) for r in rows], int(total[0]) if total else 0


async def last_summary_at(db: Db) -> str | None:
    row = await one(db, "SELECT max(created_at) FROM notice_summaries")
    return str(row[0]) if row and row[0] else None


async def summarise(db: Db, case_ids: Sequence[int], at: str) -> int:
    """Record a summary listing `case_ids`; each held case is listed by one summary only."""
    row = await one(db, "INSERT INTO notice_summaries (created_at, cases) VALUES (?, ?)"
                        " RETURNING id", (at, len(case_ids)))
    assert row is not None
    summary_id = int(row[0])
    await db.executemany("UPDATE held_notices SET summary_id = ? WHERE case_id = ?"
                         " AND summary_id IS NULL", [(summary_id, c) for c in case_ids])
    return summary_id
