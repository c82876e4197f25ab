"""The new text of a reply, for the shapes real mail clients write."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbot.mail.quotes import new_text

CASES = {
    "gmail": (
        "Thanks, fixed in 2.3.1.\n\nOn Mon, 23 Nov 2026 at 10:15, Alice Example <alice@example.org>"
        " wrote:\n> Can you confirm?\n> \n> Alice\n",
        "Thanks, fixed in 2.3.1.",
    ),
    "gmail wrapped attribution": (
        "Confirmed.\n\nOn Mon, 23 Nov 2026 at 10:15, Alice Example\n<alice@example.org> wrote:\n"
        "> Can you confirm?\n",
        "Confirmed.",
    ),
    "outlook original message": (
        "Patch attached.\n\n-----Original Message-----\nFrom: Alice <alice@example.org>\n"
        "Sent: Monday, November 23, 2026 10:15 AM\nTo: security@example.org\nSubject: XSS\n\n"
        "Old text without quote marks.\n",
        "Patch attached.",
    ),
    "outlook header block": (
        "See below.\n\n________________________________\nFrom: Alice <alice@example.org>\n"
        "Sent: Monday, November 23, 2026 10:15\nTo: security@example.org\nSubject: RE: XSS\n\n"
        "Old text.\n",
        "See below.",
    ),
    "outlook dutch": (
        "Zie bijlage.\n\nVan: Alice <alice@example.org>\nVerzonden: maandag 23 november 2026 10:15"
        "\nAan: security@example.org\nOnderwerp: XSS\n\nOude tekst.\n",
        "Zie bijlage.",
    ),
    "outlook german": (
        "Siehe unten.\n\nVon: Alice <alice@example.org>\nGesendet: Montag, 23. November 2026 10:15"
        "\nAn: security@example.org\nBetreff: XSS\n\nAlter Text.\n",
        "Siehe unten.",
    ),
    "apple mail": (
        "Yes.\n\n> On 23 Nov 2026, at 10:15, Alice <alice@example.org> wrote:\n> \n> Sure?\n",
        "Yes.",
    ),
    "thunderbird": (
        "Noted.\n\nOn 23/11/2026 10:15, Alice wrote:\n> Sure?\n", "Noted.",
    ),
    "thunderbird dutch": (
        "Genoteerd.\n\nAlice schreef op 23-11-2026 om 10:15:\n> Zeker?\n", "Genoteerd.",
    ),
    "gmail dutch": (
        "Klopt.\n\nOp ma 23 nov. 2026 om 10:15 schreef Alice <alice@example.org>:\n> Zeker?\n",
        "Klopt.",
    ),
    "gmail german": (
        "Stimmt.\n\nAm Mo., 23. Nov. 2026 um 10:15 Uhr schrieb Alice <alice@example.org>:\n> Ja?\n",
        "Stimmt.",
    ),
    "gmail french": (
        "Exact.\n\nLe lun. 23 nov. 2026 à 10:15, Alice <alice@example.org> a écrit :\n> Oui ?\n",
        "Exact.",
    ),
    "iphone signature": ("On it.\n\nSent from my iPhone\n", "On it."),
    "dutch iphone signature": ("Mee bezig.\n\nVerstuurd vanaf mijn iPhone\n", "Mee bezig."),
    "outlook mobile": ("Ok\n\nGet Outlook for Android\n", "Ok"),
    "rfc 3676 signature": ("Done.\n\n-- \nAlice Example\nSecurity Team\n", "Done."),
    "interleaved": (
        "> Is it exploitable?\nYes, remotely.\n> Which versions?\nAll before 2.3.\n",
        "Yes, remotely.\nAll before 2.3.",
    ),
    "commands on top": (
        "#status accepted\n#reply\nThanks, fixed.\n\nOn Mon, 23 Nov 2026, Alice wrote:\n> x\n",
        "#status accepted\n#reply\nThanks, fixed.",
    ),
    "no quote": ("Just text.\nTwo lines.\n\n", "Just text.\nTwo lines."),
}


@pytest.mark.parametrize(("text", "expected"), CASES.values(), ids=CASES.keys())
def test_new_text(text: str, expected: str) -> None:
    """The reply's own text is kept; quotes, attributions and signatures go."""
    assert new_text(text) == expected


def test_huge_inputs_return() -> None:
    """A megabyte of quote marks or one endless line is handled in linear time."""
    assert new_text("> x\n" * 250_000) == ""
    assert new_text("a" * 1_000_000) == "a" * 1_000_000


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_output_lines_come_from_the_input(text: str) -> None:
    """Nothing is invented: every line of the result is a line of the input."""
    source = set(text.split("\n"))
    assert all(line in source or line.rstrip() in {s.rstrip() for s in source}
               for line in new_text(text).split("\n") if line)
