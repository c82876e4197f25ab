"""Claims: several instances (each its own Store) on one database never take the same
inbound or outbox row; a dead instance's claims come back; mail that answers mail another
instance holds waits for it. Each test runs on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta

import pytest

from mailbot.clock import iso
from mailbot.config import Config
from mailbot.intake.durable import Delivery, accept_many
from mailbot.outbox import Sender
from mailbot.store import Store
from mailbot.store import claims as claims_q
from mailbot.store import inbound as inbound_q
from mailbot.store import outbox as outbox_q
from mailbot.triage.pipeline import Pipeline
from mailbot.triage.worker import Worker
from tests.support import FRIDAY_EVENING, MovingClock, Sink, report

NOW = FRIDAY_EVENING


async def store_reports(store: Store, n: int, follow_ups: bool = False) -> None:
    """n reports from n reporters, each followed (when asked) by its reporter's reply."""
    deliveries = []
    for i in range(n):
        deliveries.append(Delivery(
            raw=report(sender=f"r{i}@example.net", message_id=f"<r{i}@example.net>",
                       subject=f"bug {i}").as_bytes(),
            source="smtp", inbox="security", rcpt_to=["security@example.org"]))
        if follow_ups:
            deliveries.append(Delivery(
                raw=report(sender=f"r{i}@example.net", message_id=f"<f{i}@example.net>",
                           subject=f"Re: bug {i}", body="One more detail.\n",
                           In_Reply_To=f"<r{i}@example.net>").as_bytes(),
                source="smtp", inbox="security", rcpt_to=["security@example.org"]))
    await accept_many(store, deliveries, MovingClock(NOW))


async def claim_all(store: Store, table: str) -> list[int]:
    """Claim batches of rows until none is left for this instance; every id claimed."""
    got: list[int] = []
    last = 0
    while True:
        async with store.write() as db:
            if table == "inbound":
                ids = await claims_q.claim_inbound(db, store.instance, iso(NOW),
                                                   iso(NOW + timedelta(minutes=2)), after=last,
                                                   limit=7)
            else:
                ids = await claims_q.claim_outbox(db, store.instance, iso(NOW),
                                                  iso(NOW + timedelta(minutes=2)), 7)
        if table == "outbox":  # sent: the next claim takes other rows
            async with store.write() as db:
                for i in ids:
                    await outbox_q.mark_sent(db, i, iso(NOW))
        if not ids:
            return got
        got += ids
        last = max(ids)
        await asyncio.sleep(0)  # let the other instance in between batches


async def test_two_instances_never_claim_the_same_inbound_row(two: tuple[Store, Store]) -> None:
    """Two instances claiming pending mail at once get disjoint rows that together are all
    of them (an instance trying to take mail the other holds gets other mail)."""
    a, b = two
    await store_reports(a, 120)
    got_a, got_b = await asyncio.gather(claim_all(a, "inbound"), claim_all(b, "inbound"))
    assert not set(got_a) & set(got_b)
    assert sorted(got_a + got_b) == list(range(1, 121))
    if a.dialect == "postgresql":  # (SQLite's busy handler lets one writer run ahead)
        assert got_a and got_b


async def test_two_instances_never_claim_the_same_outbox_row(two: tuple[Store, Store]) -> None:
    """Two senders claiming due mail at once never both hold one row."""
    a, b = two
    async with a.write() as db:
        for i in range(60):
            await outbox_q.enqueue(db, purpose=f"p{i}", case_id=None, created_at=iso(NOW),
                                   mail_from="security@example.org", rcpt_to=["x@example.net"],
                                   message_id=f"<o{i}@example.org>", raw=b"Subject: x\r\n\r\nx")
    got_a, got_b = await asyncio.gather(claim_all(a, "outbox"), claim_all(b, "outbox"))
    assert not set(got_a) & set(got_b)
    assert sorted(got_a + got_b) == list(range(1, 61))


