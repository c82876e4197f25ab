"""The compliance report's counting over hand-made cases: each rule of jobs/report.py."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from mailbot.jobs.report import Spread, Tally, inbox_report, outcome, p90
from mailbot.sla import BusinessCalendar, parse_duration

AMS = ZoneInfo("Europe/Amsterdam")
CAL = BusinessCalendar.create("Europe/Amsterdam", "NL")
FROM, TO = date(2026, 10, 19), date(2026, 11, 1)  # two weeks; summer time ends 25 October
AS_OF = datetime(2026, 11, 10, 12, tzinfo=AMS)


def at(text: str) -> str:
    """A local Amsterdam moment ("2026-10-20 10:00") as the database stores it."""
    return datetime.fromisoformat(text).replace(tzinfo=AMS).astimezone(UTC).isoformat()


def case(n: int, created: str, **fields: Any) -> dict[str, Any]:
    base = {"id": n, "ref": f"SEC-2026-{n:04d}", "state": "new", "severity": None,
            "created_at": at(created), "first_response_due": None, "first_responded_at": None,
            "resolution_due": None, "resolved_at": None, "credit": None, "close_reason": None}
    base.update(fields)
    return base


def report(cases: list[dict[str, Any]], updates: dict[int, list[str]] | None = None,
           cadence: str | None = None) -> Any:
    return inbox_report("security", cases, updates or {}, CAL, parse_duration("3 business days"),
                        parse_duration("30 days"), parse_duration(cadence) if cadence else None,
                        FROM, TO, AS_OF)


def test_first_response_kept_broken_and_running() -> None:
    """Kept by the deadline, broken when late or missing past it, running when not yet due;
    the percentage is of kept and broken only."""
    r = report([
        case(1, "2026-10-20 10:00", first_response_due=at("2026-10-23 23:59:59"),
             first_responded_at=at("2026-10-21 09:00")),
        case(2, "2026-10-20 11:00", first_response_due=at("2026-10-23 23:59:59"),
             first_responded_at=at("2026-10-26 09:00")),
        case(3, "2026-10-21 11:00", first_response_due=at("2026-10-26 23:59:59")),
        case(4, "2026-10-31 11:00", first_response_due=at("2026-11-20 23:59:59")),
        case(5, "2026-10-12 11:00", first_response_due=at("2026-10-15 23:59:59")),  # before
    ])
    total = r.rows[-1]
    assert total.received == 4
    assert total.first_response == Tally(kept=1, broken=2, pending=1)
    assert total.first_response.rate == pytest.approx(100 / 3)
    assert {(b.ref, b.promise) for b in r.breaches} == {("SEC-2026-0002", "first-response"),
                                                        ("SEC-2026-0003", "first-response")}


def test_business_days_across_the_end_of_summer_time() -> None:
    """A wait from Friday 23 October to Tuesday 27 October is 2 business days and 97 hours
    (the Sunday had 25)."""
    r = report([case(1, "2026-10-23 10:00", first_responded_at=at("2026-10-27 10:00"))])
    spread = r.rows[-1].to_first_response
    assert spread == Spread(1, 97.0, 97.0, 2.0, 2.0)


def test_outcomes_and_credits_of_cases_closed_in_the_period() -> None:
    """Closed cases count by outcome (a #close about scope is out of scope) and credits by
    the name the reporter chose; a case closed after the period does not count."""
    closed = dict(resolved_at=at("2026-10-30 10:00"))
    r = report([
        case(1, "2026-09-01 10:00", state="resolved", credit="Rita", **closed),
        case(2, "2026-09-01 10:00", state="closed", close_reason="Out of scope (SPF)", **closed),
        case(3, "2026-09-01 10:00", state="closed", close_reason="spam", **closed),
        case(4, "2026-09-01 10:00", state="duplicate", **closed),
        case(5, "2026-09-01 10:00", state="resolved", resolved_at=at("2026-11-05 10:00")),
    ])
    total = r.rows[-1]
    assert dict(total.outcomes) == {"resolved": 1, "rejected": 0, "duplicate": 1,
                                    "out-of-scope": 1, "closed": 1}
    assert r.credits == [("SEC-2026-0001", "Rita")]
    assert total.to_resolution.count == 4
    assert outcome("closed", None) == "closed"
    assert outcome("closed", "fixed; it was in scope after all") == "closed"
    assert outcome("closed", "buiten scope") == "out-of-scope"
    assert outcome("rejected", "out of scope") == "rejected"


def test_reporter_updates_within_the_cadence() -> None:
    """Each update owed in the period (14 days after the previous mail) is kept when a mail
    went by then, broken otherwise; none is owed after the case closed."""
    updates = {
        1: [at("2026-10-01 10:00"), at("2026-10-14 10:00"), at("2026-10-27 10:00")],
        2: [at("2026-10-01 10:00")],
        3: [at("2026-10-01 10:00")],
    }
    r = report([
        case(1, "2026-10-01 10:00"),  # due 15 Oct (kept, before the period), 28 Oct: kept
        case(2, "2026-10-01 10:00"),  # due 15 Oct, before the period: not counted
        case(3, "2026-10-10 10:00", state="resolved", resolved_at=at("2026-10-12 10:00")),
        case(4, "2026-10-06 10:00"),  # no mail but the opening: due 20 Oct, broken
    ], updates, "14 days")
    assert r.rows[-1].updates == Tally(kept=1, broken=1)
    assert [(b.ref, b.promise) for b in r.breaches] == [("SEC-2026-0004", "reporter-update")]


def test_weeks_of_the_period() -> None:
    """Received cases are counted in the week of the period they came in."""
    r = report([case(1, "2026-10-19 00:00"), case(2, "2026-10-25 23:59"),
                case(3, "2026-10-26 00:00"), case(4, "2026-11-01 23:59")])
    assert [(w.start, w.received) for w in r.weeks] == [(date(2026, 10, 19), 2),
                                                       (date(2026, 10, 26), 2)]


def test_severity_rows_then_all() -> None:
    """One row per severity that occurs, in scale order, then "all"."""
    r = report([case(1, "2026-10-20 10:00", severity="low"),
                case(2, "2026-10-20 10:00", severity="critical"),
                case(3, "2026-10-20 10:00")])
    assert [f.severity for f in r.rows] == ["critical", "low", "unrated", "all"]


@pytest.mark.parametrize(("values", "expected"), [([1.0], 1.0), ([1.0, 2.0], 2.0),
                                                   ([float(i) for i in range(1, 11)], 9.0),
                                                   ([float(i) for i in range(1, 12)], 10.0)])
def test_p90_by_nearest_rank(values: list[float], expected: float) -> None:
    """The 90th percentile is the smallest value with 90% of them at or below it."""
    assert p90(values) == expected


def test_moments_are_compared_as_moments() -> None:
    """A due date stored with another offset still compares by the instant it names."""
    due = datetime(2026, 10, 23, 23, 59, 59, tzinfo=AMS)
    r = report([case(1, "2026-10-20 10:00", first_response_due=due.isoformat(),
                     first_responded_at=(due - timedelta(minutes=1)).astimezone(UTC)
                     .isoformat())])
    assert r.rows[-1].first_response == Tally(kept=1)
