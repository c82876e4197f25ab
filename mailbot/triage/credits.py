"""Credit as the reporter chose it, and the public acknowledgements page built from it.

`#credit NAME`, `#credit pseudonym NAME` and `#credit anonymous` are stored as staff wrote
them; this is the one place that reads them. The page names people, never an address.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mailbot.mail.render import Templates

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+!|~])")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class Entry:
    name: str
    published: str  # YYYY-MM-DD
    cve: str | None


def public_name(credit: str | None) -> str | None:
    """The name to print for a recorded credit, or None (anonymous, none, an address)."""
    if not credit:
        return None
    text = _CONTROL.sub("", credit).strip()
    word, _, rest = text.partition(" ")
    if word.lower() == "pseudonym":
        text = rest.strip()
    if not text or text.lower() == "anonymous" or "@" in text:
        return None
    return text


def entries(rows: Sequence[Mapping[str, Any]]) -> list[Entry]:
    return [Entry(name, str(r["published"]), r["cve"]) for r in rows
            if (name := public_name(r["credit"]))]


def markdown(found: Sequence[Entry], title: str = "Hall of fame") -> str:
    lines = [f"# {title}", "",
             "We thank these people for reporting security issues to us responsibly.", ""]
    lines += [f"- {e.published[:7]} · {_md(e.name)}" + (f" · {e.cve}" if e.cve else "")
              for e in found]
    if not found:
        lines.append("No acknowledgements yet.")
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    """Markdown's special characters escaped: a name is text, never a link or markup."""
    return _MD_SPECIAL.sub(r"\\\1", text)


def html(templates: Templates, found: Sequence[Entry], title: str = "Hall of fame") -> str:
    """Autoescaped: a name is text, never markup."""
    return templates.render_file("hall-of-fame.html", title=title, entries=found)
