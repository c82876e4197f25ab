"""The weekly digest: build it from the store, render it (text and HTML), queue it once.

The numbers are in `figures.py`, what the templates show of them in `digest_view.py`, the
charts in `mail/charts.py`.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from mailbot.clock import iso
from mailbot.config import Config
from mailbot.jobs.digest_view import panel
from mailbot.jobs.figures import WEEK, Digest, Line, Terms, compute
from mailbot.jobs.words import LABELS, Words
from mailbot.mail.compose import Outgoing, make_message_id
from mailbot.mail.render import Templates
from mailbot.sla import Unit
from mailbot.store import Store
from mailbot.store import cases as case_q
from mailbot.store import disclosures as disclosures_q
from mailbot.store import ignored as ignored_q
from mailbot.triage import letters

__all__ = ["LABELS", "Digest", "build", "compute", "last_scheduled", "queue", "render",
           "scheduled_run", "zone_of"]

DEFAULT_TARGET = 90


def render(
    templates: Templates, digests: Sequence[Digest], language: str, zone: str,
    target: int = DEFAULT_TARGET,
) -> tuple[str, str]:
    """The text and HTML parts. Everything from mail is escaped in HTML (autoescape)."""
    tz = ZoneInfo(zone)
    w = Words.of(language)
    end = digests[0].end.astimezone(tz) if digests else None
    context = {
        "panels": [panel(d, w, tz, target) for d in digests], "t": LABELS[w.language],
        "language": w.language, "n": w.number,
        "period": (f"{w.long_day(end - WEEK)} – {w.long_day(end)}" if end else ""),
        "ignored": [_ignored(d.ignored, w) for d in digests],
    }
    return (templates.render_file("digest.txt", **context),
            templates.render_file("digest.html", **context))


async def build(store: Store, config: Config, end: datetime) -> list[Digest]:
    digests = []
    for inbox in config.inboxes:
        async with store.read() as db:
            cases = await case_q.for_digest(db, inbox.name)
            publications = await disclosures_q.upcoming(
                db, inbox.name, f"{end:%Y-%m-%d}", f"{end + WEEK:%Y-%m-%d}")
        every = config.policies[inbox.policy].update_every
        cadence = None
        if every is not None:  # business days count as calendar days here: a digest, not a clock
            per_day = {Unit.MINUTES: 1 / 1440, Unit.HOURS: 1 / 24, Unit.WEEKS: 7.0}
            cadence = timedelta(days=every.amount * per_day.get(every.unit, 1.0))
        policy = config.policies[inbox.policy]
        terms = Terms(policy.first_response, policy.resolution)
        # Pure CPU over up to 100,000 rows: off the event loop, which keeps taking mail.
        found = await asyncio.to_thread(compute, inbox.name, cases, end, cadence, terms)
        async with store.read() as db:
            found.ignored = await ignored_q.by_reason(db, iso(end - WEEK), iso(end), inbox.name)
        # Publications proposed or agreed in the same days (issue 17), beside the deadlines.
        found.due_soon += [
            Line(p["ref"], p["subject"], p["state"], p["severity"], "publication",
                 datetime.fromisoformat(f"{p['date']}T12:00:00+00:00"),
                 promise="publication " + ("agreed" if p["agreed"] else "proposed, no consent yet"))
            for p in publications]
        found.due_soon.sort(key=lambda x: (x.when or end, x.ref))
        digests.append(found)
    return digests


# What a rule swallowed is seen: the week's mail that opened no case, by kind of reason.
_IGNORED = {"en": "Mail that opened no case: {n} ({reasons}); `mailbot inbound --ignored` "
                  "lists each",
            "nl": "Mail die geen zaak opende: {n} ({reasons}); `mailbot inbound --ignored` "
                  "toont ze"}


def _ignored(counts: Counter[str], w: Words) -> str:
    if not counts:
        return ""
    reasons = ", ".join(f"{reason} {w.number(n)}" for reason, n in
                        sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    return _IGNORED.get(w.language, _IGNORED["en"]).format(n=w.number(counts.total()),
                                                           reasons=reasons)


async def queue(
    store: Store, config: Config, templates: Templates, end: datetime, purpose: str
) -> bool:
    """Queue the digest once per purpose (the period, for the scheduled one)."""
    if not config.digest.to:
        return False
    digests = await build(store, config, end)
    text, html = await asyncio.to_thread(render, templates, digests, config.digest.language,
                                         zone_of(config), config.digest.target)
    inbox = config.inboxes[0]
    mail = Outgoing(
        sender=inbox.address, sender_name="mailbot", to=list(config.digest.to),
        subject=f"{Words.of(config.digest.language)['title']} {end:%Y-%m-%d}", text=text,
        html=html, message_id=make_message_id(inbox.domain, "digest"), date=end,
        headers={"Auto-Submitted": "auto-generated", "X-Loop": inbox.address,
                 "X-Mailbot-Kind": "digest"},
    )
    async with store.write() as db:
        queued = await letters.queue(db, purpose=purpose, case_id=None, kind="digest",
                                     mail=mail, envelope_from=inbox.address, at=end)
    return queued.outbox_id is not None


_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def last_scheduled(now: datetime, schedule: str, zone: str) -> datetime:
    """The latest moment of `schedule` ("mon 09:00", local time in `zone`) at or before now."""
    day, _, hhmm = schedule.partition(" ")
    hour, minute = (int(x) for x in hhmm.split(":"))
    tz = ZoneInfo(zone)
    local = now.astimezone(tz)
    back = (local.weekday() - _DAYS.index(day)) % 7
    moment = datetime.combine(local.date() - timedelta(days=back), time(hour, minute),
                              tzinfo=tz)
    return moment if moment <= local else moment - WEEK


def zone_of(config: Config) -> str:
    return config.policies[config.inboxes[0].policy].timezone


async def scheduled_run(store: Store, config: Config, templates: Templates,
                        now: datetime) -> bool:
    """Queue the digest of the latest period if it was not queued yet (restart-safe)."""
    end = last_scheduled(now, config.digest.schedule, zone_of(config))
    async with store.read() as db:
        if not await case_q.any_before(db, iso(end)):
            return False  # nothing existed yet then: a new installation owes no digest
    return await queue(store, config, templates, end, f"digest:{end.isoformat()}")
