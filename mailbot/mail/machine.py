"""Machine mail beyond RFC 3834: auto-replies by their providers' markers and subjects,
and what a mailing list's headers say of the list (`list_facts`, at the end).

Gmail, Fastmail, Proton and GMX/Web.de set `Auto-Submitted: auto-replied` (parse.py checks
it first), but many responders do not: iCloud marks its vacation replies only with
`X-Apple-Action: VACATION`; Exchange and Outlook with `X-MS-Exchange-Organization-AutoReply`
or `X-MS-Exchange-Generated-Message-Source`; Yahoo, Zimbra, Zoho, Proton, Mimecast and the
autoresponder plug-ins with a header named after what they are (`X-Autoreply`,
`X-Autorespond`, `X-Auto-Reply`, `X-Autoresponder`, `X-Zoho-Autoreply`, ...); the classic
`vacation` program and its kin name themselves in `X-Mailer`; some set
`Precedence: auto_reply`. Any of those is a machine reply.

A subject such as "Automatic reply: …" alone is weaker: a person may write "Out of office"
in a report. It counts together with `X-Auto-Response-Suppress` (Outlook), and otherwise is
returned as SUBJECT_ONLY, which the pipeline takes as a machine reply only on the open case
of the sender's own report; anywhere else the mail goes on as a person's.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

from mailbot.models import ListFacts

SUBJECT_ONLY: Final = "auto-reply subject"

# Names of headers a responder adds to say what it is; "suppress" ones ask, not tell.
_NAME: Final = re.compile(r"auto-?(?:reply|replied|respon[ds]|responder|answer)|vacation", re.I)
_NO: Final = frozenset({"", "no", "false", "0", "off", "none"})
_MAILER: Final = re.compile(r"vacation|auto-?(?:reply|respon)|out of office|abwesenheit", re.I)

# Subject prefixes of out-of-office replies, as clients write them, in the languages of
# SPEC's clients. Each is followed by a colon or ends the subject.
_PREFIXES: Final = (
    # en
    "automatic reply", "auto reply", "auto-reply", "autoreply", "auto response",
    "auto-response", "autoresponse", "automatic response", "automated response",
    "out of office", "out of the office", "out-of-office", "ooo", "vacation reply",
    "on vacation", "away from the office", "away",
    # nl
    "automatisch antwoord", "automatisch bericht", "automatische reactie", "afwezig",
    "afwezigheidsmelding", "niet aanwezig", "buiten kantoor",
    # de
    "abwesenheitsnotiz", "automatische antwort", "automatische rückantwort", "abwesend",
    "abwesenheit", "abwesenheitsmeldung", "nicht im büro", "außer haus",
    # fr
    "réponse automatique", "reponse automatique", "absence", "absent", "message d'absence",
    "absent du bureau", "absente",
    # es
    "respuesta automática", "respuesta automatica", "fuera de la oficina", "ausente",
    "fuera de oficina",
    # it
    "risposta automatica", "fuori ufficio", "fuori sede", "assente", "assenza",
    # pt
    "resposta automática", "resposta automatica", "ausência", "ausencia", "fora do escritório",
    "fora do escritorio",
    # sv, da, no, fi, pl, ru, zh, ja
    "autosvar", "automatiskt svar", "automatisk svar", "automatisk besvarelse",
    "automaattinen vastaus", "automatyczna odpowiedź", "nieobecność", "автоответ",
    "автоматический ответ", "自动回复", "自動回覆", "自動応答", "自動返信",
)
_SUBJECT: Final = re.compile(
    r"\s*(?:(?:re|aw|sv|vs|antw|r|res|ответ)\s*:\s*)?(?:\[[^\]]{0,80}\]\s*)?(?:"
    + "|".join(re.escape(p) for p in sorted(_PREFIXES, key=len, reverse=True))
    + r")\s*(?:[:：]|$)",
    re.IGNORECASE,
)


def auto_reply(header: Callable[[str], str], names: list[str], subject: str) -> str | None:
    """Why this mail is an automatic reply, SUBJECT_ONLY when only its subject says so,
    or None. `header(name)` is a header's first value ("" if absent); `names` the names of
    all headers present, lower-cased."""
    for name in names:
        if "suppress" in name or not _NAME.search(name):  # X-Auto-Response-Suppress asks
            continue
        if header(name).strip().lower() not in _NO:
            return f"out of office ({name})"
    for name in ("x-ms-exchange-organization-autoreply",
                 "x-ms-exchange-generated-message-source"):
        if header(name).strip():
            return f"out of office ({name})"
    if header("x-apple-action").strip().lower() == "vacation":
        return "out of office (x-apple-action: vacation)"
    if _MAILER.search(header("x-mailer")):
        return "out of office (x-mailer)"
    if header("precedence").strip().lower() in ("auto_reply", "auto-reply"):
        return "out of office (precedence)"
    if not is_auto_reply_subject(subject):
        return None
    suppress = header("x-auto-response-suppress").lower()
    if "oof" in suppress or "all" in suppress:
        return "out of office (subject)"
    return SUBJECT_ONLY


def is_auto_reply_subject(subject: str) -> bool:
    """The subject starts like an out-of-office reply's ("Automatic reply: …")."""
    return _SUBJECT.match(subject[:500]) is not None


