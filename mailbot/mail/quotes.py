"""The new text of a reply: without quoted history and without the signature.

Every line gets one kind (text, blank, quote, attribution) in one pass, top to bottom; the
first rule that applies decides, and some rules end the reply there:

1. A blank line is blank.
2. "-- " alone on a line (the RFC 3676 signature delimiter) ends the reply.
3. A line starting with ">" is a quote: dropped, but the text around it is kept, so an
   interleaved reply keeps its own lines between the quoted ones. A quoted line of 60 or
   more characters not ending a sentence was wrapped by its client: up to 2 unquoted lines
   right below it are quote too.
4. A line starting with "#" (a staff command) or longer than 1000 characters is text.
5. Below some text of the reply's own, a separator ends the reply: "-----Original
   Message-----", "---------- Forwarded message ---------" and their translations (en, nl,
   de, fr, es, it, pt, ru, pl, sv, da, no, fi, zh, ja), or Apple's "Begin forwarded message:"
   line; with nothing above, a cut would leave nothing, so the lines stay.
6. Below some text, an Outlook header block ends the reply: a "From:" and a "Sent:/Date:"
   line and a "To:/Subject:" line, in any of those languages ("Van:", "Von:", "De :", "Da:",
   "Od:", "От:", "Från:", "发件人：", "差出人:"; "Envoyé le :", "Enviado:", "Wysłano:",
   "送信日時:"; ...), within 8 lines and before a blank one; as does a line of 4 or more
   underscores, dashes or "=" right above such a block.
7. An attribution (one to three lines ending in ":" or in its verb: "wrote", "schreef",
   "schrieb", "a écrit", "escribió", "ha scritto", "escreveu", "написал", "napisał(a)",
   "skrev", "kirjoitti", "写道", ... with a digit or an address; or Gmail's "<date>, Name
   <address>:" without a verb) followed by a ">" line is dropped with its quotes. Not followed
   by one, it ends the reply if it names an address or a time (an HTML mail turned to text
   loses its ">"), unless nothing is above it (then it alone is dropped); otherwise it is the
   reporter's own prose ("On 23 Nov the vendor wrote:") and stays. A wrapped attribution
   starts with a date or a name and address, never with a sentence of the reply.
8. Else the line is text.
9. Then, above where the reply ended: "--" alone or a mobile client's line ("Sent from my
   iPhone", "Envoyé depuis mon iPhone", "Von meinem Mobilgerät gesendet", "Enviado desde
   mi iPhone", "Отправлено с iPhone", "從我的 iPhone 傳送", "Get Outlook for Android", ...)
   is a signature when at most 6 other text lines of at most 100 characters, none a "#"
   command, follow it; the reply ends at the first such line. "Sent from my X" counts only
   for a device X or a line of at most five words ("Sent from my desk, …" is prose).

Blank lines around what was dropped collapse into one; elsewhere lines are kept as they are.

All checks are string tests or regexes of alternated literals without nested repetition,
on lines of bounded length, with a bounded look-ahead: linear in the input. Nothing here
raises. On the real-mail corpus (tests/corpus/real/, README "Real mail") this keeps 136
of 146 replies as their projects record them; talon 1.4.4 keeps 88, email_reply_parser 0.5.12
80, mail-parser-reply 1.36 66.
"""

from __future__ import annotations

import re
from typing import Final

_TEXT: Final = 0
_BLANK: Final = 1
_QUOTE: Final = 2
_ATTRIBUTION: Final = 3

_MAX_MARKER: Final = 1000  # longer lines are text: no marker is this long
_MAX_ATTRIBUTION: Final = 300  # per line
_MAX_ATTRIBUTION_LINES: Final = 3  # "Le …, \"Name\"\n<address>\na écrit :"
_HEADER_LOOKAHEAD: Final = 8
_MAX_SIGNATURE_LINES: Final = 6
_MAX_SIGNATURE_WIDTH: Final = 100
_MAX_MOBILE: Final = 60

