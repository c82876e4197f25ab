"""Reminders before an agreed publication: 7 days and 1 day before, each once.

Run with the deadline sweep. The `disclosures` row says which reminders went (written in
the transaction that queues them), so a restart repeats none. An agreement reached 3 days
before the date is reminded at once ("in 3 days") and the day before; a daemon that was
down over both sends the latest only.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from mailbot.clock import Clock
from mailbot.config import Config
from mailbot.mail.compose import Outgoing, make_message_id
from mailbot.mail.render import Templates
from mailbot.store import Store
from mailbot.store import disclosures as disc_q
from mailbot.triage import letters
from mailbot.triage.auth import reply_address, reply_token

DAYS = (7, 1)


def step(days_left: int, reminded: str) -> tuple[str | None, str]:
    """The reminder due now ('7', '1' or None) and what is reminded after it (pure)."""
    sent = {s for s in reminded.split(",") if s}
    level = next((str(d) for d in sorted(DAYS) if days_left <= d), None)
    if level is None or level in sent or days_left < 0:
        return None, ",".join(sorted(sent | ({"7", "1"} if days_left < 0 else set()),
                                     reverse=True))
    done = {str(d) for d in DAYS if d >= int(level)}  # the ones it makes pointless too
    return level, ",".join(sorted(sent | done, reverse=True))


async def remind(config: Config, store: Store, templates: Templates, secret: bytes,
                 clock: Clock) -> bool:
    """Queue the reminders that are due; True when any was queued."""
    now = clock()
    queued = False
    async with store.write() as db:
        for row in await disc_q.due_reminders(
                db, (now.date() + timedelta(days=max(DAYS) + 1)).isoformat()):
            inbox = config.inbox(row["inbox"])
            policy = config.policies[inbox.policy]
            zone = ZoneInfo(policy.timezone)
            day = date.fromisoformat(row["proposed_on"])
            days_left = (day - now.astimezone(zone).date()).days
            level, reminded = step(days_left, row["reminded"])
            if level is not None:
                for address in config.notified(inbox):
                    text = templates.render(
                        "disclose-reminder", "en", ref=row["ref"], subject=row["subject"],
                        day=datetime.combine(day, time(12), zone), day_iso=row["proposed_on"],
                        days_left=days_left, zone=policy.timezone, inbox_address=inbox.address)
                    mail = Outgoing(
                        sender=inbox.address, sender_name=f"mailbot {inbox.name}", to=[address],
                        subject=f"[{row['ref']}] publication agreed for {row['proposed_on']}",
                        text=text, message_id=make_message_id(inbox.domain,
                                                              f"disclose.{row['ref']}"),
                        date=now, reply_to=reply_address(
                            inbox.address, row["ref"], reply_token(secret, row["ref"], address)),
                        headers={"Auto-Submitted": "auto-generated", "X-Loop": inbox.address,
                                 "X-Mailbot-Case": row["ref"],
                                 "X-Mailbot-Kind": "disclosure-reminder"})
                    q = await letters.queue(
                        db, purpose=f"disclose:{row['ref']}:{row['proposed_on']}:{level}:"
                                    f"{address.lower()}",
                        case_id=int(row["case_id"]), kind="notification", mail=mail,
                        envelope_from=inbox.address, at=now)
                    queued |= q.outbox_id is not None
            if reminded != row["reminded"]:
                await disc_q.mark_reminded(db, int(row["case_id"]), reminded)
    return queued

