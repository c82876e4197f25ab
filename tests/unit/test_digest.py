"""The weekly digest's numbers over known cases, its escaping, and its schedule."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from mailbot.config import load_config
from mailbot.errors import ConfigErrors
from mailbot.jobs.digest import compute, last_scheduled, render
from mailbot.mail.render import Templates

AMS = ZoneInfo("Europe/Amsterdam")
END = datetime(2026, 12, 21, 9, 0, tzinfo=AMS)  # Monday 09:00: the digest of the week before


def at(days: float) -> str:
    """An ISO moment `days` before the end of the digest's week (negative: after it)."""
    return (END - timedelta(days=days)).astimezone(UTC).isoformat()


def case(ref: str, **fields: object) -> dict[str, object]:
    base: dict[str, object] = dict(
        ref=ref, subject=f"subject {ref}", state="new", severity=None, created_at=at(1),
        first_response_due=at(-2), first_responded_at=None, resolution_due=at(-29),
        resolved_at=None, last_reporter_update_at=at(1), assignee=None,
    )
    base.update(fields)
    return base


CASES = [
    # new this week, answered on time (1 day after opening, due this week)
    case("A", created_at=at(5), first_response_due=at(2), first_responded_at=at(4),
         state="accepted", severity="high"),
    # opened last week, first response fell due this week and was missed
    case("B", created_at=at(9), first_response_due=at(3)),
    # old, answered on time long ago, resolution overdue since two weeks
    case("C", created_at=at(40), first_response_due=at(37), first_responded_at=at(39),
         resolution_due=at(14), state="fixing", severity="critical"),
    # resolved this week after 12 days, answered in 2 days
    case("D", created_at=at(14), first_response_due=at(11), first_responded_at=at(12),
         resolved_at=at(2), state="resolved"),
    # new this week, first response due in two days
    case("E", created_at=at(1), first_response_due=at(-2)),
]


def test_counts_and_lists() -> None:
    """New, closed, open by state/severity, due soon, broken: each case where it belongs."""
    d = compute("security", CASES, END)
    assert [c.ref for c in d.new] == ["A", "E"]
    assert [c.ref for c in d.closed] == ["D"]
    assert d.open_by_state == {"accepted": 1, "new": 2, "fixing": 1}
    assert d.open_by_severity == {"high": 1, "unrated": 2, "critical": 1}
    assert [(c.ref, c.note) for c in d.due_soon] == [("E", "first response due")]
    assert [(c.ref, c.note) for c in d.broken_this_week] == [("B", "first response overdue")]
    assert [(c.ref, c.note) for c in d.still_broken] == [("C", "resolution overdue")]


def test_compliance_and_medians() -> None:
    """On-time first responses this week and over 12 weeks; medians of the waits."""
    d = compute("security", CASES, END)
    assert d.compliance_week == 50.0  # A on time, B missed
    assert d.compliance_12_weeks == pytest.approx(100 * 3 / 4)  # A, C, D kept; B missed
    assert d.median_first_response == timedelta(days=1)  # waits: A 1, C 1, D 2 days
    assert d.median_resolution == timedelta(days=12)
    assert [w.new for w in d.weeks][-2:] == [2, 2]  # B, D the week before; A, E this week


def test_html_escapes_everything_from_mail() -> None:
    """Subjects with markup or template syntax appear as text: escaped, never evaluated."""
    hostile = case("X", subject="<script>alert(1)</script> {{ config }} {% raw %}",
                   created_at=at(1))
    d = compute("security", [hostile], END)
    text, html = render(Templates(), [d], "en", "Europe/Amsterdam")
    assert "&lt;script&gt;alert(1)&lt;/script&gt; {{ config }} {% raw %}" in html
    assert "<script>" not in html
    assert "<script>alert(1)</script> {{ config }}" in text
    assert 'data-chart="weekly"' in html  # the chart is ours, so it is markup


def test_dutch_digest() -> None:
    """The digest speaks Dutch when configured so."""
    text, _ = render(Templates(), [compute("security", CASES, END)], "nl", "Europe/Amsterdam")
    assert "Weekoverzicht" in text
    assert re.search(r"^Eerste reactie op tijd: +50% \(deze week\)", text, re.M)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (datetime(2026, 12, 21, 9, 0, tzinfo=AMS), datetime(2026, 12, 21, 9, 0, tzinfo=AMS)),
        (datetime(2026, 12, 21, 8, 59, tzinfo=AMS), datetime(2026, 12, 14, 9, 0, tzinfo=AMS)),
        (datetime(2026, 12, 24, 23, 0, tzinfo=AMS), datetime(2026, 12, 21, 9, 0, tzinfo=AMS)),
        # across the end of DST: Monday 26 October 09:00 is in CET, the week before in CEST
        (datetime(2026, 10, 26, 8, 30, tzinfo=UTC), datetime(2026, 10, 26, 9, 0, tzinfo=AMS)),
        (datetime(2026, 10, 26, 7, 30, tzinfo=UTC), datetime(2026, 10, 19, 9, 0, tzinfo=AMS)),
    ],
)
def test_last_scheduled(now: datetime, expected: datetime) -> None:
    """The period ends at the latest "mon 09:00" local time at or before now."""
    assert last_scheduled(now, "mon 09:00", "Europe/Amsterdam") == expected


def test_cases_without_a_reporter_update_in_the_cadence() -> None:
    """Open cases whose reporter heard nothing for longer than the cadence are listed."""
    quiet = case("Q", created_at=at(30), first_responded_at=at(29), state="fixing",
                 last_reporter_update_at=at(20))
    waiting = case("W", created_at=at(30), state="needs-info", last_reporter_update_at=at(20))
    d = compute("security", [*CASES, quiet, waiting], END, cadence=timedelta(days=14))
    assert [(c.ref, c.note) for c in d.silent] == [("Q", "last update")]


def test_week_buckets_across_a_dst_change() -> None:
    """With winter time begun in the 12 weeks, a case opened in the digest week's last hour
    counts in that week (the division by 7 days once put it in a 13th: IndexError)."""
    late = (END - timedelta(minutes=30)).astimezone(UTC).isoformat()
    d = compute("security", [case("L", created_at=late)], END)
    assert [w.new for w in d.weeks][-1] == 1
    assert sum(w.new for w in d.weeks) == 1


@pytest.mark.parametrize(("value", "error"), [("150", "not a percentage"),
                                               ('"90%"', "must be int")])
def test_digest_target_is_checked(tmp_path: Path, value: str, error: str) -> None:
    """`[digest] target` is a whole percentage; anything else is named with its key."""
    path = tmp_path / "mailbot.toml"
    path.write_text('[[inbox]]\nname = "security"\naddress = "security@example.org"\n'
                    'prefix = "SEC"\npolicy = "security"\n[policy.security]\n'
                    f"[digest]\ntarget = {value}\n")
    with pytest.raises(ConfigErrors) as caught:
        load_config(path)
    assert any("digest.target" in str(e) and error in str(e) for e in caught.value.errors)
