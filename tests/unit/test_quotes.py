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
    "russian android attribution": (
        "Da.\n02.04.2026 14:20 пользователь \"rita@example.net\" <\nrita@example.net> написал:"
        "\n\n> Hi\n", "Da."),
    "russian gmail without a verb": (
        "Da.\n\nср, 30 апр. 2026 г. в 15:19, Rita <rita@example.net>:\n\nold text\n", "Da."),
    "german attribution without a date": (
        "Ok.\n\n\n\nRita via Meta <rita@example.net> schrieb:\n\nold text\n", "Ok."),
    "italian two lines": ("Sì.\n\nIl giovedì 8 dicembre 2026, Rita <rita@example.net>\n"
                          "ha scritto:\n> Ciao\n", "Sì."),
    "spanish": ("Sí.\n\nEl lun., 23 nov. 2026 a las 10:15, Rita (<rita@example.net>) "
                "escribió:\n> Hola\n", "Sí."),
    "portuguese wrapped": ("Sim.\n\nEm 2 de fevereiro de 2026 10:58, Rita <\n"
                           "rita@example.net> escreveu:\n\n> Olá\n", "Sim."),
    "polish": ("Tak.\n\nDnia 14 lip 2026 o godz. 00:25 Rita <rita@example.net> "
               "napisał(a):\n\n> Cześć\n", "Tak."),
    "swedish": ("Ja.\n\nDen 5 juni 2026 12:22 skrev Rita <rita@example.net>:\n> Hej\n", "Ja."),
    "chinese": ("好的。\n\n在 2026年12月12日，下午8:45，Rita <rita@example.net> 写道：\n> 你好\n",
                "好的。"),
    "japanese gmail": ("はい。\n\n2026年1月1日(金) 9:00 田中太郎 <taro@example.com>:\n> 織田様\n",
                       "はい。"),
    "zoho dashes": ("Ok.\n\n---- On Tue, 22 Dec 2026 14:17:36 +0530 Rita <rita@example.net> "
                    "wrote ----\n\nold\n", "Ok."),
    "outlook dashes above a header block": (
        "Ok.\n\n------------------------------\nFrom: Rita\nSent: Monday\nTo: security\n"
        "Subject: XSS\n\nold\n", "Ok."),
    "spanish outlook block": ("Sí.\n\nDe: Rita\nEnviado: lunes\nPara: security\n"
                              "Asunto: XSS\n\nold\n", "Sí."),
    "swedish outlook block": ("Ja.\n\nFrån: Rita\nSkickat: den 5 juni\nTill: security\n"
                              "Ämne: XSS\n\nold\n", "Ja."),
    "hotmail french block": ("Oui.\n\nDe : Rita\nEnvoyé le :jeudi 15 décembre\n"
                             "À : security\nObjet :XSS\n\nold\n", "Oui."),
    "spanish original message": ("Sí.\n\n-----Mensaje original-----\nold\n", "Sí."),
    "gmail forward": ("See below.\n\n---------- Forwarded message ---------\nold\n",
                      "See below."),
    "header block at the top stays": ("From: Rita\nSent: Monday\nTo: security\n"
                                      "Subject: XSS\n\nText\n",
                                      "From: Rita\nSent: Monday\nTo: security\n"
                                      "Subject: XSS\n\nText"),
    "mobile signatures of several languages": (
        "Ok.\n\nEnvoyé depuis mon iPhone\nVon meinem Mobilgerät gesendet\n"
        "Verzonden met mijn iPhone\nSent from Yahoo Mail on Android\nSent with Airmail\n"
        "Enviado desde mi iPhone\nInviato da iPhone\nEnviado do meu iPhone\n"
        "Отправлено с iPhone\nWysłane z mojego iPhone\nSkickat från min iPhone\n"
        "從我的 iPhone 傳送\niPhoneから送信\n", "Ok."),
    "sent from my desk is prose": (
        "Done.\n\nSent from my desk, which is easier than my phone.\n",
        "Done.\n\nSent from my desk, which is easier than my phone."),
    "a long quoted line wrapped without >": (
        "Yes.\n\nOn 23/11/2026 10:15, Rita <rita@example.net> wrote:\n"
        "> Is the bug in the search form reachable without an account at all, or\n"
        "only after login?\n", "Yes."),
    "interleaved answer after a short quote stays": (
        "> Reachable?\nYes.\n", "Yes."),
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
