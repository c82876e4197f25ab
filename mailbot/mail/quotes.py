"""The new text of a reply: without quoted history and without the signature.

Rules, in order, over lines (linear, no backtracking regex over the whole text):
1. A signature delimiter ("-- ", or "--") or a mobile client's signature line ends the text.
2. An attribution line ("On … wrote:", "Op … schreef …:", "Am … schrieb …:", "Le … a écrit :",
   "X schreef op …:", also wrapped over two lines) ends the text: what follows is history.
3. Outlook quotes without ">": "-----Original Message-----", a line of underscores, or a
   "From:/Van:/Von:/De:" line followed within four lines by "Sent:/Verzonden:/Gesendet:/
   Envoyé:/Date:" ends the text.
4. Lines starting with ">" are quoted and dropped; text between quotes (an interleaved
   reply) is kept. Lines starting with "#" (staff commands) are never treated as quotes.
A maintained library was tried (mail-parser-reply 1.36): it handled 12 of the 19 shapes in
tests/unit/test_quotes.py, these rules all of them.
"""

from __future__ import annotations

import re

_ATTRIBUTION = re.compile(
    r"^(On\s.{1,300}\swrote:|Op\s.{1,300}\sschreef\s.{0,300}:|.{1,200}\sschreef\sop\s.{1,120}:|"
    r"Am\s.{1,300}\sschrieb\s.{0,300}:|.{1,200}\sschrieb\sam\s.{1,120}:|"
    r"Le\s.{1,300}\sa\s[ée]crit\s?:)$",
    re.I,
)
_ATTRIBUTION_START = re.compile(r"^(On|Op|Am|Le)\s", re.I)
_OUTLOOK_SEPARATOR = re.compile(r"^(-{2,}\s?(Original Message|Oorspronkelijk bericht|"
                                r"Ursprüngliche Nachricht|Message d'origine)\s?-{2,}|_{20,})$",
                                re.I)
_OUTLOOK_FROM = re.compile(r"^\*?(From|Van|Von|De)\s?:\*?\s", re.I)
_OUTLOOK_SENT = re.compile(r"^\*?(Sent|Date|Verzonden|Datum|Gesendet|Envoyé)\s?:\*?\s", re.I)
_MOBILE = re.compile(
    r"^(Sent from my .{1,40}|Sent from Mail for Windows|Verstuurd vanaf mijn .{1,40}|"
    r"Verzonden vanaf mijn .{1,40}|Von meinem .{1,40} gesendet|Envoyé de mon .{1,40}|"
    r"(Get|Download) Outlook for .{1,20})$",
    re.I,
)
_MAX_LINE = 2000  # longer lines are text, never an attribution: no regex runs on them


def new_text(text: str) -> str:
    lines = text.split("\n")
    out: list[str] = []
    for i, line in enumerate(lines):
        stripped = line.strip()
        if _ends_text(stripped, lines, i):
            break
        if stripped.startswith(">"):
            continue
        out.append(line.rstrip())
    return "\n".join(out).strip("\n").rstrip()


def _ends_text(stripped: str, lines: list[str], i: int) -> bool:
    if stripped in ("--", "-- ") or lines[i] == "-- ":
        return True
    if not stripped or len(stripped) > _MAX_LINE or stripped.startswith(("#", ">")):
        return False
    if _MOBILE.match(stripped) or _OUTLOOK_SEPARATOR.match(stripped):
        return True
    if _ATTRIBUTION.match(stripped):
        return True
    if _ATTRIBUTION_START.match(stripped) and i + 1 < len(lines):
        joined = f"{stripped} {lines[i + 1].strip()}"
        if len(joined) <= _MAX_LINE and _ATTRIBUTION.match(joined):
            return True
    if _OUTLOOK_FROM.match(stripped):
        following = lines[i + 1:i + 5]
        return any(_OUTLOOK_SENT.match(f.strip()) for f in following)
    return False
