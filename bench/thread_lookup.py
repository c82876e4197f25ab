"""Threading at scale: find the case of a mail among 100,000 cases and 1,000,000 Message-IDs.

    python bench/thread_lookup.py [--count 100000] [--ids 10*COUNT] [--lookups 2000]

Fills a fresh database through plain sqlite3 (fast), then times mailbot's own lookup
(threads.find_case over the store, through aiosqlite) for mails that answer a known
Message-ID, carry only a subject reference, or thread nowhere. Prints p50/p99 per kind.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mailbot.config import InboxConfig
from mailbot.mail.parse import parse
from mailbot.store import Store
from mailbot.store import cases as case_q
from mailbot.triage.threads import find_case

INBOX = InboxConfig("security", "security@example.org", "SEC", "security")


def fill(path: Path, cases: int, ids: int) -> None:
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = OFF")
    db.execute("BEGIN")
    db.executemany(
        "INSERT INTO cases (ref, inbox, reporter, subject, language, created_at, updated_at)"
        " VALUES (?, 'security', ?, 'subject', 'en', '2026-01-01', '2026-01-01')",
        ((f"SEC-2026-{i:06d}", f"r{i}@example.net") for i in range(1, cases + 1)),
    )
    db.executemany(
        "INSERT INTO message_ids (message_id, case_id) VALUES (?, ?)",
        ((f"<m{i}@example.net>", i % cases + 1) for i in range(ids)),
    )
    db.execute("COMMIT")
    db.close()


class Lookup:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def by_message_ids(self, message_ids: tuple[str, ...]) -> int | None:
        async with self.store.read() as db:
            return await case_q.case_of_message_ids(db, message_ids)

    async def by_ref(self, ref: str, inbox: str) -> int | None:
        async with self.store.read() as db:
            return await case_q.case_id_of_ref(db, ref, inbox)


def mail(kind: str, rnd: random.Random, cases: int, ids: int) -> bytes:
    head = "From: r@example.net\r\nTo: security@example.org\r\n"
    if kind == "in-reply-to":
        head += f"In-Reply-To: <m{rnd.randrange(ids)}@example.net>\r\nSubject: Re: x\r\n"
    elif kind == "subject ref":
        head += f"Subject: Re: [SEC-2026-{rnd.randrange(1, cases):06d}] x\r\n"
    else:
        head += "In-Reply-To: <unknown@example.net>\r\nSubject: new\r\n"
    return (head + "\r\nbody\r\n").encode()


async def measure(path: Path, cases: int, ids: int, lookups: int) -> None:
    store = await Store.open(path)
    lookup = Lookup(store)
    rnd = random.Random(1)
    for kind in ("in-reply-to", "subject ref", "no thread"):
        mails = [parse(mail(kind, rnd, cases, ids)) for _ in range(lookups)]
        times, found = [], 0
        for m in mails:
            start = time.perf_counter()
            found += await find_case(m, (), inbox=INBOX, lookup=lookup) is not None
            times.append(time.perf_counter() - start)
        times.sort()
        print(f"{kind:<14} p50 {statistics.median(times) * 1e3:6.3f} ms   "
              f"p99 {times[int(len(times) * 0.99) - 1] * 1e3:6.3f} ms   found {found}/{lookups}")
    await store.close()


async def create_schema(path: Path) -> None:
    store = await Store.open(path)  # runs the migrations
    await store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", "--cases", dest="cases", type=int, default=100_000,
                    help="cases in the database")
    ap.add_argument("--ids", type=int, help="Message-IDs on them (default: 10 per case)")
    ap.add_argument("--lookups", type=int, default=2000, help="lookups timed per kind")
    args = ap.parse_args()
    args.ids = args.ids or 10 * args.cases
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "threads.db"
        asyncio.run(create_schema(path))
        start = time.perf_counter()
        fill(path, args.cases, args.ids)
        print(f"{args.cases} cases, {args.ids} Message-IDs "
              f"(filled in {time.perf_counter() - start:.1f} s)")
        asyncio.run(measure(path, args.cases, args.ids, args.lookups))


if __name__ == "__main__":
    main()
