"""The new text of a reply: without quoted history and without the signature.

Every line gets one kind (text, blank, quote, attribution) in one pass, top to bottom; the
first rule that applies decides, and some rules end the reply there:

1. A blank line is blank.
2. "-- " alone on a line (the RFC 3676 signature delimiter) ends the reply.
3. A line starting with ">" is a quote: dropped, but the text around it is kept, so an
   interleaved reply keeps its own lines between the quoted ones.
4. A line starting with "#" (a staff command) or longer than 1000 characters is text.
5. "-----Original Message-----" (also Dutch, German, French, "-------- Original message
   --------") ends the reply: Outlook quotes without ">", so all that follows is history.
6. An Outlook header block ends the reply: a "From:/Van:/Von:/De :" line followed, before
   a blank line and within 8 lines, by "Sent:/Date:/Verzonden:/Datum:/Gesendet:/Envoyé :"
   and "To:/Subject:" (or their translations); as does a line of 10 or more underscores
   right above such a block.
7. An attribution ("On … wrote:", "Op … schreef …:", "X schreef op …:", "Am … schrieb …:",
   "X schrieb am …:", "Le … a écrit :"; with a digit; on one line or wrapped over two)
   followed by a ">" line is dropped with its quotes. Not followed by one, it ends the reply
   if it names an address or a time (an HTML mail turned to text loses its ">"); otherwise
   it is the reporter's own prose ("On 23 Nov the vendor wrote:") and stays.
8. Else the line is text.
9. Then, above where the reply ended: "--" alone or a mobile client's line ("Sent from my
   iPhone", "Verstuurd vanaf mijn iPhone", "Get Outlook for Android", ...) is a signature
   when at most 6 text lines of at most 100 characters, none a "#" command, follow it; the
   reply ends at the first such line.

Blank lines around what was dropped collapse into one; elsewhere lines are kept as they are.

All checks are string tests or anchored regexes without nested repetition, on lines of
bounded length, with a bounded look-ahead: linear in the input. Nothing here raises.
mail-parser-reply 1.36 and email-reply-parser 0.5.12 were measured against
tests/fixtures/replies/ first; they passed 15 and 20 of its 31 replies.
"""

from __future__ import annotations

import re
from typing import Final

_TEXT: Final = 0
_BLANK: Final = 1
_QUOTE: Final = 2
_ATTRIBUTION: Final = 3

_MAX_MARKER: Final = 1000  # longer lines are text: no marker is this long
_MAX_ATTRIBUTION: Final = 300  # per line; an attribution wraps over at most two lines
_HEADER_LOOKAHEAD: Final = 8
_MAX_SIGNATURE_LINES: Final = 6
_MAX_SIGNATURE_WIDTH: Final = 100
_MAX_MOBILE: Final = 60

_ORIGINAL_MESSAGE: Final = re.compile(
    r"-{2,}\s*(?:original message|oorspronkelijk bericht|ursprüngliche nachricht|"
    r"message d'origine)\s*-{2,}",
    re.IGNORECASE,
)
_FROM: Final = re.compile(r"\*?(?:from|van|von|de)\s?:", re.IGNORECASE)
_SENT: Final = re.compile(
    r"\*?(?:sent|date|verzonden|datum|gesendet|envoyé)\s?:", re.IGNORECASE
)
_TO_OR_SUBJECT: Final = re.compile(
    r"\*?(?:to|aan|an|à|subject|onderwerp|betreff|objet)\s?:", re.IGNORECASE
)
_DIGIT: Final = re.compile(r"\d")
_TIME: Final = re.compile(r"\d:\d\d")
_MOBILE_PREFIXES: Final = (
    "sent from my ", "sent from mail for ", "sent from outlook", "sent from yahoo mail",
    "sent from proton mail", "sent with proton mail", "get outlook for ",
    "download outlook for ", "verstuurd vanaf mijn ", "verzonden vanaf mijn ",
    "gesendet von meinem ", "envoyé de mon ", "envoyé depuis mon ",
)


def new_text(text: str) -> str:
    """The reply's own text: no quoted history, no signature, no trailing whitespace."""
    lines = text.split("\n")
    kinds, end = _classify(lines)
    end = _signature_start(lines, kinds, end)
    out: list[str] = []
    dropped = False  # something was dropped since the last kept text line
    for line, kind in zip(lines[:end], kinds[:end], strict=True):
        if kind in (_QUOTE, _ATTRIBUTION):
            while len(out) >= 2 and not out[-1].strip() and not out[-2].strip():
                out.pop()
            dropped = True
            continue
        if kind == _BLANK and dropped and (not out or not out[-1].strip()):
            continue
        out.append(line)
        if kind == _TEXT:
            dropped = False
    return "\n".join(out).rstrip()


