"""The weekly digest: what came in, what closed, what is due, and how the promises held.

`compute` is pure: cases in, numbers out. A promise is the first response by
`first_response_due` and the resolution by `resolution_due`; it is broken when its moment
passed before it was kept.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from markupsafe import Markup

from mailbot.clock import iso
from mailbot.config import Config
from mailbot.mail.compose import Outgoing, make_message_id
from mailbot.mail.render import Templates, long_date
from mailbot.models import CaseState
from mailbot.sla import Unit
from mailbot.store import Store
from mailbot.store import cases as case_q
from mailbot.store import disclosures as disclosures_q
from mailbot.store.cases import Record
from mailbot.triage import letters

WEEK = timedelta(days=7)
_DONE = frozenset({CaseState.RESOLVED, CaseState.REJECTED, CaseState.DUPLICATE,
                   CaseState.CLOSED})


@dataclass(frozen=True, slots=True)
class Line:
    """One case as the digest lists it."""

    ref: str
    subject: str
    state: str
    severity: str | None
    note: str = ""  # e.g. "first response due Wednesday" or "resolution overdue since ..."
    when: datetime | None = None


@dataclass(frozen=True, slots=True)
class Week:
    start: datetime
    new: int
    closed: int
    responded: int  # first responses that fell due this week
    on_time: int  # of those, kept


@dataclass
class Digest:
    inbox: str
    start: datetime
    end: datetime
    new: list[Line] = field(default_factory=list)
    closed: list[Line] = field(default_factory=list)
    open_by_state: Counter[str] = field(default_factory=Counter)
    open_by_severity: Counter[str] = field(default_factory=Counter)
    due_soon: list[Line] = field(default_factory=list)
    broken_this_week: list[Line] = field(default_factory=list)
    still_broken: list[Line] = field(default_factory=list)
    silent: list[Line] = field(default_factory=list)  # no update to the reporter in the cadence
    weeks: list[Week] = field(default_factory=list)  # oldest first, the last is this week
    median_first_response: timedelta | None = None
    median_resolution: timedelta | None = None

    @property
    def compliance_week(self) -> float | None:
        return _rate(self.weeks[-1:])

    @property
    def compliance_12_weeks(self) -> float | None:
        return _rate(self.weeks)


def _median(values: list[timedelta]) -> timedelta | None:
    if not values:
        return None
    values.sort()
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def _rate(weeks: Sequence[Week]) -> float | None:
    due = sum(w.responded for w in weeks)
    return None if due == 0 else 100.0 * sum(w.on_time for w in weeks) / due


def _at(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def compute(inbox: str, cases: Iterable[Record], end: datetime,
            cadence: timedelta | None = None) -> Digest:
    """The digest of the week before `end` for one inbox's cases; `cadence`: how often the
    policy promises the reporter an update."""
    start = end - WEEK
    d = Digest(inbox, start, end)
    first_waits, resolve_waits = [], []
    week_starts = [end - WEEK * (12 - i) for i in range(12)]
    tallies = [[0, 0, 0, 0] for _ in week_starts]  # new, closed, responded, on_time

    def bucket(moment: datetime | None) -> int | None:
        if moment is None or moment >= end or moment < week_starts[0]:
            return None
        # Weeks are wall-clock weeks of `end`'s zone: across a DST change one lasts an hour
        # more or less, so the index comes from the boundaries, not from a division.
        return bisect_right(week_starts, moment) - 1

    for c in cases:
        line = Line(c["ref"], c["subject"], c["state"], c["severity"])
        created = _at(c["created_at"])
        resolved = _at(c["resolved_at"])
        first_due = _at(c["first_response_due"])
        responded = _at(c["first_responded_at"])
        resolution_due = _at(c["resolution_due"])
        state = CaseState(c["state"])
        done = state in _DONE
        if (i := bucket(created)) is not None:
            tallies[i][0] += 1
        if done and (i := bucket(resolved)) is not None:
            tallies[i][1] += 1
        if first_due is not None and (i := bucket(first_due)) is not None:
            tallies[i][2] += 1
            tallies[i][3] += responded is not None and responded <= first_due
        if created and start <= created < end:
            d.new.append(line)
        if done and resolved and start <= resolved < end:
            d.closed.append(line)
        if responded and created:
            first_waits.append(responded - created)
        if done and resolved and created:
            resolve_waits.append(resolved - created)
        if done:
            continue
        d.open_by_state[state.value] += 1
        d.open_by_severity[c["severity"] or "unrated"] += 1
        last = _at(c["last_reporter_update_at"])
        if cadence and last and last < end - cadence and state is not CaseState.NEEDS_INFO:
            d.silent.append(Line(line.ref, line.subject, line.state, line.severity,
                                 "last update", last))
        for what, due, kept in (("first response", first_due, responded),
                                ("resolution", resolution_due, None)):
            if due is None or kept is not None:
                continue
            if end <= due < end + WEEK:
                d.due_soon.append(Line(line.ref, line.subject, line.state, line.severity,
                                       f"{what} due", due))
            elif due < end:
                broken = Line(line.ref, line.subject, line.state, line.severity,
                              f"{what} overdue", due)
                (d.broken_this_week if due >= start else d.still_broken).append(broken)
    d.weeks = [Week(ws, *t) for ws, t in zip(week_starts, tallies, strict=True)]
    d.median_first_response = _median(first_waits)
    d.median_resolution = _median(resolve_waits)
    for lines in (d.due_soon, d.broken_this_week, d.still_broken, d.silent):
        lines.sort(key=lambda x: x.when or end)
    return d


def chart_svg(weeks: Sequence[Week], width: int = 480, height: int = 120) -> str:
    """New (dark) and closed (light) cases per week as small bars; numbers only, no mail text."""
    top = max([1, *(max(w.new, w.closed) for w in weeks)])
    slot = width / max(1, len(weeks))
    bar = max(2.0, slot / 2 - 2)
    parts = []
    for i, w in enumerate(weeks):
        for j, (value, colour) in enumerate(((w.new, "#35618f"), (w.closed, "#9cc3e4"))):
            h = (height - 14) * value / top
            x = i * slot + j * (bar + 1)
            parts.append(f'<rect x="{x:.1f}" y="{height - 12 - h:.1f}" width="{bar:.1f}" '
                         f'height="{h:.1f}" fill="{colour}"/>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'role="img" aria-label="new and closed cases per week">{"".join(parts)}</svg>')


def duration_text(value: timedelta | None) -> str:
    if value is None:
        return "-"
    hours = value.total_seconds() / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"


LABELS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Weekly digest", "week": "Week", "new": "New cases", "closed": "Closed",
        "open": "Open cases by state", "severity": "Open cases by severity",
        "due": "Due in the next 7 days", "broken": "Promises broken this week",
        "still": "Still broken from before", "compliance": "First responses on time",
        "this_week": "this week", "twelve": "last 12 weeks",
        "median_first": "Median time to first response",
        "median_resolution": "Median time to resolution", "none": "none",
        "chart": "New and closed cases, last 12 weeks",
        "silent": "No update to the reporter within the promised cadence",
    },
    "nl": {
        "title": "Weekoverzicht", "week": "Week", "new": "Nieuwe zaken", "closed": "Afgesloten",
        "open": "Open zaken per status", "severity": "Open zaken per ernst",
        "due": "Deadlines in de komende 7 dagen", "broken": "Deze week gebroken beloftes",
        "still": "Nog steeds gebroken van eerder", "compliance": "Eerste reactie op tijd",
        "this_week": "deze week", "twelve": "laatste 12 weken",
        "median_first": "Mediane tijd tot eerste reactie",
        "median_resolution": "Mediane tijd tot oplossing", "none": "geen",
        "chart": "Nieuwe en afgesloten zaken, laatste 12 weken",
        "silent": "Melder niet binnen de beloofde termijn bijgepraat",
    },
}


PUBLICATIONS_AHEAD = timedelta(days=30)  # agreed and proposed publication dates listed


def render(
    templates: Templates, digests: Sequence[Digest], language: str, zone: str
) -> tuple[str, str]:
    """The text and HTML parts. Everything from mail is escaped in HTML (autoescape)."""
    tz = ZoneInfo(zone)
    language = language if language in LABELS else "en"

    def day(moment: datetime | None) -> str:
        return long_date(moment.astimezone(tz), language) if moment else ""

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:.0f}%"

    end = digests[0].end.astimezone(tz) if digests else None
    context = {
        "digests": digests, "t": LABELS[language], "day": day, "pct": pct,
        "duration": duration_text,
        # The chart holds only numbers we computed: safe to include as markup.
        "chart": lambda weeks: Markup(chart_svg(weeks)),
        "period": f"{end - WEEK:%Y-%m-%d} – {end:%Y-%m-%d}" if end else "",
    }
    return (templates.render_file("digest.txt", **context),
            templates.render_file("digest.html", **context))


async def build(store: Store, config: Config, end: datetime) -> list[Digest]:
    digests = []
    for inbox in config.inboxes:
        async with store.read() as db:
            cases = await case_q.for_digest(db, inbox.name)
            publications = await disclosures_q.upcoming(
                db, inbox.name, f"{end:%Y-%m-%d}", f"{end + PUBLICATIONS_AHEAD:%Y-%m-%d}")
        every = config.policies[inbox.policy].update_every
        cadence = None
        if every is not None:  # business days count as calendar days here: a digest, not a clock
            per_day = {Unit.MINUTES: 1 / 1440, Unit.HOURS: 1 / 24, Unit.WEEKS: 7.0}
            cadence = timedelta(days=every.amount * per_day.get(every.unit, 1.0))
        # Pure CPU over up to 100,000 rows: off the event loop, which keeps taking mail.
        digests.append(await asyncio.to_thread(compute, inbox.name, cases, end, cadence))
        # Upcoming publications (issue 17) beside the deadlines due soon.
        digests[-1].due_soon += [
            Line(p["ref"], p["subject"], p["state"], p["severity"],
                 "publication " + ("agreed" if p["agreed"] else "proposed, no consent yet"),
                 datetime.fromisoformat(f"{p['date']}T12:00:00+00:00")) for p in publications]
        digests[-1].due_soon.sort(key=lambda x: x.when or end)
    return digests


async def queue(
    store: Store, config: Config, templates: Templates, end: datetime, purpose: str
) -> bool:
    """Queue the digest once per purpose (the period, for the scheduled one)."""
    if not config.digest.to:
        return False
    digests = await build(store, config, end)
    text, html = await asyncio.to_thread(render, templates, digests, config.digest.language,
                                         zone_of(config))
    inbox = config.inboxes[0]
    mail = Outgoing(
        sender=inbox.address, sender_name="mailbot", to=list(config.digest.to),
        subject=f"{LABELS[config.digest.language]['title']} {end:%Y-%m-%d}", text=text,
        html=html, message_id=make_message_id(inbox.domain, "digest"), date=end,
        headers={"Auto-Submitted": "auto-generated", "X-Loop": inbox.address,
                 "X-Mailbot-Kind": "digest"},
    )
    async with store.write() as db:
        queued = await letters.queue(db, purpose=purpose, case_id=None, kind="digest",
                                     mail=mail, envelope_from=inbox.address, at=end)
    return queued.outbox_id is not None


_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def last_scheduled(now: datetime, schedule: str, zone: str) -> datetime:
    """The latest moment of `schedule` ("mon 09:00", local time in `zone`) at or before now."""
    day, _, hhmm = schedule.partition(" ")
    hour, minute = (int(x) for x in hhmm.split(":"))
    tz = ZoneInfo(zone)
    local = now.astimezone(tz)
    back = (local.weekday() - _DAYS.index(day)) % 7
    moment = datetime.combine(local.date() - timedelta(days=back), time(hour, minute),
                              tzinfo=tz)
    return moment if moment <= local else moment - WEEK


def zone_of(config: Config) -> str:
    return config.policies[config.inboxes[0].policy].timezone


async def scheduled_run(store: Store, config: Config, templates: Templates,
                        now: datetime) -> bool:
    """Queue the digest of the latest period if it was not queued yet (restart-safe)."""
    end = last_scheduled(now, config.digest.schedule, zone_of(config))
    async with store.read() as db:
        if not await case_q.any_before(db, iso(end)):
            return False  # nothing existed yet then: a new installation owes no digest
    return await queue(store, config, templates, end, f"digest:{end.isoformat()}")
