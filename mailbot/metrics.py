"""`GET /metrics`: the daemon's numbers in the Prometheus text format (prometheus_client).

Most numbers are read from the database at scrape time (store/stats.py), through a
connection of their own (`Store.side_read`): they survive restarts, agree with `mailbot
status` and `queue`, and a scrape never waits for the worker's transaction.
What the database does not keep (duplicates refused at intake, SMTP connections) is
counted in this process by `Live` and starts from zero at each start, as Prometheus
counters may.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from mailbot.clock import Clock
from mailbot.intake.durable import Accepted, Delivery, GroupCommit
from mailbot.store import Store
from mailbot.store.stats import Snapshot, snapshot

# Seconds from a report's receipt to its acknowledgement leaving (the relay's 250).
ACK_BUCKETS = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 86400.0)
GPG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


@dataclass
class Live:
    """Counted in this process: what the database does not keep."""

    registry: CollectorRegistry = field(default_factory=lambda: CollectorRegistry(
        auto_describe=True))

    def __post_init__(self) -> None:
        self.connections = Counter("mailbot_smtp_connections", "SMTP/LMTP connections accepted",
                                   registry=self.registry)
        self.received = Counter("mailbot_mails_received", "mails taken at intake, by source",
                                ["source"], registry=self.registry)
        self.duplicated = Counter("mailbot_mails_duplicated",
                                  "mails taken at intake that were stored before, by source",
                                  ["source"], registry=self.registry)
        self.gpg = Histogram("mailbot_gpg_seconds", "gpg runs by operation (decrypt, verify, "
                             "encrypt), from when a process slot was free", ["operation"],
                             buckets=GPG_BUCKETS, registry=self.registry)

    def gpg_run(self, operation: str, seconds: float) -> None:
        """`Gpg.observe`: called from the parse and sealing threads (the client locks)."""
        self.gpg.labels(operation).observe(seconds)


class _Stored(Collector):
    """The snapshot as metric families, for one scrape."""

    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap

    def collect(self) -> Iterable[Metric]:
        s = self.snap
        yield _family(CounterMetricFamily, "mailbot_mails_stored",
                      "mails stored (raw, before processing), by source", "source", s.stored)
        yield _family(GaugeMetricFamily, "mailbot_mails_quarantined",
                      "mails in quarantine now, by source", "source", s.quarantined)
        yield _family(CounterMetricFamily, "mailbot_cases_opened", "cases opened, by inbox",
                      "inbox", s.opened)
        yield _family(GaugeMetricFamily, "mailbot_cases_closed", "cases closed now, by inbox",
                      "inbox", s.closed)
        outbox = GaugeMetricFamily("mailbot_outbox", "outgoing mails, by status",
                                   labels=["status"])
        for status in ("pending", "failed"):
            outbox.add_metric([status], s.outbox.get(status, 0))
        yield outbox
        yield GaugeMetricFamily("mailbot_outbox_oldest_pending_seconds",
                                "age of the oldest pending outgoing mail (0: none waits)",
                                value=s.oldest_pending_seconds)
        yield _deadlines("mailbot_deadlines_due_24h",
                         "open cases whose deadline falls in the next 24 hours", s.due_24h)
        yield _deadlines("mailbot_deadlines_breached", "open cases past a deadline",
                         s.breached)
        yield _histogram(s.ack_seconds)
        state = GaugeMetricFamily("mailbot_imap_watcher_state",
                                  "1 for the state each IMAP folder's watcher is in",
                                  labels=["mailbox", "inbox", "state"])
        failures = GaugeMetricFamily("mailbot_imap_watcher_failures",
                                     "failed attempts in a row, per IMAP folder",
                                     labels=["mailbox", "inbox"])
        for mailbox, inbox, st, n in s.watchers:
            state.add_metric([mailbox, inbox, st], 1)
            failures.add_metric([mailbox, inbox], n)
        yield state
        yield failures


def _family(kind: type[CounterMetricFamily] | type[GaugeMetricFamily], name: str, doc: str,
            label: str, values: dict[str, int]) -> Metric:
    family = kind(name, doc, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([key], value)
    return family


def _deadlines(name: str, doc: str, values: dict[tuple[str, str], int]) -> Metric:
    family = GaugeMetricFamily(name, doc, labels=["inbox", "deadline"])
    for (inbox, deadline), n in sorted(values.items()):
        family.add_metric([inbox, deadline], n)
    return family


def _histogram(seconds: list[float]) -> Metric:
    buckets = [(str(b), sum(1 for s in seconds if s <= b)) for b in ACK_BUCKETS]
    buckets.append(("+Inf", len(seconds)))
    family = HistogramMetricFamily("mailbot_ack_latency_seconds",
                                   "seconds from a report's receipt to its acknowledgement"
                                   " leaving")
    family.add_metric([], buckets, sum_value=sum(seconds))
    return family


def render(snap: Snapshot, live: Live) -> bytes:
    """The page: the snapshot's families, then this process's counters."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Stored(snap))
    return generate_latest(registry) + generate_latest(live.registry)


async def page(store: Store, live: Live, now: datetime) -> bytes:
    """The whole /metrics page, read on a connection of its own (`Store.side_read`)."""
    async with store.side_read() as db:
        snap = await snapshot(db, now)
    return render(snap, live)


class CountedCommit(GroupCommit):
    """Intake's group commit, counting each mail taken and each one stored before."""

    def __init__(self, store: Store, clock: Clock, live: Live) -> None:
        super().__init__(store, clock)
        self.live = live

    async def accept(self, delivery: Delivery) -> Accepted:
        accepted = await super().accept(delivery)
        self.live.received.labels(delivery.source).inc()
        if not accepted.new:
            self.live.duplicated.labels(delivery.source).inc()
        return accepted
