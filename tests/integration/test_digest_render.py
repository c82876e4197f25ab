"""The digest of a known database, every number checked against SQL of the test's own."""

from __future__ import annotations

import asyncio
import itertools
import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from mailbot.config import load_config
from mailbot.jobs import digest
from mailbot.mail.render import Templates
from mailbot.store import open_store
from tests.digest_support import AMS, END, Cells, cells, render_digest, utc, write_config
from tests.email_lint import problems
from tests.support import direct

DONE = "('resolved', 'rejected', 'duplicate', 'closed')"
WEEKS = [END - timedelta(weeks=12 - i) for i in range(12)] + [END]


@dataclass(frozen=True)
class Rendered:
    db: Path
    text: str
    html: str


async def _render(tmp: Path, language: str) -> Rendered:
    return Rendered(*await render_digest(tmp, language))


@pytest.fixture(scope="module", params=["en", "nl"])
def rendered(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
             module_database: None) -> Rendered:
    tmp = tmp_path_factory.mktemp(f"digest-{request.param}")
    return asyncio.run(_render(tmp, request.param))


def count(db: Path | str, sql: str, *params: object) -> int:
    with direct(db) as conn:
        return int(conn.execute(sql, params).fetchone()[0])


def weekly_from_sql(db: Path | str, inbox: str) -> tuple[list[int], list[int]]:
    new, closed = [], []
    for a, b in itertools.pairwise(WEEKS):
        new.append(count(db, "SELECT count(*) FROM cases WHERE inbox = ? AND created_at >= ?"
                             " AND created_at < ?", inbox, utc(a), utc(b)))
        closed.append(count(db, f"SELECT count(*) FROM cases WHERE inbox = ? AND state IN {DONE}"
                                " AND resolved_at >= ? AND resolved_at < ?", inbox, utc(a),
                            utc(b)))
    return new, closed


@pytest.mark.parametrize(("position", "inbox"), [(0, "security"), (1, "support")])
def test_new_and_closed_per_week(rendered: Rendered, position: int, inbox: str) -> None:
    """Each week's bars carry the new and closed counts SQL finds for that week, weeks
    bounded at Monday 09:00 local time across the end of summer time."""
    new, closed = weekly_from_sql(rendered.db, inbox)
    assert sum(new) > 50  # the known database: cases every week, DST inside the weeks
    found = cells(rendered.html, "weekly", position)
    shown_new = [int(c["value"]) for c in found if c["series"] == "new"]
    shown_closed = [int(c["value"]) for c in found if c["series"] == "closed"]
    assert shown_new == new
    assert shown_closed == closed
    assert [c["text"] for c in found] == [str(v) for v in (x for pair in zip(new, closed,
                                                                              strict=True)
                                                            for x in pair)]
    labels = [c["label"] for c in found if c["series"] == "new"]
    assert len(set(labels)) == 12


def test_first_responses_on_time_per_week(rendered: Rendered) -> None:
    """Each week's share of first responses kept, and the kept/due counts, are SQL's."""
    found = cells(rendered.html, "on-time")
    assert len(found) == 12
    for (a, b), cell in zip(itertools.pairwise(WEEKS), found, strict=True):
        due = count(rendered.db, "SELECT count(*) FROM cases WHERE inbox = 'security' AND"
                                 " first_response_due >= ? AND first_response_due < ?",
                    utc(a), utc(b))
        kept = count(rendered.db, "SELECT count(*) FROM cases WHERE inbox = 'security' AND"
                                  " first_response_due >= ? AND first_response_due < ?"
                                  " AND first_responded_at <= first_response_due",
                     utc(a), utc(b))
        if due == 0:
            assert cell["value"] == ""
            continue
        assert int(cell["value"]) == round(100 * kept / due)
        assert re.search(rf"\b{kept}\b.*\b{due}\b", cell["text"]), cell["text"]


def test_open_cases_by_state_and_severity(rendered: Rendered) -> None:
    """The stacked bars' counts are the open cases SQL counts by state and by severity."""
    with direct(rendered.db) as conn:
        states = dict(conn.execute(
            f"SELECT state, count(*) FROM cases WHERE inbox = 'security' AND state NOT IN {DONE}"
            " GROUP BY state").fetchall())
        severities = dict(conn.execute(
            "SELECT coalesce(severity, 'unrated'), count(*) FROM cases WHERE inbox = 'security'"
            f" AND state NOT IN {DONE} GROUP BY 1").fetchall())
    assert {c["series"]: int(c["value"]) for c in cells(rendered.html, "state")} == states
    assert {c["series"]: int(c["value"])
            for c in cells(rendered.html, "severity")} == severities


def test_due_in_the_next_7_days_by_day(rendered: Rendered) -> None:
    """Deadlines of the coming week are counted per local day as SQL finds them; no day
    lists more than 10 cases, and a day with more names the command that lists the rest."""
    # The window (2-9 November 2026) is all CET, so the local day is UTC + 1 hour.
    assert END.utcoffset() == (END + timedelta(days=7)).utcoffset() == timedelta(hours=1)
    per_day: Counter[str] = Counter()
    with direct(rendered.db) as conn:
        for column, unkept in (("first_response_due", "first_responded_at IS NULL"),
                               ("resolution_due", "TRUE")):
            per_day.update(
                (datetime.fromisoformat(v) + timedelta(hours=1)).date().isoformat()
                for (v,) in conn.execute(
                    f"SELECT {column} FROM cases WHERE inbox = 'security'"
                    f" AND state NOT IN {DONE} AND {unkept} AND {column} >= ? AND {column} < ?",
                    (utc(END), utc(END + timedelta(days=7)))).fetchall())
    p = Cells()
    p.feed(rendered.html)
    shown = [int(c["day-count"]) for c in p.cells if "day-count" in c and c["inbox"] == "0"]
    assert shown == [per_day[d] for d in sorted(per_day)]
    assert max(shown) > 10
    busiest = max(per_day, key=lambda d: per_day[d])
    rest = per_day[busiest] - 10
    assert re.search(rf"\b{rest}\b[^<0-9]*mailbot digest --inbox security --due {busiest}",
                     rendered.html)


