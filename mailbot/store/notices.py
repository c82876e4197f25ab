"""Queries on what staff are told: the notifications each staff member got in the last
hour, mails held for the summary, and the summaries that listed them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mailbot.store.db import Db, one


@dataclass(frozen=True, slots=True)
class Spent:
    notices: int  # notifications to the address (up to the limit asked about)
    attachment_bytes: int  # attachment bytes they carried


async def spent(db: Db, addresses: Sequence[str], since: str,
                limit: int) -> dict[str, Spent]:
    """Per address, what its notifications since `since` took of the hourly budgets. The
    count stops at `limit` (all the check needs: this runs for every mail); the bytes are
    summed over the notices that carried any (a partial index)."""
    found = {}
    for address in dict.fromkeys(a.lower() for a in addresses):
        row = await one(
            db, "SELECT (SELECT count(*) FROM (SELECT 1 FROM notices WHERE address = ?1"
                " AND at >= ?2 LIMIT ?3) AS recent), (SELECT coalesce(sum(attachment_bytes), 0)"
                " FROM notices WHERE address = ?1 AND at >= ?2 AND attachment_bytes > 0)",
            (address, since, limit))
        found[address] = Spent(int(row[0]), int(row[1])) if row else Spent(0, 0)
    return found


async def record(db: Db, address: str, at: str, attachment_bytes: int) -> None:
    await db.execute("INSERT INTO notices (address, at, attachment_bytes) VALUES (?, ?, ?)",
                     (address.lower(), at, attachment_bytes))


async def forget(db: Db, before: str) -> None:
    """The budgets look back one hour: older rows only take room."""
    await db.execute("DELETE FROM notices WHERE at < ?", (before,))


@dataclass(frozen=True, slots=True)
class Held:
    inbound_id: int
    case_id: int
    ref: str
    inbox: str
    kind: str  # new | follow-up | stranger | untrusted-staff
    sender: str
    subject: str
    held_at: str
    reason: str


async def hold(db: Db, *, inbound_id: int, case_id: int, kind: str, sender: str,
               subject: str, at: str, reason: str) -> None:
    """The mail goes into the next summary instead of notifications of its own."""
    await db.execute(
        "INSERT INTO held_notices (inbound_id, case_id, kind, sender, subject, held_at, reason)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (inbound_id) DO NOTHING",
        (inbound_id, case_id, kind, sender, subject, at, reason))


async def waiting(db: Db, limit: int) -> tuple[list[Held], int]:
    """The oldest `limit` held mails no summary listed yet, and how many wait in all."""
    rows = await db.execute_fetchall(
        "SELECT h.inbound_id, h.case_id, c.ref, c.inbox, h.kind, h.sender, h.subject,"
        " h.held_at, h.reason FROM held_notices h JOIN cases c ON c.id = h.case_id"
        " WHERE h.summary_id IS NULL ORDER BY h.inbound_id LIMIT ?", (limit,))
    total = await one(db, "SELECT count(*) FROM held_notices WHERE summary_id IS NULL")
    return [Held(*r) for r in rows], int(total[0]) if total else 0


async def anything_to_do(db: Db, hour_ago: str) -> bool:
    """Whether a held mail waits or a notice is older than the budgets look back (cheap:
    the summary job asks this every few seconds before it takes the write lock)."""
    row = await one(db, "SELECT EXISTS (SELECT 1 FROM held_notices WHERE summary_id IS NULL)"
                        " OR EXISTS (SELECT 1 FROM notices WHERE at < ?)", (hour_ago,))
    return bool(row and row[0])


async def last_summary_at(db: Db) -> str | None:
    row = await one(db, "SELECT max(created_at) FROM notice_summaries")
    return str(row[0]) if row and row[0] else None


async def summarise(db: Db, inbound_ids: Sequence[int], at: str) -> int:
    """Record a summary listing these held mails; each is listed by one summary only."""
    row = await one(db, "INSERT INTO notice_summaries (created_at, mails) VALUES (?, ?)"
                        " RETURNING id", (at, len(inbound_ids)))
    assert row is not None
    summary_id = int(row[0])
    await db.executemany("UPDATE held_notices SET summary_id = ? WHERE inbound_id = ?"
                         " AND summary_id IS NULL", [(summary_id, i) for i in inbound_ids])
    return summary_id
