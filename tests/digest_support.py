"""A known database for the digest and the report: cases over 34 weeks, both DST changes of
2026 among them, a week of 208 new cases, every outcome, late and missing answers.

Cases are written with SQL (as the pipeline would have left them), their deadlines from the
policy's real business calendar; a seeded random generator makes the same database each
time. Tests count from it with SQL of their own.
"""

from __future__ import annotations

import os
import random
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from mailbot.clock import iso
from mailbot.config import Config, load_config
from mailbot.jobs import digest, report
from mailbot.jobs.report import Report
from mailbot.mail.render import Templates
from mailbot.sla import BusinessCalendar, deadlines, parse_duration
from mailbot.store import Store, one, open_store
from tests.support import direct

AMS = ZoneInfo("Europe/Amsterdam")
BRU = ZoneInfo("Europe/Brussels")
# The digest's moment: Monday 09:00 CET, a week after summer time ended (25 October).
END = datetime(2026, 11, 2, 9, 0, tzinfo=AMS)
FIRST = datetime(2026, 3, 9, 0, 0, tzinfo=AMS)  # before summer time began (29 March)

CONFIG = """
[storage]
database = "{db}"

[auth]
secret_file = "{db}.secret"

[gpg]
home = "{db}.gnupg"

[smtp_out]
host = "127.0.0.1"
port = 1

[policy.security]
timezone = "Europe/Amsterdam"
holidays = "NL"
first_response = "3 business days"
resolution = "30 days"
update_every = "14 days"

[policy.support]
timezone = "Europe/Brussels"
holidays = "BE"
first_response = "5 business days"
resolution = "30 days"

[[inbox]]
name = "security"
address = "security@example.org"
prefix = "SEC"
policy = "security"

[[inbox]]
name = "support"
address = "support@example.org"
prefix = "SUP"
policy = "support"
language = "nl"

[[staff]]
address = "alice@example.org"
role = "lead"

[[staff]]
address = "bob@example.org"

[digest]
to = ["team@example.org"]
language = "{language}"
target = 80
"""

POLICIES = {
    "security": (BusinessCalendar.create("Europe/Amsterdam", "NL"), "3 business days", "SEC"),
    "support": (BusinessCalendar.create("Europe/Brussels", "BE"), "5 business days", "SUP"),
}
SEVERITIES = ("critical", "high", "medium", "low", None)
OPEN = ("triaged", "accepted", "fixing", "needs-info")
# Moments around the clock changes, local time: the skipped and the repeated hour.
DST_MOMENTS = [
    datetime(2026, 3, 29, 1, 59, tzinfo=AMS),
    datetime(2026, 3, 29, 3, 0, tzinfo=AMS),
    datetime(2026, 10, 25, 2, 30, tzinfo=AMS),  # the first 02:30 (CEST)
    datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=AMS),  # the second (CET)
    datetime(2026, 10, 26, 8, 59, tzinfo=AMS),  # the week boundary after the change
    END - timedelta(minutes=30),  # the digest week's last half hour
]


def write_config(tmp: Path, language: str = "en") -> Path:
    path = tmp / "mailbot.toml"
    path.write_text(CONFIG.format(db=tmp / "mailbot.db", language=language))
    return path


async def known_database(db: Path) -> Path:
    """Create the schema with the real migrations, then fill it (the same each time)."""
    store = await Store.open(os.environ.get("MAILBOT_DATABASE") or db)
    await store.close()
    with direct(db) as conn:
        _fill(conn, random.Random(18))
    return db


def _moments(rng: random.Random) -> list[tuple[str, datetime]]:
    found = [("security", m) for m in DST_MOMENTS]
    week = FIRST
    while week < END - timedelta(days=7):
        for inbox in POLICIES:
            for _ in range(rng.randint(2, 9)):
                found.append((inbox, week + timedelta(seconds=rng.randint(0, 7 * 86400 - 1))))
        week += timedelta(days=7)
    last_week = END - timedelta(days=7)
    found += [("security", last_week + timedelta(seconds=rng.randint(0, 7 * 86400 - 1)))
              for _ in range(208)]
    return sorted(found, key=lambda x: x[1])


