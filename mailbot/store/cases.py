"""Queries on cases, their messages, Message-IDs and audit events."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from mailbot.store.db import Db, Row, dialect, one

CASE_FIELDS = (
    "id", "ref", "inbox", "state", "severity", "cvss_vector", "reporter", "reporter_name",
    "subject", "language", "assignee", "created_at", "updated_at", "first_response_due",
    "first_responded_at", "resolution_due", "resolved_at", "cve", "bounty", "disclose_on",
    "credit", "duplicate_of", "paused_at", "paused_from", "last_reporter_update_at",
)


@dataclass(frozen=True, slots=True)
class NewCase:
    inbox: str
    prefix: str
    year: int
    reporter: str
    reporter_name: str | None
    subject: str
    language: str
    created_at: str
    first_response_due: str
    resolution_due: str


async def open_case(db: Db, case: NewCase) -> tuple[int, str]:
    """Allocate the next reference of (inbox, year) and insert the case: (id, ref).

    The counter is bumped inside the caller's write transaction, so a rolled-back case
    leaves no gap and two writers can never draw the same number.
    """
    row = await one(
        db,
        "INSERT INTO ref_counters (inbox, year, last) VALUES (?, ?, 1)"
        " ON CONFLICT (inbox, year) DO UPDATE SET last = ref_counters.last + 1 RETURNING last",
        (case.inbox, case.year),
    )
    assert row is not None
    ref = f"{case.prefix}-{case.year}-{int(row[0]):04d}"
    row = await one(
        db,
        "INSERT INTO cases (ref, inbox, reporter, reporter_name, subject, language, created_at,"
        " updated_at, first_response_due, resolution_due, last_reporter_update_at)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?) RETURNING id",
        (ref, case.inbox, case.reporter, case.reporter_name, case.subject, case.language,
         case.created_at, case.created_at, case.first_response_due, case.resolution_due,
         case.created_at),  # the acknowledgement is the reporter's first update
    )
    assert row is not None
    return int(row[0]), ref


async def get(db: Db, ref: str) -> dict[str, Any] | None:
    r = await one(db, f"SELECT {', '.join(CASE_FIELDS)} FROM cases WHERE ref = ?", (ref,))
    return dict(zip(CASE_FIELDS, r, strict=True)) if r else None


async def get_by_id(db: Db, case_id: int) -> dict[str, Any] | None:
    r = await one(db, f"SELECT {', '.join(CASE_FIELDS)} FROM cases WHERE id = ?", (case_id,))
    return dict(zip(CASE_FIELDS, r, strict=True)) if r else None


async def listing(
    db: Db, *, inbox: str | None = None, state: str | None = None
) -> list[dict[str, Any]]:
    where, args = [], []
    if inbox:
        where.append("inbox = ?")
        args.append(inbox)
    if state:
        where.append("state = ?")
        args.append(state)
    sql = f"SELECT {', '.join(CASE_FIELDS)} FROM cases"
    if where:
        sql += " WHERE " + " AND ".join(where)
    rows = await db.execute_fetchall(sql + " ORDER BY id", args)
    return [dict(zip(CASE_FIELDS, r, strict=True)) for r in rows]


async def case_of_message_ids(
    db: Db, message_ids: Sequence[str], *, sender: str = "", party: bool = False
) -> int | None:
    """The case of the first of these Message-IDs that threads mail of `sender` (callers
    order them): one we sent; one of its reporter's or staff's mail when `sender` is its
    reporter or `party` (staff); one that `sender` cited on it before."""
    wanted = list(dict.fromkeys(message_ids))[:100]
    if not wanted:
        return None
    marks = ", ".join("?" * len(wanted))
    sender = sender.lower()
    rows = await db.execute_fetchall(
        "SELECT m.message_id, m.case_id FROM message_ids m JOIN cases c ON c.id = m.case_id"
        f" WHERE m.message_id IN ({marks})"
        "  AND (m.sender IS NULL OR ? OR lower(c.reporter) = ?)"
        " UNION ALL"
        f" SELECT message_id, case_id FROM cited_ids WHERE message_id IN ({marks})"
        "  AND sender = ?",
        [*wanted, bool(party), sender, *wanted, sender],
    )
    found: dict[str, int] = {}
    for r in rows:
        found.setdefault(str(r[0]), int(r[1]))  # the case's own before a citation
    return next((found[m] for m in wanted if m in found), None)


async def cases_of_message_ids(db: Db, message_ids: Sequence[str]) -> dict[str, int]:
    """The case each of these Message-IDs is its own (sent or received on it)."""
    wanted = list(dict.fromkeys(message_ids))[:200]
    if not wanted:
        return {}
    rows = await db.execute_fetchall(
        f"SELECT message_id, case_id FROM message_ids WHERE message_id IN"
        f" ({', '.join('?' * len(wanted))})", wanted)
    return {str(r[0]): int(r[1]) for r in rows}


async def has_inbound_message(db: Db, message_id: str, sender: str) -> bool:
    """Whether a mail with this Message-ID from this sender was already recorded as
    received on a case. The sender counts: a Message-ID is anyone's to copy, and a mail
    sent first under someone else's must not make theirs a duplicate."""
    return await one(
        db, "SELECT 1 FROM messages WHERE message_id = ? AND direction = 'in'"
        " AND lower(sender) = ? LIMIT 1", (message_id, sender.lower()),
    ) is not None


