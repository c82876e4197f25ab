"""Staff learn of mail to a reporter that failed for good: an event on the case and a
notice to each staff member of the inbox, queued in the transaction that fails the row.

Mail to staff that fails is only logged and recorded on the case: telling staff about it by
mail would go the same way, and a notice about a notice could never end.
"""

from __future__ import annotations

import logging
from datetime import datetime

from mailbot.clock import Clock, iso
from mailbot.config import Config
from mailbot.mail.compose import Outgoing, make_message_id
from mailbot.store import Db
from mailbot.store import cases as case_q
from mailbot.store.outbox import OutboxRow
from mailbot.triage import letters

log = logging.getLogger(__name__)

_WHAT = {"ack": "the acknowledgement", "reporter": "a reply to the reporter"}


class Undeliverable:
    """The sender's `on_failed` hook."""

    def __init__(self, config: Config, clock: Clock) -> None:
        self.config = config
        self.clock = clock

    async def __call__(self, db: Db, row: OutboxRow, reason: str) -> None:
        if row.case_id is None:
            return
        case = await case_q.get_by_id(db, row.case_id)
        if case is None:
            return
        now = self.clock()
        to = ", ".join(row.rcpt_to) or "(no recipient)"
        await case_q.add_event(db, row.case_id, at=iso(now), actor="mailbot",
                               action="delivery failed",
                               detail=f"outbox {row.id} to {to}: {reason}")
        if not row.rcpt_to or any(self.config.is_staff(r) for r in row.rcpt_to):
            return
        inbox = self.config.inbox(str(case["inbox"]))
        if any(r.lower() in {a.lower() for a in self.config.notified(inbox)}
               for r in row.rcpt_to):
            return
        what = _WHAT.get(row.purpose.partition(":")[0], f"a mail ({row.purpose})")
        ref = str(case["ref"])
        for address in self.config.notified(inbox):
            await letters.queue(
                db, purpose=f"undeliverable:{row.id}:{address.lower()}", case_id=row.case_id,
                kind="notification", envelope_from=inbox.address, at=now,
                mail=_notice(inbox.address, inbox.domain, inbox.name, address, ref, what, to,
                             reason, now),
            )
        log.info("outbox %d: staff of %s told it failed", row.id, ref)


def _notice(sender: str, domain: str, inbox_name: str, staff: str, ref: str, what: str,
            to: str, reason: str, now: datetime) -> Outgoing:
    text = (
        f"mailbot could not deliver {what} on case {ref} to {to}, and will not try again:\n\n"
        f"  {reason}\n\n"
        "The reporter has not received it: reach them another way, or through a relay\n"
        f"that can carry the mail. `mailbot show {ref}` lists this failure.\n"
    )
    return Outgoing(
        sender=sender, sender_name=f"mailbot {inbox_name}", to=[staff],
        subject=f"[{ref}] Undeliverable: {what} to {to}", text=text,
        message_id=make_message_id(domain, f"undeliverable.{ref}"), date=now,
        headers={"Auto-Submitted": "auto-generated", "X-Loop": sender,
                 "X-Mailbot-Case": ref, "X-Mailbot-Kind": "undeliverable"},
    )
