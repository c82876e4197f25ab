"""Charts for mail: HTML tables with inline styles, and the same numbers as aligned text.

Mail clients strip SVG, scripts and `<style>` blocks, and Outlook draws HTML with Word's
engine, which honours `width`, `height` and `bgcolor` attributes but little CSS. So a bar
is a table cell with a width attribute and a background colour, in a table of its own (cells
of one table column share a width). Tables nest at most three deep: the page, the chart, a
bar. Every number is printed next to its bar, so the chart reads without colour too.

Values in, markup out: labels are escaped here, numbers are formatted by the caller.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise

from markupsafe import Markup, escape

Fmt = Callable[[int], str]
FONT = "font-family:Arial,sans-serif;font-size:13px"
SMALL = "font-family:Arial,sans-serif;font-size:12px"
_TABLE = 'role="presentation" cellpadding="0" cellspacing="0" border="0"'
TRACK = "#e6e6e6"
MARK = "#222222"
GOOD = "#2e7d32"
BAD = "#c62828"
_LIGHT = {"#f9a825", "#f0a202", "#9e9e9e", "#e6e6e6", "#9cc3e4", "#a5d6a7"}


@dataclass(frozen=True, slots=True)
class Series:
    key: str  # for machines (tests): data-series
    name: str  # for readers: the legend
    colour: str
    values: Sequence[int]


@dataclass(frozen=True, slots=True)
class Part:
    """One segment of a stacked bar."""

    key: str
    name: str
    count: int
    colour: str


def _cell(width: int, colour: str, text: str = "", height: int = 14) -> str:
    """A bar segment: the bgcolor attribute paints it everywhere (Outlook included); a
    1px font keeps an empty cell from growing to a line's height."""
    if not text:
        return (f'<td width="{width}" height="{height}" bgcolor="{colour}" '
                'style="font-size:1px;line-height:1px">&nbsp;</td>')
    ink = "#000000" if colour in _LIGHT else "#ffffff"
    return (f'<td width="{width}" height="{height}" bgcolor="{colour}" align="center" '
            f'style="color:{ink};{SMALL};line-height:{height}px">{escape(text)}</td>')


def _bar(cells: Sequence[str]) -> str:
    return f"<table {_TABLE}><tr>{''.join(cells)}</tr></table>"


def _title(title: str, note: str = "") -> str:
    extra = (f'<br><span style="font-weight:normal;font-size:12px;color:#555555">'
             f"{escape(note)}</span>") if note else ""
    return (f'<tr><td colspan="2" style="{FONT};font-weight:bold;padding:12px 0 4px 0">'
            f"{escape(title)}{extra}</td></tr>")


def legend(items: Sequence[tuple[str, str]]) -> str:
    """Coloured squares with names: (name, colour) pairs."""
    keys = "".join(
        f'<span style="color:{c};font-size:14px">&#9632;</span>&nbsp;{escape(n)}&nbsp;&nbsp; '
        for n, c in items)
    return f'<tr><td colspan="2" style="{SMALL};padding:0 0 6px 0">{keys}</td></tr>'


def _chart(key: str, rows: Sequence[str]) -> Markup:
    return Markup(f'<table {_TABLE} width="600" data-chart="{escape(key)}" '
                  f'style="{FONT}">{"".join(rows)}</table>')


def _value(series: str, label: str, value: str, raw: int | str) -> str:
    return (f'<td style="{SMALL};padding-left:4px" data-series="{escape(series)}"'
            f' data-label="{escape(label)}" data-value="{escape(str(raw))}">{escape(value)}</td>')


def grouped_bars(key: str, title: str, labels: Sequence[str], series: Sequence[Series],
                 fmt: Fmt, empty: str, width: int = 380) -> Markup:
    """One row per label, one bar per series in it, each with its value."""
    top = max([0, *(v for s in series for v in s.values)])
    rows = [_title(title)]
    if top == 0:
        rows.append(f'<tr><td colspan="2" style="{FONT};color:#555555">{escape(empty)}</td></tr>')
        return _chart(key, rows)
    rows.append(legend([(s.name, s.colour) for s in series]))
    for i, label in enumerate(labels):
        for j, s in enumerate(series):
            v = s.values[i]
            cells = [_cell(max(1, round(width * v / top)), s.colour, height=10)] if v else []
            cells.append(_value(s.key, label, fmt(v), v))
            head = (f'<td width="90" rowspan="{len(series)}" valign="top" style="{SMALL};'
                    f'padding-right:8px">{escape(label)}</td>') if j == 0 else ""
            pad = "padding-bottom:6px" if j == len(series) - 1 else "padding-bottom:1px"
            rows.append(f'<tr>{head}<td width="510" style="{pad}">{_bar(cells)}</td></tr>')
    return _chart(key, rows)


