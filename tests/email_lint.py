"""An email-HTML lint: the rules that keep a mail looking the same in Gmail (web and app),
Outlook (Word's engine), Apple Mail and Thunderbird. Each rule says why it exists.

`problems(html)` returns one line per breach; empty means the HTML passes.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

MAX_NESTING = 3  # the page, a chart, a bar: deeper tables are where Outlook's layout breaks
GMAIL_CLIP = 102 * 1024  # Gmail cuts the message off ("[Message clipped]") past 102 KB

RULES = {
    "banned-element": "<style>, <link>, <script>, <svg>, <iframe>, <object>, <embed>, <form>, "
                      "<video>, <audio>, <base>: Gmail drops <style> blocks in many views "
                      "(and whole <head>s), every client strips scripts, SVG and forms",
    "external-resource": "no src/background/srcset/poster but cid:, no url() or @import in "
                         "styles: clients block remote content by default, and it leaks "
                         "who read the mail",
    "css-size": "no width/height/max-width in style: Outlook's Word engine ignores CSS sizes "
                "on tables and cells; widths go in attributes",
    "table-attributes": "every <table> has cellpadding, cellspacing and border attributes: "
                        "Outlook otherwise adds its own gaps between bar segments",
    "bgcolor": "a background colour in style also needs the bgcolor attribute: older Outlook "
               "and Outlook.com honour only the attribute",
    "dropped-css": "no position, float, display:flex/grid, transform, var(): dropped by Gmail "
                   "or Outlook, so the layout would fall apart",
    "nesting": f"tables nested at most {MAX_NESTING} deep",
    "size": "under 102 KB, or Gmail clips the message",
}

_BANNED = {"style", "link", "script", "svg", "iframe", "object", "embed", "form", "video",
           "audio", "base"}
_RESOURCE_ATTRS = {"src", "background", "srcset", "poster", "lowsrc", "dynsrc"}
_CSS_SIZE = re.compile(r"(?:^|;)\s*(?:max-|min-)?(?:width|height)\s*:", re.I)
_DROPPED = re.compile(r"(?:^|;)\s*(?:position|float|transform)\s*:|display\s*:\s*(?:flex|grid)"
                      r"|var\(", re.I)
_BACKGROUND = re.compile(r"(?:^|;)\s*background(?:-color)?\s*:", re.I)


class _Lint(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self.depth = 0
        self.deepest = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): v or "" for k, v in attrs}
        where = f"<{tag}> at line {self.getpos()[0]}"
        if tag in _BANNED:
            self.found.append(f"banned-element: {where}")
        for k in _RESOURCE_ATTRS & a.keys():
            if not a[k].lower().startswith("cid:"):
                self.found.append(f"external-resource: {where} {k}={a[k][:60]!r}")
        if tag == "link" or (tag == "a" and a.get("href", "").startswith("javascript:")):
            self.found.append(f"external-resource: {where}")
        style = a.get("style", "")
        if "url(" in style.lower() or "@import" in style.lower():
            self.found.append(f"external-resource: {where} style {style[:60]!r}")
        if _CSS_SIZE.search(style):
            self.found.append(f"css-size: {where} style {style[:60]!r}")
        if _DROPPED.search(style):
            self.found.append(f"dropped-css: {where} style {style[:60]!r}")
        if _BACKGROUND.search(style) and "bgcolor" not in a:
            self.found.append(f"bgcolor: {where}")
        if tag == "table":
            missing = {"cellpadding", "cellspacing", "border"} - a.keys()
            if missing:
                self.found.append(f"table-attributes: {where} lacks {sorted(missing)}")
            self.depth += 1
            self.deepest = max(self.deepest, self.depth)
            if self.depth > MAX_NESTING:
                self.found.append(f"nesting: {where} is table level {self.depth}")

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self.depth -= 1


def problems(html: str, mail: bool = True) -> list[str]:
    """Every breach of the rules; `mail=False` (a report saved as a file, never sent) lifts
    only the size rule."""
    lint = _Lint()
    lint.feed(html)
    lint.close()
    found = lint.found
    if mail and len(html.encode()) > GMAIL_CLIP:
        found.append(f"size: {len(html.encode())} bytes")
    return found
