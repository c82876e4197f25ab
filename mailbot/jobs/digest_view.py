"""What the digest templates show of one inbox's figures: charts, tables and lists (pure).

Lists stay readable with hundreds of cases: "due in the next 7 days" is grouped by day with
a count per day and at most `PER_DAY` cases a day; the rest are counted and the command that
lists them is named. Broken promises come first.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from zoneinfo import ZoneInfo

from markupsafe import Markup

from mailbot.jobs.figures import OPEN_STATES, SEVERITIES, Digest, Line, by_day
from mailbot.jobs.words import Words
from mailbot.mail import charts
from mailbot.mail.charts import Part, Series

PER_DAY = 10
BROKEN_SHOWN = 10
LISTED = 10  # new, closed and silent cases shown by name
NEW_COLOUR = "#1f5f99"
CLOSED_COLOUR = "#7cb342"
STATE_COLOURS = {"new": "#1f5f99", "triaged": "#4a90c8", "needs-info": "#f0a202",
                 "accepted": "#6a4c93", "fixing": "#2a9d8f"}
SEVERITY_COLOURS = {"critical": "#b71c1c", "high": "#e65100", "medium": "#f9a825",
                    "low": "#7cb342", "unrated": "#9e9e9e"}


@dataclass(frozen=True, slots=True)
class Row:
    """One case, as one line of a list."""

    ref: str
    severity: str
    assignee: str
    subject: str
    promise: str
    when: str  # "overdue since …", or the day


@dataclass(frozen=True, slots=True)
class Group:
    title: str  # a day, or the name of the list
    count: int
    rows: list[Row]
    more: str  # "and 12 more: mailbot digest …", or ""

    @property
    def text(self) -> list[str]:
        """The rows as aligned plain-text lines (ref, severity, assignee, subject)."""
        table = charts.text_table(None, [[r.ref, r.severity, r.assignee, r.subject]
                                         for r in self.rows])
        return table.splitlines()


@dataclass(frozen=True, slots=True)
class Panel:
    inbox: str
    quiet: bool
    summary: list[tuple[str, str]]
    weekly: Markup
    on_time: Markup
    by_state: Markup
    by_severity: Markup
    weekly_text: str
    on_time_text: str
    open_text: str
    broken: Group
    due: list[Group]
    due_count: int
    others: list[Group]


def panel(d: Digest, w: Words, zone: ZoneInfo, target: int) -> Panel:
    labels = [w.short_day(week.start.astimezone(zone)) for week in d.weeks]
    promise = w.duration(d.terms.first_response) if d.terms else ""
    new = [week.new for week in d.weeks]
    closed = [week.closed for week in d.weeks]
    weekly = charts.grouped_bars(
        "weekly", w["chart"], labels,
        [Series("new", w["new_series"], NEW_COLOUR, new),
         Series("closed", w["closed_series"], CLOSED_COLOUR, closed)],
        w.number, w["nothing_weeks"])
    counts = [(week.on_time, week.responded) for week in d.weeks]
    note = w["promise"].format(promise=promise) if promise else ""
    on_time = charts.rate_bars(
        "on-time", w["on_time_chart"], note, labels, counts, target, w.percent,
        lambda a, b: w["of"].format(a=w.number(a), b=w.number(b)), w["no_response_due"],
        w["target"])
    states = _parts(d.open_by_state, OPEN_STATES, STATE_COLOURS, w.state)
    severities = _parts(d.open_by_severity, SEVERITIES, SEVERITY_COLOURS, w.severity)
    summary = [
        (w["new"], w.number(len(d.new))), (w["closed"], w.number(len(d.closed))),
        (w["compliance"], f"{w.percent(d.compliance_week)} ({w['this_week']}), "
                          f"{w.percent(d.compliance_12_weeks)} ({w['twelve']})"),
        (w["median_first"], w.hours(d.median_first_response)),
        (w["median_resolution"], w.hours(d.median_resolution)),
    ]
    due_days = by_day(d.due_soon, zone)
    return Panel(
        inbox=d.inbox, quiet=d.quiet, summary=summary, weekly=weekly, on_time=on_time,
        by_state=charts.stacked_bar("state", w["open"], states, w.number, w["none"]),
        by_severity=charts.stacked_bar("severity", w["severity"], severities, w.number,
                                       w["none"]),
        weekly_text=_weekly_text(d, w, labels), on_time_text=_on_time_text(d, w, labels,
                                                                          target, note),
        open_text=_open_text(w, states, severities),
        broken=_group(w["broken_all"], d.broken, d, w, zone, BROKEN_SHOWN,
                      f"mailbot digest --inbox {d.inbox} --broken"),
        due=[_group(w.long_day(day), lines, d, w, zone, PER_DAY,
                    f"mailbot digest --inbox {d.inbox} --due {day:%Y-%m-%d}")
             for day, lines in due_days],
        due_count=len(d.due_soon),
        others=[_group(title, lines, d, w, zone, LISTED, "")
                for title, lines in ((w["silent"], d.silent), (w["new"], d.new),
                                     (w["closed"], d.closed))],
    )


def _parts(counts: Counter[str], order: Sequence[str], colours: dict[str, str],
           name: Callable[[str], str]) -> list[Part]:
    keys = [*order, *sorted(set(counts) - set(order))]
    return [Part(k, name(k), counts.get(k, 0), colours.get(k, "#555555")) for k in keys]


def row(x: Line, d: Digest, w: Words, zone: ZoneInfo) -> Row:
    promise = x.promise or ""
    if d.terms and x.promise == "first-response":
        promise = w["first-response"].format(promise=w.duration(d.terms.first_response))
    elif d.terms and x.promise == "resolution":
        promise = w["resolution"].format(promise=w.duration(d.terms.resolution))
    when = ""
    if x.when is not None:
        day = w.long_day(x.when.astimezone(zone))
        when = w["overdue_since"].format(day=day) if "overdue" in x.note else day
    subject = x.subject if len(x.subject) <= 80 else x.subject[:79] + "…"
    return Row(x.ref, w.severity(x.severity), x.assignee or w["unassigned"], subject, promise,
               when)


def _group(title: str, lines: Sequence[Line], d: Digest, w: Words, zone: ZoneInfo,
           limit: int, command: str) -> Group:
    rest = len(lines) - limit
    command = command or f"mailbot tickets --inbox {d.inbox}"
    more = w["more"].format(n=w.number(rest), command=command) if rest > 0 else ""
    return Group(title, len(lines), [row(x, d, w, zone) for x in lines[:limit]], more)


def _weekly_text(d: Digest, w: Words, labels: Sequence[str]) -> str:
    top = max([0, *(max(x.new, x.closed) for x in d.weeks)])
    rows = [[label, w.number(x.new), w.number(x.closed),
             charts.text_bar(x.new, top, 16), charts.text_bar(x.closed, top, 16)]
            for label, x in zip(labels, d.weeks, strict=True)]
    table = charts.text_table([w["week"], w["new_series"], w["closed_series"], "", ""], rows,
                              [False, True, True, False, False])
    spark = (f"{w['new_series']}: {charts.sparkline([x.new for x in d.weeks])}   "
             f"{w['closed_series']}: {charts.sparkline([x.closed for x in d.weeks])}")
    return f"{w['chart']}\n{table}\n{spark}"


def _on_time_text(d: Digest, w: Words, labels: Sequence[str], target: int, note: str) -> str:
    rows = []
    for label, x in zip(labels, d.weeks, strict=True):
        if x.rate is None:
            rows.append([label, "-", w["no_response_due"], ""])
        else:
            flag = "" if x.rate >= target else f"< {w['target']}"
            rows.append([label, w.percent(x.rate),
                         w["of"].format(a=w.number(x.on_time), b=w.number(x.responded)), flag])
    table = charts.text_table([w["week"], "%", "", ""], rows, [False, True, False, False])
    head = f"{w['on_time_chart']} ({w['target']} {w.percent(target)}"
    return f"{head}{'; ' + note if note else ''})\n{table}"


def _open_text(w: Words, states: Sequence[Part], severities: Sequence[Part]) -> str:
    blocks = []
    for title, parts in ((w["open"], states), (w["severity"], severities)):
        shown = [p for p in parts if p.count]
        if not shown:
            blocks.append(f"{title}: {w['none']}")
            continue
        total = sum(p.count for p in shown)
        rows = [[p.name, w.number(p.count), charts.text_bar(p.count, total, 20)] for p in shown]
        rows.append([w["total"], w.number(total), ""])
        blocks.append(f"{title}\n" + charts.text_table(["", w["cases"], ""], rows,
                                                        [False, True, False]))
    return "\n\n".join(blocks)


def full_list(d: Digest, w: Words, zone: ZoneInfo, day: date | None) -> list[str]:
    """Every case the digest counted under one day's deadlines (or, with no day, under
    broken promises), as aligned text: what the digest's "and N more" points to."""
    if day is None:
        lines = d.broken
    else:
        lines = next((found for when, found in by_day(d.due_soon, zone) if when == day), [])
    rows = [row(x, d, w, zone) for x in lines]
    return charts.text_table(None, [[r.ref, r.severity, r.assignee, r.subject,
                                     f"{r.promise}: {r.when}"] for r in rows]).splitlines()