async def case_id_of_ref(db: Db, ref: str, inbox: str) -> int | None:
    r = await one(db, "SELECT id FROM cases WHERE ref = ? AND inbox = ?", (ref, inbox))
    return int(r[0]) if r else None


async def remember_message_ids(db: Db, case_id: int, message_ids: Sequence[str]) -> None:
    """Message-IDs of mail we sent on the case (notifications: not `messages` rows)."""
    if not message_ids:
        return
    await db.executemany(
        "INSERT INTO message_ids (message_id, case_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
        [(m, case_id) for m in message_ids],
    )


async def remember_citations(
    db: Db, case_id: int, sender: str, message_ids: Sequence[str]
) -> None:
    """What a mail on the case answers (In-Reply-To, References): threads only later mail
    of the same sender, never anyone else's (anyone can cite a public Message-ID)."""
    if not message_ids or not sender:
        return
    await db.executemany(
        "INSERT INTO cited_ids (message_id, case_id, sender) VALUES (?, ?, ?)"
        " ON CONFLICT DO NOTHING",
        [(m, case_id, sender.lower()) for m in dict.fromkeys(message_ids)],
    )


async def add_message(
    db: Db,
    *,
    case_id: int,
    direction: str,
    kind: str,
    sender: str,
    recipients: Sequence[str],
    message_id: str | None,
    subject: str,
    date: str,
    body: str,
    new_text: str,
    inbound_id: int | None = None,
    outbox_id: int | None = None,
    encrypted: bool = False,
    signature: str = "none",
    signer: str | None = None,
    readable: bool = True,
    trusted: bool = True,
) -> int:
    r = await one(
        db,
        "INSERT INTO messages (case_id, direction, kind, inbound_id, outbox_id, sender, recipients,"
        " message_id, subject, date, encrypted, signature, signer, readable, body, new_text,"
        " trusted) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) RETURNING id",
        (case_id, direction, kind, inbound_id, outbox_id, sender, json.dumps(list(recipients)),
         message_id, subject, date, int(encrypted), signature, signer, int(readable), body,
         new_text, int(trusted)),
    )
    assert r is not None  # its Message-ID goes into message_ids by trigger (messages_thread)
    return int(r[0])


