"""Erasing personal data from cases: raw mail, texts, attachments (inside the raw mail) and
the reporter's address. What stays is what the digest and the compliance report count: the
case row with its reference, inbox, state, severity and dates, and an audit trail whose
details are gone.

Raw mail shared with a case that is kept (one mail to two inboxes, inbound.raw_of) stays
until that case goes too. The space is given back by `vacuum` (outside any transaction).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from mailbot.store.db import Db, one

CLOSED = ("resolved", "rejected", "duplicate", "closed")
ERASED = "[erased]"
_IN_CLOSED = f"state IN ({', '.join(repr(s) for s in CLOSED)})"


@dataclass(frozen=True, slots=True)
class ReporterCases:
    closed: list[int]
    open: list[str]  # references


async def expired(db: Db, inbox: str, closed_before: str) -> list[int]:
    """Closed cases of `inbox` closed before this moment whose data is still there."""
    rows = await db.execute_fetchall(
        f"SELECT id FROM cases WHERE inbox = ? AND {_IN_CLOSED} AND erased_at IS NULL"
        " AND resolved_at IS NOT NULL AND resolved_at < ? ORDER BY id", (inbox, closed_before))
    return [int(r[0]) for r in rows]


async def of_reporter(db: Db, address: str) -> ReporterCases:
    rows = await db.execute_fetchall(
        f"SELECT id, ref, {_IN_CLOSED} FROM cases WHERE lower(reporter) = lower(?) ORDER BY id",
        (address,))
    return ReporterCases([int(r[0]) for r in rows if r[2]], [str(r[1]) for r in rows if not r[2]])


async def scrub(db: Db, case_ids: Sequence[int], *, at: str, actor: str, why: str,
                pseudonym: str | None = None) -> int:
    """Erase the personal data of these cases; the number of raw mails deleted."""
    deleted = 0
    for case_id in case_ids:
        r = await one(db, "SELECT reporter FROM cases WHERE id = ?", (case_id,))
        if r is None:
            continue
        reporter = str(r[0])
        alias = pseudonym or f"erased-case-{case_id}@invalid"
        deleted += await _raw_of_case(db, case_id)
        await db.execute(
            "UPDATE messages SET body = '', new_text = '', subject = ?,"
            " sender = CASE WHEN lower(sender) = lower(?) THEN ? ELSE sender END,"
            " recipients = ? WHERE case_id = ?",
            (ERASED, reporter, alias, json.dumps([ERASED]), case_id))
        # Mail not yet sent to an erased reporter will never be: it would carry their data.
        await db.execute("UPDATE outbox SET raw = ?, rcpt_to = ?, status = CASE status"
                         " WHEN 'pending' THEN 'dropped' ELSE status END WHERE case_id = ?",
                         (b"", json.dumps([alias]), case_id))
        await db.execute("DELETE FROM held_notices WHERE case_id = ?", (case_id,))
        # The triage help read the reporter's text (hosts, paths, a sketch of the words):
        # gone with it, and so the case is no longer anyone's likely duplicate.
        await db.execute("DELETE FROM assessment_keys WHERE case_id = ?", (case_id,))
        await db.execute("DELETE FROM assessments WHERE case_id = ?", (case_id,))
        await db.execute("UPDATE message_ids SET sender = ? WHERE case_id = ?"
                         " AND lower(sender) = lower(?)", (alias, case_id, reporter))
        await db.execute("UPDATE cited_ids SET sender = ? WHERE case_id = ?"
                         " AND sender = lower(?)", (alias, case_id, reporter))
        await db.execute("UPDATE case_keys SET address = ? WHERE case_id = ?"
                         " AND address = lower(?)", (alias, case_id, reporter))
        await db.execute(
            "UPDATE events SET detail = NULL,"
            " actor = CASE WHEN lower(actor) = lower(?) THEN ? ELSE actor END WHERE case_id = ?",
            (reporter, alias, case_id))
        await db.execute(
            "UPDATE cases SET reporter = ?, reporter_name = NULL, subject = ?, erased_at = ?"
            " WHERE id = ?", (alias, ERASED, at, case_id))
        await db.execute("INSERT INTO events (case_id, at, actor, action, detail)"
                         " VALUES (?, ?, ?, 'erased', ?)", (case_id, at, actor, why))
    return deleted


async def _raw_of_case(db: Db, case_id: int) -> int:
    """Empty the raw mail of the case's inbound rows, but not a raw another kept row reads."""
    ids = [int(r[0]) for r in await db.execute_fetchall(
        "SELECT id FROM inbound WHERE case_id = ? UNION"
        " SELECT inbound_id FROM messages WHERE case_id = ? AND inbound_id IS NOT NULL",
        (case_id, case_id))]
    deleted = 0
    for inbound_id in ids:
        shared = await db.execute_fetchall(
            "SELECT 1 FROM inbound i LEFT JOIN cases c ON c.id = i.case_id"
            " WHERE i.raw_of = ? AND (c.id IS NULL OR c.erased_at IS NULL)"
            " AND c.id IS DISTINCT FROM ?",
            (inbound_id, case_id))
        if shared:
            continue
        cur = await db.execute("UPDATE inbound SET raw = ?, mail_from = NULL, peer = NULL"
                               " WHERE id = ? AND length(raw) > 0", (b"", inbound_id))
        deleted += cur.rowcount
    return deleted


async def stray_mail(db: Db, address: str) -> int:
    """Mail from this address that belongs to no case (quarantined, ignored): emptied."""
    cur = await db.execute(
        "UPDATE inbound SET raw = ?, mail_from = NULL, peer = NULL WHERE case_id IS NULL"
        " AND lower(mail_from) = lower(?) AND length(raw) > 0", (b"", address))
    return cur.rowcount