def _classify(lines: list[str]) -> tuple[list[int], int]:
    """Each line's kind (rules 1-8), and the index of the line the reply ends before."""
    n = len(lines)
    kinds = [_TEXT] * n
    i = 0
    while i < n:
        line = lines[i]
        s = line.strip()
        if not s:
            kinds[i] = _BLANK
        elif line == "-- ":
            return kinds, i
        elif s.startswith(">"):
            kinds[i] = _QUOTE
        elif s.startswith("#") or len(s) > _MAX_MARKER:
            pass
        elif (":" not in s and s[0] not in "-_"
              and not (i + 1 < n and lines[i + 1].strip().endswith(":"))):
            pass  # rules 5-7 all need a ":" here or ending the next line, or a leading - or _
        elif _ORIGINAL_MESSAGE.fullmatch(s) or _header_block(lines, i):
            return kinds, i
        elif len(s) >= 10 and not s.strip("_"):
            following = _next_non_blank(lines, i + 1)
            if following < n and _header_block(lines, following):
                return kinds, i
        else:
            span, strong = _attribution(lines, i)
            if span:
                following = _next_non_blank(lines, i + span)
                if following < n and lines[following].strip().startswith(">"):
                    kinds[i:i + span] = [_ATTRIBUTION] * span
                    i += span
                    continue
                if strong:
                    return kinds, i
        i += 1
    return kinds, n


def _next_non_blank(lines: list[str], start: int) -> int:
    i = start
    while i < len(lines) and not lines[i].strip():
        i += 1
    return i


def _header_block(lines: list[str], i: int) -> bool:
    """Rule 6: an Outlook "From: / Sent: / To: / Subject:" block starts at line i."""
    if not _FROM.match(lines[i].strip()):
        return False
    sent = to_or_subject = False
    for line in lines[i + 1:i + 1 + _HEADER_LOOKAHEAD]:
        s = line.strip()
        if not s:
            break
        sent = sent or bool(_SENT.match(s))
        to_or_subject = to_or_subject or bool(_TO_OR_SUBJECT.match(s))
    return sent and to_or_subject


def _attribution(lines: list[str], i: int) -> tuple[int, bool]:
    """Rule 7: how many lines (0, 1, 2) an attribution at line i spans, and if it is strong."""
    s = lines[i].strip()
    if len(s) > _MAX_ATTRIBUTION:
        return 0, False
    if s.endswith(":") and _is_attribution(s):
        return 1, _is_strong(s)
    if i + 1 < len(lines):
        second = lines[i + 1].strip()
        if (second.endswith(":") and len(second) <= _MAX_ATTRIBUTION
                and not _is_attribution(second)):
            joined = f"{s} {second}"
            if _is_attribution(joined):
                return 2, _is_strong(joined)
    return 0, False


def _is_attribution(s: str) -> bool:
    if not _DIGIT.search(s):
        return False
    low = " ".join(s.split()).casefold()  # also folds a no-break space before the colon
    if not low.endswith(":"):
        return False
    return (
        (low.startswith("on ") and low.endswith(" wrote:"))
        or (low.startswith("op ") and " schreef " in low)
        or " schreef op " in low
        or (low.startswith("am ") and " schrieb " in low)
        or " schrieb am " in low
        or (low.startswith("le ") and low.endswith((" a écrit :", " a écrit:")))
    )


def _is_strong(s: str) -> bool:
    """An attribution a client wrote: it names an address or a time of day."""
    return "@" in s or _TIME.search(s) is not None


def _signature_start(lines: list[str], kinds: list[int], end: int) -> int:
    """Where the signature above line `end` starts (rule 9), or `end` if there is none."""
    cut = end
    after = 0  # text lines between the line looked at and `end`
    for i in range(end - 1, -1, -1):
        if kinds[i] != _TEXT:
            continue
        s = lines[i].strip()
        if s == "--" or _is_mobile_signature(s):
            cut = i
        after += 1
        if after > _MAX_SIGNATURE_LINES or len(s) > _MAX_SIGNATURE_WIDTH or s.startswith("#"):
            break
    return cut


def _is_mobile_signature(s: str) -> bool:
    low = " ".join(s.split()).casefold()
    if low.endswith(">") and "<" in low:  # "Get Outlook for iOS<https://aka.ms/o0ukef>"
        low = low[:low.rfind("<")].rstrip()
    if len(low) > _MAX_MOBILE:
        return False
    return low.startswith(_MOBILE_PREFIXES) or (
        low.startswith("von meinem ") and low.endswith(" gesendet")
    )
