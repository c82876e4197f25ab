"""The escalation ladder: warn before a promise is broken, say so when it is, escalate after.

Per open case and per deadline not yet kept (the first response; the resolution, by the
policy's default or the `#due` date): a warning `warn_before` the deadline to the assignee
(or the inbox's staff), a notice at the deadline to the leads, and a breach notice
`breach_after` it to the managers. Each step goes once: the `escalations` table holds a row
per case, deadline moment and level, written in the transaction that queues the mail, so a
restart repeats nothing and a moved deadline gets steps of its own. Notices wait for the
policy's business hours, except a breach on a critical case. The database is the schedule:
the sweep finds what is due, including what fell due while the daemon was down; many steps
at once (after a long downtime) become one summary per person instead of a storm.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from mailbot.clock import Clock, iso
from mailbot.config import Config, InboxConfig, PolicyConfig
from mailbot.mail.compose import Outgoing, make_message_id, reply_subject
from mailbot.mail.render import Templates, long_date
from mailbot.sla import BusinessCalendar
from mailbot.store import Db, Store
from mailbot.store import cases as case_q
from mailbot.store.cases import Record
from mailbot.triage import letters
from mailbot.triage.auth import reply_address, reply_token

LEVELS = ("warning", "deadline", "breach")
SUMMARY_THRESHOLD = 10  # more steps than this in one sweep: one summary mail per person
NEVER = "9999-12-31T00:00:00+00:00"  # next_escalation_at of a case with no step left
CHUNK = 25_000  # cases per transaction when a backlog is swept
SUMMARY_LINES = 200  # a summary lists at most this many steps, then says how many more


@dataclass(frozen=True, slots=True)
class Step:
    case: Record
    deadline: str  # first-response | resolution
    due: datetime
    level: str
    send_at: datetime

    @property
    def key(self) -> tuple[int, str, str, str]:
        return int(self.case["id"]), self.deadline, iso(self.due), self.level


def ladder(
    case: Record, policy: PolicyConfig, calendar: BusinessCalendar
) -> list[Step]:
    """Every step of this case's open deadlines, with the moment it is to be sent (pure)."""
    deadlines = []
    if case["first_responded_at"] is None and case["first_response_due"]:
        deadlines.append(("first-response", datetime.fromisoformat(case["first_response_due"])))
    if case["resolution_due"]:
        deadlines.append(("resolution", datetime.fromisoformat(case["resolution_due"])))
    if policy.update_every and case["last_reporter_update_at"]:
        last = datetime.fromisoformat(case["last_reporter_update_at"])
        deadlines.append(("reporter-update", calendar.add(last, policy.update_every)))
    steps = []
    for deadline, due in deadlines:
        moments = {
            "warning": calendar.subtract(due, policy.warn_before),
            "deadline": due,
            "breach": calendar.add(due, policy.breach_after),
        }
        for level, moment in moments.items():
            urgent = level == "breach" and case["severity"] == "critical"
            send_at = moment if urgent else calendar.next_business_time(moment)
            steps.append(Step(case, deadline, due, level, send_at))
    return steps


def recipients(config: Config, inbox: InboxConfig, level: str, case: Record
               ) -> list[str]:
    """Warnings to the assignee, deadlines to the leads, breaches to the managers; each falls
    back to the next group up, and last to the inbox's staff."""
    staff = config.staff
    by_role = {role: [s.address for s in staff if s.role == role]
               for role in ("member", "lead", "manager")}
    assignee = (case["assignee"] or "").lower()
    assigned = [s.address for s in staff
                if assignee and assignee in (s.address.lower(), (s.name or "").lower())]
    chains = {"warning": [assigned], "deadline": [by_role["lead"]],
              "breach": [by_role["manager"], by_role["lead"]]}
    for group in chains[level]:
        if group:
            return group
    return list(config.notified(inbox))


