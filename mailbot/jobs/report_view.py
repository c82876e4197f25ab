"""The compliance report as JSON, CSV, HTML and text (values in, text out).

JSON and CSV are for machines: plain numbers, ISO dates, English keys. HTML and text are
for people, in `[digest] language`, with the digest's charts.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup

from mailbot.clock import iso
from mailbot.jobs.digest_view import CLOSED_COLOUR, NEW_COLOUR, SEVERITY_COLOURS
from mailbot.jobs.report import OUTCOMES, Figures, InboxReport, Report, Spread, Tally
from mailbot.jobs.words import Words
from mailbot.mail import charts
from mailbot.mail.charts import Part, Series
from mailbot.mail.render import Templates

OUTCOME_COLOURS = {"resolved": "#2e7d32", "rejected": "#c62828", "duplicate": "#6a4c93",
                   "out-of-scope": "#f0a202", "closed": "#9e9e9e"}
RULES = {
    "en": [
        "The period runs from the first day 00:00 to the end of the last day, in the time zone "
        "of the inbox's policy.",
        "First responses and resolutions: of the cases received in the period. Kept: by the "
        "promised moment; broken: later, or not at all by the report's moment; still running: "
        "neither. The percentage is of kept and broken.",
        "Time to first response: of the received cases answered. Time to resolution and "
        "outcomes: of the cases closed in the period. Business days: the business days after "
        "the day of receipt up to the day of the answer (0: the same day). 90th percentile by "
        "nearest rank.",
        "Reporter updates: each update that fell due in the period, one cadence after the "
        "previous mail to the reporter (the acknowledgement first), while the case was open.",
        "Out of scope: cases closed with a reason that says \"out of scope\". A case counts "
        "under its current severity.",
    ],
    "nl": [
        "De periode loopt van de eerste dag 00:00 tot het einde van de laatste dag, in de "
        "tijdzone van het beleid van de inbox.",
        "Eerste reacties en oplossingen: van de zaken ontvangen in de periode. Op tijd: voor "
        "het beloofde moment; gebroken: later, of nog niet op het moment van het rapport; "
        "lopend: geen van beide. Het percentage is van op tijd en gebroken samen.",
        "Tijd tot eerste reactie: van de beantwoorde ontvangen zaken. Tijd tot oplossing en "
        "uitkomsten: van de zaken afgesloten in de periode. Werkdagen: de werkdagen na de dag "
        "van ontvangst tot en met de dag van het antwoord (0: dezelfde dag). 90e percentiel "
        "volgens nearest rank.",
        "Updates aan de melder: elke update die in de periode verschuldigd was, een termijn na "
        "de vorige mail aan de melder (eerst de ontvangstbevestiging), zolang de zaak open was.",
        "Buiten scope: zaken gesloten met als reden \"out of scope\" of \"buiten scope\". Een "
        "zaak telt onder haar huidige ernst.",
    ],
}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _tally(t: Tally) -> dict[str, Any]:
    return {"kept": t.kept, "broken": t.broken, "pending": t.pending,
            "on_time_percent": _round(t.rate)}


def _spread(s: Spread) -> dict[str, Any]:
    return {"count": s.count, "median_hours": _round(s.median_hours),
            "p90_hours": _round(s.p90_hours), "median_business_days": _round(s.median_days),
            "p90_business_days": _round(s.p90_days)}


def _figures(f: Figures) -> dict[str, Any]:
    return {"severity": f.severity, "received": f.received,
            "first_response": _tally(f.first_response), "resolution": _tally(f.resolution),
            "reporter_updates": _tally(f.updates),
            "time_to_first_response": _spread(f.to_first_response),
            "time_to_resolution": _spread(f.to_resolution),
            "outcomes": dict(f.outcomes), "credited": f.credited}


def to_json(report: Report) -> dict[str, Any]:
    return {
        "from": report.start.isoformat(), "to": report.end.isoformat(),
        "as_of": iso(report.as_of),
        "inboxes": [{
            "inbox": r.inbox,
            "promises": {"first_response": str(r.first_response),
                         "resolution": str(r.resolution),
                         "update_every": str(r.cadence) if r.cadence else None},
            "figures": [_figures(f) for f in r.rows],
            "broken_promises": [{"ref": b.ref, "severity": b.severity, "promise": b.promise,
                                 "due": iso(b.due),
                                 "kept_at": iso(b.kept_at) if b.kept_at else None}
                                for b in r.breaches],
            "credits": [{"ref": ref, "name": name} for ref, name in r.credits],
            "weeks": [{"start": w.start.isoformat(), "received": w.received,
                       "closed": w.closed, "first_response": _tally(w.first_response)}
                      for w in r.weeks],
        } for r in report.inboxes],
    }


def _flat(prefix: str, values: dict[str, Any]) -> dict[str, Any]:
    return {f"{prefix}_{k}": v for k, v in values.items()}


def to_csv(report: Report) -> str:
    """One row per inbox and severity; the broken promises' cases in the last column."""
    out = io.StringIO()
    writer: Any = None
    for r in report.inboxes:
        for f in r.rows:
            row: dict[str, Any] = {
                "from": report.start.isoformat(), "to": report.end.isoformat(),
                "inbox": r.inbox, "severity": f.severity, "received": f.received,
                "first_response_promise": str(r.first_response),
                **_flat("first_response", _tally(f.first_response)),
                "resolution_promise": str(r.resolution),
                **_flat("resolution", _tally(f.resolution)),
                "update_every": str(r.cadence) if r.cadence else "",
                **_flat("reporter_updates", _tally(f.updates)),
                **_flat("time_to_first_response", _spread(f.to_first_response)),
                **_flat("time_to_resolution", _spread(f.to_resolution)),
                **{f"closed_{o}": f.outcomes[o] for o in OUTCOMES},
                "credited": f.credited,
                "broken_promise_cases": " ".join(sorted(
                    {b.ref for b in r.breaches if f.severity in ("all", b.severity)})),
            }
            if writer is None:
                writer = csv.DictWriter(out, fieldnames=list(row), lineterminator="\n")
                writer.writeheader()
            writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return out.getvalue()


