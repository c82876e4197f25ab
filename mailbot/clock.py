"""Time, injectable: everything that asks "what time is it" takes a Clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """The one text form of a moment in the database: UTC, ISO 8601, with offset."""
    return moment.astimezone(UTC).isoformat(timespec="seconds")
