"""Queries on publication by mutual consent, and the hall of fame they lead to."""

from __future__ import annotations

from typing import Any

from mailbot.store.db import Db, one

FIELDS = ("case_id", "proposed_on", "proposed_at", "proposed_by", "agreed_at", "agreed_by",
          "public_at", "public_by", "reminded")


async def get(db: Db, case_id: int) -> dict[str, Any] | None:
    r = await one(db, f"SELECT {', '.join(FIELDS)} FROM disclosures WHERE case_id = ?",
                  (case_id,))
    return dict(zip(FIELDS, r, strict=True)) if r else None


async def propose(db: Db, case_id: int, day: str, *, at: str, by: str,
                  agreed: bool) -> None:
    """A proposed date (consent starts anew), or with `agreed` a date both sides accept."""
    await db.execute(
        "INSERT INTO disclosures (case_id, proposed_on, proposed_at, proposed_by, agreed_at,"
        " agreed_by, reminded) VALUES (?, ?, ?, ?, ?, ?, '') ON CONFLICT (case_id) DO UPDATE"
        " SET proposed_on = excluded.proposed_on, proposed_at = excluded.proposed_at,"
        " proposed_by = excluded.proposed_by, agreed_at = excluded.agreed_at,"
        " agreed_by = excluded.agreed_by, reminded = ''",
        (case_id, day, at, by, at if agreed else None, by if agreed else None))


async def agree(db: Db, case_id: int, *, at: str, by: str) -> None:
    await db.execute("UPDATE disclosures SET agreed_at = ?, agreed_by = ? WHERE case_id = ?",
                     (at, by, case_id))


async def make_public(db: Db, case_id: int, *, at: str, by: str) -> None:
    await db.execute(
        "INSERT INTO disclosures (case_id, public_at, public_by) VALUES (?, ?, ?)"
        " ON CONFLICT (case_id) DO UPDATE SET public_at = excluded.public_at,"
        " public_by = excluded.public_by", (case_id, at, by))


async def due_reminders(db: Db, until: str) -> list[dict[str, Any]]:
    """Agreed publications on or before `until` (a date) whose case is not closed
    without them, with what was reminded already."""
    rows = await db.execute_fetchall(
        "SELECT c.id, c.ref, c.inbox, c.subject, d.proposed_on, d.reminded FROM disclosures d"
        " JOIN cases c ON c.id = d.case_id WHERE d.agreed_at IS NOT NULL"
        " AND d.proposed_on <= ? AND d.reminded != '7,1' ORDER BY d.proposed_on", (until,))
    keys = ("case_id", "ref", "inbox", "subject", "proposed_on", "reminded")
    return [dict(zip(keys, r, strict=True)) for r in rows]


async def mark_reminded(db: Db, case_id: int, reminded: str) -> None:
    await db.execute("UPDATE disclosures SET reminded = ? WHERE case_id = ?",
                     (reminded, case_id))


async def upcoming(db: Db, inbox: str, today: str, until: str) -> list[dict[str, Any]]:
    """Proposed or agreed publications of an inbox between the two dates (the digest)."""
    rows = await db.execute_fetchall(
        "SELECT c.ref, c.subject, c.state, c.severity, d.proposed_on, d.agreed_at IS NOT NULL"
        " FROM disclosures d JOIN cases c ON c.id = d.case_id WHERE c.inbox = ?"
        " AND d.proposed_on >= ? AND d.proposed_on <= ? ORDER BY d.proposed_on",
        (inbox, today, until))
    return [{"ref": r[0], "subject": r[1], "state": r[2], "severity": r[3], "date": r[4],
             "agreed": bool(r[5])} for r in rows]


async def hall_of_fame(db: Db, today: str, inbox: str | None = None) -> list[dict[str, Any]]:
    """Credited, resolved cases whose agreed date has passed or that staff made public,
    newest first. The credit as staff recorded it; never the reporter's address."""
    rows = await db.execute_fetchall(
        "SELECT c.credit, c.cve, c.inbox, coalesce(d.public_at, d.proposed_on) AS published"
        " FROM cases c JOIN disclosures d ON d.case_id = c.id"
        " WHERE c.credit IS NOT NULL AND c.state = 'resolved'"
        " AND (d.public_at IS NOT NULL OR (d.agreed_at IS NOT NULL AND d.proposed_on <= ?))"
        " AND (CAST(? AS TEXT) IS NULL OR c.inbox = ?) ORDER BY published DESC, c.id DESC",
        (today, inbox, inbox))
    return [{"credit": r[0], "cve": r[1], "inbox": r[2], "published": str(r[3])[:10]}
            for r in rows]