class Escalator:
    def __init__(self, config: Config, store: Store, templates: Templates, secret: bytes,
                 clock: Clock) -> None:
        self.config = config
        self.store = store
        self.templates = templates
        self.secret = secret
        self.clock = clock
        self.calendars = {
            name: BusinessCalendar.create(p.timezone, p.holidays, p.workdays, p.business_hours)
            for name, p in config.policies.items()
        }

    async def sweep(self) -> int:
        """Send every step that is due and was not sent; return how many mails were queued.

        Only cases whose `next_escalation_at` has come (or is not computed) are read, so a
        sweep costs what is due, not what is open. A backlog (a first start over many cases)
        is taken CHUNK cases at a time, to bound memory.
        """
        now = self.clock()
        queued = 0
        while True:
            done, n = await self._sweep_chunk(now)
            queued += n
            if done < CHUNK:
                return queued

    async def _sweep_chunk(self, now: datetime) -> tuple[int, int]:
        """One write transaction: what was sent is read, recorded and queued together, so
        two sweeps can never send a step twice. Returns (cases read, mails queued)."""
        async with self.store.write() as db:
            cases = await case_q.due_for_escalation(db, iso(now), CHUNK)
            if not cases:
                return 0, 0
            sent = await case_q.escalations_sent(db, [int(c["id"]) for c in cases])
            # The calendar arithmetic of a backlog takes a while: a thread keeps the event
            # loop answering SMTP clients meanwhile.
            due, moments = await asyncio.to_thread(self._plan, cases, sent, now)
            await case_q.set_next_escalations(db, moments)
            if not due:
                return len(cases), 0
            await case_q.record_escalations(db, [s.key for s in due], iso(now))
            if len(due) > SUMMARY_THRESHOLD:
                return len(cases), await self._summaries(db, due, now)
            return len(cases), sum([await self._notice(db, s, now) for s in due])

    def _plan(self, cases: Sequence[Record], sent: set[tuple[int, str, str, str]],
              now: datetime) -> tuple[list[Step], list[tuple[str, int]]]:
        """The steps due now, and each case's next moment (pure)."""
        due: list[Step] = []
        moments: list[tuple[str, int]] = []
        for case in cases:
            inbox = self.config.inbox(case["inbox"])
            policy = self.config.policies[inbox.policy]
            steps = [s for s in ladder(case, policy, self.calendars[policy.name])
                     if s.key not in sent]
            due += [s for s in steps if s.send_at <= now]
            later = [s.send_at for s in steps if s.send_at > now]
            moments.append((iso(min(later)) if later else NEVER, int(case["id"])))
        return due, moments

    async def _notice(self, db: Db, step: Step, now: datetime) -> int:
        case = step.case
        inbox = self.config.inbox(case["inbox"])
        policy = self.config.policies[inbox.policy]
        thread = await case_q.thread_ids(db, int(case["id"]))
        queued = 0
        for address in recipients(self.config, inbox, step.level, case):
            text = self.templates.render_file(
                "escalation.en.txt", level=step.level, deadline=step.deadline, due=step.due,
                zone=policy.timezone, case=case, long_date=_long_date(policy.timezone),
                inbox_address=inbox.address)
            token = reply_token(self.secret, case["ref"], address)
            mail = Outgoing(
                sender=inbox.address, sender_name=f"mailbot {inbox.name}", to=[address],
                subject=f"{reply_subject(case['ref'], case['subject'])} "
                        f"[{step.level}: {step.deadline}]",
                text=text, message_id=make_message_id(inbox.domain, f"escalation.{case['ref']}"),
                date=now, in_reply_to=thread[-1] if thread else None, references=thread,
                reply_to=reply_address(inbox.address, case["ref"], token),
                headers={"Auto-Submitted": "auto-generated", "X-Loop": inbox.address,
                         "X-Mailbot-Case": case["ref"], "X-Mailbot-Kind": "escalation"},
            )
            purpose = "escalation:" + ":".join(str(k) for k in step.key) + f":{address.lower()}"
            q = await letters.queue(db, purpose=purpose, case_id=int(case["id"]),
                                    kind="notification", mail=mail,
                                    envelope_from=inbox.address, at=now)
            queued += q.outbox_id is not None
        return queued

    async def _summaries(self, db: Db, steps: Sequence[Step], now: datetime) -> int:
        """One mail per person listing every step, instead of one mail per step."""
        per_person: dict[str, list[Step]] = defaultdict(list)
        for step in steps:
            inbox = self.config.inbox(step.case["inbox"])
            for address in recipients(self.config, inbox, step.level, step.case):
                per_person[address].append(step)
        inbox = self.config.inboxes[0]
        zone = self.config.policies[inbox.policy].timezone
        queued = 0
        for address, mine in per_person.items():
            text = self.templates.render_file(
                "escalation-summary.en.txt", steps=mine[:SUMMARY_LINES], total=len(mine),
                zone=zone, long_date=_long_date(zone))
            mail = Outgoing(
                sender=inbox.address, sender_name=f"mailbot {inbox.name}", to=[address],
                subject=f"{len(mine)} promises need attention", text=text,
                message_id=make_message_id(inbox.domain, "escalation-summary"), date=now,
                headers={"Auto-Submitted": "auto-generated", "X-Loop": inbox.address,
                         "X-Mailbot-Kind": "escalation-summary"},
            )
            # Unique per chunk too: a later chunk's summary must not be taken for this one.
            chunk = min(int(s.case["id"]) for s in steps)
            q = await letters.queue(db, purpose=f"escalation-summary:{iso(now)}:{chunk}:"
                                    f"{address.lower()}",
                                    case_id=None, kind="notification", mail=mail,
                                    envelope_from=inbox.address, at=now)
            queued += q.outbox_id is not None
        return queued


def _long_date(zone: str) -> Any:
    def fmt(moment: datetime) -> str:
        local = moment.astimezone(ZoneInfo(zone))
        return f"{long_date(local, 'en')} {local:%H:%M}"

    return fmt