@dataclass(frozen=True, slots=True)
class InboxView:
    inbox: str
    promises: list[str]
    empty: bool
    header: list[str]  # the severities, then "all"
    table: list[tuple[str, list[str] | None]]  # (figure, a value per column); None: a heading
    charts: list[Markup]
    text_table: str
    breaches: list[tuple[str, str, str, str, str]]  # ref, severity, promise, due, kept
    credits: list[tuple[str, str]]

    @property
    def breach_lines(self) -> list[str]:
        return charts.text_table(None, [list(b) for b in self.breaches]).splitlines()


def _tally_rows(w: Words, title: str, tallies: Sequence[Tally]
                ) -> list[tuple[str, list[str] | None]]:
    return [(title, None),
            (w["on_time"], [w.percent(t.rate) for t in tallies]),
            (w["kept_of_due"], [w["of"].format(a=w.number(t.kept), b=w.number(t.kept + t.broken))
                                for t in tallies]),
            (w["running"], [w.number(t.pending) for t in tallies])]


def _table(r: InboxReport, w: Words, cols: Sequence[Figures]
           ) -> list[tuple[str, list[str] | None]]:
    promise = r.first_response, r.resolution
    rows: list[tuple[str, list[str] | None]] = [
        (w["received"], [w.number(f.received) for f in cols]),
        *_tally_rows(w, f"{w['fr_on_time']} ({w.duration(promise[0])})",
                     [f.first_response for f in cols]),
        *_tally_rows(w, f"{w['res_on_time']} ({w.duration(promise[1])})",
                     [f.resolution for f in cols]),
    ]
    if r.cadence:
        rows += _tally_rows(w, f"{w['updates']} ({w.duration(r.cadence)})",
                            [f.updates for f in cols])
    for title, spreads in ((w["ttfr"], [f.to_first_response for f in cols]),
                           (w["ttr"], [f.to_resolution for f in cols])):
        rows += [(f"{title} ({w['median_p90']})", None),
                 (w["business_days"], [_spread_text(w, s, False) for s in spreads]),
                 (w["hours"], [_spread_text(w, s, True) for s in spreads])]
    rows.append((w["outcomes"], None))
    rows += [(w.state(o), [w.number(f.outcomes[o]) for f in cols]) for o in OUTCOMES]
    rows.append((w["credited"], [w.number(f.credited) for f in cols]))
    return rows


