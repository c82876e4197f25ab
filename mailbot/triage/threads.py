"""Which case a mail belongs to: a pure step over a lookup.

Order: the case reply address it was sent to, then the Message-IDs it answers (In-Reply-To,
then References, then its own, which a reply that overtook it has made known), then a case
reference of this inbox in the subject. A reference of another
inbox, or one that does not exist, finds nothing, so the mail opens a new case and learns
nothing of any other. Which Message-IDs thread whose mail is the lookup's business (see
store.cases.case_of_message_ids): a Message-ID is anyone's to cite or to copy, so a
stranger's mail follows only those the bot sent, the case's reporter and staff also their
own, and a citation only the mail of whoever cited it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

from mailbot.config import InboxConfig
from mailbot.models import ParsedMail
from mailbot.triage.auth import reply_refs

_REF = re.compile(r"\[([A-Z][A-Z0-9]{0,9})-(\d{4})-(\d{4,})\]")


class CaseLookup(Protocol):
    async def by_message_ids(self, message_ids: tuple[str, ...]) -> int | None: ...

    async def by_ref(self, ref: str, inbox: str) -> int | None: ...


def subject_refs(subject: str, prefix: str) -> list[str]:
    """Case references of the inbox with `prefix` found in a subject, in order."""
    return [f"{p}-{y}-{n}" for p, y, n in _REF.findall(subject) if p == prefix]


async def find_case(
    mail: ParsedMail, recipients: Sequence[str], *, inbox: InboxConfig, lookup: CaseLookup
) -> int | None:
    for reply in reply_refs(recipients, inbox.address):
        # The case's reply address. Whether the token is valid matters for who is speaking
        # (auth.py), not for where the mail belongs: it names the case like a subject would.
        case_id = await lookup.by_ref(reply.ref, inbox.name)
        if case_id is not None:
            return case_id
    # The most specific first: what it answers directly, then its References, newest first.
    named = mail.in_reply_to + tuple(reversed(mail.references))
    if mail.message_id:
        # Its own id is known when a reply to it came first (out-of-order arrival).
        named += (mail.message_id,)
    if named:
        case_id = await lookup.by_message_ids(named)
        if case_id is not None:
            return case_id
    for ref in subject_refs(mail.subject, inbox.prefix):
        case_id = await lookup.by_ref(ref, inbox.name)
        if case_id is not None:
            return case_id
    return None