# The separator lines of Outlook, Gmail, Apple Mail and others, in the languages of SPEC's
# clients: a line of dashes, underscores or stars around one of these words.
_SEPARATOR: Final = re.compile(
    r"(?:original message|oorspronkelijk bericht|ursprüngliche nachricht|"
    r"message d'origine|mensaje original|messaggio originale|mensagem original|"
    r"исходное сообщение|оригинальное сообщение|wiadomość oryginalna|oryginalna wiadomość|"
    r"ursprungligt meddelande|oprindelig meddelelse|oprindelig besked|opprinnelig melding|"
    r"alkuperäinen viesti|"
    r"原始邮件|原始郵件|元のメッセージ|forwarded message|doorgestuurd bericht|"
    r"weitergeleitete nachricht|message transféré|mensaje reenviado|messaggio inoltrato|"
    r"mensagem encaminhada|пересылаемое сообщение|пересланное сообщение|"
    r"przekazana wiadomość|vidarebefordrat meddelande|videresendt meddelelse|"
    r"videresendt melding|转发的邮件|轉寄的郵件|転送されたメッセージ)",
    re.IGNORECASE,
)
# Apple Mail and others start a forward with a line of its own, no dashes.
_FORWARD_LINES: Final = frozenset({
    "begin forwarded message:", "anfang der weitergeleiteten nachricht:",
    "début du message réexpédié :", "début du message réexpédié:",
    "doorgestuurd bericht:", "begin doorgestuurd bericht:", "inicio del mensaje reenviado:",
    "início da mensagem reencaminhada:", "inizio messaggio inoltrato:",
    "начало переадресованного сообщения:", "początek przekazywanej wiadomości:",
    "vidarebefordrat brev:", "videresendt besked:", "转发的邮件：", "転送されたメッセージ：",
})
_COLON: Final = r"\s{0,3}(?:le\s{0,3})?[:：]"  # "De :", "Envoyé le :", "发件人："
_FROM: Final = re.compile(
    r"(?:from|van|von|de|da|od|от|från|fra|frá|lähettäjä|feladó|kimden|发件人|"
    r"發件人|寄件者|差出人|보낸 사람)" + _COLON, re.IGNORECASE,
)
_SENT: Final = re.compile(
    r"(?:sent|date|message du|verzonden|datum|gesendet|envoyé|enviado|enviada|inviato|data|"
    r"fecha|отправлено|дата|wysłano|wysłane|skickat|sendt|lähetetty|päivämäärä|发送时间|"
    r"日期|傳送時間|時間|送信日時|日付|날짜)" + _COLON, re.IGNORECASE,
)
_TO_OR_SUBJECT: Final = re.compile(
    r"(?:to|aan|an|à|a|para|кому|do|till|til|vastaanottaja|címzett|kime|收件人|宛先|"
    r"받는 사람|subject|onderwerp|betreff|objet|asunto|oggetto|assunto|тема|temat|ämne|"
    r"emne|aihe|tárgy|konu|sujet|主题|主旨|件名|제목)" + _COLON, re.IGNORECASE,
)
# "wrote" in the attribution lines of the clients of those languages (casefolded).
_VERBS: Final = (
    "wrote", "writes", "schreef", "geschreven", "schrieb", "geschrieben", "a écrit",
    "escribió", "escribio", "ha scritto", "scrisse", "escreveu", "написал", "написала",
    "написав", "пишет", "пише", "napisał", "napisala", "napisal", "pisze", "skrev",
    "kirjoitti", "napsal", "yazdı", "írta", "写道", "寫道", "書きました", "のメッセージ",
)
_DECORATION: Final = "-_*=~ \t"  # around separators and bold header names
_MAX_SEPARATOR: Final = 60  # the words of a separator line, without its decoration
_DIGIT: Final = re.compile(r"\d")
_TIME: Final = re.compile(r"\d[:.h]\d\d")
_MAX_CONTINUATION: Final = 2  # lines of a quoted line that a client wrapped without ">"
_WRAP_WIDTH: Final = 60  # a quoted line this long was likely wrapped
_MOBILE_PREFIXES: Final = (
    # en
    "sent from my ", "sent from mail for ", "sent from outlook", "sent from yahoo mail",
    "sent from proton mail", "sent with proton mail", "get outlook for ",
    "download outlook for ", "sent with airmail", "sent from airmail", "sent from mailbox",
    "sent from windows mail", "sent from typeapp", "sent from bluemail", "sent from aol ",
    "sent from gmail", "sent from samsung", "sent via mobile", "sent from mobile",
    "sent using ", "sent from [mail]",
    # nl
    "verstuurd vanaf mijn ", "verzonden vanaf mijn ", "verzonden met ", "verstuurd met ",
    "verzonden vanuit ", "verstuurd vanuit ", "download outlook voor ", "outlook voor ",
    # de
    "gesendet von meinem ", "gesendet mit ", "gesendet vom ", "gesendet von outlook",
    "diese nachricht wurde von meinem ", "holen sie sich outlook für ", "outlook für ",
    # fr
    "envoyé de mon ", "envoyé depuis mon ", "envoyé à partir de ", "envoyé avec ",
    "obtenir outlook pour ", "télécharger outlook pour ",
    # es
    "enviado desde mi ", "enviado desde ", "enviado con ", "obtener outlook para ",
    # it
    "inviato da ", "inviato dal mio ", "inviato con ", "scarica outlook per ",
    "ottieni outlook per ",
    # pt
    "enviado do meu ", "enviado de meu ", "enviado do ", "enviado a partir do ",
    "obter o outlook para ", "baixe o outlook para ",
    # ru, pl, sv, da/no, fi
    "отправлено с ", "отправлено из ", "послано с ", "wysłane z ", "wysłano z ",
    "skickat från ", "hämta outlook för ", "sendt fra ", "lähetetty ",
    # zh, ja
    "从我的", "從我的", "发自我的", "發自我的", "来自我的", "來自我的",
)
_MOBILE_SUFFIXES: Final = ("から送信", "传送", "傳送", "发送")
_DEVICES: Final = frozenset({
    "iphone", "ipad", "ipod", "android", "samsung", "galaxy", "blackberry", "mobile",
    "cell", "phone", "smartphone", "tablet", "windows", "htc", "huawei", "xiaomi", "pixel",
    "nokia", "lg", "sony", "motorola", "ti-85", "alcatel", "kindle", "verizon", "sprint",
    "t-mobile", "oneplus", "oppo", "fairphone", "wiko", "zte", "lenovo", "asus", "honor",
    "vivo", "realme", "meizu", "nexus", "moto", "palm", "surface", "ipad,", "mobile,",
    "phone,", "cell,", "iphone,",
})
_LINK_TAIL: Final = re.compile(r"\s*<[^<>]*>$")
_MARKDOWN_LINK: Final = re.compile(r"\[([^\[\]]*)\]\([^()]*\)")


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
    seen_text = False  # a text line above: a separator or header block may end the reply
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
            i += 1
            if len(s) >= _WRAP_WIDTH and s[-1] not in ".?!:;":
                # A client that wrapped a long quoted line left its rest without ">".
                for _ in range(_MAX_CONTINUATION):
                    if i < n and lines[i].strip() and not lines[i].lstrip().startswith(
                            (">", "#")) and len(lines[i]) <= _MAX_MARKER:
                        kinds[i] = _QUOTE
                        i += 1
                    else:
                        break
            continue
        elif s.startswith("#") or len(s) > _MAX_MARKER:
            pass
        elif not _may_mark(lines, i, s):
            pass  # rules 5-7 all need a ":", a verb, or a leading - _ * here or just below
        elif seen_text and (_is_separator(s) or _header_block(lines, i)):
            return kinds, i
        elif seen_text and len(s) >= 4 and not s.strip("_-—="):
            following = _next_non_blank(lines, i + 1)
            if following < n and _header_block(lines, following):
                return kinds, i
        else:
            span, strong = _attribution(lines, i)
            if span:
                following = _next_non_blank(lines, i + span)
                quoted = following < n and lines[following].strip().startswith(">")
                if quoted or (strong and not seen_text):
                    # With nothing above it, a cut would leave nothing: only the line goes.
                    kinds[i:i + span] = [_ATTRIBUTION] * span
                    i += span
                    continue
                if strong:
                    return kinds, i
        if kinds[i] == _TEXT:
            seen_text = True
        i += 1
    return kinds, n


