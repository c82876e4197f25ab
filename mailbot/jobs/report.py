"""The compliance report: how each inbox kept its policy's promises over a period (pure).

What counts where (the report prints these rules too):

- The period is `from` 00:00 to the end of `to`, local time of each inbox's policy.
- *Received*: cases opened in the period. Their **first response** is kept when it came by
  `first_response_due`, broken when it came later or not at all by the report's moment
  ("as of"), pending otherwise; the same for their **resolution** by `resolution_due`
  (the policy's default or the date agreed with `#due`). The percentage is of the kept and
  broken ones: a promise still running is neither.
- *Time to first response*: of the received cases answered; *time to resolution* and
  *outcomes*: of the cases closed in the period. Business days are the business days after
  the day of receipt up to and including the day of the answer (0: the same day), as the
  promise counts them; hours are elapsed time. Median, and the 90th percentile by nearest
  rank.
- *Reporter updates within the cadence* (policies with `update_every`): every update that
  fell due in the period, one cadence after the previous one (the acknowledgement first),
  while the case was open; kept when the reporter heard from us by then.
- *Outcomes*: resolved, rejected, duplicate, out of scope (a `#close` whose reason says
  "out of scope"), closed for another reason.
- A case counts under its severity now, and under "all".
"""

from __future__ import annotations

import asyncio
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from mailbot.clock import iso
from mailbot.config import Config
from mailbot.jobs.figures import DONE, SEVERITIES
from mailbot.models import CaseState
from mailbot.sla import BusinessCalendar, Duration
from mailbot.store import Store
from mailbot.store import reports as report_q
from mailbot.store.cases import Record

OUTCOMES = ("resolved", "rejected", "duplicate", "out-of-scope", "closed")
ALL = "all"


@dataclass(frozen=True, slots=True)
class Tally:
    """Promises of one kind: kept, broken, and still running."""

    kept: int = 0
    broken: int = 0
    pending: int = 0

    @property
    def rate(self) -> float | None:
        due = self.kept + self.broken
        return None if due == 0 else 100.0 * self.kept / due

    def __add__(self, other: Tally) -> Tally:
        return Tally(self.kept + other.kept, self.broken + other.broken,
                     self.pending + other.pending)


@dataclass(frozen=True, slots=True)
class Spread:
    """A distribution of waits: how many, median and 90th percentile."""

    count: int = 0
    median_hours: float | None = None
    p90_hours: float | None = None
    median_days: float | None = None  # business days
    p90_days: float | None = None

    @classmethod
    def of(cls, waits: Sequence[tuple[float, int]]) -> Spread:
        """`waits`: (hours, business days) pairs."""
        if not waits:
            return cls()
        hours = sorted(h for h, _ in waits)
        days = sorted(float(d) for _, d in waits)
        return cls(len(waits), median(hours), p90(hours), median(days), p90(days))


def median(values: Sequence[float]) -> float:
    n, mid = len(values), len(values) // 2
    return values[mid] if n % 2 else (values[mid - 1] + values[mid]) / 2


def p90(values: Sequence[float]) -> float:
    """The 90th percentile by nearest rank: the smallest value with 90% at or below it."""
    return values[math.ceil(0.9 * len(values)) - 1]


@dataclass(frozen=True, slots=True)
class Breach:
    """A promise broken: which, on which case, when it was due, and when (if) it was kept."""

    ref: str
    severity: str
    promise: str  # first-response | resolution | reporter-update
    due: datetime
    kept_at: datetime | None


@dataclass(frozen=True, slots=True)
class Figures:
    """The figures of one inbox and severity (or "all")."""

    severity: str
    received: int
    first_response: Tally
    resolution: Tally
    updates: Tally
    to_first_response: Spread
    to_resolution: Spread
    outcomes: Mapping[str, int]
    credited: int


@dataclass(frozen=True, slots=True)
class Week:
    start: date
    received: int
    closed: int
    first_response: Tally  # of the cases received that week


