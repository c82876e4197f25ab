"""Staff command lines: what parses, what is refused and why, and that one error stops all."""

from __future__ import annotations

import pytest

from mailbot.triage.commands import parse


def test_commands_then_text() -> None:
    """Command lines at the top are commands; the rest is the text."""
    p = parse("#status accepted\n#severity high\n\n#reply\nThanks, we reproduced it.\n\nBye")
    assert [(c.name, c.value) for c in p.commands] == [
        ("status", "accepted"), ("severity", "high"), ("reply", None)]
    assert p.text == "Thanks, we reproduced it.\n\nBye"
    assert p.replies and not p.errors


def test_no_commands_is_a_note() -> None:
    """A reply without command lines is all text."""
    p = parse("Looking into it.\n#status resolved")
    assert p.commands == () and p.text == "Looking into it.\n#status resolved"


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("#status fixd", 1, "unknown status 'fixd'; expected one of: triaged"),
        ("#sttaus accepted", 1, "unknown command '#sttaus'"),
        ("#status accepted\n#due 2026-13-01", 2, "not a date"),
        ("#cve 2026-1234", 1, "not a CVE id"),
        ("#severity urgent", 1, "nor a CVSS"),
        ("#severity CVSS:3.1/AV:N/AC:X", 1, "bad CVSS vector"),
        ("#duplicate 42", 1, "not a case reference"),
        ("#bounty lots", 1, "not an amount"),
        ("#reopen now", 1, "takes no argument"),
        ("#assign", 1, "needs an argument"),
        ("#status triaged\n#status accepted", 2, "given twice"),
        ("#reply\n", 1, "needs the text"),
    ],
)
def test_errors_name_line_and_reason(text: str, line: int, reason: str) -> None:
    """A wrong line is reported with its number and why."""
    p = parse(text)
    assert p.errors, p
    assert p.errors[0].line == line
    assert reason in p.errors[0].reason


def test_every_error_is_reported() -> None:
    """All bad lines are listed, good ones are parsed but the mail will apply none."""
    p = parse("#status accepted\n#status2 x\n#due tomorrow")
    assert [e.line for e in p.errors] == [2, 3]


@pytest.mark.parametrize(
    ("vector", "level", "score"),
    [
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "critical", 9.8),
        ("CVSS:3.1/AV:L/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N", "low", 1.8),
        ("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", "critical", 9.3),
    ],
)
def test_cvss_vectors_are_scored(vector: str, level: str, score: float) -> None:
    """A CVSS 3.1 or 4.0 vector sets the level from its base score."""
    (c,) = parse(f"#severity {vector}").commands
    assert (c.value, c.vector, c.score) == (level, vector, score)


def test_values_are_normalised() -> None:
    """Case and spacing of values do not matter."""
    p = parse("#STATUS Needs-Info\n#cve cve-2026-12345\n#duplicate sec-2026-0007")
    assert [c.value for c in p.commands] == ["needs-info", "CVE-2026-12345", "SEC-2026-0007"]
