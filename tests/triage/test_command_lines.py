"""The command lines the triage help adds, parsed on their own (pure)."""

from __future__ import annotations

import pytest

from mailbot.triage.commands import parse


@pytest.mark.parametrize(("line", "value"), [
    ("#template out-of-scope", "out-of-scope"),
    ("#template Out-Of-Scope dos", "out-of-scope dos"),
    ("#template duplicate-of SEC-2026-0001", "duplicate-of sec-2026-0001"),
    ("#bounty", None),
    ("#bounty 500 EUR", "500 EUR"),
    ("#disclose 2027-01-15", "2027-01-15"),
    ("#disclose 2027-01-15 agreed", "2027-01-15 agreed"),
    ("#disclose 2027-01-15 akkoord", "2027-01-15 agreed"),
    ("#disclose PUBLIC", "public"),
])
def test_accepted(line: str, value: str | None) -> None:
    """Each form is read into one normalised value."""
    parsed = parse(line)
    assert parsed.errors == ()
    assert parsed.commands[0].value == value


@pytest.mark.parametrize(("line", "reason"), [
    ("#template", "needs an argument"),
    ("#template ../../etc/passwd", "is not like 'out-of-scope'"),
    ("#template {{ config }}", "is not like 'out-of-scope'"),
    ("#template a b c", "is not like 'out-of-scope'"),
    ("#disclose 2027-01-15 maybe", "is not like 2026-12-24"),
    ("#disclose soon", "is not a date"),
])
def test_refused(line: str, reason: str) -> None:
    """A path, template syntax or an unknown word never reaches a template or the case."""
    parsed = parse(line)
    assert parsed.commands == ()
    assert reason in parsed.errors[0].reason
