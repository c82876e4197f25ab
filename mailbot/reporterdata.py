"""`mailbot export --reporter` and `mailbot erase --reporter`: a reporter's access and
erasure requests (GDPR articles 15 and 17).

Both refuse while the reporter has an open case, unless forced: an open case still needs
its mail, and an export of it would be incomplete tomorrow.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import mailbox
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailbot.clock import Clock, iso
from mailbot.errors import MailbotError
from mailbot.jobs.retention import vacuum
from mailbot.outqueue import actor
from mailbot.store import Store, erase
from mailbot.store import cases as case_q


@dataclass(frozen=True, slots=True)
class Exported:
    mails: int
    cases: int
    mbox: Path
    fields: Path


def _refuse_open(address: str, found: erase.ReporterCases, force: bool) -> None:
    if found.open and not force:
        raise MailbotError(f"{address} has open cases ({', '.join(found.open)}): close them "
                           "first, or --force")


async def export(store: Store, address: str, out: Path, force: bool) -> Exported:
    async with store.read() as db:
        found = await erase.of_reporter(db, address)
        _refuse_open(address, found, force)
        rows = await db.execute_fetchall(
            "SELECT id FROM cases WHERE lower(reporter) = lower(?) ORDER BY id", (address,))
        cases: list[dict[str, Any]] = []
        for (case_id,) in rows:
            case = await case_q.get_by_id(db, int(case_id))
            assert case is not None
            case.pop("id", None)
            cases.append(case | {"messages": await case_q.messages(db, int(case_id)),
                                 "events": await case_q.events(db, int(case_id))})
        raws = [bytes(r[0]) for r in await db.execute_fetchall(
            "SELECT CASE WHEN i.raw_of IS NULL THEN i.raw"
            " ELSE (SELECT o.raw FROM inbound o WHERE o.id = i.raw_of) END FROM inbound i"
            " WHERE (i.case_id IN (SELECT id FROM cases WHERE lower(reporter) = lower(?))"
            " OR lower(i.mail_from) = lower(?)) ORDER BY i.id", (address, address))]
    raws = [r for r in raws if r]
    mbox_path, json_path = out / "reporter.mbox", out / "cases.json"
    await asyncio.to_thread(_write, raws, cases, mbox_path, json_path)
    return Exported(len(raws), len(cases), mbox_path, json_path)


def _write(raws: list[bytes], cases: list[dict[str, Any]], mbox_path: Path,
           json_path: Path) -> None:
    """Both files new and private: an export is the reporter's data, for them alone."""
    mbox_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    for path in (mbox_path, json_path):
        if path.exists():
            raise MailbotError(f"{path}: exists already; choose another --out")
    with os.fdopen(os.open(json_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w",
                   encoding="utf-8") as f:
        json.dump(cases, f, indent=2, ensure_ascii=False)
    os.close(os.open(mbox_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    box = mailbox.mbox(mbox_path, create=False)
    try:
        for raw in raws:
            box.add(raw)
        box.flush()
    finally:
        box.close()


async def erase_reporter(store: Store, clock: Clock, address: str, force: bool
                         ) -> tuple[int, int]:
    """Pseudonymise the address in their cases and empty their mail and texts; the number
    of cases and of raw mails."""
    alias = f"erased-{secrets.token_hex(6)}@invalid"
    async with store.write() as db:
        found = await erase.of_reporter(db, address)
        _refuse_open(address, found, force)
        ids = found.closed + ([int(r[0]) for r in await db.execute_fetchall(
            "SELECT id FROM cases WHERE lower(reporter) = lower(?) AND id NOT IN"
            f" ({','.join(map(str, found.closed)) or '0'})", (address,))] if force else [])
        mails = await erase.scrub(db, ids, at=iso(clock()), actor=actor(),
                                  why="erasure request of the reporter", pseudonym=alias)
        mails += await erase.stray_mail(db, address)
    with contextlib.suppress(MailbotError):  # compacting is best effort; the data is gone
        await vacuum(store)
    return len(ids), mails
