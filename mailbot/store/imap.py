"""Queries on `imap_folders` and `imap_messages`: what each watched folder gave us, and
where each watcher stands (read by `mailbot status` from another process)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mailbot.store.db import Db, one


@dataclass(frozen=True, slots=True)
class Resume:
    """Where a watcher picks up: the UIDVALIDITY it counted in, the highest UID it took,
    and the UIDs it took but may not have marked on the server yet."""

    uidvalidity: int | None
    resync_below: int
    last_uid: int
    unmarked: tuple[int, ...]


async def resume(db: Db, mailbox: str) -> Resume:
    row = await one(db, "SELECT uidvalidity, resync_below FROM imap_folders WHERE mailbox = ?",
                    (mailbox,))
    if row is None or row[0] is None:
        return Resume(None, 0, 0, ())
    uidvalidity = int(row[0])
    last = await one(db, "SELECT max(uid) FROM imap_messages WHERE mailbox = ? AND uidvalidity = ?",
                     (mailbox, uidvalidity))
    unmarked = await db.execute_fetchall(
        "SELECT uid FROM imap_messages WHERE mailbox = ? AND uidvalidity = ? AND marked = 0"
        " ORDER BY uid", (mailbox, uidvalidity))
    return Resume(uidvalidity, int(row[1]), int(last[0] or 0) if last else 0,
                  tuple(int(r[0]) for r in unmarked))


async def new_generation(
    db: Db, mailbox: str, inbox: str, uidvalidity: int, resync_below: int, at: str
) -> None:
    """Count UIDs in a new UIDVALIDITY from now on (the old ones mean nothing any more)."""
    await db.execute(
        "INSERT INTO imap_folders (mailbox, inbox, uidvalidity, resync_below, state, state_at)"
        " VALUES (?, ?, ?, ?, 'syncing', ?) ON CONFLICT (mailbox) DO UPDATE SET"
        " uidvalidity = excluded.uidvalidity, resync_below = excluded.resync_below",
        (mailbox, inbox, uidvalidity, resync_below, at))


async def taken_before(db: Db, mailbox: str, uidvalidity: int, message_id: str) -> int | None:
    """The inbound row of a mail with this Message-ID taken from the folder under an earlier
    UIDVALIDITY: the same mail, renumbered by the server."""
    row = await one(
        db, "SELECT inbound_id FROM imap_messages WHERE mailbox = ? AND message_id = ?"
        " AND uidvalidity != ? LIMIT 1", (mailbox, message_id, uidvalidity))
    return int(row[0]) if row else None


async def taken(
    db: Db, mailbox: str, uidvalidity: int, rows: Sequence[tuple[int, str | None, int]]
) -> None:
    """Record (uid, message_id, inbound_id) rows, in the transaction that stored the mail."""
    await db.executemany(
        "INSERT INTO imap_messages (mailbox, uidvalidity, uid, message_id, inbound_id)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        [(mailbox, uidvalidity, uid, mid, inbound_id) for uid, mid, inbound_id in rows])


async def marked(db: Db, mailbox: str, uidvalidity: int, uids: Sequence[int]) -> None:
    await db.executemany(
        "UPDATE imap_messages SET marked = 1 WHERE mailbox = ? AND uidvalidity = ? AND uid = ?",
        [(mailbox, uidvalidity, uid) for uid in uids])


async def set_state(
    db: Db, mailbox: str, inbox: str, state: str, error: str | None, failures: int, at: str
) -> None:
    """A watcher's new state; `error` (when given) replaces the latest failure kept."""
    await db.execute(
        "INSERT INTO imap_folders (mailbox, inbox, state, last_error, failures, state_at)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (mailbox) DO UPDATE SET inbox = excluded.inbox,"
        " state = excluded.state,"
        " last_error = coalesce(excluded.last_error, imap_folders.last_error),"
        " failures = excluded.failures, state_at = excluded.state_at",
        (mailbox, inbox, state, error, failures, at))


async def set_mode(db: Db, mailbox: str, mode: str, warnings: Sequence[str]) -> None:
    """How the watcher waits for mail and why, and where it departs from its config."""
    await db.execute("UPDATE imap_folders SET mode = ?, warnings = ? WHERE mailbox = ?",
                     (mode, "; ".join(warnings) or None, mailbox))


async def statuses(db: Db) -> list[dict[str, object]]:
    """Each watched folder: its watcher's state, UIDVALIDITY, last UID, and mail not yet
    marked on the server."""
    rows = await db.execute_fetchall(
        "SELECT f.mailbox, f.inbox, f.state, f.state_at, f.mode, f.warnings, f.last_error,"
        " f.failures, f.uidvalidity,"
        " (SELECT max(uid) FROM imap_messages m WHERE m.mailbox = f.mailbox"
        "  AND m.uidvalidity = f.uidvalidity),"
        " (SELECT count(*) FROM imap_messages m WHERE m.mailbox = f.mailbox"
        "  AND m.uidvalidity = f.uidvalidity),"
        " (SELECT count(*) FROM imap_messages m WHERE m.mailbox = f.mailbox"
        "  AND m.uidvalidity = f.uidvalidity AND marked = 0)"
        " FROM imap_folders f ORDER BY f.inbox, f.mailbox")
    keys = ("mailbox", "inbox", "state", "since", "mode", "warnings", "last_error", "failures",
            "uidvalidity", "last_uid", "taken", "unmarked")
    return [dict(zip(keys, r, strict=True)) for r in rows]


async def stuck_folders(db: Db, failures: int) -> list[tuple[str, str, int]]:
    """Folders whose watcher stopped or failed `failures` times in a row: (mailbox, state,
    failures)."""
    return [(str(m), str(s), int(f)) for m, s, f in await db.execute_fetchall(
        "SELECT mailbox, state, failures FROM imap_folders WHERE state = 'stopped'"
        " OR failures >= ?", (failures,))]