def _fill(conn: Any, rng: random.Random) -> None:
    numbers = dict.fromkeys(POLICIES, 0)
    for inbox, created in _moments(rng):
        calendar, promise, prefix = POLICIES[inbox]
        numbers[inbox] += 1
        ref = f"{prefix}-{created.year}-{numbers[inbox]:04d}"
        due = deadlines(calendar, created, parse_duration(promise), parse_duration("30 days"))
        responded = None
        if rng.random() < 0.85:
            # Mostly within the promise; some late (up to 8 days).
            responded = created + timedelta(hours=rng.choice([
                rng.uniform(0.5, 60), rng.uniform(0.5, 60), rng.uniform(0.5, 60),
                rng.uniform(60, 200)]))
            if responded >= END:
                responded = None
        state, resolved, reason = "new", None, None
        if responded is not None:
            state = rng.choice(OPEN)
            closing_at = responded + timedelta(days=rng.uniform(0.5, 50))
            if closing_at < END and rng.random() < 0.8:
                resolved = closing_at
                state = rng.choice(["resolved"] * 6 + ["rejected"] * 2 + ["duplicate", "closed",
                                                                          "closed"])
                if state == "closed":
                    reason = rng.choice(["out of scope", "Out-of-scope: SPF", "spam"])
        credit = None
        if state == "resolved" and rng.random() < 0.4:
            credit = rng.choice(["Rita Researcher", "anonymous", "<b>Mallory</b>"])
        subject = rng.choice(["XSS in /search", "SQL injection <script>", "Open redirect",
                              "TLS 1.0 enabled", "Password reset token reuse"])
        updates = [created] + ([responded] if responded else [])
        while updates[-1] + timedelta(days=7) < (resolved or END) and rng.random() < 0.7:
            updates.append(updates[-1] + timedelta(days=rng.uniform(3, 20)))
        updates = [u for u in updates if u < END and (resolved is None or u <= resolved)]
        row = conn.execute(
            "INSERT INTO cases (ref, inbox, state, severity, reporter, subject, language,"
            " assignee, created_at, updated_at, first_response_due, first_responded_at,"
            " resolution_due, resolved_at, credit, last_reporter_update_at)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) RETURNING id",
            (ref, inbox, state, rng.choice(SEVERITIES), f"r{numbers[inbox]}@example.net",
             f"{subject} #{numbers[inbox]}", "en",
             rng.choice(["alice@example.org", "bob@example.org", None]), iso(created),
             iso(updates[-1]), iso(due.first_response_due),
             iso(responded) if responded else None, iso(due.resolution_due),
             iso(resolved) if resolved else None, credit, iso(updates[-1])),
        ).fetchone()
        case_id = row[0]
        for i, moment in enumerate(updates):
            conn.execute(
                "INSERT INTO messages (case_id, direction, kind, sender, recipients, subject,"
                " date, body, new_text) VALUES (?, 'out', ?, ?, '[]', 's', ?, 'b', 'b')",
                (case_id, "ack" if i == 0 else "reply", f"{inbox}@example.org", iso(moment)))
        if resolved is not None:
            conn.execute(
                "INSERT INTO events (case_id, at, actor, action, old, new, detail)"
                " VALUES (?, ?, 'alice@example.org', ?, 'fixing', ?, ?)",
                (case_id, iso(resolved), "close" if state == "closed" else "status", state,
                 reason))


def utc(moment: datetime) -> str:
    """A moment as the database writes it (for SQL comparisons in tests)."""
    return iso(moment.astimezone(UTC))


async def known(tmp: Path, language: str = "en") -> Config:
    """The config and the known database under `tmp` (made once)."""
    config = load_config(write_config(tmp, language))
    store = await open_store(config.storage)
    try:
        async with store.read() as db:
            filled = await one(db, "SELECT 1 FROM cases LIMIT 1")
    finally:
        await store.close()
    if filled is None:
        await known_database(config.storage.database)
    return config


async def render_digest(tmp: Path, language: str = "en") -> tuple[Path, str, str]:
    """The known database under `tmp`, and its digest at END: (database, text, html)."""
    config = await known(tmp, language)
    store = await open_store(config.storage)
    try:
        digests = await digest.build(store, config, END)
    finally:
        await store.close()
    text, html = digest.render(Templates(), digests, language, "Europe/Amsterdam",
                               config.digest.target)
    return config.storage.database, text, html


async def build_report(tmp: Path, start: date, end: date, language: str = "en",
                       inbox: str | None = None) -> tuple[Config, Report]:
    """The compliance report of the known database, as of END."""
    config = await known(tmp, language)
    store = await open_store(config.storage)
    try:
        return config, await report.build(store, config, start, end, inbox, END)
    finally:
        await store.close()


class Cells(HTMLParser):
    """Every element with data-* attributes, with its text: what a chart shows."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.cells: list[dict[str, str]] = []
        self.chart = ""
        self.inbox = -1
        self._open: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if "data-chart" in a:
            self.chart = a["data-chart"]
            self.inbox += self.chart in ("weekly", "received")  # the first chart of an inbox
        if "data-list" in a or "data-table" in a:
            self.chart = ""  # past the chart
        data = {k[5:]: v for k, v in a.items() if k.startswith("data-")}
        if data and "chart" not in data:
            data |= {"chart": self.chart, "inbox": str(self.inbox), "text": ""}
            self.cells.append(data)
            self._open.append((tag, data))

    def handle_data(self, text: str) -> None:
        for _, d in self._open:
            d["text"] += text

    def handle_endtag(self, tag: str) -> None:
        if self._open and self._open[-1][0] == tag:
            self._open.pop()


def cells(html: str, chart: str, inbox: int = 0) -> list[dict[str, str]]:
    p = Cells()
    p.feed(html)
    return [c for c in p.cells if c["chart"] == chart and c["inbox"] == str(inbox)]


async def queued_digest(tmp: Path, language: str = "en") -> bytes:
    """The digest at END as queued for the relay: the bytes a recipient's client gets."""
    config = await known(tmp, language)
    store = await open_store(config.storage)
    try:
        assert await digest.queue(store, config, Templates(), END, "digest:test")
        async with store.read() as db:
            (row,) = await db.execute_fetchall(
                "SELECT raw FROM outbox WHERE purpose = 'digest:test'")
    finally:
        await store.close()
    return bytes(row[0])
