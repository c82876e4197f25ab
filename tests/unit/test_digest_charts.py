"""The mail charts and the email-HTML lint: what they draw, and what the lint refuses."""

from __future__ import annotations

import re
from datetime import date

import pytest

from mailbot.jobs.words import Words
from mailbot.mail import charts
from mailbot.mail.charts import Part, Series
from tests.email_lint import RULES, problems


def widths(markup: str) -> list[int]:
    """The widths of the bar cells (those painted with bgcolor)."""
    return [int(w) for w in re.findall(r'<td width="(\d+)" height="\d+" bgcolor=', markup)]


def test_grouped_bars_scale_to_the_largest_value() -> None:
    """The largest value's bar is the full width; others in proportion; a zero has no bar
    but still its number."""
    html = charts.grouped_bars("weekly", "New and closed", ["w1", "w2"],
                               [Series("new", "New", "#111111", [10, 0]),
                                Series("closed", "Closed", "#222222", [5, 2])],
                               str, "nothing", width=300)
    assert widths(html) == [300, 150, 60]
    assert re.findall(r'data-series="(\w+)" data-label="(\w+)" data-value="(\d+)">(\d+)<',
                      html) == [("new", "w1", "10", "10"), ("closed", "w1", "5", "5"),
                                ("new", "w2", "0", "0"), ("closed", "w2", "2", "2")]
    assert "New" in html and "Closed" in html  # the legend


def test_grouped_bars_with_nothing_say_so() -> None:
    """All zeros: a sentence instead of an empty chart."""
    html = charts.grouped_bars("weekly", "T", ["w1"], [Series("new", "New", "#111111", [0])],
                               str, "No case came in.")
    assert "No case came in." in html and "bgcolor" not in html


@pytest.mark.parametrize(("kept", "due", "target"), [(4, 6, 80), (5, 5, 80), (0, 3, 90),
                                                     (9, 10, 90), (1, 2, 100), (1, 2, 0)])
def test_rate_bar_is_one_track_with_the_target_marked(kept: int, due: int, target: int) -> None:
    """A rate bar fills its share of a fixed track, the target mark sits where the target
    is, and the track's width never changes (so weeks compare at a glance)."""
    html = charts.rate_bars("on-time", "T", "promise", ["w"], [(kept, due)], target,
                            lambda v: f"{v:.0f}%", lambda a, b: f"{a} of {b}", "none", "target",
                            width=300)
    cells = re.findall(r'<td width="(\d+)" height="\d+" bgcolor="(#\w+)"', html)
    assert sum(int(w) for w, _ in cells) in (300, 302)  # the 2px mark sits in or after it
    assert [c for _, c in cells].count(charts.MARK) == 1
    filled = sum(int(w) for w, c in cells if c in (charts.GOOD, charts.BAD))
    assert abs(filled - round(300 * kept / due)) <= 2
    colour = charts.GOOD if 100 * kept / due >= target else charts.BAD
    assert all(c in (colour, charts.TRACK, charts.MARK) for _, c in cells)
    assert f"({kept} of {due})" in html


def test_stacked_bar_counts_every_part() -> None:
    """Each non-empty part is a segment with its count, and in the legend with its name."""
    html = charts.stacked_bar("state", "Open", [Part("new", "new", 113, "#111111"),
                                                Part("fixing", "fixing", 0, "#222222"),
                                                Part("accepted", "accepted", 1, "#333333")],
                              str, "none", width=480)
    assert re.findall(r'data-series="(\w+)" data-value="(\d+)"', html) == [("new", "113"),
                                                                          ("accepted", "1")]
    assert widths(html)[1] >= 24  # a single case still has room for its number
    assert sum(widths(html)) == pytest.approx(480, abs=2)


def test_labels_are_escaped() -> None:
    """A label with markup (a state or severity name from the database) stays text."""
    html = charts.stacked_bar("state", "<i>t</i>", [Part("x", "<script>", 1, "#111111")], str,
                              "none")
    assert "<script>" not in html and "&lt;script&gt;" in html and "&lt;i&gt;" in html


def test_text_forms() -> None:
    """Text bars, aligned tables and the sparkline keep the numbers readable in plain text."""
    assert charts.text_bar(8, 8, 4) == "████"
    assert charts.text_bar(1, 8, 4) == "▌"
    assert charts.text_bar(0, 8, 4) == ""
    assert charts.text_table(["week", "new"], [["1 Sep", "5"], ["12 Sep", "120"]],
                             [False, True]).splitlines() == ["week    new", "1 Sep     5",
                                                            "12 Sep  120"]
    assert charts.sparkline([0, 7, 14]) == "▁▅█"


def test_dutch_numbers_and_dates() -> None:
    """Numbers, percentages and days are written the Dutch way by babel."""
    w = Words.of("nl")
    assert w.number(1234) == "1.234"
    assert w.number(35.94, 1) == "35,9"
    assert w.percent(77.5) in ("78%", "78 %")
    assert w.short_day(date(2026, 3, 29)) == "29 mrt"
    assert Words.of("en").number(1234) == "1,234"
    assert Words.of("xx").language == "en"


@pytest.mark.parametrize(("html", "rule"), [
    ("<style>td{color:red}</style>", "banned-element"),
    ("<svg></svg>", "banned-element"),
    ("<script>1</script>", "banned-element"),
    ('<img src="https://tracker.example/p.gif">', "external-resource"),
    ('<td style="background:url(https://x.example/b.png)" bgcolor="#fff">', "external-resource"),
    ('<link rel="stylesheet" href="https://x.example/s.css">', "banned-element"),
    ('<table cellpadding="0" cellspacing="0" border="0"><tr><td style="width:40px">',
     "css-size"),
    ("<table><tr><td>x</td></tr></table>", "table-attributes"),
    ('<td style="background-color:#fff">', "bgcolor"),
    ('<td style="display:flex">', "dropped-css"),
    ('<div style="position:absolute">', "dropped-css"),
    ('<table cellpadding="0" cellspacing="0" border="0"><tr><td>' * 4, "nesting"),
    ("<p>" + "x" * 110_000 + "</p>", "size"),
])
def test_the_lint_refuses(html: str, rule: str) -> None:
    """Each rule of the email lint catches what it is about (so passing it means something)."""
    found = problems(html)
    assert any(p.startswith(f"{rule}:") for p in found), found
    assert rule in RULES


def test_the_lint_passes_email_safe_html() -> None:
    """Tables with their attributes, widths and colours as attributes, inline fonts: clean."""
    html = ('<table role="presentation" width="600" cellpadding="0" cellspacing="0" border="0">'
            '<tr><td width="40" bgcolor="#123456" style="background-color:#123456;'
            'font-size:1px">&nbsp;</td><td><img src="cid:chart@x"></td></tr></table>')
    assert problems(html) == []
