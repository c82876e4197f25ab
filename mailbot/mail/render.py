"""Templates: jinja2 in a sandbox, and dates written out in the reader's language.

Text from mail is only ever passed as a value: templates are files of ours, never built
from mail, so `{{ config }}` in a subject stays those characters.
"""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from babel.dates import format_date
from jinja2 import FileSystemLoader, StrictUndefined, select_autoescape
from jinja2.sandbox import SandboxedEnvironment

from mailbot.resources import templates_dir

LANGUAGES = ("en", "nl")


def long_date(day: date | datetime, language: str) -> str:
    """`Thursday 24 December 2026` / `donderdag 24 december 2026`."""
    if isinstance(day, datetime):
        day = day.date()
    return _long_date(day, language)


@lru_cache(maxsize=4096)
def _long_date(day: date, language: str) -> str:
    # babel's formatting is slow next to everything else an ack costs, and days repeat.
    return format_date(day, "EEEE d MMMM y", locale=language)


class Templates:
    def __init__(self, directory: Path | None = None) -> None:
        self.env = SandboxedEnvironment(
            loader=FileSystemLoader(directory or templates_dir()),
            autoescape=select_autoescape(enabled_extensions=("html",), default=False),
            undefined=StrictUndefined,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )

    def render_file(self, name: str, /, **context: object) -> str:
        """Render one template file as it is named (autoescaped when it ends in .html)."""
        return self.env.get_template(name).render(**context)

    def render(self, template: str, language: str, /, **context: object) -> str:
        """Render `template.<language>.txt` (falling back to English) with `context`."""
        language = language if language in LANGUAGES else "en"
        found = self.env.get_template(f"{template}.{language}.txt")
        return found.render(language=language, long_date=_long_date_in(language), **context)


def _long_date_in(language: str) -> object:
    def fmt(moment: datetime, zone: str | None = None) -> str:
        if zone:
            moment = moment.astimezone(ZoneInfo(zone))
        return long_date(moment, language)

    return fmt
