"""The digest's numbers: cases in, counts out (pure).

A promise is the first response by `first_response_due` and the resolution by
`resolution_due`; it is broken when its moment passed before it was kept.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from mailbot.models import CaseState
from mailbot.sla import Duration
from mailbot.store.cases import Record

WEEK = timedelta(days=7)
WEEKS = 12
DONE = frozenset({CaseState.RESOLVED, CaseState.REJECTED, CaseState.DUPLICATE,
                  CaseState.CLOSED})
# The order a reader expects: the workflow, and the severity scale from the top.
OPEN_STATES = ("new", "triaged", "needs-info", "accepted", "fixing")
SEVERITIES = ("critical", "high", "medium", "low", "unrated")


@dataclass(frozen=True, slots=True)
class Line:
    """One case as the digest lists it."""

    ref: str
    subject: str
    state: str
    severity: str | None
    note: str = ""  # e.g. "first response due" or "resolution overdue"
    when: datetime | None = None
    assignee: str | None = None
    promise: str | None = None  # the promise at stake: first-response | resolution


@dataclass(frozen=True, slots=True)
class Week:
    start: datetime
    new: int
    closed: int
    responded: int  # first responses that fell due this week
    on_time: int  # of those, kept

    @property
    def rate(self) -> float | None:
        return None if self.responded == 0 else 100.0 * self.on_time / self.responded


@dataclass(frozen=True, slots=True)
class Terms:
    """The promises of the inbox's policy, as the digest names them."""

    first_response: Duration
    resolution: Duration


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
    terms: Terms | None = None
    # Mail of the week that opened no case, by kind of reason (jobs/digest.py fills it).
    ignored: Counter[str] = field(default_factory=Counter)

    @property
    def compliance_week(self) -> float | None:
        return _rate(self.weeks[-1:])

    @property
    def compliance_12_weeks(self) -> float | None:
        return _rate(self.weeks)

    @property
    def broken(self) -> list[Line]:
        """Every promise broken and not kept yet, the longest overdue first."""
        return [*self.still_broken, *self.broken_this_week]

    @property
    def quiet(self) -> bool:
        """Nothing this week: nothing came, closed, is open, due or broken."""
        return not (self.new or self.closed or self.open_by_state or self.due_soon
                    or self.broken or any(w.new or w.closed or w.responded for w in self.weeks))


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


def week_starts(end: datetime, weeks: int = WEEKS) -> list[datetime]:
    """The starts of the `weeks` weeks before `end`, oldest first."""
    return [end - WEEK * (weeks - i) for i in range(weeks)]


def compute(inbox: str, cases: Iterable[Record], end: datetime,
            cadence: timedelta | None = None, terms: Terms | None = None) -> Digest:
    """The digest of the week before `end` for one inbox's cases; `cadence`: how often the
    policy promises the reporter an update."""
    start = end - WEEK
    d = Digest(inbox, start, end, terms=terms)
    first_waits, resolve_waits = [], []
    starts = week_starts(end)
    tallies = [[0, 0, 0, 0] for _ in starts]  # new, closed, responded, on_time

    def bucket(moment: datetime | None) -> int | None:
        if moment is None or moment >= end or moment < starts[0]:
            return None
        # Weeks are wall-clock weeks of `end`'s zone: across a DST change one lasts an hour
        # more or less, so the index comes from the boundaries, not from a division.
        return bisect_right(starts, moment) - 1

    for c in cases:
        created = _at(c["created_at"])
        resolved = _at(c["resolved_at"])
        first_due = _at(c["first_response_due"])
        responded = _at(c["first_responded_at"])
        resolution_due = _at(c["resolution_due"])
        state = CaseState(c["state"])
        done = state in DONE

        def line(note: str = "", when: datetime | None = None,
                 promise: str | None = None, c: Record = c) -> Line:
            return Line(c["ref"], c["subject"], c["state"], c["severity"], note, when,
                        c["assignee"], promise)

        if (i := bucket(created)) is not None:
            tallies[i][0] += 1
        if done and (i := bucket(resolved)) is not None:
            tallies[i][1] += 1
        if first_due is not None and (i := bucket(first_due)) is not None:
            tallies[i][2] += 1
            tallies[i][3] += responded is not None and responded <= first_due
        if created and start <= created < end:
            d.new.append(line())
        if done and resolved and start <= resolved < end:
            d.closed.append(line())
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
            d.silent.append(line("last update", last))
        for what, due, kept in (("first-response", first_due, responded),
                                ("resolution", resolution_due, None)):
            if due is None or kept is not None:
                continue
            words = what.replace("-", " ")
            if end <= due < end + WEEK:
                d.due_soon.append(line(f"{words} due", due, what))
            elif due < end:
                broken = line(f"{words} overdue", due, what)
                (d.broken_this_week if due >= start else d.still_broken).append(broken)
    d.weeks = [Week(ws, *t) for ws, t in zip(starts, tallies, strict=True)]
    d.median_first_response = _median(first_waits)
    d.median_resolution = _median(resolve_waits)
    for lines in (d.due_soon, d.broken_this_week, d.still_broken, d.silent):
        lines.sort(key=lambda x: (x.when or end, x.ref))
    return d


def by_day(lines: Sequence[Line], zone: ZoneInfo) -> list[tuple[date, list[Line]]]:
    """Lines grouped by the local day of their moment, days in order (lines already are)."""
    days: dict[date, list[Line]] = {}
    for x in lines:
        if x.when is not None:
            days.setdefault(x.when.astimezone(zone).date(), []).append(x)
    return sorted(days.items())
