"""Case references stay unique and gapless per inbox and year when two instances open
cases at once, some of their transactions rolled back (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio

from mailbot.store import Store
from mailbot.store.cases import NewCase, open_case


class RolledBack(Exception):
    """A transaction that failed after drawing its reference."""


def new_case(inbox: str, n: int) -> NewCase:
    return NewCase(inbox=inbox, prefix="SEC" if inbox == "security" else "SUP", year=2026,
                   reporter=f"r{n}@example.net", reporter_name=None, subject=f"bug {n}",
                   language="en", created_at="2026-12-18T16:55:00+00:00",
                   first_response_due="2026-12-23T16:55:00+00:00",
                   resolution_due="2027-01-17T16:55:00+00:00")


async def opener(store: Store, start: int, count: int) -> int:
    """Open `count` cases one transaction each, every third rolled back after its insert;
    the number committed."""
    committed = 0
    for n in range(start, start + count):
        inbox = "security" if n % 2 else "support"
        try:
            async with store.write() as db:
                await open_case(db, new_case(inbox, n))
                if n % 3 == 0:
                    raise RolledBack
        except RolledBack:
            continue
        committed += 1
        await asyncio.sleep(0)
    return committed


async def test_concurrent_opens_from_two_instances_give_gapless_references(
    two: tuple[Store, Store]
) -> None:
    """Two instances opening cases in two inboxes at once draw each reference once, with
    no gap left by the transactions that rolled back: the counter's upsert takes the row
    lock on PostgreSQL, and a rollback gives its number back."""
    a, b = two
    done = await asyncio.gather(opener(a, 0, 60), opener(b, 1000, 60))
    async with a.read() as db:
        rows = await db.execute_fetchall("SELECT inbox, ref FROM cases ORDER BY inbox, ref")
    refs: dict[str, list[str]] = {}
    for inbox, ref in rows:
        refs.setdefault(str(inbox), []).append(str(ref))
    assert sum(len(r) for r in refs.values()) == sum(done)
    for inbox, prefix in (("security", "SEC"), ("support", "SUP")):
        assert refs[inbox] == [f"{prefix}-2026-{i:04d}" for i in range(1, len(refs[inbox]) + 1)]