async def test_a_lapsed_claim_goes_to_another_instance(two: tuple[Store, Store]) -> None:
    """Rows claimed by an instance that stopped (its claim not renewed) stay its own until the
    claim lapses, then another instance takes them."""
    a, b = two
    await store_reports(a, 3)
    until = NOW + timedelta(minutes=2)
    async with a.write() as db:
        assert await claims_q.claim_inbound(db, a.instance, iso(NOW), iso(until),
                                            limit=1) == [1]
    async with b.write() as db:
        assert await claims_q.claim_inbound(db, b.instance, iso(NOW + timedelta(minutes=1)),
                                            iso(until), limit=5) == [2, 3]
    async with b.write() as db:
        assert await claims_q.claim_inbound(db, b.instance, iso(until), iso(until),
                                            limit=5) == [1, 2, 3]


async def test_finishing_a_row_ends_its_claim(two: tuple[Store, Store]) -> None:
    """The outcome of a mail clears its claim: nothing is left held by the instance."""
    a, _ = two
    await store_reports(a, 1)
    async with a.write() as db:
        await claims_q.claim_inbound(db, a.instance, iso(NOW), iso(NOW + timedelta(minutes=2)))
        assert await inbound_q.finish(db, 1, status="done", at=iso(NOW))
    async with a.read() as db:
        rows = await db.execute_fetchall("SELECT claimed_by, claimed_until FROM inbound")
    assert [tuple(r) for r in rows] == [(None, None)]


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
async def test_two_workers_process_each_mail_once(
    two: tuple[Store, Store], shared_config: Callable[..., Config]
) -> None:
    """Two instances' workers draining the same queue at once process every mail exactly
    once: one case per report, each follow-up on its report's case (PostgreSQL: two
    SQLite instances are two processes of one host, which a test in one process is not)."""
    a, b = two
    config = shared_config()
    await store_reports(a, 40, follow_ups=True)
    clock = MovingClock(NOW)
    wa = Worker(Pipeline.create(config, a, clock), a, order_wait=30)
    wb = Worker(Pipeline.create(config, b, clock), b, order_wait=30)
    outcomes = await asyncio.gather(wa.drain(), wb.drain())
    ids = [o.inbound_id for done in outcomes for o in done]
    assert sorted(ids) == list(range(1, 81))
    async with a.read() as db:
        cases = await db.execute_fetchall("SELECT count(*) FROM cases")
        stray = await db.execute_fetchall(
            "SELECT count(*) FROM inbound f JOIN inbound r ON r.message_id ="
            " replace(f.message_id, '<f', '<r') WHERE f.message_id LIKE '<f%'"
            " AND coalesce(f.case_id, -1) <> coalesce(r.case_id, -2)")
        left = await db.execute_fetchall("SELECT count(*) FROM inbound WHERE status <> 'done'")
    assert [tuple(r) for r in cases] == [(40,)]
    assert [tuple(r) for r in stray] == [(0,)]
    assert [tuple(r) for r in left] == [(0,)]


async def test_a_follow_up_waits_for_its_report_held_by_another_instance(
    database: str, shared_config: Callable[..., Config], other: str
) -> None:
    """While another instance holds a report, a follow-up to it is not processed (it
    would open a second case): it goes back to the queue, and lands on the report's case
    once the report is done."""
    config = shared_config()
    store = await Store.open(database)
    try:
        await store_reports(store, 1, follow_ups=True)
        clock = MovingClock(NOW)
        async with store.write() as db:  # the other instance holds the report (mid-batch)
            assert await claims_q.claim_inbound(db, other, iso(clock()),
                                                iso(clock() + timedelta(minutes=2)),
                                                limit=1) == [1]
        worker = Worker(Pipeline.create(config, store, clock), store, order_wait=0.3)
        assert await worker.drain() == []
        async with store.read() as db:
            rows = await db.execute_fetchall(
                "SELECT id, status, claimed_by, case_id FROM inbound ORDER BY id")
        assert [tuple(r) for r in rows] == [(1, "pending", other, None),
                                            (2, "pending", None, None)]
        async with store.statement() as db:  # the other instance stops; its claim is given up
            await claims_q.release(db, "inbound", other, [1])
        assert [o.inbound_id for o in await worker.drain()] == [1, 2]
        async with store.read() as db:
            rows = await db.execute_fetchall("SELECT status, case_id FROM inbound ORDER BY id")
        assert [tuple(r) for r in rows] == [("done", 1), ("done", 1)]
    finally:
        await store.close()


