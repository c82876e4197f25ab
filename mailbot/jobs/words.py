"""The words and number formats of the digest and the report, in English and Dutch.

Numbers, percentages and dates go through babel for the reader's locale
(`1,234` / `1.234`, `83%` / `83%`, `14 Sep` / `14 sep`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from babel.dates import format_date
from babel.numbers import format_decimal, format_percent

from mailbot.mail.render import long_date
from mailbot.sla import Duration, Unit

LANGUAGES = ("en", "nl")

LABELS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Weekly digest", "week": "Week", "new": "New cases", "closed": "Closed",
        "open": "Open cases by state", "severity": "Open cases by severity",
        "due": "Due in the next 7 days", "compliance": "First responses on time",
        "this_week": "this week", "twelve": "last 12 weeks",
        "median_first": "Median time to first response",
        "median_resolution": "Median time to resolution", "none": "none",
        "chart": "New and closed cases, last 12 weeks",
        "silent": "No update to the reporter within the promised cadence",
        "new_series": "New", "closed_series": "Closed",
        "on_time_chart": "First responses on time per week",
        "target": "target", "promise": "promise: first response within {promise}",
        "no_response_due": "no first response due",
        "broken_all": "Broken promises", "more": "and {n} more: {command}",
        "nothing": "Nothing this week: no case came in, closed, is open or falls due.",
        "nothing_weeks": "No case came in or closed in the last 12 weeks.",
        "unassigned": "unassigned", "first-response": "first response within {promise}",
        "resolution": "resolution within {promise}",
        "overdue_since": "overdue since {day}", "cases": "cases", "total": "total",
        "of": "{a} of {b}",
        "report": "Compliance report", "period": "Period", "as_of": "as of",
        "received": "Cases received", "fr_on_time": "First responses on time",
        "res_on_time": "Resolutions on time", "updates": "Reporter updates within the cadence",
        "ttfr": "Time to first response", "ttr": "Time to resolution",
        "median_p90": "median / 90th percentile", "business_days": "business days",
        "hours": "hours", "outcomes": "Cases closed by outcome", "credited": "Credited reporters",
        "broken_promises": "Promises broken",
        "promises": "Promises",
        "first_response_promise": "first response within {promise}",
        "resolution_promise": "resolution within {promise} (or by the agreed date)",
        "update_promise": "an update to the reporter every {promise}",
        "received_closed": "Received and closed cases per week",
        "received_series": "Received", "by_severity": "Cases received by severity",
        "reporter-update": "reporter update", "due_at": "due", "kept_at": "kept",
        "not_kept": "not kept", "nothing_period": "No case in this period.",
        "rules": "How it is counted",
        "fr_chart": "First responses on time, by week of receipt",
        "promise_first": "first response", "promise_resolution": "resolution",
        "on_time": "on time", "kept_of_due": "kept, of those due", "running": "still running",
    },
    "nl": {
        "title": "Weekoverzicht", "week": "Week", "new": "Nieuwe zaken", "closed": "Afgesloten",
        "open": "Open zaken per status", "severity": "Open zaken per ernst",
        "due": "Deadlines in de komende 7 dagen", "compliance": "Eerste reactie op tijd",
        "this_week": "deze week", "twelve": "laatste 12 weken",
        "median_first": "Mediane tijd tot eerste reactie",
        "median_resolution": "Mediane tijd tot oplossing", "none": "geen",
        "chart": "Nieuwe en afgesloten zaken, laatste 12 weken",
        "silent": "Melder niet binnen de beloofde termijn bijgepraat",
        "new_series": "Nieuw", "closed_series": "Afgesloten",
        "on_time_chart": "Eerste reacties op tijd per week",
        "target": "doel", "promise": "belofte: eerste reactie binnen {promise}",
        "no_response_due": "geen eerste reactie verschuldigd",
        "broken_all": "Gebroken beloftes", "more": "en nog {n}: {command}",
        "nothing": "Niets deze week: geen zaak binnengekomen, afgesloten, open of met een "
                   "deadline.",
        "nothing_weeks": "Geen zaak binnengekomen of afgesloten in de laatste 12 weken.",
        "unassigned": "niet toegewezen", "first-response": "eerste reactie binnen {promise}",
        "resolution": "oplossing binnen {promise}",
        "overdue_since": "verlopen sinds {day}", "cases": "zaken", "total": "totaal",
        "of": "{a} van {b}",
        "report": "Nalevingsrapport", "period": "Periode", "as_of": "stand per",
        "received": "Ontvangen zaken", "fr_on_time": "Eerste reacties op tijd",
        "res_on_time": "Oplossingen op tijd", "updates": "Updates aan de melder binnen de termijn",
        "ttfr": "Tijd tot eerste reactie", "ttr": "Tijd tot oplossing",
        "median_p90": "mediaan / 90e percentiel", "business_days": "werkdagen",
        "hours": "uur", "outcomes": "Afgesloten zaken per uitkomst",
        "credited": "Vermelde melders",
        "broken_promises": "Gebroken beloftes", "promises": "Beloftes",
        "first_response_promise": "eerste reactie binnen {promise}",
        "resolution_promise": "oplossing binnen {promise} (of op de afgesproken datum)",
        "update_promise": "elke {promise} een update aan de melder",
        "received_closed": "Ontvangen en afgesloten zaken per week",
        "received_series": "Ontvangen", "by_severity": "Ontvangen zaken per ernst",
        "reporter-update": "update aan melder", "due_at": "uiterlijk", "kept_at": "gedaan",
        "not_kept": "niet gedaan", "nothing_period": "Geen zaken in deze periode.",
        "rules": "Zo wordt geteld",
        "fr_chart": "Eerste reacties op tijd, per week van ontvangst",
        "promise_first": "eerste reactie", "promise_resolution": "oplossing",
        "on_time": "op tijd", "kept_of_due": "gehouden, van de verschuldigde",
        "running": "nog lopend",
    },
}

STATES = {
    "en": {"new": "new", "triaged": "triaged", "needs-info": "needs info",
           "accepted": "accepted", "fixing": "fixing", "resolved": "resolved",
           "rejected": "rejected", "duplicate": "duplicate", "closed": "closed",
           "out-of-scope": "out of scope"},
    "nl": {"new": "nieuw", "triaged": "beoordeeld", "needs-info": "info nodig",
           "accepted": "geaccepteerd", "fixing": "in herstel", "resolved": "opgelost",
           "rejected": "afgewezen", "duplicate": "dubbel", "closed": "gesloten",
           "out-of-scope": "buiten scope"},
}
SEVERITY_NAMES = {
    "en": {"critical": "critical", "high": "high", "medium": "medium", "low": "low",
           "unrated": "unrated", "all": "all"},
    "nl": {"critical": "kritiek", "high": "hoog", "medium": "middel", "low": "laag",
           "unrated": "onbeoordeeld", "all": "alle"},
}
_UNITS = {
    "en": {Unit.MINUTES: ("minute", "minutes"), Unit.HOURS: ("hour", "hours"),
           Unit.DAYS: ("day", "days"), Unit.WEEKS: ("week", "weeks"),
           Unit.BUSINESS_DAYS: ("business day", "business days")},
    "nl": {Unit.MINUTES: ("minuut", "minuten"), Unit.HOURS: ("uur", "uur"),
           Unit.DAYS: ("dag", "dagen"), Unit.WEEKS: ("week", "weken"),
           Unit.BUSINESS_DAYS: ("werkdag", "werkdagen")},
}


@dataclass(frozen=True, slots=True)
class Words:
    """Labels and babel formats for one language (English when it is not one of ours)."""

    language: str

    @classmethod
    def of(cls, language: str) -> Words:
        return cls(language if language in LANGUAGES else "en")

    def __getitem__(self, key: str) -> str:
        return LABELS[self.language][key]

    def state(self, value: str) -> str:
        return STATES[self.language].get(value, value)

    def severity(self, value: str | None) -> str:
        return SEVERITY_NAMES[self.language].get(value or "unrated", value or "unrated")

    def duration(self, value: Duration) -> str:
        """`3 business days` / `3 werkdagen`."""
        one, many = _UNITS[self.language][value.unit]
        return f"{self.number(value.amount)} {one if value.amount == 1 else many}"

    def number(self, value: float, decimals: int = 0) -> str:
        pattern = "#,##0" + ("." + "0" * decimals if decimals else "")
        return str(format_decimal(value, format=pattern, locale=self.language))

    def percent(self, value: float | None) -> str:
        if value is None:
            return "-"
        return str(format_percent(value / 100, format="#,##0%", locale=self.language))

    def short_day(self, day: date | datetime) -> str:
        """`14 Sep` / `14 sep`: a week's label."""
        if isinstance(day, datetime):
            day = day.date()
        return str(format_date(day, "d MMM", locale=self.language)).rstrip(".")

    def iso_day(self, day: date | datetime) -> str:
        return f"{day:%Y-%m-%d}"

    def long_day(self, day: date | datetime) -> str:
        return long_date(day, self.language)

    def hours(self, value: timedelta | None) -> str:
        """A wait in hours, or in days past two (`30.5 h`, `12.0 days` / `12,0 dagen`)."""
        if value is None:
            return "-"
        hours = value.total_seconds() / 3600
        if hours < 48:
            return f"{self.number(hours, 1)} {'h' if self.language == 'en' else 'u'}"
        unit = "days" if self.language == "en" else "dagen"
        return f"{self.number(hours / 24, 1)} {unit}"
