"""The new text of a reply, for the shapes real mail clients write."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbot.mail.quotes import new_text

REPLIES = Path(__file__).resolve().parent.parent / "fixtures" / "replies"
BODIES = sorted(p for p in REPLIES.glob("*.txt") if not p.name.endswith(".expected.txt"))


def _expected(body: Path) -> str:
    return body.with_name(f"{body.stem}.expected.txt").read_text(encoding="utf-8").removesuffix(
        "\n"
    )


@pytest.mark.parametrize("body", BODIES, ids=[p.stem for p in BODIES])
def test_fixture_reply(body: Path) -> None:
    """Each stored reply body yields exactly the text in its .expected.txt file."""
    assert new_text(body.read_text(encoding="utf-8")) == _expected(body)


def test_corpus_is_complete() -> None:
    """The corpus is there, every body has its expected text, and "-- " kept its space."""
    assert len(BODIES) >= 30
    assert all(b.with_name(f"{b.stem}.expected.txt").is_file() for b in BODIES)
    assert "\n-- \n" in (REPLIES / "signature_rfc3676.txt").read_text(encoding="utf-8")


CASES = {
    "empty": ("", ""),
    "only whitespace": (" \n\t\n", ""),
    "command lines only": ("#status accepted\n#severity high\n",
                           "#status accepted\n#severity high"),
    "hash line is never a quote": ("#> not a quote\n> quote\n", "#> not a quote"),
    "command after a short dashdash": ("Ok\n--\n#status fixed\n", "Ok\n--\n#status fixed"),
    "indented dash dash is the tolerated form": ("a\n -- \nAlice\n", "a"),
    "leading blank lines stay": ("\n\nText.\n", "\n\nText."),
    "inner trailing spaces stay": ("flowed \ntext\n", "flowed \ntext"),
    "blank lines around a quote collapse": ("A\n\n\n> q\n\n\nB\n", "A\n\nB"),
    "no blank line added between quotes": ("> q\nA\n> q\nB\n", "A\nB"),
    "attribution with nothing after and a time": (
        "Text\n\nOn 23/11/2026 10:15, Alice wrote:\n", "Text",
    ),
    "attribution without a digit is prose": (
        "Text.\nOn Monday, Alice wrote:\nThat it is fine.\n",
        "Text.\nOn Monday, Alice wrote:\nThat it is fine.",
    ),
    "german thunderbird": ("Gut.\n\nAm 23.11.2026 um 10:15 schrieb Alice:\n> Ja?\n", "Gut."),
    "french thunderbird": (
        "Bien.\n\nLe 23/11/2026 à 10:15, Alice a écrit\u00a0:\n> Oui ?\n", "Bien.",
    ),
    "german iphone": ("Ok.\n\nVon meinem iPhone gesendet\n", "Ok."),
    "outlook ios link": ("Ok.\n\nGet Outlook for iOS<https://aka.ms/o0ukef>\n", "Ok."),
    "mobile line mid-text stays": (
        "The header reads\nSent from my iPhone\n" + "and more text follows.\n" * 7,
        "The header reads\nSent from my iPhone\n" + "\n".join(["and more text follows."] * 7),
    ),
    "from line without a header block is text": (
        "From: the logs, it looks exploitable.\nMore soon.\n",
        "From: the logs, it looks exploitable.\nMore soon.",
    ),
    "underscores without headers are text": ("A\n" + "_" * 22 + "\nB\n", "A\n" + "_" * 22 + "\nB"),
}


@pytest.mark.parametrize(("text", "expected"), CASES.values(), ids=CASES.keys())
def test_edge_case(text: str, expected: str) -> None:
    """Small shapes at the edges of the rules give the stated text."""
    assert new_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "> x\n" * 250_000,
        "a" * 1_000_000,
        ">" * 1_000_000,
        "On 1 " + "wrote: " * 150_000,
        ("On 23 Nov 2026 at 10:15, Alice <" + "a" * 250 + "\n") * 3_500,
        "From: x\nSent: y\n" * 60_000,
        "--\n" * 300_000,
        ("Op 1 " + " schreef " * 30 + "\n") * 3_500,
        "_" * 999 + "\n" + "\n" * 500_000,
    ],
    ids=["quote lines", "one line", "one quote line", "long wrote line", "wrapped attributions",
         "header labels", "dash lines", "schreef lines", "underscores and blanks"],
)
def test_huge_inputs_return(text: str) -> None:
    """A megabyte of quote marks, markers or one endless line is processed and returns."""
    assert isinstance(new_text(text), str)


def _is_line_subsequence(result: str, text: str) -> bool:
    """Every line of `result` is a line of `text` (the last maybe right-stripped), in order."""
    if not result:
        return True
    source = iter(text.split("\n"))
    return all(any(line in (s, s.rstrip()) for s in source) for line in result.split("\n"))


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_never_raises_and_invents_nothing(text: str) -> None:
    """Any text gives a string made of the input's own lines, in their order."""
    result = new_text(text)
    assert isinstance(result, str)
    assert _is_line_subsequence(result, text)


MARKER_LINES = [
    "", " ", "-- ", "--", "> quoted", ">", "#status accepted", "#reply", "text", "Thanks,",
    "On Mon, 23 Nov 2026 at 10:15, Alice <alice@example.org> wrote:", "On 23 Nov 2026 x wrote:",
    "On Mon, 23 Nov 2026 at 10:15, Alice <", "alice@example.org> wrote:", "wrote:",
    "Alice schreef op 23-11-2026 om 10:15:", "-----Original Message-----", "_" * 32,
    "From: Alice <alice@example.org>", "Sent: Monday", "To: security@example.org", "Subject: x",
    "Van: Alice", "Verzonden: maandag", "Sent from my iPhone", "Get Outlook for Android",
]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(MARKER_LINES) | st.text(max_size=20), max_size=40))
def test_marker_soup_invents_nothing(lines: list[str]) -> None:
    """Any mix of marker lines also gives the input's own lines, in their order."""
    text = "\n".join(lines)
    assert _is_line_subsequence(new_text(text), text)