async def test_an_unrelated_mail_does_not_wait(
    database: str, shared_config: Callable[..., Config], other: str
) -> None:
    """A mail naming nothing another instance holds is processed at once, beside it."""
    config = shared_config()
    store = await Store.open(database)
    try:
        await store_reports(store, 2)
        clock = MovingClock(NOW)
        async with store.write() as db:
            await claims_q.claim_inbound(db, other, iso(clock()),
                                         iso(clock() + timedelta(minutes=2)), limit=1)
        worker = Worker(Pipeline.create(config, store, clock), store, order_wait=60)
        done = await asyncio.wait_for(worker.drain(), 30)
        assert [(o.inbound_id, o.opened) for o in done] == [(2, True)]
    finally:
        await store.close()


async def test_claims_of_a_crashed_instance_come_back_at_once(
    database: str, shared_config: Callable[..., Config]
) -> None:
    """A restarted or surviving instance takes the rows a crashed instance had claimed at
    once, without waiting for its claims to lapse: on SQLite its process is gone, on
    PostgreSQL no session carries its name any more."""
    config = shared_config()
    dead = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True, text=True, check=True)
    store = await Store.open(database)
    try:
        await store_reports(store, 2)
        holder = f"{store.instance.split(':')[0]}:{dead.stdout.strip()}:0"
        async with store.write() as db:
            await claims_q.claim_inbound(db, holder, iso(NOW), iso(NOW + timedelta(days=1)),
                                         limit=5)
        done = await Worker(Pipeline.create(config, store, MovingClock(NOW)), store).drain()
        assert [o.inbound_id for o in done] == [1, 2]
    finally:
        await store.close()


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
async def test_two_senders_send_each_mail_once(
    two: tuple[Store, Store], sink: Sink, shared_config: Callable[..., Config]
) -> None:
    """Two instances' senders working the same outbox at once hand each mail to the relay
    once (PostgreSQL: on SQLite one daemon sends)."""
    a, b = two
    config = shared_config(sink.port)
    async with a.write() as db:
        for i in range(60):
            await outbox_q.enqueue(
                db, purpose=f"p{i}", case_id=None, created_at=iso(NOW),
                mail_from="security@example.org", rcpt_to=["x@example.net"],
                message_id=f"<o{i}@example.org>",
                raw=f"Message-ID: <o{i}@example.org>\r\nSubject: x\r\n\r\nx\r\n".encode())
    clock = MovingClock(NOW)
    sa, sb = Sender(a, config.smtp_out, clock), Sender(b, config.smtp_out, clock)

    async def drain(sender: Sender) -> None:
        while await sender.send_due():
            pass

    await asyncio.gather(drain(sa), drain(sb))
    ids = [m.group(0) for r in sink.received if (m := re.search(rb"<o\d+@example.org>", r.raw))]
    assert sorted(ids) == sorted(f"<o{i}@example.org>".encode() for i in range(60))
    async with a.read() as db:
        rows = await db.execute_fetchall(
            "SELECT count(*) FROM outbox WHERE status = 'sent' AND claimed_by IS NULL")
    assert [tuple(r) for r in rows] == [(60,)]


async def test_mail_another_sender_holds_is_due_when_its_claim_lapses(
    two: tuple[Store, Store]
) -> None:
    """A sender sleeps until another instance's claim on due mail lapses, instead of looking
    again and again for mail it cannot take."""
    a, b = two
    async with a.write() as db:
        await outbox_q.enqueue(db, purpose="p", case_id=None, created_at=iso(NOW),
                               mail_from="security@example.org", rcpt_to=["x@example.net"],
                               message_id="<o@example.org>", raw=b"x")
        await claims_q.claim_outbox(db, a.instance, iso(NOW), iso(NOW + timedelta(minutes=2)),
                                    10)
    async with b.read() as db:
        assert await outbox_q.next_attempt(db, b.instance) == iso(NOW + timedelta(minutes=2))
        assert await outbox_q.next_attempt(db, a.instance) == iso(NOW)