def _spread_text(w: Words, s: Spread, hours: bool) -> str:
    if s.count == 0:
        return "-"
    if hours:
        assert s.median_hours is not None and s.p90_hours is not None
        return f"{w.number(s.median_hours, 1)} / {w.number(s.p90_hours, 1)}"
    assert s.median_days is not None and s.p90_days is not None
    return f"{w.number(s.median_days, 1)} / {w.number(s.p90_days, 1)}"


def inbox_view(r: InboxReport, w: Words, target: int) -> InboxView:
    promises = [w["first_response_promise"].format(promise=w.duration(r.first_response)),
                w["resolution_promise"].format(promise=w.duration(r.resolution))]
    if r.cadence:
        promises.append(w["update_promise"].format(promise=w.duration(r.cadence)))
    cols = r.rows
    table = _table(r, w, cols)
    header = [w.severity(f.severity) for f in cols]
    total = cols[-1]
    labels = [w.short_day(x.start) for x in r.weeks]
    chart_list = [
        charts.grouped_bars("received", w["received_closed"], labels,
                            [Series("received", w["received_series"], NEW_COLOUR,
                                    [x.received for x in r.weeks]),
                             Series("closed", w["closed_series"], CLOSED_COLOUR,
                                    [x.closed for x in r.weeks])],
                            w.number, w["nothing_period"]),
        charts.rate_bars("on-time", w["fr_chart"], promises[0], labels,
                         [(x.first_response.kept, x.first_response.kept
                           + x.first_response.broken) for x in r.weeks],
                         target, w.percent,
                         lambda a, b: w["of"].format(a=w.number(a), b=w.number(b)),
                         w["no_response_due"], w["target"]),
        charts.stacked_bar("outcomes", w["outcomes"],
                           [Part(o, w.state(o), total.outcomes[o], OUTCOME_COLOURS[o])
                            for o in OUTCOMES], w.number, w["none"]),
        charts.stacked_bar("severity", w["by_severity"],
                           [Part(f.severity, w.severity(f.severity), f.received,
                                 SEVERITY_COLOURS.get(f.severity, "#555555"))
                            for f in cols[:-1]], w.number, w["none"]),
    ]
    breaches = [(b.ref, w.severity(b.severity), _promise_name(w, b.promise),
                 f"{w['due_at']} {w.long_day(b.due.astimezone(r.zone))}",
                 f"{w['kept_at']}: " + (w.long_day(b.kept_at.astimezone(r.zone)) if b.kept_at
                                        else w["not_kept"]))
                for b in r.breaches]
    text = _text(header, table)
    return InboxView(r.inbox, promises, total.received == 0 and not any(total.outcomes.values())
                     and not r.breaches, header, table, chart_list, text, breaches, r.credits)


def _text(header: list[str], table: Sequence[tuple[str, list[str] | None]]) -> str:
    """The figures as aligned text; headings on lines of their own, outside the columns."""
    figures = [(f"  {label}", values) for label, values in table if values is not None]
    lines = iter(charts.text_table(["", *header], [[label, *values] for label, values in figures],
                                   [False, *([True] * len(header))]).splitlines())
    out = [next(lines)]
    for label, values in table:
        out.append(label if values is None else next(lines))
    return "\n".join(out)


def _promise_name(w: Words, promise: str) -> str:
    return w[{"first-response": "promise_first", "resolution": "promise_resolution"}.get(
        promise, "reporter-update")]


def render(templates: Templates, report: Report, language: str, target: int,
           fmt: str) -> str:
    """`html` or `text` (the figures for people, in `language`)."""
    w = Words.of(language)
    views: Sequence[InboxView] = [inbox_view(r, w, target) for r in report.inboxes]
    context = {
        "t": w, "n": w.number, "views": views, "language": w.language,
        "rules": RULES[w.language],
        "period": f"{w.long_day(report.start)} – {w.long_day(report.end)}",
        "as_of": f"{w.long_day(report.as_of)} {report.as_of:%H:%M} UTC",
    }
    return templates.render_file(f"report.{'html' if fmt == 'html' else 'txt'}", **context)
