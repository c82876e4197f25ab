"""Queries on `inbound`: raw mail as it arrived, and what became of it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from mailbot.store.db import Db, Row, one


@dataclass(frozen=True, slots=True)
class InboundRow:
    id: int
    received_at: str
    source: str
    mail_from: str | None
    rcpt_to: tuple[str, ...]
    inbox: str
    raw: bytes
    status: str
    reason: str | None
    case_id: int | None
    raw_of: int | None = None  # the row whose raw bytes these are (one delivery, two inboxes)

    @property
    def delivery(self) -> int:
        """The rows of one delivery share this: the id of the row that holds the bytes."""
        return self.raw_of if self.raw_of is not None else self.id


async def insert(
    db: Db,
    *,
    received_at: str,
    source: str,
    source_ref: str | None,
    peer: str | None,
    mail_from: str | None,
    rcpt_to: Sequence[str],
    inbox: str,
    message_id: str | None,
    digest: str,
    raw: bytes,
    raw_of: int | None = None,
) -> tuple[int, bool]:
    """Store one delivery; (id, True) when new, (existing id, False) for a redelivery.

    With `raw_of`, the row is the same delivery for another inbox: `raw` stays empty and
    the bytes are read from that row."""
    row = await one(
        db,
        "INSERT INTO inbound (received_at, source, source_ref, peer, mail_from, rcpt_to, inbox,"
        " message_id, digest, raw, raw_of) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
        " ON CONFLICT DO NOTHING RETURNING id",
        (received_at, source, source_ref, peer, mail_from, json.dumps(list(rcpt_to)), inbox,
         message_id, digest, b"" if raw_of is not None else raw, raw_of),
    )
    if row is not None:
        return int(row[0]), True
    row = await one(
        db,
        "SELECT id FROM inbound WHERE digest = ? OR (source_ref IS NOT NULL AND source_ref = ?)",
        (digest, source_ref),
    )
    assert row is not None, "ON CONFLICT without a conflicting row"
    return int(row[0]), False


def _recipients(text: object) -> tuple[str, ...]:
    """The JSON list of envelope recipients; anything else reads as none (the pipeline then
    decides on the headers) rather than stopping the worker on this row."""
    try:
        found = json.loads(str(text))
    except ValueError:
        return ()
    return tuple(str(a) for a in found) if isinstance(found, list) else ()


# A row that shares another's bytes reads them from it.
_COLUMNS = ("id, received_at, source, mail_from, rcpt_to, inbox,"
            " CASE WHEN raw_of IS NULL THEN raw"
            " ELSE (SELECT s.raw FROM inbound s WHERE s.id = inbound.raw_of) END,"
            " status, reason, case_id, raw_of")


def _row(r: Row) -> InboundRow:
    return InboundRow(
        id=int(r[0]),
        received_at=str(r[1]),
        source=str(r[2]),
        mail_from=r[3],
        rcpt_to=_recipients(r[4]),
        inbox=str(r[5]),
        raw=bytes(r[6]),
        status=str(r[7]),
        reason=r[8],
        case_id=r[9],
        raw_of=r[10],
    )


async def pending(
    db: Db, after: int = 0, limit: int = 1, max_bytes: int | None = None
) -> list[InboundRow]:
    """Pending rows in arrival order, after the id `after`; with `max_bytes`, only as many
    as fit in that many bytes of raw mail (at least one)."""
    if max_bytes is None:
        rows = await db.execute_fetchall(
            f"SELECT {_COLUMNS} FROM inbound WHERE status = 'pending' AND id > ?"
            " ORDER BY id LIMIT ?", (after, limit))
    else:
        # Sizes first, in a query of their own: length() of a blob column is read from the
        # record header, while a window function over it would copy every raw mail.
        sizes = await db.execute_fetchall(
            "SELECT id, length(raw) FROM inbound WHERE status = 'pending' AND id > ?"
            " ORDER BY id LIMIT ?", (after, limit))
        ids: list[int] = []
        total = 0
        for row_id, size in sizes:  # a row is taken while the bytes before it fit
            if total >= max_bytes:
                break
            ids.append(int(row_id))
            total += size or 0
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        rows = await db.execute_fetchall(
            f"SELECT {_COLUMNS} FROM inbound WHERE id IN ({marks}) AND status = 'pending'"
            " ORDER BY id", ids)
    return [_row(r) for r in rows]


async def claimed(db: Db, ids: Sequence[int]) -> list[InboundRow]:
    """These rows (claimed ones: see store/claims.py) while still pending, each delivery's
    rows together, in arrival order of the deliveries."""
    if not ids:
        return []
    found = await db.execute_fetchall(
        f"SELECT {_COLUMNS} FROM inbound WHERE id IN ({','.join('?' * len(ids))})"
        " AND status = 'pending'", list(ids))
    return sorted((_row(r) for r in found), key=lambda r: (r.delivery, r.id))


async def rest_of_delivery(db: Db, row: InboundRow) -> list[InboundRow]:
    """The pending rows after `row` of the same delivery (one mail to several inboxes), for
    a batch that `pending` cut short in the middle of one: its rows are decided together."""
    rows = await db.execute_fetchall(
        f"SELECT {_COLUMNS} FROM inbound WHERE status = 'pending' AND raw_of = ? AND id > ?"
        " ORDER BY id", (row.delivery, row.id))
    return [_row(r) for r in rows]


async def get(db: Db, inbound_id: int) -> InboundRow | None:
    r = await one(db, f"SELECT {_COLUMNS} FROM inbound WHERE id = ?", (inbound_id,))
    return _row(r) if r else None


async def finish(
    db: Db, inbound_id: int, *, status: str, at: str, reason: str | None = None,
    case_id: int | None = None,
) -> bool:
    """Record the outcome of a pending row, which ends its claim (its claimant is kept as
    `processed_by`); False when it was no longer pending (another process took it), and
    the caller must roll back."""
    cur = await db.execute(
        "UPDATE inbound SET status = ?, reason = ?, case_id = ?, processed_at = ?,"
        " processed_by = claimed_by, claimed_by = NULL, claimed_until = NULL"
        " WHERE id = ? AND status = 'pending'",
        (status, reason, case_id, at, inbound_id),
    )
    return cur.rowcount == 1


async def quarantined(db: Db) -> list[dict[str, object]]:
    rows = await db.execute_fetchall(
        "SELECT id, received_at, source, mail_from, inbox, message_id, reason,"
        " length(coalesce((SELECT s.raw FROM inbound s WHERE s.id = inbound.raw_of), raw))"
        " FROM inbound WHERE status = 'quarantined' ORDER BY id"
    )
    keys = ("id", "received_at", "source", "mail_from", "inbox", "message_id", "reason", "size")
    return [dict(zip(keys, r, strict=True)) for r in rows]


async def requeue(db: Db, inbound_id: int) -> bool:
    """Put a quarantined mail back in the queue; False when it is not in quarantine."""
    cur = await db.execute(
        "UPDATE inbound SET status = 'pending', reason = NULL, processed_at = NULL"
        " WHERE id = ? AND status = 'quarantined'",
        (inbound_id,),
    )
    return cur.rowcount == 1


async def counts(db: Db) -> dict[str, int]:
    rows = await db.execute_fetchall("SELECT status, count(*) FROM inbound GROUP BY status")
    return {str(r[0]): int(r[1]) for r in rows}
