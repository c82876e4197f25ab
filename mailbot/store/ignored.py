"""Queries on inbound mail that opened no case (status 'ignored'), and why."""

from __future__ import annotations

from collections import Counter

from mailbot.store.db import Db

# What a reason is counted as: its kind, without the details (list id, Message-ID, header).
_GROUPS = ("duplicate", "mailing list digest", "mailing list", "precedence: bulk",
           "precedence: junk", "precedence: list", "loop", "auto-submitted", "out of office",
           "delivery report", "empty return path", "bounce sender", "auto-reply subject")


def group(reason: str | None) -> str:
    """The kind of a reason ("mailing list: x.example.org, not addressed…" → "mailing list")."""
    text = (reason or "unknown").strip().lower()
    return next((g for g in _GROUPS if text.startswith(g)), text[:60])


LIMIT = 10000  # rows `mailbot inbound --ignored` prints at most


async def listing(db: Db, since: str | None = None, limit: int = LIMIT) -> list[dict[str, object]]:
    """Ignored mail received at or after `since` (ISO 8601) in arrival order: the latest
    `limit` of it."""
    rows = await db.execute_fetchall(
        "SELECT id, received_at, source, mail_from, inbox, message_id, reason FROM inbound"
        " WHERE status = 'ignored' AND received_at >= ? ORDER BY received_at DESC, id DESC"
        " LIMIT ?", (since or "", limit))
    keys = ("id", "received_at", "source", "mail_from", "inbox", "message_id", "reason")
    return [dict(zip(keys, r, strict=True)) for r in list(rows)[::-1]]


async def by_reason(db: Db, since: str, until: str, inbox: str | None = None) -> Counter[str]:
    """How many mails were ignored in [since, until), by the kind of reason."""
    rows = await db.execute_fetchall(
        "SELECT reason FROM inbound WHERE status = 'ignored' AND received_at >= ?"
        " AND received_at < ? AND (CAST(? AS TEXT) IS NULL OR inbox = ?)",
        (since, until, inbox, inbox))
    return Counter(group(r[0]) for r in rows)


async def recent_heads(db: Db, mailbox: str, limit: int = 50) -> list[bytes]:
    """The first bytes (the headers) of the latest mails taken from an IMAP folder."""
    prefix = "imap:" + mailbox.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    rows = await db.execute_fetchall(
        "SELECT substr(raw, 1, 16384) FROM inbound WHERE source = 'imap'"
        " AND source_ref LIKE ? ESCAPE '\\' ORDER BY id DESC LIMIT ?", (prefix + ":%", limit))
    return [bytes(r[0]) for r in rows]
