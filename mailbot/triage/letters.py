"""The mail the pipeline writes: built, recorded on its case, and queued in one go.

Every outgoing mail on a case is also a `messages` row and its Message-ID goes into
`message_ids`, so a reply to anything we sent threads back to the case.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mailbot.clock import iso
from mailbot.config import InboxConfig, PolicyConfig
from mailbot.mail.compose import Outgoing, build, make_message_id, reply_subject
from mailbot.mail.render import Templates
from mailbot.models import Attachment, ParsedMail
from mailbot.store import Db
from mailbot.store import cases as case_q
from mailbot.store import outbox as outbox_q
from mailbot.triage.auth import reply_address, reply_token
from mailbot.triage.crypto import Seal

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
    seal: Seal | None = None,
) -> Queued:
    """Queue `mail` once per purpose and record it on its case; `seal` encrypts it, or
    withholds it (answers None: nothing is queued; the seal says why).

    Notifications are not recorded as case messages (they repeat the mail they announce,
    once per staff member); their Message-ID still threads replies to the case.
    """
    raw = build(mail)
    sent = await seal(raw) if seal is not None else raw
    if sent is None:  # withheld: never sent in clear instead
        return Queued(purpose, None)
    outbox_id = await outbox_q.enqueue(
        db, purpose=purpose, case_id=case_id, created_at=iso(at), mail_from=envelope_from,
        rcpt_to=mail.to, message_id=mail.message_id, raw=sent,
    )
    if outbox_id is not None and case_id is not None and kind == "notification":
        await case_q.remember_message_ids(db, case_id, [mail.message_id])
    elif outbox_id is not None and case_id is not None:
        await case_q.add_message(
            db, case_id=case_id, direction="out", kind=kind, sender=envelope_from,
            recipients=mail.to, message_id=mail.message_id, subject=mail.subject,
            date=iso(at), body=mail.text, new_text=mail.text, outbox_id=outbox_id,
            encrypted=sent != raw,
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
    undecryptable: bool = False  # the report could not be decrypted: say how to resend it
    key_fingerprint: str | None = None
    key_url: str | None = None


def acknowledgement(
    templates: Templates, inbox: InboxConfig, policy: PolicyConfig, facts: AckFacts, at: datetime
) -> Outgoing:
    """The reporter's acknowledgement: reference, promised dates, what the policy promises."""
    text = templates.render(
        "ack", facts.language, name=facts.reporter_name, subject=facts.subject, ref=facts.ref,
        first_response_due=facts.first_response_due, resolution_due=facts.resolution_due,
        zone=policy.timezone, inbox_address=inbox.address, undecryptable=facts.undecryptable,
        key_fingerprint=_spaced(facts.key_fingerprint), key_url=facts.key_url,
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


def _spaced(fingerprint: str | None) -> str | None:
    """A fingerprint as people compare it: groups of four."""
    if not fingerprint:
        return None
    return " ".join(fingerprint[i:i + 4] for i in range(0, len(fingerprint), 4))


@dataclass(frozen=True, slots=True)
class CaseView:
    """What a notification says of its case."""

    ref: str
    subject: str
    state: str
    reporter: str
    reporter_name: str | None
    first_response_due: datetime
    resolution_due: datetime

    @classmethod
    def of(cls, case: Mapping[str, Any]) -> CaseView:
        return cls(
            ref=case["ref"], subject=case["subject"], state=case["state"],
            reporter=case["reporter"], reporter_name=case["reporter_name"],
            first_response_due=datetime.fromisoformat(case["first_response_due"]),
            resolution_due=datetime.fromisoformat(case["resolution_due"]),
        )


def _answering(mail: ParsedMail) -> list[str]:
    """The References of a mail that answers `mail`."""
    return [*mail.references, *([mail.message_id] if mail.message_id else [])]


NOTIFY_TEXT_MAX = 64 * 1024  # characters of a mail's text a notification repeats
# Attachments one notification carries, and lines it spends on those it leaves out or on
# ignored command lines: a mail of a thousand parts must not make a notification of them.
MAX_CARRIED = 50
MAX_LINES = 50


@dataclass(frozen=True, slots=True)
class LeftOut:
    """An attachment a notification names but does not carry."""

    name: str
    size: int
    why: str


@dataclass(frozen=True, slots=True)
class Carried:
    attached: tuple[Attachment, ...]
    left_out: tuple[LeftOut, ...]

    @property
    def size(self) -> int:
        return sum(len(a.data) for a in self.attached)


def carry(attachments: Sequence[Attachment], per_mail: int, per_hour: int,
          spent: int) -> Carried:
    """Which attachments one notification carries (pure): whole ones, in order, each that
    still fits in the per-mail budget and in what is left of the staff member's hour."""
    attached: list[Attachment] = []
    left_out: list[LeftOut] = []
    total = 0
    for n, a in enumerate(attachments, 1):
        name = a.filename or f"attachment {n} ({a.content_type})"
        if not a.whole:
            why = "larger than mailbot reads from one mail into memory"
        elif len(attached) >= MAX_CARRIED:
            why = f"a notification carries at most {MAX_CARRIED} attachments"
        elif total + a.length > per_mail:
            why = f"over the {human_size(per_mail)} of attachments a notification carries"
        elif spent + total + a.length > per_hour:
            why = (f"over your {human_size(per_hour)} of attachments per hour "
                   "(many notifications in a short time)")
        else:
            attached.append(a)
            total += a.length
            continue
        left_out.append(LeftOut(name, a.length, why))
    return Carried(tuple(attached), tuple(left_out))


def human_size(size: int) -> str:
    for unit, factor in (("MB", 1024 ** 2), ("KB", 1024)):
        if size >= factor:
            return f"{size / factor:.1f} {unit}"
    return f"{size} bytes"


def _exactly(size: int) -> str:
    """`10.0 MB, 10485760 bytes`: what a person reads, and what a file will measure."""
    short = human_size(size)
    return short if short.endswith("bytes") else f"{short}, {size} bytes"


def notification(
    templates: Templates, secret: bytes, inbox: InboxConfig, policy: PolicyConfig,
    case: CaseView, mail: ParsedMail, kind: str, staff_address: str, at: datetime,
    ignored_commands: Sequence[str] = (), remarks: Sequence[str] = (),
    carried: Carried | None = None, mail_id: int | None = None,
) -> Outgoing:
    """A mail to one staff member about one incoming mail, with a reply address of theirs.
    It carries the attachments `carried` chose (all, by default) and says plainly of each
    other one that it is not attached, its size, and the command that writes it out.

    Reporter addresses and text go only into these, to staff, never elsewhere.
    """
    if carried is None:
        carried = carry(mail.attachments, 2 ** 62, 2 ** 62, 0)
    text = mail.text.strip() or "(no text)"
    cut = len(text) > NOTIFY_TEXT_MAX
    text = text[:NOTIFY_TEXT_MAX]
    command = f"mailbot attachments {case.ref} DIR" + (f" --mail {mail_id}" if mail_id else "")
    text = templates.render(
        "notify", "en", kind=kind, ref=case.ref, inbox_address=inbox.address,
        sender=mail.from_addr or "(none)", sender_name=mail.from_name,
        reporter=case.reporter, reporter_name=case.reporter_name or "", subject=mail.subject,
        state=case.state, first_response_due=case.first_response_due,
        first_response_due_iso=iso(case.first_response_due),
        resolution_due=case.resolution_due, resolution_due_iso=iso(case.resolution_due),
        zone=policy.timezone, text=text, cut=cut, text_max=human_size(NOTIFY_TEXT_MAX),
        attached=[(a.filename or a.content_type, human_size(len(a.data)))
                  for a in carried.attached],
        left_out=[(o.name, _exactly(o.size), o.why) for o in carried.left_out[:MAX_LINES]],
        more_left_out=max(0, len(carried.left_out) - MAX_LINES),
        command=command, defects=list(mail.defects[:5]),
        ignored_commands=ignored_commands[:MAX_LINES],
        more_ignored=max(0, len(ignored_commands) - MAX_LINES), remarks=remarks,
    )
    token = reply_token(secret, case.ref, staff_address)
    return Outgoing(
        sender=inbox.address, sender_name=f"mailbot {inbox.name}", to=[staff_address],
        subject=f"[{case.ref}] {mail.subject or case.subject}", text=text,
        message_id=make_message_id(inbox.domain, f"notify.{case.ref}"), date=at,
        in_reply_to=mail.message_id,
        references=_answering(mail),
        reply_to=reply_address(inbox.address, case.ref, token),
        headers={"Auto-Submitted": "auto-generated", "X-Loop": inbox.address,
                 "X-Mailbot-Case": case.ref, "X-Mailbot-Kind": kind},
        attachments=carried.attached,
    )


def reporter_update(
    templates: Templates, inbox: InboxConfig, policy: PolicyConfig, case: Mapping[str, Any],
    news: list[tuple[str, str]], reply: str | None, thread: list[str], at: datetime,
) -> Outgoing:
    """What staff decided, told to the reporter in their language, from the inbox address
    (never from the staff member's own)."""
    due_dates = {v: datetime.fromisoformat(f"{v}T12:00:00+00:00") for w, v in news if w == "due"}
    text = templates.render(
        "update", case["language"], name=case["reporter_name"] or "", news=news, reply=reply,
        due_dates=due_dates, zone=policy.timezone, ref=case["ref"], inbox_address=inbox.address,
    )
    return Outgoing(
        sender=inbox.address, sender_name=None, to=[case["reporter"]],
        subject=reply_subject(case["ref"], case["subject"]), text=text,
        message_id=make_message_id(inbox.domain, f"update.{case['ref']}"), date=at,
        in_reply_to=thread[-1] if thread else None, references=thread,
        headers={"X-Loop": inbox.address, "X-Mailbot-Case": case["ref"]},
    )


def transcript(
    templates: Templates, inbox: InboxConfig, ref: str, to: str, mail: ParsedMail,
    errors: list[Any], done: list[str], reporter_told: bool, at: datetime,
    remarks: Sequence[str] = (),
) -> Outgoing:
    """The answer to a command mail: what was applied, or which line was wrong and why."""
    text = templates.render("transcript", "en", ref=ref, errors=errors, done=done,
                            reporter_told=reporter_told, inbox_address=inbox.address,
                            remarks=remarks)
    status = "not applied" if errors else "applied"
    return Outgoing(
        sender=inbox.address, sender_name=f"mailbot {inbox.name}", to=[to],
        subject=f"[{ref}] commands {status}: {mail.subject}", text=text,
        message_id=make_message_id(inbox.domain, f"transcript.{ref}"), date=at,
        in_reply_to=mail.message_id,
        references=_answering(mail),
        headers={"Auto-Submitted": "auto-replied", "X-Loop": inbox.address,
                 "X-Mailbot-Case": ref, "X-Mailbot-Kind": "transcript"},
    )
