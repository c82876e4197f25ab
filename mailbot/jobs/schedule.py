"""APScheduler 3 inside the daemon: the cron jobs. The database is the schedule's memory.

Job defaults are explicit (APScheduler's misfire_grace_time is 1 s by default): one run at a
time, missed runs coalesced into one; a job that must not be lost while the daemon was down
also runs once at start (its work is idempotent per period).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from mailbot.clock import Clock
from mailbot.config import Config
from mailbot.errors import TransientError
from mailbot.jobs import digest, disclosure, retention
from mailbot.jobs.escalation import Escalator
from mailbot.jobs.summary import Summaries
from mailbot.mail.render import Templates
from mailbot.store import Store
from mailbot.triage.crypto import Crypto

log = logging.getLogger(__name__)

JOB_DEFAULTS = {"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600}


async def start(
    config: Config, store: Store, templates: Templates, clock: Clock,
    wake_sender: Callable[[], None], secret: bytes,
) -> AsyncIOScheduler:
    """Start the scheduler in the running loop, after catching up what fell due while down."""
    escalator = Escalator(config, store, templates, secret, clock)
    failing: dict[str, str] = {}  # job -> its latest error, to log a traceback once

    async def weekly_digest() -> None:
        await _guarded("digest", lambda: digest.scheduled_run(store, config, templates, clock()),
                       wake_sender, failing)

    async def sweep() -> None:
        async def run() -> bool:
            return await escalator.sweep() > 0

        await _guarded("escalation sweep", run, wake_sender, failing)
        await _guarded("disclosure reminders", lambda: disclosure.remind(
            config, store, templates, secret, clock), wake_sender, failing)

    summaries = Summaries(config, store, templates, clock, Crypto.create(config))

    async def summary() -> None:
        async def run() -> bool:
            return await summaries.run() > 0

        await _guarded("flood summary", run, wake_sender, failing)

    async def retain() -> None:
        async def run() -> bool:
            await retention.run(store, config, clock())
            return False  # it sends nothing

        await _guarded("retention", run, wake_sender, failing)

    await weekly_digest()
    await sweep()
    await summary()
    await retain()
    scheduler = AsyncIOScheduler(job_defaults=JOB_DEFAULTS, timezone=digest.zone_of(config))
    day, _, hhmm = config.digest.schedule.partition(" ")
    hour, minute = hhmm.split(":")
    scheduler.add_job(weekly_digest, CronTrigger(day_of_week=day, hour=int(hour),
                                                 minute=int(minute),
                                                 timezone=digest.zone_of(config)),
                      id="weekly-digest")
    scheduler.add_job(sweep, IntervalTrigger(seconds=config.escalation.interval.total_seconds()),
                      id="escalation-sweep")
    scheduler.add_job(summary, IntervalTrigger(seconds=summaries.tick.total_seconds()),
                      id="flood-summary")
    scheduler.add_job(retain, IntervalTrigger(hours=24), id="retention")
    scheduler.start()
    return scheduler


async def _guarded(name: str, job: Callable[[], Awaitable[bool]],
                   wake_sender: Callable[[], None], failing: dict[str, str]) -> None:
    """A job's failure is logged and retried at its next run, never the daemon's end. The
    traceback of a bug is logged once; while the same error repeats, a line per run."""
    try:
        if await job():
            log.info("%s queued", name)
            wake_sender()
    except TransientError as e:
        log.warning("%s: %s; next run will retry", name, e)
    except Exception as e:
        error = f"{type(e).__name__}: {e}"
        if failing.get(name) == error:
            log.error("%s failed again: %s; next run will retry", name, error)
        else:
            log.exception("%s failed; next run will retry", name)
        failing[name] = error
    else:
        if failing.pop(name, None) is not None:
            log.info("%s ran again without error", name)
