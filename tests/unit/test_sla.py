"""The business calendar and the deadlines it gives, table-driven over real 2026 dates."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from mailbot.sla import BusinessCalendar, Unit, deadlines, parse_duration

AMS = ZoneInfo("Europe/Amsterdam")
NL = BusinessCalendar.create("Europe/Amsterdam", "NL")
BE = BusinessCalendar.create("Europe/Brussels", "BE")
NONE = BusinessCalendar.create("Europe/Amsterdam", None)


def ams(*args: int) -> datetime:
    return datetime(*args, tzinfo=AMS)  # type: ignore[misc]


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
    ],
)
def test_next_business_time(moment: datetime, expected: datetime) -> None:
    """Notices wait for business hours of a business day."""
    assert NL.next_business_time(moment) == expected


def test_holidays_are_known_by_name() -> None:
    """The calendar can say why a day is not a business day."""
    assert not NL.is_business_day(date(2026, 4, 27))
    assert NL.holiday_name(date(2026, 4, 27)) == "King's Day"
    assert BE.is_business_day(date(2026, 4, 27))


def test_naive_datetimes_are_refused() -> None:
    """A moment without a time zone is a bug, not a guess."""
    with pytest.raises(ValueError, match="no time zone"):
        NL.add(datetime(2026, 11, 23, 10), parse_duration("1 day"))


@pytest.mark.parametrize(("zone", "country"), [("Mars/Olympus", "NL"), ("UTC", "XX")])
def test_unknown_zone_or_country(zone: str, country: str) -> None:
    """An unknown time zone or holiday country is refused with a clear message."""
    with pytest.raises(ValueError, match="unknown"):
        BusinessCalendar.create(zone, country)


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
