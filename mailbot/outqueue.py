"""`mailbot queue`: the outgoing mail that waits or failed, and what an operator does to it.

Retry makes a mail due now with its backoff started afresh (the daemon's sender picks it
up within a minute, or at once on its next wake); drop keeps the row, marked `dropped`, so
nothing disappears without a trace. Both leave an audit row (ops_audit) and, for a mail of
a case, an event in the case's audit log.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from mailbot.clock import Clock, iso
from mailbot.errors import MailbotError
from mailbot.store import Db, Store
from mailbot.store import cases as case_q
from mailbot.store import outbox as outbox_q
from mailbot.store.outbox import QueuedMail


def actor() -> str:
    """Who ran the command, for the audit log: the login behind sudo if there is one."""
    try:
        name = os.environ.get("SUDO_USER") or getpass.getuser()
    except (KeyError, OSError):  # a container's uid without a passwd entry
        name = str(os.getuid())
    return f"cli:{name}"


def age(created_at: str, now: datetime) -> str:
    """A short age like 3d4h, 2h5m, 40s."""
    seconds = max(0, int((now - datetime.fromisoformat(created_at)).total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes}m"
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def as_json(m: QueuedMail, now: datetime) -> dict[str, Any]:
    data = asdict(m)
    data["recipients"] = list(m.recipients)
    data["age_seconds"] = max(0, int((now - datetime.fromisoformat(m.created_at))
                                     .total_seconds()))
    return data


def as_lines(mails: list[QueuedMail], now: datetime) -> list[str]:
    lines = [f"{'ID':>6}  {'STATUS':<8} {'AGE':>7} {'TRIES':>5}  {'PURPOSE':<28} RECIPIENTS"]
    for m in mails:
        lines.append(f"{m.id:>6}  {m.status:<8} {age(m.created_at, now):>7} {m.attempts:>5}  "
                     f"{m.purpose:<28} {', '.join(m.recipients) or '-'}")
        if m.last_error:
            lines.append(f"{'':>8}last error: {' '.join(m.last_error.split())}")
    return lines


async def listing(store: Store) -> list[QueuedMail]:
    async with store.read() as db:
        return await outbox_q.waiting(db)


async def retry(store: Store, clock: Clock, ids: list[int] | None) -> list[int]:
    """Make these mails (None: every failed one) due now; the ids done. An unknown id is an
    error naming it, and nothing is changed."""
    now = iso(clock())
    async with store.write() as db:
        wanted = await outbox_q.failed_ids(db) if ids is None else ids
        for outbox_id in wanted:
            mail = await outbox_q.get_waiting(db, outbox_id)
            if mail is None:
                raise MailbotError(f"outbox {outbox_id} is neither pending nor failed")
            await outbox_q.retry_now(db, outbox_id, now)
            await _audit(db, mail, now, "outbox retried")
    return wanted


async def drop(store: Store, clock: Clock, outbox_id: int) -> QueuedMail:
    now = iso(clock())
    async with store.write() as db:
        mail = await outbox_q.get_waiting(db, outbox_id)
        if mail is None:
            raise MailbotError(f"outbox {outbox_id} is neither pending nor failed")
        await outbox_q.drop(db, outbox_id)
        await _audit(db, mail, now, "outbox dropped")
    return mail


async def _audit(db: Db, mail: QueuedMail, now: str, action: str) -> None:
    # The purpose and a count, not the addresses: the audit outlives a reporter's data.
    detail = f"{mail.purpose} ({mail.status}, {mail.attempts} attempts)"
    await outbox_q.audit(db, at=now, actor=actor(), action=action, outbox_id=mail.id,
                         detail=detail)
    if mail.case_id is not None:
        await case_q.add_event(db, mail.case_id, at=now, actor=actor(), action=action,
                               detail=f"outbox {mail.id}: {detail}")


@dataclass(frozen=True, slots=True)
class SenderState:
    """The sender as the outbox table shows it: what waits, since when, and why."""

    pending: int
    failed: int
    oldest_pending: str | None
    last_error: str | None

    def line(self, now: datetime) -> str:
        if not self.pending:
            state = "idle, nothing waiting"
        else:
            assert self.oldest_pending is not None
            state = (f"{'retrying' if self.last_error else 'sending'}: {self.pending} waiting,"
                     f" the oldest for {age(self.oldest_pending, now)}")
            if self.last_error:
                state += f"; last error: {' '.join(self.last_error.split())}"
        if self.failed:
            state += f"; {self.failed} failed (mailbot queue)"
        return state


async def sender_state(db: Db) -> SenderState:
    counts = await outbox_q.counts(db)
    return SenderState(counts.get("pending", 0), counts.get("failed", 0),
                       await outbox_q.oldest_pending(db), await outbox_q.last_error(db))