def _may_mark(lines: list[str], i: int, s: str) -> bool:
    """A cheap test that one of rules 5-7 could apply at line i."""
    if s[0] in "-_*=" or ":" in s or "：" in s:
        return True
    for j in (i + 1, i + 2):
        if j < len(lines) and lines[j].rstrip().endswith((":", "：")):
            return True
    return s.casefold().rstrip(" -").endswith(_VERBS)


def _is_separator(s: str) -> bool:
    """Rule 5: "-----Original Message-----" and its kin, or a forward's first line."""
    if s.casefold() in _FORWARD_LINES:
        return True
    core = s.strip(_DECORATION + ":")
    return (("--" in s or "__" in s or "**" in s) and len(core) <= _MAX_SEPARATOR
            and _SEPARATOR.fullmatch(core) is not None)


def _header_name(line: str, pattern: re.Pattern[str]) -> bool:
    """The line starts with one of the header names of `pattern` ("*From:*" too)."""
    return pattern.match(line.lstrip(_DECORATION)) is not None


def _next_non_blank(lines: list[str], start: int) -> int:
    i = start
    while i < len(lines) and not lines[i].strip():
        i += 1
    return i


def _header_block(lines: list[str], i: int) -> bool:
    """Rule 6: an Outlook "From: / Sent: / To: / Subject:" block starts at line i."""
    sender = _header_name(lines[i], _FROM)
    sent = not sender and _header_name(lines[i], _SENT)  # "Message du : …" comes first
    if not (sender or sent):
        return False
    to_or_subject = False
    for line in lines[i + 1:i + 1 + _HEADER_LOOKAHEAD]:
        if not line.strip():
            break
        sender = sender or _header_name(line, _FROM)
        sent = sent or _header_name(line, _SENT)
        to_or_subject = to_or_subject or _header_name(line, _TO_OR_SUBJECT)
    return sender and sent and to_or_subject


