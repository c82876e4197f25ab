"""The numbers /metrics reads from the database at scrape time (one read, either backend)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from mailbot.clock import iso
from mailbot.store.db import Db

OPEN = "state NOT IN ('resolved', 'rejected', 'duplicate', 'closed')"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The database's numbers at one moment."""

    stored: dict[str, int]  # source -> inbound rows
    quarantined: dict[str, int]
    opened: dict[str, int]  # inbox -> cases
    closed: dict[str, int]
    outbox: dict[str, int]  # status -> rows
    oldest_pending_seconds: float
    due_24h: dict[tuple[str, str], int]  # (inbox, deadline) -> open cases
    breached: dict[tuple[str, str], int]
    ack_seconds: list[float]
    watchers: list[tuple[str, str, str, int]]  # mailbox, inbox, state, failures


async def snapshot(db: Db, now: datetime) -> Snapshot:
    async def pairs(sql: str, *params: object) -> dict[str, int]:
        return {str(k): int(v) for k, v in await db.execute_fetchall(sql, params)}

    async def by_deadline(condition: str, *params: object) -> dict[tuple[str, str], int]:
        out: dict[tuple[str, str], int] = {}
        for deadline, done in (("first_response", "first_responded_at"),
                               ("resolution", "resolved_at")):
            for inbox, n in await db.execute_fetchall(
                    f"SELECT inbox, count(*) FROM cases WHERE {OPEN} AND {done} IS NULL"
                    f" AND {condition.format(due=deadline + '_due')} GROUP BY inbox",
                    params):
                out[(str(inbox), deadline)] = int(n)
        return out

    t, soon = iso(now), iso(now + timedelta(hours=24))
    oldest = next(iter(await db.execute_fetchall(
        "SELECT min(created_at) FROM outbox WHERE status = 'pending'")))[0]
    # Seconds between two ISO moments, here rather than in SQL: the backends' date
    # functions differ.
    acks = [(datetime.fromisoformat(sent) - datetime.fromisoformat(created)).total_seconds()
            for sent, created in await db.execute_fetchall(
                "SELECT o.sent_at, c.created_at FROM outbox o JOIN cases c ON c.id = o.case_id"
                " WHERE o.purpose LIKE 'ack:%' AND o.status = 'sent'"
                " AND o.sent_at IS NOT NULL")]
    return Snapshot(
        stored=await pairs("SELECT source, count(*) FROM inbound GROUP BY source"),
        quarantined=await pairs("SELECT source, count(*) FROM inbound"
                                " WHERE status = 'quarantined' GROUP BY source"),
        opened=await pairs("SELECT inbox, count(*) FROM cases GROUP BY inbox"),
        closed=await pairs(f"SELECT inbox, count(*) FROM cases WHERE NOT ({OPEN})"
                           " GROUP BY inbox"),
        outbox=await pairs("SELECT status, count(*) FROM outbox GROUP BY status"),
        oldest_pending_seconds=max(0.0, (now - datetime.fromisoformat(oldest))
                                   .total_seconds()) if oldest else 0.0,
        due_24h=await by_deadline("{due} >= ? AND {due} < ?", t, soon),
        breached=await by_deadline("{due} < ?", t),
        ack_seconds=acks,
        watchers=[(str(m), str(i), str(s), int(f)) for m, i, s, f in await db.execute_fetchall(
            "SELECT mailbox, inbox, state, failures FROM imap_folders ORDER BY mailbox")],
    )
