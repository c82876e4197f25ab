"""APScheduler 3 inside the daemon: the cron jobs. The database is the schedule's memory.

Job defaults are explicit (APScheduler's misfire_grace_time is 1 s by default): one run at a
time, missed runs coalesced into one; a job that must not be lost while the daemon was down
also runs once at start (its work is idempotent per period).

Several instances on one database: the jobs run on one of them at a time, the holder of
the `scheduler` lease (leasing.py), which every instance tries to take or renew every
RENEW_EVERY seconds; a dead leader is replaced within a minute, and the new leader catches
up as at start. Each job's write transactions are fenced by the lease (leasing.Fenced): one
that begins after another instance took it is rolled back, and on PostgreSQL the lease row
stays locked until it ends, so the two leaders' work never overlaps. The records each job
already keeps (escalations, outbox purposes, summaries, reminders) are read and written in
those transactions, so each escalation step and each digest still goes exactly once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from mailbot import leasing
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
LEADER = "scheduler"  # the lease's name


class Scheduler(AsyncIOScheduler):  # type: ignore[misc]
    """The daemon's scheduler, with the leader lease its jobs run under."""

    def __init__(self, lease: leasing.Lease, **options: Any) -> None:
        super().__init__(**options)
        self.lease = lease

    async def stop(self) -> None:
        """Stop the jobs and hand the lease on: another instance leads at once."""
        if self.running:
            self.shutdown(wait=False)
        await self.lease.release()


async def start(
    config: Config, store: Store, templates: Templates, clock: Clock,
    wake_sender: Callable[[], None], secret: bytes,
) -> Scheduler:
    """Start the scheduler in the running loop; when this instance leads, after catching
    up what fell due while no instance ran."""
    lease = leasing.Lease(store, LEADER, clock)
    log.info("scheduler: instance %s", lease.holder)
    jobs = lease.fenced()  # the store as the jobs see it: their writes check the lease
    escalator = Escalator(config, jobs, templates, secret, clock)
    failing: dict[str, str] = {}  # job -> its latest error, to log a traceback once

    async def weekly_digest() -> None:
        if lease.held:
            await _guarded("digest", lambda: digest.scheduled_run(jobs, config, templates,
                                                                  clock()),
                           wake_sender, failing)

    async def sweep() -> None:
        async def run() -> bool:
            return await escalator.sweep() > 0

        if lease.held:
            await _guarded("escalation sweep", run, wake_sender, failing)
            await _guarded("disclosure reminders", lambda: disclosure.remind(
                config, jobs, templates, secret, clock), wake_sender, failing)

    summaries = Summaries(config, jobs, templates, clock, Crypto.create(config))

    async def summary() -> None:
        async def run() -> bool:
            return await summaries.run() > 0

        if lease.held:
            await _guarded("flood summary", run, wake_sender, failing)

    async def retain() -> None:
        async def run() -> bool:
            await retention.run(jobs, config, clock())
            return False  # it sends nothing

        if lease.held:
            await _guarded("retention", run, wake_sender, failing)

    async def catch_up() -> None:
        await weekly_digest()
        await sweep()
        await summary()
        await retain()

    scheduler = Scheduler(lease, job_defaults=JOB_DEFAULTS, timezone=digest.zone_of(config))

    async def lead() -> None:
        """Take or renew the lease; on taking it, catch up (as a job of its own, so that
        renewing goes on meanwhile)."""
        was = lease.held
        if await lease.hold() and not was and scheduler.running:
            scheduler.add_job(catch_up, id="catch-up", replace_existing=True)

    await lead()
    await catch_up()
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
    scheduler.add_job(lead, IntervalTrigger(seconds=leasing.RENEW_EVERY), id="leader-lease")
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
