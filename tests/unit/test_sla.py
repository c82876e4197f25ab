"""The business calendar and the deadlines it gives, table-driven over real 2026 dates."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from mailbot.sla import BusinessCalendar, Duration, Unit, deadlines, parse_duration

AMS = ZoneInfo("Europe/Amsterdam")
NL = BusinessCalendar.create("Europe/Amsterdam", "NL")
BE = BusinessCalendar.create("Europe/Brussels", "BE")
NONE = BusinessCalendar.create("Europe/Amsterdam", None)


def ams(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=AMS)


@pytest.mark.parametrize(
    ("case", "calendar", "received", "duration", "due"),
    [
        ("Monday morning: Thursday", NL, ams(2026, 11, 23, 10), "3 business days",
         ams(2026, 11, 26, 23, 59, 59)),
        ("Friday evening: Wednesday", NL, ams(2026, 11, 20, 18), "3 business days",
         ams(2026, 11, 25, 23, 59, 59)),
        ("Saturday: Wednesday", NL, ams(2026, 11, 21, 12), "3 business days",
         ams(2026, 11, 25, 23, 59, 59)),
        ("Christmas and Boxing Day skipped", NL, ams(2026, 12, 23, 10), "3 business days",
         ams(2026, 12, 29, 23, 59, 59)),
        ("Easter Monday skipped", NL, ams(2026, 4, 2, 9), "3 business days",
         ams(2026, 4, 9, 23, 59, 59)),  # Good Friday 3 Apr is a holiday in the package too
        ("received on King's Day", NL, ams(2026, 4, 27, 11), "3 business days",
         ams(2026, 4, 30, 23, 59, 59)),
        ("King's Day skipped", NL, ams(2026, 4, 24, 11), "3 business days",
         ams(2026, 4, 30, 23, 59, 59)),
        ("Ascension skipped", NL, ams(2026, 5, 12, 9), "3 business days",
         ams(2026, 5, 18, 23, 59, 59)),
        ("Belgian National Day skipped", BE, ams(2026, 7, 20, 9), "1 business day",
         ams(2026, 7, 22, 23, 59, 59)),
        ("Belgian National Day is a workday in NL", NL, ams(2026, 7, 20, 9), "1 business day",
         ams(2026, 7, 21, 23, 59, 59)),
        ("received on Easter Monday", NL, ams(2026, 4, 6, 10), "1 business day",
         ams(2026, 4, 7, 23, 59, 59)),
        ("into next year: New Year's Day 2027 skipped", NL, ams(2026, 12, 31, 10),
         "1 business day", ams(2027, 1, 4, 23, 59, 59)),
        ("no country: only weekends", NONE, ams(2026, 12, 24, 9), "1 business day",
         ams(2026, 12, 25, 23, 59, 59)),
        ("DST end: offset of the due day", NL, ams(2026, 10, 23, 18), "3 business days",
         datetime(2026, 10, 28, 22, 59, 59, tzinfo=UTC)),
        ("late UTC is already tomorrow in Amsterdam", NL,
         datetime(2026, 11, 23, 23, 30, tzinfo=UTC), "1 business day",
         ams(2026, 11, 25, 23, 59, 59)),
        ("30 calendar days", NL, ams(2026, 12, 18, 18), "30 days", ams(2027, 1, 17, 23, 59, 59)),
        ("2 weeks", NL, ams(2026, 12, 18, 18), "2 weeks", ams(2027, 1, 1, 23, 59, 59)),
        ("hours are elapsed time across DST", NL, ams(2026, 10, 24, 12), "24 hours",
         ams(2026, 10, 25, 11)),
    ],
)
def test_add(
    case: str, calendar: BusinessCalendar, received: datetime, duration: str, due: datetime
) -> None:
    """Each documented rule gives the due moment a reporter is promised."""
    result = calendar.add(received, parse_duration(duration))
    assert result == due
    assert result.utcoffset() == due.astimezone(calendar.timezone).utcoffset()


def test_deadlines_of_a_policy() -> None:
    """A Friday-evening report gets a first response by Wednesday and resolution in 30 days."""
    d = deadlines(NL, ams(2026, 12, 18, 18), parse_duration("3 business days"),
                  parse_duration("30 days"))
    assert (d.first_response_due.date(), d.resolution_due.date()) == (
        date(2026, 12, 23), date(2027, 1, 17))


@pytest.mark.parametrize(
    ("deadline", "duration", "warn_at"),
    [
        (ams(2026, 11, 30, 23, 59, 59), "1 business day", ams(2026, 11, 27, 23, 59, 59)),
        (ams(2026, 4, 7, 23, 59, 59), "1 business day", ams(2026, 4, 2, 23, 59, 59)),
        # Monday after Christmas: Friday 25 December is a holiday, so Thursday.
        (ams(2026, 12, 28, 23, 59, 59), "1 business day", ams(2026, 12, 24, 23, 59, 59)),
        (ams(2026, 12, 28, 12), "1 week", ams(2026, 12, 21, 12)),
        # 02:30 on 29 March does not exist (02:00 CET -> 03:00 CEST): the same instant as 03:30.
        (ams(2026, 3, 30, 2, 30), "1 day", datetime(2026, 3, 29, 1, 30, tzinfo=UTC)),
        (ams(2026, 10, 26, 12), "2 days", ams(2026, 10, 24, 12)),
        # 05:00 CET minus 4 elapsed hours crosses the 03:00 CEST -> 02:00 CET change.
        (ams(2026, 10, 25, 5), "4 hours", datetime(2026, 10, 25, 0, tzinfo=UTC)),
    ],
)
def test_subtract(deadline: datetime, duration: str, warn_at: datetime) -> None:
    """Warnings before a deadline skip weekends and holidays (Easter Monday, Good Friday)."""
    # Timestamps: PEP 495 makes a time in the repeated DST hour unequal to any other zone's.
    assert NL.subtract(deadline, parse_duration(duration)).timestamp() == warn_at.timestamp()


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (ams(2026, 11, 21, 22), ams(2026, 11, 23, 9)),  # Saturday night -> Monday 09:00
        (ams(2026, 11, 24, 10), ams(2026, 11, 24, 10)),  # Tuesday 10:00 stays
        (ams(2026, 11, 24, 18), ams(2026, 11, 25, 9)),  # Tuesday evening -> Wednesday
        (ams(2026, 11, 24, 7), ams(2026, 11, 24, 9)),  # before opening -> same day
        (ams(2026, 12, 24, 18), ams(2026, 12, 28, 9)),  # Christmas, Boxing Day, weekend
        (ams(2026, 5, 13, 18), ams(2026, 5, 15, 9)),  # evening before Ascension -> Friday
        (ams(2026, 11, 24, 17), ams(2026, 11, 25, 9)),  # closing time is outside the hours
        (datetime(2026, 11, 24, 8, 30, tzinfo=UTC), ams(2026, 11, 24, 9, 30)),  # UTC in, local out
    ],
)
def test_next_business_time(moment: datetime, expected: datetime) -> None:
    """Notices wait for business hours of a business day."""
    assert NL.next_business_time(moment) == expected


@pytest.mark.parametrize(
    ("calendar", "day", "name"),
    [
        (NL, date(2026, 4, 27), "King's Day"),
        (NL, date(2026, 4, 3), "Good Friday"),  # in the package, though many NL employers work
        (NL, date(2026, 5, 5), None),  # Liberation Day: only every fifth year (2025, 2030)
        (NL, date(2025, 5, 5), "Liberation Day"),  # a Monday
        (NL, date(2026, 7, 21), None),
        (BE, date(2026, 7, 21), "National Day"),
        (BE, date(2026, 4, 27), None),
        (BE, date(2026, 4, 3), None),
        (NONE, date(2026, 12, 25), None),
    ],
)
def test_holiday_names(calendar: BusinessCalendar, day: date, name: str | None) -> None:
    """The calendar can say why a weekday is not a business day, per country and year."""
    assert calendar.holiday_name(day) == name
    assert calendar.is_business_day(day) is (name is None)


NAIVE = datetime(2026, 11, 23, 10)
ONE_DAY = Duration(1, Unit.BUSINESS_DAYS)


@pytest.mark.parametrize(
    "call",
    [
        lambda: NL.add(NAIVE, ONE_DAY),
        lambda: NL.add(NAIVE, Duration(4, Unit.HOURS)),
        lambda: NL.subtract(NAIVE, ONE_DAY),
        lambda: NL.next_business_time(NAIVE),
        lambda: NL.local(NAIVE),
        lambda: deadlines(NL, NAIVE, ONE_DAY, ONE_DAY),
    ],
)
def test_naive_datetimes_are_refused(call: Callable[[], object]) -> None:
    """A moment without a time zone is a bug, not a guess."""
    with pytest.raises(ValueError, match="no time zone"):
        call()


@pytest.mark.parametrize(("zone", "country"), [("Mars/Olympus", "NL"), ("UTC", "XX")])
def test_unknown_zone_or_country(zone: str, country: str) -> None:
    """An unknown time zone or holiday country is refused with a clear message."""
    with pytest.raises(ValueError, match="unknown"):
        BusinessCalendar.create(zone, country)


@pytest.mark.parametrize(
    ("workdays", "hours", "reason"),
    [((), (540, 1020), "workdays"), ((0, 7), (540, 1020), "workdays"),
     ((0, 1), (1020, 540), "business hours"), ((0, 1), (1440, 1500), "business hours")],
)
def test_impossible_calendars(
    workdays: tuple[int, ...], hours: tuple[int, int], reason: str
) -> None:
    """A calendar that could never reach a business day or hour is refused when made."""
    with pytest.raises(ValueError, match=reason):
        BusinessCalendar.create("Europe/Amsterdam", "NL", workdays, hours)


@pytest.mark.parametrize(
    ("text", "amount", "unit"),
    [("3 business days", 3, Unit.BUSINESS_DAYS), ("30 days", 30, Unit.DAYS),
     ("1 Business Day", 1, Unit.BUSINESS_DAYS), ("4 hours", 4, Unit.HOURS),
     (" 2  weeks ", 2, Unit.WEEKS), ("90 minutes", 90, Unit.MINUTES)],
)
def test_parse_duration(text: str, amount: int, unit: Unit) -> None:
    """Durations are a number and a unit."""
    d = parse_duration(text)
    assert (d.amount, d.unit) == (amount, unit)


@pytest.mark.parametrize(("text", "reason"), [("3 busines days", "unknown unit"),
                                              ("three days", "not a duration"), ("", "not a")])
def test_bad_durations(text: str, reason: str) -> None:
    """A misspelt or wordy duration is refused with the reason."""
    with pytest.raises(ValueError, match=reason):
        parse_duration(text)
