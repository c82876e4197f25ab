"""The compliance report of a known database, every figure checked against the database."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import math
import statistics
import subprocess
import sys
from datetime import date, datetime, time, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import holidays
import pytest

from mailbot.jobs import report, report_view
from mailbot.mail.render import Templates
from tests.digest_support import AMS, END, build_report, cells, utc
from tests.email_lint import problems
from tests.support import Bot, Sink, direct
from tests.support import report as support_report

DONE = "('resolved', 'rejected', 'duplicate', 'closed')"
# From before summer time began (29 March) to after it ended (25 October).
FROM, TO = date(2026, 3, 1), date(2026, 10, 31)
START = datetime.combine(FROM, time(0), tzinfo=AMS)
STOP = datetime.combine(TO + timedelta(days=1), time(0), tzinfo=AMS)
RECEIVED = "inbox = 'security' AND created_at >= :start AND created_at < :stop"
CLOSED = f"inbox = 'security' AND state IN {DONE} AND resolved_at >= :start AND resolved_at < :stop"
SEVERITY = {"all": "TRUE", **{s: f"coalesce(severity, 'unrated') = '{s}'"
                           for s in ("critical", "high", "medium", "low", "unrated")}}
NL = holidays.country_holidays("NL", years=[2026])


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory, module_database: None
         ) -> tuple[Path, dict[str, Any], Any]:
    tmp = tmp_path_factory.mktemp("report")
    config, found = asyncio.run(build_report(tmp, FROM, TO))
    return config.storage.database, report_view.to_json(found), found


def rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with direct(db) as conn:
        return [tuple(r) for r in conn.execute(sql, {"start": utc(START), "stop": utc(STOP),
                                                     "as_of": utc(END)}).fetchall()]


def number(db: Path, sql: str) -> int:
    return int(rows(db, sql)[0][0])


def figures(j: dict[str, Any], severity: str) -> dict[str, Any]:
    found = j["inboxes"][0]["figures"]
    return next(f for f in found if f["severity"] == severity)


def business_days(start: str, end: str) -> int:
    """Business days after start's local day up to end's (a count of our own, not sla's)."""
    a = datetime.fromisoformat(start).astimezone(AMS).date()
    b = datetime.fromisoformat(end).astimezone(AMS).date()
    return sum(1 for n in range(1, (b - a).days + 1)
               if (d := a + timedelta(days=n)).weekday() < 5 and d not in NL)


def spread(values: list[float]) -> tuple[float, float]:
    values = sorted(values)
    return statistics.median(values), values[math.ceil(0.9 * len(values)) - 1]


@pytest.mark.parametrize("severity", list(SEVERITY))
def test_promises_kept_per_severity(made: tuple[Path, dict[str, Any], Any],
                                    severity: str) -> None:
    """Received, first responses and resolutions kept/broken/running, outcomes and credits:
    each as SQL counts them for the severity."""
    db, j, _ = made
    f = figures(j, severity)
    where = f"{RECEIVED} AND {SEVERITY[severity]}"
    assert f["received"] == number(db, f"SELECT count(*) FROM cases WHERE {where}")
    assert f["received"] > 0
    first = f["first_response"]
    assert first["kept"] == number(db, f"SELECT count(*) FROM cases WHERE {where} AND"
                                       " first_responded_at <= first_response_due")
    assert first["broken"] == number(db, f"SELECT count(*) FROM cases WHERE {where} AND"
                                         " (first_responded_at > first_response_due OR"
                                         " (first_responded_at IS NULL AND"
                                         "  first_response_due < :as_of))")
    assert first["pending"] == f["received"] - first["kept"] - first["broken"]
    assert first["on_time_percent"] == round(100 * first["kept"]
                                             / (first["kept"] + first["broken"]), 1)
    res = f["resolution"]
    assert res["kept"] == number(db, f"SELECT count(*) FROM cases WHERE {where} AND state IN"
                                     f" {DONE} AND resolved_at <= resolution_due")
    assert res["broken"] == number(db, f"SELECT count(*) FROM cases WHERE {where} AND"
                                       f" ((state IN {DONE} AND resolved_at > resolution_due) OR"
                                       f" (state NOT IN {DONE} AND resolution_due < :as_of))")
    closed = f"{CLOSED} AND {SEVERITY[severity]}"
    by_state = dict(rows(db, f"SELECT state, count(*) FROM cases WHERE {closed} GROUP BY state"))
    scope = number(db, f"SELECT count(*) FROM cases WHERE {closed} AND state = 'closed' AND"
                       " lower((SELECT detail FROM events WHERE case_id = cases.id AND action ="
                       " 'close' ORDER BY id DESC LIMIT 1)) LIKE '%out%of%scope%'")
    assert f["outcomes"] == {"resolved": by_state.get("resolved", 0),
                             "rejected": by_state.get("rejected", 0),
                             "duplicate": by_state.get("duplicate", 0),
                             "out-of-scope": scope,
                             "closed": by_state.get("closed", 0) - scope}
    assert f["credited"] == number(db, f"SELECT count(*) FROM cases WHERE {closed} AND"
                                       " credit IS NOT NULL")


@pytest.mark.parametrize("severity", ["all", "critical", "unrated"])
def test_times_to_first_response_and_resolution(made: tuple[Path, dict[str, Any], Any],
                                                severity: str) -> None:
    """Median and 90th percentile, in hours (SQL's julianday) and in business days (a count
    of the test's own over the NL holidays), for first responses and resolutions."""
    db, j, _ = made
    f = figures(j, severity)
    answered = rows(db, f"SELECT created_at, first_responded_at FROM cases WHERE {RECEIVED}"
                        f" AND {SEVERITY[severity]} AND first_responded_at IS NOT NULL")
    closed = rows(db, f"SELECT created_at, resolved_at FROM cases WHERE {CLOSED} AND"
                      f" {SEVERITY[severity]}")
    for key, pairs in (("time_to_first_response", answered), ("time_to_resolution", closed)):
        hours = [(datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds() / 3600
                 for a, b in pairs]
        days = [float(business_days(a, b)) for a, b in pairs]
        assert f[key]["count"] == len(pairs) > 0
        median_h, p90_h = spread(hours)
        median_d, p90_d = spread(days)
        assert f[key]["median_hours"] == round(median_h, 1)
        assert f[key]["p90_hours"] == round(p90_h, 1)
        assert f[key]["median_business_days"] == round(median_d, 1)
        assert f[key]["p90_business_days"] == round(p90_d, 1)


def test_reporter_updates_within_the_cadence(made: tuple[Path, dict[str, Any], Any]) -> None:
    """Every update due in the period (14 days after the previous mail to the reporter,
    the end of that local day) is kept or broken as the messages table says."""
    db, j, _ = made
    kept = broken = 0
    cases = rows(db, "SELECT id, created_at, resolved_at FROM cases WHERE inbox ="
                     " 'security' AND created_at < :stop")
    sent: dict[int, list[datetime]] = {}
    for case_id, at in rows(db, "SELECT case_id, date FROM messages WHERE direction = 'out'"
                                " AND kind IN ('ack', 'reply')"):
        sent.setdefault(case_id, []).append(datetime.fromisoformat(at))
    for case_id, created, resolved in cases:
        closed_at = datetime.fromisoformat(resolved) if resolved else None
        moments = sorted({datetime.fromisoformat(created), *sent.get(case_id, [])})
        for i, previous in enumerate(moments):
            local = previous.astimezone(AMS).date() + timedelta(days=14)
            due = datetime.combine(local, time(23, 59, 59), tzinfo=AMS)
            if closed_at is not None and closed_at <= due:
                break
            later = moments[i + 1] if i + 1 < len(moments) else None
            if START <= due < STOP:
                if later is not None and later <= due:
                    kept += 1
                elif later is not None or due < END:
                    broken += 1
            if later is None or due >= STOP:
                break
    updates = figures(j, "all")["reporter_updates"]
    assert (updates["kept"], updates["broken"]) == (kept, broken)
    assert kept > 100 and broken > 50


def test_broken_promises_name_their_cases(made: tuple[Path, dict[str, Any], Any]) -> None:
    """Every broken first response and resolution of a received case is listed by reference."""
    db, j, _ = made
    listed = {(b["ref"], b["promise"]) for b in j["inboxes"][0]["broken_promises"]}
    late_first = {r for (r,) in rows(db, f"SELECT ref FROM cases WHERE {RECEIVED} AND"
                                         " (first_responded_at > first_response_due OR"
                                         " (first_responded_at IS NULL AND"
                                         "  first_response_due < :as_of))")}
    assert {r for r, p in listed if p == "first-response"} == late_first
    late_fix = {r for (r,) in rows(db, f"SELECT ref FROM cases WHERE {RECEIVED} AND"
                                       f" ((state IN {DONE} AND resolved_at > resolution_due)"
                                       f" OR (state NOT IN {DONE} AND resolution_due < :as_of))")}
    assert {r for r, p in listed if p == "resolution"} == late_fix


def test_csv_and_html_carry_the_same_figures(made: tuple[Path, dict[str, Any], Any]) -> None:
    """The CSV row of each severity and the HTML table's "all" column hold the JSON figures;
    the HTML passes the email lint and escapes the credited names."""
    _, j, found = made
    table = list(csv.DictReader(io.StringIO(report_view.to_csv(found))))
    assert [r["severity"] for r in table if r["inbox"] == "security"] == [
        f["severity"] for f in j["inboxes"][0]["figures"]]
    for r in table:
        if r["inbox"] != "security":
            continue
        f = figures(j, r["severity"])
        assert int(r["received"]) == f["received"]
        assert int(r["first_response_kept"]) == f["first_response"]["kept"]
        assert float(r["time_to_resolution_p90_hours"] or "nan") == pytest.approx(
            f["time_to_resolution"]["p90_hours"] or math.nan, nan_ok=True)
        assert int(r["closed_out-of-scope"]) == f["outcomes"]["out-of-scope"]
    html = report_view.render(Templates(), found, "en", 80, "html")
    assert problems(html, mail=False) == []  # a file for the auditor: no size limit
    everything = figures(j, "all")
    assert f">{everything['received']}</td>" in html
    assert f"{everything['first_response']['kept']} of " in html
    assert "&lt;b&gt;Mallory&lt;/b&gt;" in html and "<b>Mallory</b>" not in html


def mailbot(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mailbot", *args, "--config", str(config),
                           "--log-level", "error"], capture_output=True, text=True, timeout=120)


def test_report_command(made: tuple[Path, dict[str, Any], Any]) -> None:
    """`mailbot report` prints JSON, CSV, HTML and text for a period; the counts that do not
    depend on the moment it runs are the ones above."""
    db, j, _ = made
    config = db.parent / "mailbot.toml"
    out = mailbot(config, "report", "--from", "2026-03-01", "--to", "2026-10-31", "--inbox",
                  "security", "--format", "json")
    assert out.returncode == 0, out.stderr
    printed = json.loads(out.stdout)
    assert [i["inbox"] for i in printed["inboxes"]] == ["security"]
    assert figures(printed, "all")["received"] == figures(j, "all")["received"]
    assert figures(printed, "all")["outcomes"] == figures(j, "all")["outcomes"]
    for fmt, marker in (("csv", "from,to,inbox,severity,received"),
                        ("html", 'data-chart="on-time"'), ("text", "Compliance report")):
        out = mailbot(config, "report", "--from", "2026-03-01", "--to", "2026-10-31",
                      "--format", fmt)
        assert out.returncode == 0, out.stderr
        assert marker in out.stdout


@pytest.mark.parametrize(("args", "error"), [
    (["--from", "2026-13-01", "--to", "2026-10-31"], "is not a date"),
    (["--from", "2026-10-31", "--to", "2026-03-01"], "is before --from"),
    (["--from", "2026-03-01", "--to", "2026-10-31", "--inbox", "nope"], "no inbox named"),
    (["--from", "2026-03-01", "--to", "2026-10-31", "--format", "pdf"], "invalid choice"),
])
def test_report_bad_input(made: tuple[Path, dict[str, Any], Any], args: list[str],
                          error: str) -> None:
    """A bad date, period, inbox or format gets a one-line error and exit code 2."""
    db, _, _ = made
    out = mailbot(db.parent / "mailbot.toml", "report", *args)
    assert out.returncode == 2
    assert error in out.stderr and "Traceback" not in out.stderr


async def test_a_close_by_mail_counts_as_out_of_scope(bot: Bot, sink: Sink) -> None:
    """Staff close a case by mail with "#close out of scope"; the audit log keeps the reason
    and the report counts the case as out of scope, the day's report from the real daemon."""
    await bot.send(support_report())
    (note,) = await sink.wait_for(1, to="alice@example.org")
    reply = EmailMessage()
    reply["From"] = "Alice <alice@example.org>"
    reply["To"] = str(note.msg["Reply-To"])
    reply["Subject"] = f"Re: {note.msg['Subject']}"
    reply["Message-ID"] = "<alice-close-1@example.org>"
    reply["In-Reply-To"] = str(note.msg["Message-ID"])
    reply["Date"] = format_datetime(bot.clock())
    reply.set_content("#close out of scope: SPF on a parked domain\n")
    await bot.send(reply, to=[str(note.msg["Reply-To"])])
    await sink.wait_for(2, to="alice@example.org")  # the notification, then the transcript
    store = await bot.open_store()
    async with store.read() as db:
        (detail,) = await db.execute_fetchall(
            "SELECT detail FROM events WHERE action = 'close'")
    assert detail[0] == "out of scope: SPF on a parked domain"
    day = bot.clock().astimezone(AMS).date()
    found = await report.build(store, bot.config, day, day, "security",
                               bot.clock() + timedelta(minutes=1))
    total = found.inboxes[0].rows[-1]
    assert total.received == 1
    assert dict(total.outcomes)["out-of-scope"] == 1


def test_a_period_without_cases(made: tuple[Path, dict[str, Any], Any]) -> None:
    """A period before the first case says so in every form instead of drawing empty charts."""
    db, _, _ = made
    _, found = asyncio.run(build_report(db.parent, date(2025, 1, 1), date(2025, 1, 31)))
    html = report_view.render(Templates(), found, "en", 80, "html")
    text = report_view.render(Templates(), found, "en", 80, "text")
    assert html.count('data-quiet="1"') == 2 and "data-chart" not in html
    assert text.count("No case in this period.") == 2
    assert problems(html) == []
    assert all(f["received"] == 0 for i in report_view.to_json(found)["inboxes"]
               for f in i["figures"])


def test_report_charts_against_the_database(made: tuple[Path, dict[str, Any], Any]) -> None:
    """The HTML report's charts: received and closed per week of the period (weeks from
    local midnight, across both clock changes), first responses kept per week of receipt,
    outcomes and severities: each number as SQL counts it."""
    db, j, found = made
    html = report_view.render(Templates(), found, "en", 80, "html")
    days = (TO - FROM).days
    starts = [datetime.combine(FROM + timedelta(days=7 * i), time(0), tzinfo=AMS)
              for i in range(days // 7 + 1)]
    bounds = list(zip(starts, [*starts[1:], STOP], strict=True))
    weekly = cells(html, "received")
    for series, column, extra in (("received", "created_at", ""),
                                  ("closed", "resolved_at", f" AND state IN {DONE}")):
        shown = [int(c["value"]) for c in weekly if c["series"] == series]
        expected = [int(rows(db, f"SELECT count(*) FROM cases WHERE inbox = 'security'{extra}"
                                 f" AND {column} >= '{utc(a)}' AND {column} < '{utc(b)}'")[0][0])
                    for a, b in bounds]
        assert shown == expected
    on_time = cells(html, "on-time")
    assert len(on_time) == len(bounds)
    for (a, b), cell in zip(bounds, on_time, strict=True):
        cohort = (f"inbox = 'security' AND created_at >= '{utc(a)}' AND created_at < '{utc(b)}'")
        kept = number(db, f"SELECT count(*) FROM cases WHERE {cohort} AND"
                          " first_responded_at <= first_response_due")
        due = number(db, f"SELECT count(*) FROM cases WHERE {cohort} AND"
                         " (first_responded_at IS NOT NULL OR first_response_due < :as_of)")
        assert cell["value"] == (str(round(100 * kept / due)) if due else "")
    outcomes = {c["series"]: int(c["value"]) for c in cells(html, "outcomes")}
    assert outcomes == {k: v for k, v in figures(j, "all")["outcomes"].items() if v}
    received = dict(rows(db, f"SELECT coalesce(severity, 'unrated'), count(*) FROM cases"
                             f" WHERE {RECEIVED} GROUP BY 1"))
    assert {c["series"]: int(c["value"]) for c in cells(html, "severity")} == received