def subject_only(machine: str | None, envelope_from: str | None, sender: str,
                 reporter: str | None) -> str | None:
    """The machine reason once the mail's case is known: SUBJECT_ONLY stays only on mail
    from the reporter of the case it threads to (or with no sender to answer at all);
    with a null envelope sender it is a machine reply anyway; else it is a person's mail."""
    if machine != SUBJECT_ONLY:
        return machine
    if envelope_from == "":
        return "empty return path"
    if not sender or (reporter is not None and sender == reporter.lower()):
        return machine
    return None


# Mailing lists. RFC 2369/2919 headers and the older list servers' own (Mailman 2, fml,
# ezmlm, Listserv); Google Groups adds Mailing-List and X-Original-Sender, Sympa and
# Mailman X-Original-From or Reply-To when they rewrite From: for DMARC.
LIST_HEADERS: Final = ("list-id", "list-unsubscribe", "list-post", "mailing-list",
                       "x-mailing-list", "x-beenthere", "x-mailman-version", "x-mlserver",
                       "x-ml-name", "x-listserver")
# The reasons `parse.machine_reason` gives list mail: triage/lists.py decides what it is.
LIST_REASONS: Final = frozenset({"precedence: list", "mailing list"})
_LIST_ID: Final = re.compile(r"<([^<>\s]{1,250})>")
_MAILTO: Final = re.compile(r"<mailto:([^<>\s?@]{1,200}@[^<>\s?@]{1,200})(?:\?[^<>]*)?>", re.I)
_MAILING_LIST: Final = re.compile(r"list\s+([^\s;@]{1,200}@[^\s;@]{1,200})", re.I)
_DIGEST_SUBJECT: Final = re.compile(r"\bdigest\b.{0,40}\bvol(?:ume)?\b\.?\s*\d", re.I)
_CLAIMS: Final = ("x-original-from", "x-original-sender", "reply-to")
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\x85]")


def is_list(header: Callable[[str], str]) -> bool:
    """Any list header, or `Precedence: list`."""
    return (any(header(name).strip() for name in LIST_HEADERS)
            or header("precedence").strip().lower() == "list")


def list_facts(header: Callable[[str], str], address: Callable[[str], str],
               content_type: str, subject: str) -> ListFacts | None:
    """The list a mail came through (None: no list header). `header(name)` is a header's
    first value; `address(value)` the first bare address in it ("" if none)."""
    if not is_list(header):
        return None
    post = _MAILTO.search(header("list-post"))
    post_address = post.group(1).lower() if post else None
    list_id = _LIST_ID.search(header("list-id"))
    named = _MAILING_LIST.search(header("mailing-list"))
    ident = (list_id.group(1) if list_id else post_address
             or (named.group(1) if named else None)
             or address(header("x-beenthere")) or header("x-mailing-list").strip()[:200]
             or header("x-ml-name").strip()[:200] or "unknown")
    claims = tuple(dict.fromkeys(a for a in (address(header(n)) for n in _CLAIMS) if a))
    digest = content_type == "multipart/digest" or bool(_DIGEST_SUBJECT.search(subject))
    # Printed by `mailbot inbound` and shown to staff: no control characters.
    return ListFacts(_CONTROL.sub("", ident).lower() or "unknown", post_address, digest, claims)
