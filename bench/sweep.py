"""Escalation sweep and digest over 100,000 open cases.

    python bench/sweep.py [--count 100000]

Fills a fresh database with open cases whose deadlines are spread over two months around
"now", then times: the first sweep (many steps due at once: summaries), a steady-state sweep
a minute later (what the daemon does every minute), and building + rendering the weekly
digest. Prints seconds and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mailbot.clock import iso
from mailbot.config import Config, parse_config
from mailbot.jobs import digest
from mailbot.jobs.escalation import Escalator
from mailbot.mail.render import Templates
from mailbot.store import open_store

NOW = datetime(2026, 12, 16, 10, 0, tzinfo=UTC)  # a Wednesday morning


def fill(path: Path, count: int, now: datetime = NOW) -> None:
    rnd = random.Random(1)
    db = sqlite3.connect(path)
    db.execute("PRAGMA synchronous = OFF")
    db.execute("BEGIN")

    # A generator: the bench's own memory must not hide mailbot's.
    def rows() -> Iterator[tuple[object, ...]]:
        for i in range(1, count + 1):
            created = now - timedelta(days=rnd.uniform(0, 45))
            first_due = created + timedelta(days=rnd.uniform(3, 6))
            responded = iso(first_due - timedelta(days=1)) if rnd.random() < 0.7 else None
            yield (f"SEC-2026-{i:06d}", iso(created), iso(created), iso(first_due), responded,
                   iso(created + timedelta(days=30)),
                   rnd.choice(["new", "triaged", "accepted", "fixing"]),
                   rnd.choice([None, "low", "medium", "high", "critical"]))

    db.executemany(
        "INSERT INTO cases (ref, inbox, reporter, subject, language, created_at, updated_at,"
        " first_response_due, first_responded_at, resolution_due, state, severity)"
        " VALUES (?, 'security', 'r@example.net', 'A finding', 'en', ?, ?, ?, ?, ?, ?, ?)",
        rows())
    db.execute("COMMIT")
    db.close()


def config(work: Path) -> Config:
    return parse_config({
        "storage": {"database": str(work / "sweep.db")},
        "auth": {"secret_file": str(work / "secret")},
        "policy": {"security": {"timezone": "Europe/Amsterdam", "holidays": "NL"}},
        "inbox": [{"name": "security", "address": "security@example.org", "prefix": "SEC",
                   "policy": "security"}],
        "staff": [{"address": "alice@example.org", "role": "lead"},
                  {"address": "carol@example.org", "role": "manager"}],
    }, None)


async def run(work: Path, count: int) -> None:
    cfg = config(work)
    store = await open_store(cfg.storage)
    await store.close()
    start = time.perf_counter()
    fill(cfg.storage.database, count)
    print(f"{count} open cases (filled in {time.perf_counter() - start:.1f} s; "
          f"RSS so far {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)")
    store = await open_store(cfg.storage)
    clock = [NOW]
    escalator = Escalator(cfg, store, Templates(), b"s" * 32, lambda: clock[0])
    for label, moment in (("first sweep (backlog: summaries)", NOW),
                          ("steady-state sweep, 1 min later", NOW + timedelta(minutes=1))):
        clock[0] = moment
        start = time.perf_counter()
        queued = await escalator.sweep()
        print(f"{label:<36} {time.perf_counter() - start:6.2f} s   mails queued {queued}")
    start = time.perf_counter()
    digests = await digest.build(store, cfg, NOW)
    text, html = digest.render(Templates(), digests, "en", "Europe/Amsterdam")
    print(f"{'digest (build + render)':<36} {time.perf_counter() - start:6.2f} s   "
          f"{len(text) // 1024} KB text, {len(html) // 1024} KB html")
    await store.close()
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", "--cases", dest="cases", type=int, default=100_000,
                    help="open cases")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(Path(tmp), args.cases))


if __name__ == "__main__":
    main()
