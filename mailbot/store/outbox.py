"""Queries on `outbox`: rendered mail waiting to be sent, one row per purpose."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from mailbot.store.db import Db, Row, one


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    purpose: str
    mail_from: str
    rcpt_to: tuple[str, ...]
    message_id: str
    raw: bytes
    attempts: int
    case_id: int | None = None


async def enqueue(
    db: Db,
    *,
    purpose: str,
    case_id: int | None,
    created_at: str,
    mail_from: str,
    rcpt_to: Sequence[str],
    message_id: str,
    raw: bytes,
) -> int | None:
    """Queue one mail; None when a mail with this purpose was queued before."""
    r = await one(
        db,
        "INSERT INTO outbox (purpose, case_id, created_at, mail_from, rcpt_to, message_id, raw,"
        " next_attempt_at) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (purpose) DO NOTHING RETURNING id",
        (purpose, case_id, created_at, mail_from, json.dumps(list(rcpt_to)), message_id, raw,
         created_at),
    )
    return int(r[0]) if r else None


_COLUMNS = "id, purpose, mail_from, rcpt_to, message_id, raw, attempts, case_id"


def _row(r: Row) -> OutboxRow:
    return OutboxRow(int(r[0]), str(r[1]), str(r[2]), _recipients(r[3]), str(r[4]),
                     bytes(r[5]), int(r[6]), None if r[7] is None else int(r[7]))


async def due(db: Db, now: str, limit: int = 50) -> list[OutboxRow]:
    rows = await db.execute_fetchall(
        f"SELECT {_COLUMNS} FROM outbox"
        " WHERE status = 'pending' AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?",
        (now, limit),
    )
    return [_row(r) for r in rows]


async def claimed(db: Db, ids: Sequence[int]) -> list[OutboxRow]:
    """These rows (claimed ones: see store/claims.py) while still pending, in due order."""
    if not ids:
        return []
    found = await db.execute_fetchall(
        f"SELECT {_COLUMNS} FROM outbox WHERE id IN ({','.join('?' * len(ids))})"
        " AND status = 'pending' ORDER BY next_attempt_at, id", list(ids))
    return [_row(r) for r in found]


def _recipients(text: str) -> tuple[str, ...]:
    """The JSON list of recipients; a row that holds anything else has none, and the sender
    fails it with that reason rather than stop on it."""
    try:
        found = json.loads(text)
    except (TypeError, ValueError):
        return ()
    return tuple(str(a) for a in found) if isinstance(found, list) else ()


async def next_attempt(db: Db, holder: str | None = None) -> str | None:
    """When the earliest pending mail falls due, for the sender to sleep until then; a mail
    another instance than `holder` claimed is due for this one when the claim lapses."""
    r = await one(db, "SELECT min(CASE WHEN claimed_by <> ? AND claimed_until > next_attempt_at"
                      " THEN claimed_until ELSE next_attempt_at END) FROM outbox"
                      " WHERE status = 'pending'", (holder or "",))
    return str(r[0]) if r and r[0] else None


async def mark_sent(db: Db, outbox_id: int, at: str) -> None:
    await db.execute(
        "UPDATE outbox SET status = 'sent', sent_at = ?, attempts = attempts + 1,"
        " last_error = NULL, claimed_by = NULL, claimed_until = NULL"
        " WHERE id = ? AND status = 'pending'",
        (at, outbox_id),
    )


async def mark_retry(db: Db, outbox_id: int, *, next_at: str, error: str) -> None:
    await db.execute(
        "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ?,"
        " claimed_by = NULL, claimed_until = NULL WHERE id = ?",
        (next_at, error, outbox_id),
    )


async def mark_failed(db: Db, outbox_id: int, *, error: str) -> None:
    await db.execute(
        "UPDATE outbox SET status = 'failed', attempts = attempts + 1, last_error = ?,"
        " claimed_by = NULL, claimed_until = NULL WHERE id = ?",
        (error, outbox_id),
    )


async def counts(db: Db) -> dict[str, int]:
    rows = await db.execute_fetchall("SELECT status, count(*) FROM outbox GROUP BY status")
    return {str(r[0]): int(r[1]) for r in rows}


@dataclass(frozen=True, slots=True)
class QueuedMail:
    """A pending or failed outgoing mail as `mailbot queue` shows it."""

    id: int
    status: str
    purpose: str
    recipients: tuple[str, ...]
    attempts: int
    last_error: str | None
    created_at: str
    next_attempt_at: str
    case_id: int | None


async def waiting(db: Db) -> list[QueuedMail]:
    """Every pending and failed mail, oldest first."""
    rows = await db.execute_fetchall(
        "SELECT id, status, purpose, rcpt_to, attempts, last_error, created_at, next_attempt_at,"
        " case_id FROM outbox WHERE status IN ('pending', 'failed') ORDER BY created_at, id")
    return [QueuedMail(int(r[0]), str(r[1]), str(r[2]), _recipients(r[3]), int(r[4]),
                       None if r[5] is None else str(r[5]), str(r[6]), str(r[7]),
                       None if r[8] is None else int(r[8])) for r in rows]


async def get_waiting(db: Db, outbox_id: int) -> QueuedMail | None:
    found = [m for m in await waiting(db) if m.id == outbox_id]
    return found[0] if found else None


async def oldest_pending(db: Db) -> str | None:
    """When the oldest mail still waiting to go was queued."""
    r = await one(db, "SELECT min(created_at) FROM outbox WHERE status = 'pending'")
    return str(r[0]) if r and r[0] else None


async def last_error(db: Db) -> str | None:
    """The error of the pending mail tried most recently: what holds the queue up."""
    r = await one(db, "SELECT last_error FROM outbox WHERE status = 'pending'"
                      " AND last_error IS NOT NULL ORDER BY next_attempt_at DESC LIMIT 1")
    return str(r[0]) if r else None


async def retry_now(db: Db, outbox_id: int, now: str) -> bool:
    """Make a pending or failed mail due now, its backoff started afresh; False if none."""
    cur = await db.execute(
        "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = ?"
        " WHERE id = ? AND status IN ('pending', 'failed')", (now, outbox_id))
    return cur.rowcount > 0


async def failed_ids(db: Db) -> list[int]:
    rows = await db.execute_fetchall("SELECT id FROM outbox WHERE status = 'failed' ORDER BY id")
    return [int(r[0]) for r in rows]


async def drop(db: Db, outbox_id: int) -> bool:
    """Never send this pending or failed mail; the row stays, marked, for the record."""
    cur = await db.execute("UPDATE outbox SET status = 'dropped' WHERE id = ?"
                           " AND status IN ('pending', 'failed')", (outbox_id,))
    return cur.rowcount > 0


async def audit(db: Db, *, at: str, actor: str, action: str, outbox_id: int | None,
                detail: str | None = None) -> None:
    await db.execute("INSERT INTO ops_audit (at, actor, action, outbox_id, detail)"
                     " VALUES (?,?,?,?,?)", (at, actor, action, outbox_id, detail))