async def add_event(
    db: Db, case_id: int, *, at: str, actor: str, action: str,
    old: str | None = None, new: str | None = None, detail: str | None = None,
) -> None:
    await db.execute(
        "INSERT INTO events (case_id, at, actor, action, old, new, detail)"
        " VALUES (?,?,?,?,?,?,?)",
        (case_id, at, actor, action, old, new, detail),
    )


async def touch(db: Db, case_id: int, at: str) -> None:
    await db.execute("UPDATE cases SET updated_at = ? WHERE id = ?", (at, case_id))


_MESSAGE_FIELDS = ("direction", "kind", "sender", "recipients", "message_id", "date",
                   "subject", "encrypted", "signature", "signer", "readable", "body", "new_text",
                   "trusted")


async def messages(db: Db, case_id: int) -> list[dict[str, Any]]:
    rows = await db.execute_fetchall(
        f"SELECT {', '.join(_MESSAGE_FIELDS)} FROM messages WHERE case_id = ? ORDER BY id",
        (case_id,),
    )
    out = []
    for r in rows:
        m = dict(zip(_MESSAGE_FIELDS, r, strict=True))
        m["recipients"] = json.loads(m["recipients"])
        m["encrypted"] = bool(m["encrypted"])
        m["readable"] = bool(m["readable"])
        m["trusted"] = bool(m["trusted"])
        out.append(m)
    return out


_EVENT_FIELDS = ("at", "actor", "action", "old", "new", "detail")


async def events(db: Db, case_id: int) -> list[dict[str, Any]]:
    rows = await db.execute_fetchall(
        f"SELECT {', '.join(_EVENT_FIELDS)} FROM events WHERE case_id = ? ORDER BY id",
        (case_id,),
    )
    return [dict(zip(_EVENT_FIELDS, r, strict=True)) for r in rows]


_UPDATABLE = frozenset(CASE_FIELDS) - {"id", "ref", "inbox", "created_at"} | {
    "next_escalation_at"}


async def update(db: Db, case_id: int, fields: Mapping[str, Any]) -> None:
    """Set case columns; only known columns (names are never taken from mail)."""
    bad = set(fields) - _UPDATABLE
    if bad:
        raise ValueError(f"not updatable: {sorted(bad)}")
    columns = list(fields)
    await db.execute(
        f"UPDATE cases SET {', '.join(f'{c} = ?' for c in columns)} WHERE id = ?",
        [*(fields[c] for c in columns), case_id],
    )


async def thread_ids(db: Db, case_id: int) -> list[str]:
    """The Message-IDs of the reporter's side of the thread, oldest first (for References)."""
    rows = await db.execute_fetchall(
        "SELECT message_id FROM messages WHERE case_id = ? AND message_id IS NOT NULL"
        " AND kind IN ('report', 'follow-up', 'ack', 'reply') ORDER BY id DESC LIMIT 20",
        (case_id,),
    )
    return [str(r[0]) for r in reversed(list(rows))]


async def any_before(db: Db, at: str) -> bool:
    """Whether any case was opened before `at` (an ISO moment)."""
    return await one(db, "SELECT 1 FROM cases WHERE created_at < ? LIMIT 1", (at,)) is not None


class Record(Protocol):
    """A case read by column name: a dict, or a result Row."""

    def __getitem__(self, key: str) -> Any: ...


# What the sweep and the digest read of a case: a tenth of its size, for 100,000 at once.
SCHEDULE_FIELDS = ("id", "ref", "inbox", "state", "severity", "assignee", "subject",
                   "created_at", "first_response_due", "first_responded_at", "resolution_due",
                   "resolved_at", "last_reporter_update_at")


async def due_for_escalation(db: Db, now: str, limit: int) -> list[Row]:
    """Open cases whose next escalation step is due, or not computed yet. Rows (read by
    column name) rather than dicts: a backlog of 100,000 must fit in little memory."""
    return list(await db.execute_fetchall(
        f"SELECT {', '.join(SCHEDULE_FIELDS)} FROM cases"
        " WHERE (next_escalation_at IS NULL OR next_escalation_at <= ?)"
        " AND state IN ('new', 'triaged', 'accepted', 'fixing') LIMIT ?",
        (now, limit),
    ))


