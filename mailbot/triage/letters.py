"""The mail the pipeline writes: built, recorded on its case, and queued in one go.

Every outgoing mail on a case is also a `messages` row and its Message-ID goes into
`message_ids`, so a reply to anything we sent threads back to the case.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from mailbot.clock import iso
from mailbot.config import InboxConfig, PolicyConfig
from mailbot.mail.compose import Outgoing, build, make_message_id, reply_subject
from mailbot.mail.render import Templates
from mailbot.store import Db
from mailbot.store import cases as case_q
from mailbot.store import outbox as outbox_q

BOT_HEADERS = {"Auto-Submitted": "auto-replied", "Precedence": "bulk"}


@dataclass(frozen=True, slots=True)
class Queued:
    purpose: str
    outbox_id: int | None  # None: this purpose was queued before, nothing new


async def queue(
    db: Db,
    *,
    purpose: str,
    case_id: int | None,
    kind: str,
    mail: Outgoing,
    envelope_from: str,
    at: datetime,
) -> Queued:
    """Queue `mail` once per purpose and record it on its case."""
    outbox_id = await outbox_q.enqueue(
        db, purpose=purpose, case_id=case_id, created_at=iso(at), mail_from=envelope_from,
        rcpt_to=mail.to, message_id=mail.message_id, raw=build(mail),
    )
    if outbox_id is not None and case_id is not None:
        await case_q.add_message(
            db, case_id=case_id, direction="out", kind=kind, sender=envelope_from,
            recipients=mail.to, message_id=mail.message_id, subject=mail.subject,
            date=iso(at), body=mail.text, new_text=mail.text, outbox_id=outbox_id,
        )
    return Queued(purpose, outbox_id)


@dataclass(frozen=True, slots=True)
class AckFacts:
    ref: str
    reporter: str
    reporter_name: str
    subject: str
    language: str
    report_message_id: str | None
    report_references: tuple[str, ...]
    first_response_due: datetime
    resolution_due: datetime


def acknowledgement(
    templates: Templates, inbox: InboxConfig, policy: PolicyConfig, facts: AckFacts, at: datetime
) -> Outgoing:
    """The reporter's acknowledgement: reference, promised dates, what the policy promises."""
    text = templates.render(
        "ack", facts.language, name=facts.reporter_name, subject=facts.subject, ref=facts.ref,
        first_response_due=facts.first_response_due, resolution_due=facts.resolution_due,
        zone=policy.timezone, inbox_address=inbox.address, undecryptable=False,
    )
    references = list(facts.report_references)
    if facts.report_message_id:
        references.append(facts.report_message_id)
    return Outgoing(
        sender=inbox.address, sender_name=None, to=[facts.reporter],
        subject=reply_subject(facts.ref, facts.subject), text=text,
        message_id=make_message_id(inbox.domain, f"ack.{facts.ref}"), date=at,
        in_reply_to=facts.report_message_id, references=references,
        headers={**BOT_HEADERS, "X-Loop": inbox.address, "X-Mailbot-Case": facts.ref},
    )
