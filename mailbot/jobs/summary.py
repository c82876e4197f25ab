"""The flood summary: what a limit held back still reaches staff.

A case opened past an acknowledgement limit, and any mail past `[limits]
notifications_per_hour`, gets no notification of its own (else a flood of forged reports is
a flood of staff mail), yet must not go unseen (else a forged sender could exhaust the
limits to silence a real report). Such a mail is held (`held_notices`) in the transaction
that records it; this job lists every held mail in one mail per staff member, at most one
per `summary_interval`, so a mail waits about that long at most. A summary's size is
bounded (MAX_CASES lines of bounded length; the rest wait for the next one), and each held
mail is marked with the one summary that lists it in the transaction that queues the
summary mails, so a restart neither loses nor repeats one.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from mailbot.clock import Clock, iso
from mailbot.config import Config, InboxConfig
from mailbot.mail.compose import Outgoing, make_message_id, one_line
from mailbot.mail.render import Templates
from mailbot.store import Db, Store
from mailbot.store import notices as notices_q
from mailbot.store.notices import Held
from mailbot.triage import letters
from mailbot.triage.crypto import Crypto

log = logging.getLogger(__name__)

MAX_CASES = 100  # held mails one summary lists; with the cuts below, about 50 KB at most
TICKS = 12  # the job looks this many times per interval: a quiet spell's first case is quick


# What each kind of held mail is, as a summary line says it.
KINDS = {"new": "new case", "follow-up": "follow-up from the reporter",
         "stranger": "WARNING: from someone who is not the reporter",
         "untrusted-staff": "WARNING: staff From: NOT authenticated, changed nothing"}


@dataclass(frozen=True, slots=True)
class Line:
    ref: str
    kind: str
    at: str
    reason: str
    sender: str
    subject: str


class Summaries:
    def __init__(self, config: Config, store: Store, templates: Templates, clock: Clock,
                 crypto: Crypto | None = None) -> None:
        self.config = config
        self.store = store
        self.templates = templates
        self.clock = clock
        self.crypto = crypto or Crypto(config, None)

    @property
    def tick(self) -> timedelta:
        """How often the job runs."""
        return self.config.limits.summary_interval / TICKS

    async def run(self) -> int:
        """Queue one summary per staff member of the held mails, unless the last summary is
        younger than the interval; return the mails queued."""
        now = self.clock()
        interval = self.config.limits.summary_interval
        hour_ago = iso(now - timedelta(hours=1))
        async with self.store.read() as db:
            if not await notices_q.anything_to_do(db, hour_ago):
                return 0
        async with self.store.write() as db:
            await notices_q.forget(db, hour_ago)
            last = await notices_q.last_summary_at(db)
            if last is not None and now - datetime.fromisoformat(last) < interval:
                return 0
            held, total = await notices_q.waiting(db, MAX_CASES)
            if not held:
                return 0
            summary_id = await notices_q.summarise(db, [h.inbound_id for h in held], iso(now))
            queued = 0
            for address, (inbox, mine) in self._per_person(held).items():
                queued += await self._queue(db, summary_id, address, inbox, mine,
                                            total - len(held), now)
        log.info("summary %d: %d held mails to %d staff (%d more wait)", summary_id,
                 len(held), queued, total - len(held))
        return queued

    def _per_person(self, held: list[Held]) -> dict[str, tuple[InboxConfig, list[Held]]]:
        """Each staff member's held mails (of the inboxes that notify them), and the inbox
        the summary comes from (the first of theirs, in config order)."""
        order = {inbox.name: n for n, inbox in enumerate(self.config.inboxes)}
        per_person: dict[str, list[Held]] = defaultdict(list)
        for h in held:
            inbox = self._inbox(h.inbox)
            for address in self.config.notified(inbox):
                per_person[address.lower()].append(h)
        return {address: (self._inbox(min((h.inbox for h in mine),
                                          key=lambda n: order.get(n, len(order)))), mine)
                for address, mine in per_person.items()}

    def _inbox(self, name: str) -> InboxConfig:
        """The inbox of that name; the first one for a case of an inbox since removed."""
        return next((i for i in self.config.inboxes if i.name == name), self.config.inboxes[0])

    async def _queue(self, db: Db, summary_id: int, address: str, inbox: InboxConfig,
                     held: list[Held], more: int, now: datetime) -> int:
        zone = self.config.policies[inbox.policy].timezone
        lines = [Line(h.ref, KINDS.get(h.kind, h.kind), _local(h.held_at, zone),
                      one_line(h.reason, 120), one_line(h.sender, 120),
                      one_line(h.subject, 160)) for h in held]
        interval = self.config.limits.summary_interval
        text = self.templates.render(
            "summary", self.config.digest.language, cases=lines, total=len(lines), more=more,
            minutes=max(1, int(interval.total_seconds() // 60)),
            inbox_address=inbox.address)
        mail = Outgoing(
            sender=inbox.address, sender_name=f"mailbot {inbox.name}", to=[address],
            subject=f"{len(lines)} mail{'s' if len(lines) != 1 else ''} held back by a "
                    "flood limit",
            text=text, message_id=make_message_id(inbox.domain, f"summary.{summary_id}"),
            date=now,
            headers={"Auto-Submitted": "auto-generated", "X-Loop": inbox.address,
                     "X-Mailbot-Kind": "summary"},
        )
        keys = {s.address.lower(): s.pgp_fingerprint for s in self.config.staff}
        q = await letters.queue(db, purpose=f"summary:{summary_id}:{address}", case_id=None,
                                kind="notification", mail=mail, envelope_from=inbox.address,
                                at=now, seal=self.crypto.sealer(inbox, keys.get(address),
                                                                "summary"))
        return int(q.outbox_id is not None)


def _local(at: str, zone: str) -> str:
    return datetime.fromisoformat(at).astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M %Z")