def rate_bars(key: str, title: str, note: str, labels: Sequence[str],
              counts: Sequence[tuple[int, int]], target: int, pct: Callable[[float], str],
              of: Callable[[int, int], str], none: str, target_word: str,
              width: int = 300) -> Markup:
    """Per label the share kept (kept, due) as a bar on a 0-100% track with the target
    marked; green at or above the target, red below."""
    rows = [_title(title, note),
            legend([(f"≥ {pct(target)}", GOOD), (f"< {pct(target)}", BAD),
                    (f"| {target_word} {pct(target)}", MARK)])]
    mark = round(width * target / 100)
    for label, (kept, due) in zip(labels, counts, strict=True):
        if due == 0:
            cells = [_cell(width, TRACK, height=10), _value("rate", label, none, "")]
        else:
            rate = 100.0 * kept / due
            fill = round(width * rate / 100)
            colour = GOOD if rate >= target else BAD
            spans = sorted({0, fill, mark, width})
            cells = []
            for a, b in pairwise(spans):
                if a == mark:
                    cells.append(_cell(2, MARK, height=10))
                    a += 2
                if b > a:
                    cells.append(_cell(b - a, colour if b <= fill else TRACK, height=10))
            if mark == width:
                cells.append(_cell(2, MARK, height=10))
            cells.append(_value("rate", label, f"{pct(rate)} ({of(kept, due)})", round(rate)))
        rows.append(f'<tr><td width="90" style="{SMALL};padding:0 8px 2px 0">'
                    f'{escape(label)}</td><td width="510" style="padding-bottom:2px">'
                    f"{_bar(cells)}</td></tr>")
    return _chart(key, rows)


def stacked_bar(key: str, title: str, parts: Sequence[Part], fmt: Fmt, empty: str,
                width: int = 480) -> Markup:
    """One bar cut in segments, each as wide as its share, with its count in it when it
    fits, and in the legend always."""
    shown = [p for p in parts if p.count > 0]
    total = sum(p.count for p in shown)
    rows = [_title(title)]
    if total == 0:
        rows.append(f'<tr><td colspan="2" style="{FONT};color:#555555">{escape(empty)}</td></tr>')
        return _chart(key, rows)
    # Each segment at least wide enough for its number; the rest shared by count.
    floor = 24
    spare = max(0, width - floor * len(shown))
    cells = [_cell(floor + round(spare * p.count / total), p.colour, fmt(p.count), height=20)
             for p in shown]
    rows.append(f'<tr><td colspan="2" style="padding-bottom:4px">{_bar(cells)}</td></tr>')
    items = "".join(
        f'<span style="color:{p.colour};font-size:14px">&#9632;</span>&nbsp;{escape(p.name)}'
        f'&nbsp;<b data-series="{escape(p.key)}" data-value="{p.count}">{escape(fmt(p.count))}'
        "</b>&nbsp;&nbsp; " for p in shown)
    rows.append(f'<tr><td colspan="2" style="{SMALL}">{items}</td></tr>')
    return _chart(key, rows)


# The text part: the same numbers, aligned, with a bar of block characters.

_BLOCKS = " ▏▎▍▌▋▊▉█"


def text_bar(value: float, top: float, width: int = 20) -> str:
    if top <= 0 or value <= 0:
        return ""
    eighths = max(1, round(8 * width * value / top))
    return "█" * (eighths // 8) + (_BLOCKS[eighths % 8] if eighths % 8 else "")


def text_table(header: Sequence[str] | None, rows: Sequence[Sequence[str]],
               right: Sequence[bool] | None = None) -> str:
    """Columns padded to their widest cell; numbers (right=True) flush right."""
    all_rows = [list(header), *map(list, rows)] if header else [list(r) for r in rows]
    if not all_rows:
        return ""
    n = len(all_rows[0])
    widths = [max(len(r[i]) for r in all_rows) for i in range(n)]
    flags = right or [False] * n
    lines = []
    for r in all_rows:
        cells = [c.rjust(w) if f else c.ljust(w) for c, w, f in zip(r, widths, flags,
                                                                      strict=True)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def sparkline(values: Sequence[int]) -> str:
    """`▁▃▇█▂`: a week per character."""
    top = max([0, *values])
    ticks = "▁▂▃▄▅▆▇█"
    return "".join(ticks[min(7, round(7 * v / top))] if top else ticks[0] for v in values)