def test_broken_promises_first(rendered: Rendered) -> None:
    """Broken promises are counted as SQL counts them and listed before what falls due."""
    broken = count(rendered.db, "SELECT count(*) FROM cases WHERE inbox = 'security' AND"
                                f" state NOT IN {DONE} AND first_responded_at IS NULL AND"
                                " first_response_due < ?", utc(END))
    broken += count(rendered.db, "SELECT count(*) FROM cases WHERE inbox = 'security' AND"
                                 f" state NOT IN {DONE} AND resolution_due < ?", utc(END))
    title = "Broken promises" if "Weekly" in rendered.text else "Gebroken beloftes"
    assert f"{title}: {broken}" in rendered.html
    assert rendered.html.index('data-list="broken"') < rendered.html.index('data-list="due"')
    assert "mailbot digest --inbox security --broken" in rendered.text


def test_text_part_has_the_same_numbers(rendered: Rendered) -> None:
    """The text part's aligned week table holds the same new and closed counts."""
    new, closed = weekly_from_sql(rendered.db, "security")
    block = rendered.text.split("== security ==")[1].split("== support ==")[0]
    rows = re.findall(r"^(\d{1,2} \w+)\s+(\d+)\s+(\d+)", block, re.M)[:12]
    assert [int(n) for _, n, _ in rows] == new
    assert [int(c) for _, _, c in rows] == closed


def test_html_passes_the_email_lint(rendered: Rendered) -> None:
    """No <style>, no external resource, widths in attributes, tables 3 deep at most,
    under Gmail's clipping size: with 208 new cases in the week and two inboxes."""
    assert problems(rendered.html) == []


def test_dates_and_numbers_in_the_readers_language(rendered: Rendered) -> None:
    """Dates are written out by babel in the digest's language."""
    if "Weekoverzicht" in rendered.text:
        assert "maandag 2 november 2026" in rendered.text
        assert "eerste reactie binnen 3 werkdagen" in rendered.html
        assert "eerste reactie binnen 5 werkdagen" in rendered.html  # the support policy
    else:
        assert "Monday 2 November 2026" in rendered.text
        assert "first response within 3 business days" in rendered.html
        assert "first response within 5 business days" in rendered.html  # the support policy


async def test_nothing_this_week(tmp_path: Path) -> None:
    """An inbox with no case at all says so instead of drawing empty charts."""
    config = load_config(write_config(tmp_path))
    store = await open_store(config.storage)
    try:
        digests = await digest.build(store, config, datetime(2026, 11, 2, 9, tzinfo=AMS))
    finally:
        await store.close()
    text, html = digest.render(Templates(), digests, "en", "Europe/Amsterdam")
    assert text.count("Nothing this week") == 2
    assert html.count('data-quiet="1"') == 2
    assert "data-chart" not in html
    assert problems(html) == []


def test_summary_figures(rendered: Rendered) -> None:
    """New and closed this week, first responses on time this week and over 12 weeks, and
    the median waits: as SQL finds them."""
    week = (utc(END - timedelta(days=7)), utc(END))
    new = count(rendered.db, "SELECT count(*) FROM cases WHERE inbox = 'security' AND"
                             " created_at >= ? AND created_at < ?", *week)
    closed = count(rendered.db, "SELECT count(*) FROM cases WHERE inbox = 'security' AND"
                                f" state IN {DONE} AND resolved_at >= ? AND resolved_at < ?",
                   *week)

    def on_time(start: datetime) -> int:
        due = count(rendered.db, "SELECT count(*) FROM cases WHERE inbox = 'security' AND"
                                 " first_response_due >= ? AND first_response_due < ?",
                    utc(start), utc(END))
        kept = count(rendered.db, "SELECT count(*) FROM cases WHERE inbox = 'security' AND"
                                  " first_response_due >= ? AND first_response_due < ? AND"
                                  " first_responded_at <= first_response_due",
                     utc(start), utc(END))
        return round(100 * kept / due)

    with direct(rendered.db) as conn:
        waits = sorted(
            (datetime.fromisoformat(done) - datetime.fromisoformat(opened)).total_seconds() / 3600
            for done, opened in conn.execute(
                "SELECT first_responded_at, created_at FROM cases"
                " WHERE inbox = 'security' AND first_responded_at IS NOT NULL").fetchall())
    mid = len(waits) // 2
    median = waits[mid] if len(waits) % 2 else (waits[mid - 1] + waits[mid]) / 2
    block = rendered.text.split("== security ==")[1]
    values = [re.split(r":\s{2,}", line, maxsplit=1)[1]
              for line in block.strip().splitlines()[:4]]
    assert values[0] == str(new) and values[1] == str(closed)
    assert re.fullmatch(rf"{on_time(END - timedelta(days=7))}% \(.+\), "
                        rf"{on_time(WEEKS[0])}% \(.+\)", values[2])
    assert values[3].replace(",", ".").split()[0] == f"{median:.1f}"
