"""Which case a mail belongs to: a pure step over a lookup.

Order: the Message-IDs it answers (In-Reply-To, then References), then a case reference of
this inbox in the subject. A reference of another inbox, or one that does not exist, finds
nothing, so the mail opens a new case and learns nothing of any other.
"""

from __future__ import annotations

import re
from typing import Protocol

from mailbot.models import ParsedMail

_REF = re.compile(r"\[([A-Z][A-Z0-9]{0,9})-(\d{4})-(\d{4,})\]")


class CaseLookup(Protocol):
    async def by_message_ids(self, message_ids: tuple[str, ...]) -> int | None: ...

    async def by_ref(self, ref: str, inbox: str) -> int | None: ...


def subject_refs(subject: str, prefix: str) -> list[str]:
    """Case references of the inbox with `prefix` found in a subject, in order."""
    return [f"{p}-{y}-{n}" for p, y, n in _REF.findall(subject) if p == prefix]


async def find_case(
    mail: ParsedMail, *, inbox: str, prefix: str, lookup: CaseLookup
) -> int | None:
    # The most specific first: what it answers directly, then its References, newest first.
    named = mail.in_reply_to + tuple(reversed(mail.references))
    if named:
        case_id = await lookup.by_message_ids(named)
        if case_id is not None:
            return case_id
    for ref in subject_refs(mail.subject, prefix):
        case_id = await lookup.by_ref(ref, inbox)
        if case_id is not None:
            return case_id
    return None
