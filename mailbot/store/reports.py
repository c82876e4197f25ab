"""Queries of the compliance report: the cases alive in a period, and their reporter updates."""

from __future__ import annotations

from collections.abc import Sequence

from mailbot.store.db import Db, Row

REPORT_FIELDS = ("id", "ref", "inbox", "state", "severity", "assignee", "subject",
                 "created_at", "first_response_due", "first_responded_at", "resolution_due",
                 "resolved_at", "credit")
# Mail that tells the reporter where their case stands: the acknowledgement and every
# update or relayed reply (transcripts and notifications go to staff).
REPORTER_KINDS = ("ack", "reply")


async def cases_alive(db: Db, start: str, end: str, inbox: str | None = None
                      ) -> list[Row]:
    """Cases opened before `end` and not closed before `start` (ISO moments in UTC), with
    the reason of their latest #close (`close_reason`, NULL for other outcomes)."""
    sql = (f"SELECT {', '.join(REPORT_FIELDS)},"
           " (SELECT detail FROM events WHERE events.case_id = cases.id AND action = 'close'"
           "  ORDER BY events.id DESC LIMIT 1) AS close_reason"
           " FROM cases WHERE created_at < ? AND (resolved_at IS NULL OR resolved_at >= ?)")
    args: list[str] = [end, start]
    if inbox is not None:
        sql += " AND inbox = ?"
        args.append(inbox)
    return list(await db.execute_fetchall(sql + " ORDER BY id", args))


async def reporter_updates(db: Db, case_ids: Sequence[int]) -> dict[int, list[str]]:
    """The dates of the mail each case's reporter got from us, oldest first."""
    found: dict[int, list[str]] = {}
    kinds = ", ".join(f"'{k}'" for k in REPORTER_KINDS)
    for i in range(0, len(case_ids), 500):
        chunk = list(case_ids[i:i + 500])
        rows = await db.execute_fetchall(
            f"SELECT case_id, date FROM messages WHERE direction = 'out' AND kind IN ({kinds})"
            f" AND case_id IN ({', '.join('?' * len(chunk))}) ORDER BY case_id, date, id",
            chunk)
        for r in rows:
            found.setdefault(int(r[0]), []).append(str(r[1]))
    return found