async def for_digest(db: Db, inbox: str) -> list[Row]:
    return list(await db.execute_fetchall(
        f"SELECT {', '.join(SCHEDULE_FIELDS)} FROM cases WHERE inbox = ?", (inbox,)))


async def set_next_escalations(db: Db, moments: Sequence[tuple[str, int]]) -> None:
    """(moment, case_id) pairs: when each case's next step falls due."""
    await db.executemany("UPDATE cases SET next_escalation_at = ? WHERE id = ?", moments)


async def escalations_sent(db: Db, case_ids: Sequence[int]) -> set[tuple[int, str, str, str]]:
    """(case_id, deadline, due_at, level) of the steps already sent for these cases."""
    found: set[tuple[int, str, str, str]] = set()
    for i in range(0, len(case_ids), 500):
        chunk = list(case_ids[i:i + 500])
        rows = await db.execute_fetchall(
            "SELECT case_id, deadline, due_at, level FROM escalations WHERE case_id IN"
            f" ({', '.join('?' * len(chunk))})", chunk)
        found.update((int(r[0]), str(r[1]), str(r[2]), str(r[3])) for r in rows)
    return found


async def record_escalations(
    db: Db, steps: Sequence[tuple[int, str, str, str]], at: str
) -> None:
    """Record steps (case_id, deadline, due_at, level) as sent, each with an audit event.
    The caller read `escalations_sent` in the same write transaction: none is recorded yet."""
    await db.executemany(
        "INSERT INTO escalations (case_id, deadline, due_at, level, sent_at) VALUES (?,?,?,?,?)",
        [(*s, at) for s in steps],
    )
    await db.executemany(
        "INSERT INTO events (case_id, at, actor, action, detail) VALUES (?, ?, 'mailbot', ?, ?)",
        [(case_id, at, f"escalation {level}", f"{deadline} due {due_at}")
         for case_id, deadline, due_at, level in steps],
    )


@dataclass(frozen=True, slots=True)
class AckFacts:
    """What deciding on an acknowledgement needs, read in one trip to the database thread."""

    by_reporter: int  # cases this reporter opened since `since`
    key: str | None  # the reporter's PGP key's fingerprint
    acks: int  # acknowledgements to anyone since `since`, counted up to the limit only


async def ack_facts(db: Db, reporter: str, since: str, ack_limit: int) -> AckFacts:
    # The ack count stops at the limit: it runs on every new case and is all a flood check
    # needs (INDEXED BY: the planner would rather range over every ack by purpose).
    acks = ("outbox INDEXED BY outbox_acks WHERE purpose GLOB 'ack:*'" if dialect(db) == "sqlite"
            else "outbox WHERE purpose LIKE 'ack:%'")  # each the partial index's predicate
    row = await one(db, "SELECT (SELECT count(*) FROM cases WHERE reporter = ?1"
                        " AND created_at >= ?2),"
                        " (SELECT fingerprint FROM pgp_keys WHERE address = lower(?1)),"
                        f" (SELECT count(*) FROM (SELECT 1 FROM {acks}"
                        "  AND created_at >= ?2 LIMIT ?3) AS acks)",
                    (reporter, since, ack_limit))
    assert row is not None
    return AckFacts(int(row[0]), row[1], int(row[2]))


async def inbound_ids(db: Db, case_id: int) -> list[int]:
    """The stored raw mails of a case's incoming messages, oldest first."""
    rows = await db.execute_fetchall(
        "SELECT inbound_id FROM messages WHERE case_id = ? AND inbound_id IS NOT NULL"
        " ORDER BY id", (case_id,))
    return [int(r[0]) for r in rows]