@dataclass(frozen=True, slots=True)
class InboxReport:
    inbox: str
    zone: ZoneInfo
    first_response: Duration
    resolution: Duration
    cadence: Duration | None
    rows: list[Figures]  # per severity that occurs, then "all"
    breaches: list[Breach]
    credits: list[tuple[str, str]]  # (ref, the name the reporter chose)
    weeks: list[Week]


@dataclass(frozen=True, slots=True)
class Report:
    start: date
    end: date  # inclusive
    as_of: datetime
    inboxes: list[InboxReport] = field(default_factory=list)


@dataclass
class _Case:
    """One case's contribution, before it is summed by severity."""

    severity: str
    received: bool = False
    first: Tally = Tally()
    resolution: Tally = Tally()
    updates: Tally = Tally()
    first_wait: tuple[float, int] | None = None
    resolve_wait: tuple[float, int] | None = None
    outcome: str | None = None
    credited: bool = False


def _at(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


_OUT_OF_SCOPE = re.compile(r"\b(?:out[\s_-]*of[\s_-]*scope|buiten[\s_-]*(?:de[\s_-]*)?scope)\b",
                           re.I)


def outcome(state: str, reason: str | None) -> str:
    """What a closed case came to; a `#close` reason saying "out of scope" (or Dutch
    "buiten scope") counts as out of scope."""
    if state == CaseState.CLOSED and reason and _OUT_OF_SCOPE.search(reason):
        return "out-of-scope"
    return state if state in OUTCOMES else "closed"


def _promise(due: datetime | None, kept_at: datetime | None, as_of: datetime) -> Tally:
    if due is None:
        return Tally()
    if kept_at is not None and kept_at <= due:
        return Tally(kept=1)
    if kept_at is not None or due < as_of:
        return Tally(broken=1)
    return Tally(pending=1)


def _wait(calendar: BusinessCalendar, start: datetime, end: datetime) -> tuple[float, int]:
    return (end - start).total_seconds() / 3600, calendar.business_days_between(start, end)


def inbox_report(
    inbox: str, cases: Iterable[Record], updates: Mapping[int, Sequence[str]],
    calendar: BusinessCalendar, first_response: Duration, resolution: Duration,
    cadence: Duration | None, start_day: date, end_day: date, as_of: datetime,
) -> InboxReport:
    """The figures of one inbox for the local days `start_day`..`end_day` (inclusive)."""
    zone = calendar.timezone
    start = datetime.combine(start_day, time(0), tzinfo=zone)
    end = datetime.combine(end_day + timedelta(days=1), time(0), tzinfo=zone)
    week_days = [start_day + timedelta(days=7 * i)
                 for i in range((end_day - start_day).days // 7 + 1)]
    received, closed = [0] * len(week_days), [0] * len(week_days)
    on_time = [Tally()] * len(week_days)

    def week(moment: datetime) -> int:
        return (moment.astimezone(zone).date() - start_day).days // 7

    parts: list[_Case] = []
    breaches: list[Breach] = []
    credits: list[tuple[str, str]] = []
    for c in cases:
        severity = c["severity"] or "unrated"
        part = _Case(severity)
        created = _at(c["created_at"])
        responded = _at(c["first_responded_at"])
        resolved = _at(c["resolved_at"])
        done = CaseState(c["state"]) in DONE
        closed_at = resolved if done else None
        first_due = _at(c["first_response_due"])
        resolution_due = _at(c["resolution_due"])
        if created is not None and start <= created < end:
            part.received = True
            part.first = _promise(first_due, responded, as_of)
            part.resolution = _promise(resolution_due, closed_at, as_of)
            if responded is not None:
                part.first_wait = _wait(calendar, created, responded)
            i = week(created)
            received[i] += 1
            on_time[i] += part.first
            for name, due, kept, tally in (("first-response", first_due, responded, part.first),
                                           ("resolution", resolution_due, closed_at,
                                            part.resolution)):
                if tally.broken and due is not None:
                    breaches.append(Breach(c["ref"], severity, name, due, kept))
        if closed_at is not None and start <= closed_at < end:
            part.outcome = outcome(c["state"], c["close_reason"])
            closed[week(closed_at)] += 1
            if created is not None:
                part.resolve_wait = _wait(calendar, created, closed_at)
            if c["credit"]:
                part.credited = True
                credits.append((c["ref"], str(c["credit"])))
        if cadence is not None and created is not None:
            part.updates = _updates(calendar, cadence, created, closed_at,
                                    updates.get(int(c["id"]), ()), start, end, as_of,
                                    c["ref"], severity, breaches)
        parts.append(part)
    rows = [_sum(severity, [p for p in parts if p.severity == severity])
            for severity in [*SEVERITIES, *sorted({p.severity for p in parts} - set(SEVERITIES))]
            if any(p.severity == severity for p in parts)]
    rows.append(_sum(ALL, parts))
    breaches.sort(key=lambda b: (b.due, b.ref, b.promise))
    return InboxReport(inbox, zone, first_response, resolution, cadence, rows, breaches,
                       sorted(credits), [Week(*w) for w in zip(week_days, received, closed, on_time,
                                                                 strict=True)])


def _updates(calendar: BusinessCalendar, cadence: Duration, created: datetime,
             closed_at: datetime | None, sent: Sequence[str], start: datetime, end: datetime,
             as_of: datetime, ref: str, severity: str, breaches: list[Breach]) -> Tally:
    """Each update due in the period: one cadence after the previous one (or the case's
    opening), while the case was open; kept when one was sent by then."""
    moments = sorted({created, *(datetime.fromisoformat(s) for s in sent)})
    tally = Tally()
    for i, previous in enumerate(moments):
        due = calendar.add(previous, cadence)
        if closed_at is not None and closed_at <= due:
            break  # closed before another update was owed
        later = moments[i + 1] if i + 1 < len(moments) else None
        if start <= due < end:
            result = _promise(due, later, as_of)
            tally += result
            if result.broken:
                breaches.append(Breach(ref, severity, "reporter-update", due, later))
        if later is None or due >= end:
            break
    return tally


def _sum(severity: str, parts: Sequence[_Case]) -> Figures:
    first, resolution, updates = Tally(), Tally(), Tally()
    for p in parts:
        first += p.first
        resolution += p.resolution
        updates += p.updates
    outcomes = Counter(p.outcome for p in parts if p.outcome)
    return Figures(
        severity=severity, received=sum(p.received for p in parts), first_response=first,
        resolution=resolution, updates=updates,
        to_first_response=Spread.of([p.first_wait for p in parts
                                     if p.received and p.first_wait]),
        to_resolution=Spread.of([p.resolve_wait for p in parts if p.resolve_wait]),
        outcomes={o: outcomes.get(o, 0) for o in OUTCOMES},
        credited=sum(p.credited for p in parts),
    )


async def build(store: Store, config: Config, start_day: date, end_day: date,
                inbox: str | None, as_of: datetime) -> Report:
    """Read each inbox's cases of the period and count them (off the event loop)."""
    report = Report(start_day, end_day, as_of)
    for box in config.inboxes:
        if inbox is not None and box.name != inbox:
            continue
        policy = config.policies[box.policy]
        calendar = BusinessCalendar.create(policy.timezone, policy.holidays, policy.workdays,
                                           policy.business_hours)
        start = datetime.combine(start_day, time(0), tzinfo=calendar.timezone)
        end = datetime.combine(end_day + timedelta(days=1), time(0), tzinfo=calendar.timezone)
        async with store.read() as db:
            cases = await report_q.cases_alive(db, iso(start), iso(end), box.name)
            updates = (await report_q.reporter_updates(db, [int(c["id"]) for c in cases])
                       if policy.update_every else {})
        report.inboxes.append(await asyncio.to_thread(
            inbox_report, box.name, cases, updates, calendar, policy.first_response,
            policy.resolution, policy.update_every, start_day, end_day, as_of))
    return report
