"""Queries on `outbox`: rendered mail waiting to be sent, one row per purpose."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from mailbot.store.db import Db, one


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


async def due(db: Db, now: str, limit: int = 50) -> list[OutboxRow]:
    rows = await db.execute_fetchall(
        "SELECT id, purpose, mail_from, rcpt_to, message_id, raw, attempts, case_id FROM outbox"
        " WHERE status = 'pending' AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?",
        (now, limit),
    )
    return [
        OutboxRow(int(r[0]), str(r[1]), str(r[2]), _recipients(r[3]), str(r[4]),
                  bytes(r[5]), int(r[6]), None if r[7] is None else int(r[7]))
        for r in rows
    ]


def _recipients(text: str) -> tuple[str, ...]:
    """The JSON list of recipients; a row that holds anything else has none, and the sender
    fails it with that reason rather than stop on it."""
    try:
        found = json.loads(text)
    except (TypeError, ValueError):
        return ()
    return tuple(str(a) for a in found) if isinstance(found, list) else ()


async def next_attempt(db: Db) -> str | None:
    """When the earliest pending mail falls due, for the sender to sleep until then."""
    r = await one(db, "SELECT min(next_attempt_at) FROM outbox WHERE status = 'pending'")
    return str(r[0]) if r and r[0] else None


async def mark_sent(db: Db, outbox_id: int, at: str) -> None:
    await db.execute(
        "UPDATE outbox SET status = 'sent', sent_at = ?, attempts = attempts + 1,"
        " last_error = NULL WHERE id = ? AND status = 'pending'",
        (at, outbox_id),
    )


async def mark_retry(db: Db, outbox_id: int, *, next_at: str, error: str) -> None:
    await db.execute(
        "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ?"
        " WHERE id = ?",
        (next_at, error, outbox_id),
    )


async def mark_failed(db: Db, outbox_id: int, *, error: str) -> None:
    await db.execute(
        "UPDATE outbox SET status = 'failed', attempts = attempts + 1, last_error = ? WHERE id = ?",
        (error, outbox_id),
    )


async def counts(db: Db) -> dict[str, int]:
    rows = await db.execute_fetchall("SELECT status, count(*) FROM outbox GROUP BY status")
    return {str(r[0]): int(r[1]) for r in rows}
