"""The retention job: the personal data of cases closed longer ago than their inbox's
`retention` is erased (mailbot/store/erase.py), then the database file is compacted so
the deleted bytes leave the disk, not only the tables.

One case per transaction: intake is never kept waiting for long.
"""

from __future__ import annotations

import logging
from datetime import datetime

from mailbot.clock import iso
from mailbot.config import Config
from mailbot.store import Store, erase

log = logging.getLogger(__name__)


async def run(store: Store, config: Config, now: datetime) -> int:
    """Erase what is due; the number of cases erased."""
    erased = 0
    for inbox in config.inboxes:
        if inbox.retention is None:
            continue
        async with store.read() as db:
            due = await erase.expired(db, inbox.name, iso(now - inbox.retention))
        for case_id in due:
            async with store.write() as db:
                await erase.scrub(db, [case_id], at=iso(now), actor="mailbot",
                                  why=f"retention: {inbox.retention.days} days after closing")
            erased += 1
    if erased:
        await vacuum(store)
        log.info("retention: the personal data of %d closed cases erased", erased)
    return erased


async def vacuum(store: Store) -> None:
    """Erased bytes leave the disk too, not only the rows (see `Store.compact`)."""
    await store.compact()
