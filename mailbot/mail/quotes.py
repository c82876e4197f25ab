"""The new text of a reply: without quoted history and without the signature."""

from __future__ import annotations

import re

_ATTRIBUTION = re.compile(
    r"^(On .{0,200} wrote:|Op .{0,200} schreef .{0,200}:|Am .{0,200} schrieb .{0,200}:|"
    r"Le .{0,200} a écrit ?:|-{3,} ?Original Message ?-{3,}|_{20,})\s*$",
    re.I,
)


def new_text(text: str) -> str:
    out: list[str] = []
    for line in text.split("\n"):
        if line.rstrip() == "--" or line == "-- " or _ATTRIBUTION.match(line.strip()):
            break
        if line.lstrip().startswith(">"):
            continue
        out.append(line)
    return "\n".join(out).rstrip()
