"""Business calendar and the deadlines of a policy.

Knows nothing of the database or of mail: values in, values out.

The rules users rely on (the README states the first three too):

- Every moment given must be time-zone aware (ValueError otherwise); every moment returned
  is aware and in the calendar's time zone.
- A business day is a workday (Monday-Friday by default) that is not a public holiday of
  the calendar's country, as the `holidays` package knows them (any year; no country: no
  holidays, only weekends).
- "N business days" after a moment: the end of day of the N-th business day strictly after
  the local calendar day of that moment. A report on Monday 10:00 with "3 business days" is
  due Thursday; one on Friday 18:00 is due Wednesday; one on a Saturday or a holiday counts
  from the days after it in the same way.
- "N days": the end of day of the local calendar day N days after the moment's local day;
  "N weeks" is 7N days.
- "N hours" / "N minutes": exact elapsed time, whatever the clocks do (DST).
- End of day is 23:59:59 local time, with that day's UTC offset.
- Subtracting (warn "1 business day before" a deadline): "N business days" gives the end of
  day of the N-th business day before the deadline's local day; "N days" / "N weeks" the same
  local wall time N (7N) days earlier (moved forward if the clocks skip it); hours and
  minutes are exact elapsed time.
- The next business time of a moment is the moment itself if it falls within business hours
  (09:00-17:00 by default) of a business day, otherwise the start of the next business hours.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays


class Unit(StrEnum):
    MINUTES = "minutes"
    HOURS = "hours"
    DAYS = "days"
    WEEKS = "weeks"
    BUSINESS_DAYS = "business days"


_UNITS = {
    "minute": Unit.MINUTES,
    "minutes": Unit.MINUTES,
    "hour": Unit.HOURS,
    "hours": Unit.HOURS,
    "day": Unit.DAYS,
    "days": Unit.DAYS,
    "week": Unit.WEEKS,
    "weeks": Unit.WEEKS,
    "business day": Unit.BUSINESS_DAYS,
    "business days": Unit.BUSINESS_DAYS,
}
_DURATION = re.compile(r"^\s*(\d{1,4})\s+([a-z]+(?:\s+[a-z]+)?)\s*$")


@dataclass(frozen=True, slots=True)
class Duration:
    amount: int
    unit: Unit

    def __str__(self) -> str:
        return f"{self.amount} {self.unit.value}"


def parse_duration(text: str) -> Duration:
    """Parse "3 business days", "30 days", "4 hours"; ValueError says what is wrong."""
    m = _DURATION.match(text.lower())
    if not m:
        raise ValueError(f"{text!r} is not a duration like '3 business days' or '30 days'")
    unit = _UNITS.get(" ".join(m.group(2).split()))
    if unit is None:
        raise ValueError(
            f"unknown unit {m.group(2)!r} in {text!r}; expected one of: "
            "minutes, hours, days, weeks, business days"
        )
    return Duration(int(m.group(1)), unit)


# A cache, not state: the holidays of a year never change while the process runs.
_HOLIDAYS: dict[tuple[str, int], Mapping[date, str]] = {}
_END_OF_DAY = time(23, 59, 59)
_MINUTES_PER_DAY = 24 * 60


def _holidays(country: str, year: int) -> Mapping[date, str]:
    """Public holidays of one country and year by name, cached: calendars are asked in hot loops."""
    key = (country, year)
    if key not in _HOLIDAYS:
        found = holidays.country_holidays(country, years=year)
        _HOLIDAYS[key] = {day: str(name) for day, name in found.items()}
    return _HOLIDAYS[key]


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment!r} has no time zone")
    return moment


@dataclass(frozen=True, slots=True)
class BusinessCalendar:
    """Working days in a time zone, minus the public holidays of a country (rules: module doc)."""

    timezone: ZoneInfo
    country: str | None  # a `holidays` country code such as "NL"; None: no holidays
    workdays: tuple[int, ...] = (0, 1, 2, 3, 4)  # Monday = 0
    business_hours: tuple[int, int] = (9 * 60, 17 * 60)  # minutes after local midnight

    def __post_init__(self) -> None:
        # Checked here, not only in create: a bad weekday would make the day loops endless.
        if not self.workdays or not all(0 <= d <= 6 for d in self.workdays):
            raise ValueError(f"workdays must be weekday numbers 0-6 (Monday = 0): {self.workdays}")
        start, end = self.business_hours
        if not 0 <= start < min(end, _MINUTES_PER_DAY):
            raise ValueError(f"business hours must start before they end: {self.business_hours}")

    @classmethod
    def create(
        cls,
        timezone: str,
        country: str | None,
        workdays: tuple[int, ...] = (0, 1, 2, 3, 4),
        business_hours: tuple[int, int] = (9 * 60, 17 * 60),
    ) -> BusinessCalendar:
        try:
            zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {timezone!r}") from None
        if country and country not in holidays.list_supported_countries():
            raise ValueError(f"unknown holiday country {country!r}")
        return cls(zone, country or None, tuple(workdays), business_hours)

    def local(self, moment: datetime) -> datetime:
        return _aware(moment).astimezone(self.timezone)

    def is_business_day(self, day: date) -> bool:
        if day.weekday() not in self.workdays:
            return False
        return not (self.country and day in _holidays(self.country, day.year))

    def holiday_name(self, day: date) -> str | None:
        if not self.country:
            return None
        return _holidays(self.country, day.year).get(day)

    def end_of_day(self, day: date) -> datetime:
        return datetime.combine(day, _END_OF_DAY, tzinfo=self.timezone)

    def _step_business_days(self, day: date, n: int, direction: int) -> date:
        while n > 0:
            day += timedelta(days=direction)
            if self.is_business_day(day):
                n -= 1
        return day

    def add(self, start: datetime, duration: Duration) -> datetime:
        local = self.local(start)
        match duration.unit:
            case Unit.MINUTES | Unit.HOURS:
                return self.local(start.astimezone(UTC) + _elapsed(duration))
            case Unit.DAYS | Unit.WEEKS:
                days = duration.amount * (7 if duration.unit is Unit.WEEKS else 1)
                return self.end_of_day(local.date() + timedelta(days=days))
            case Unit.BUSINESS_DAYS:
                return self.end_of_day(self._step_business_days(local.date(), duration.amount, 1))
        raise AssertionError(duration)

    def subtract(self, deadline: datetime, duration: Duration) -> datetime:
        local = self.local(deadline)
        match duration.unit:
            case Unit.MINUTES | Unit.HOURS:
                return self.local(deadline.astimezone(UTC) - _elapsed(duration))
            case Unit.DAYS | Unit.WEEKS:
                days = duration.amount * (7 if duration.unit is Unit.WEEKS else 1)
                naive = local.replace(tzinfo=None) - timedelta(days=days)
                # Through UTC so a wall time the clocks skip (spring) becomes a real one.
                return self.local(naive.replace(tzinfo=self.timezone).astimezone(UTC))
            case Unit.BUSINESS_DAYS:
                day = self._step_business_days(local.date(), duration.amount, -1)
                return self.end_of_day(day)
        raise AssertionError(duration)

    def business_days_between(self, start: datetime, end: datetime) -> int:
        """Business days d with start's local day < d <= end's local day."""
        day, last, count = self.local(start).date(), self.local(end).date(), 0
        while day < last:
            day += timedelta(days=1)
            count += self.is_business_day(day)
        return count

    def next_business_time(self, moment: datetime) -> datetime:
        """`moment` if it falls in business hours of a business day, else when they next start."""
        local = self.local(moment)
        start, end = self.business_hours
        minutes = local.hour * 60 + local.minute
        day = local.date()
        if self.is_business_day(day) and start <= minutes < end:
            return local
        if not (self.is_business_day(day) and minutes < start):
            day = self._step_business_days(day, 1, 1)
        opening = time(start // 60, start % 60)
        return datetime.combine(day, opening, tzinfo=self.timezone)


def _elapsed(duration: Duration) -> timedelta:
    if duration.unit is Unit.HOURS:
        return timedelta(hours=duration.amount)
    return timedelta(minutes=duration.amount)


@dataclass(frozen=True, slots=True)
class Deadlines:
    first_response_due: datetime
    resolution_due: datetime


def deadlines(
    calendar: BusinessCalendar, received: datetime, first_response: Duration, resolution: Duration
) -> Deadlines:
    return Deadlines(calendar.add(received, first_response), calendar.add(received, resolution))