def _attribution(lines: list[str], i: int) -> tuple[int, bool]:
    """Rule 7: how many lines (0 to 3) an attribution at line i spans, and if it is strong."""
    joined = ""
    for span in range(1, _MAX_ATTRIBUTION_LINES + 1):
        if i + span > len(lines):
            break
        s = lines[i + span - 1].strip()
        if len(s) > _MAX_ATTRIBUTION or (span > 1 and not s):
            break
        if span > 1 and not _may_start_attribution(joined):
            break  # the line above is the reporter's own: an attribution starts below
        joined = f"{joined} {s}" if joined else s
        if _is_attribution(joined):
            return span, _is_strong(joined)
    return 0, False


def _may_start_attribution(first: str) -> bool:
    """A line an attribution wrapped over several lines can start with: a date or a name
    with its address, and no sentence ended before the verb ("Thanks.")."""
    if not (_DIGIT.search(first) or "<" in first or "@" in first):
        return False
    low = first.casefold()
    return not low.endswith((".", "!", "?", ";")) or any(verb in low for verb in _VERBS)


def _is_attribution(s: str) -> bool:
    low = " ".join(s.split()).casefold().strip(" -")  # folds no-break spaces; Zoho's "----"
    if not low.endswith((":", "：")) and not low.endswith(_VERBS):
        return False
    has_at = "@" in low
    if not (has_at or _DIGIT.search(low)):
        return False
    if any(verb in low for verb in _VERBS):
        return True
    # Gmail in Russian, Japanese and others: "<date>, Name <address>:" without a verb.
    return has_at and _DIGIT.search(low) is not None and low.endswith((">:", ">："))


def _is_strong(s: str) -> bool:
    """An attribution a client wrote: it names an address or a time of day."""
    return "@" in s or _TIME.search(s) is not None


def _signature_start(lines: list[str], kinds: list[int], end: int) -> int:
    """Where the signature above line `end` starts (rule 9), or `end` if there is none."""
    cut = end
    after = 0  # text lines between the line looked at and `end`, signature lines aside
    for i in range(end - 1, -1, -1):
        if kinds[i] != _TEXT:
            continue
        s = lines[i].strip()
        if s.startswith("#"):
            break
        if s == "--" or _is_mobile_signature(s):
            cut = i
            continue
        after += 1
        if after > _MAX_SIGNATURE_LINES or len(s) > _MAX_SIGNATURE_WIDTH:
            break
    return cut


def _is_mobile_signature(s: str) -> bool:
    low = " ".join(s.split()).casefold()
    low = _MARKDOWN_LINK.sub(r"\1", low)
    if low.endswith(">") and "<" in low:  # "Get Outlook for iOS<https://aka.ms/o0ukef>"
        low = _LINK_TAIL.sub("", low) or low
    low = low.strip("()<> ")
    if len(low) > _MAX_MOBILE:
        return False
    if low.startswith("sent from my "):
        # "Sent from my iPhone", never "Sent from my desk, which is easier."
        words = low.split()
        return words[3] in _DEVICES or len(words) <= 5
    return (low.startswith(_MOBILE_PREFIXES) or low.endswith(_MOBILE_SUFFIXES)
            or (low.startswith("von meinem ") and low.endswith(" gesendet")))
