"""No single item stops a loop: a real `mailbot run` in which one outgoing row, one inbound
mail, every scheduled job or one IMAP folder raises an unexpected exception. The daemon
lives, the item is marked (retried, failed, quarantined, backing off) and logged with its
id, and the next item is handled.

A bug cannot be produced on demand, so the child process is the real CLI with one function
patched to raise for the poisoned item (`poisoned_main`); everything else is real: sockets,
SQLite, the relay, Dovecot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.dovecot import Dovecot
from tests.imap_support import imap_table, password_file, state, until, write_imap_config
from tests.reliability.harness import Daemon
from tests.support import Sink, direct, free_port, report, send, table

POISON = "poison@example.net"


def _poison(loop: str, arg: str) -> None:
    """Patch the function of `loop` to raise for the poisoned item (in the child)."""
    if loop == "sender":
        import aiosmtplib

        real_sendmail = aiosmtplib.SMTP.sendmail

        async def sendmail(self: Any, sender: str, recipients: Any, *a: Any, **k: Any) -> Any:
            if POISON in recipients:
                raise RuntimeError("poisoned row")
            return await real_sendmail(self, sender, recipients, *a, **k)

        aiosmtplib.SMTP.sendmail = sendmail  # type: ignore[method-assign]
    elif loop == "worker":
        from mailbot.store import Db
        from mailbot.store.inbound import InboundRow
        from mailbot.triage.pipeline import Decision, Outcome, Pipeline, Prepared

        real_apply, real_quarantine = Pipeline._apply, Pipeline._quarantine

        async def apply(self: Pipeline, db: Db, row: InboundRow, prepared: Prepared,
                        decision: Decision) -> Outcome:
            if POISON.encode() in row.raw:
                raise RuntimeError("poisoned mail")
            return await real_apply(self, db, row, prepared, decision)

        async def quarantine(self: Pipeline, row: InboundRow, reason: str) -> Outcome:
            if POISON.encode() in row.raw:  # the pipeline's own guard fails too
                raise RuntimeError("poisoned quarantine")
            return await real_quarantine(self, row, reason)

        Pipeline._apply = apply  # type: ignore[method-assign]
        Pipeline._quarantine = quarantine  # type: ignore[method-assign]
    elif loop == "jobs":
        from mailbot.jobs import digest
        from mailbot.jobs.escalation import Escalator

        async def sweep(self: Escalator) -> int:
            raise RuntimeError("poisoned sweep")

        async def scheduled_run(*a: Any, **k: Any) -> bool:
            raise RuntimeError("poisoned digest")

        Escalator.sweep = sweep  # type: ignore[method-assign]
        digest.scheduled_run = scheduled_run
    elif loop == "imap":
        from mailbot.intake.imap import Session

        real_fetch = Session.fetch

        def fetch(self: Session, uids: Any) -> Any:
            if self.cfg.username == arg:
                raise RuntimeError("poisoned folder")
            return real_fetch(self, uids)

        Session.fetch = fetch  # type: ignore[method-assign]
    elif loop == "imap-message":
        from mailbot.intake.imap import Session

        real_fetch = Session.fetch

        def fetch_message(self: Session, uids: Any) -> Any:
            found = real_fetch(self, uids)
            if any(POISON.encode() in raw for _, raw in found):
                raise RuntimeError("poisoned message")
            return found

        Session.fetch = fetch_message  # type: ignore[method-assign]
    else:
        raise ValueError(loop)


def poisoned_main() -> int:
    """`python -c ... LOOP[:ARG] run --config F`: the real CLI with LOOP poisoned."""
    from mailbot import cli

    loop, _, arg = sys.argv[1].partition(":")
    _poison(loop, arg)
    return cli.main(sys.argv[2:])


class Poisoned(Daemon):
    """The harness's daemon, started through `poisoned_main`."""

    def __init__(self, loop: str, config: Path, port: int, log: Path) -> None:
        super().__init__(config, port, log)
        self.loop = loop

    async def start(self) -> None:
        with open(self.log, "ab") as out:  # noqa: ASYNC230 (opened once, before the child)
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c",
                "import sys; from tests.reliability.test_poison import poisoned_main;"
                " sys.exit(poisoned_main())",
                self.loop, "run", "--config", str(self.config),
                stdout=asyncio.subprocess.DEVNULL, stderr=out)
        for _ in range(400):
            if self.proc.returncode is not None:
                break
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"the poisoned daemon did not start:\n{self.log_tail()}")

    def lines(self, *words: str) -> list[str]:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return [ln for ln in text.splitlines() if all(w in ln for w in words)]


@contextlib.asynccontextmanager
async def poisoned(loop: str, config: Path, tmp_path: Path) -> AsyncIterator[Poisoned]:
    port = free_port()
    text = await asyncio.to_thread(config.read_text)
    await asyncio.to_thread(config.write_text, text.replace("port = 0", f"port = {port}"))
    d = Poisoned(loop, config, port, tmp_path / "daemon.log")
    await d.start()
    try:
        yield d
        assert d.proc is not None and d.proc.returncode is None, "the daemon died"
        assert await d.stop() == 0
    except BaseException:
        print(d.log_tail(60))
        raise
    finally:
        if d.proc is not None and d.proc.returncode is None:
            d.proc.kill()
            await d.proc.wait()


async def wait_rows(db: Path, sql: str, expected: list[tuple[Any, ...]],
                    timeout: float = 30) -> None:
    await until(lambda: table(db, sql) == expected, timeout=timeout, every=0.1)


async def test_poisoned_outgoing_row(sink: Sink, write_config: Callable[..., Path],
                                     tmp_path: Path) -> None:
    """An acknowledgement whose sending raises is retried with backoff, logged once per try
    with its id, and failed for good (staff told) after the last try; the next report's
    acknowledgement goes out meanwhile."""
    db = tmp_path / "mailbot.db"
    async with poisoned("sender", write_config(sink.port), tmp_path) as d:
        await send(d.port, report(sender=POISON, message_id="<p1@example.net>"))
        await wait_rows(db, "SELECT status, attempts > 0, last_error FROM outbox WHERE id = 1",
                        [("pending", 1, "internal error: RuntimeError: poisoned row")])
        await send(d.port, report(sender="next@example.net", message_id="<n1@example.net>"))
        await sink.wait_for(1, to="next@example.net")
        logged = await until(lambda: len(d.lines("outbox 1 ", "unexpected error")))
        assert logged <= table(db, "SELECT attempts FROM outbox WHERE id = 1")[0][0]
        # The last try: it fails for good, and staff are told.
        with direct(db) as conn:
            conn.execute("UPDATE outbox SET attempts = 4, next_attempt_at = '2000-01-01'"
                         " WHERE id = 1")
        await wait_rows(db, "SELECT status FROM outbox WHERE id = 1", [("failed",)])
        for staff in ("alice@example.org", "bob@example.org"):
            async with asyncio.timeout(20):
                while not [m for m in sink.to(staff)
                           if "Undeliverable" in str(m.msg["Subject"])]:
                    await asyncio.sleep(0.1)
    assert sink.to(POISON) == []


async def test_poisoned_inbound_mail(sink: Sink, write_config: Callable[..., Path],
                                     tmp_path: Path) -> None:
    """A mail whose processing raises, even in the pipeline's own quarantine, is quarantined
    by the worker with its reason and logged with its id; the next mail opens its case."""
    db = tmp_path / "mailbot.db"
    async with poisoned("worker", write_config(sink.port), tmp_path) as d:
        await send(d.port, report(sender=POISON, message_id="<p2@example.net>"))
        await send(d.port, report(sender="next@example.net", message_id="<n2@example.net>"))
        await wait_rows(db, "SELECT message_id, status, reason FROM inbound ORDER BY id", [
            ("<p2@example.net>", "quarantined", "internal error: RuntimeError: poisoned"
                                                " quarantine"),
            ("<n2@example.net>", "done", None)])
        await sink.wait_for(1, to="next@example.net")
        assert len(d.lines("inbound 1:", "quarantined")) == 1
    assert table(db, "SELECT reporter FROM cases") == [("next@example.net",)]


async def test_poisoned_jobs(sink: Sink, write_config: Callable[..., Path],
                             tmp_path: Path) -> None:
    """The escalation sweep and the digest raise at every run: each run is logged by name,
    the daemon keeps listening and mail is handled."""
    db = tmp_path / "mailbot.db"
    async with poisoned("jobs", write_config(sink.port), tmp_path) as d:
        await send(d.port, report(message_id="<j1@example.net>"))
        await sink.wait_for(1)
        assert table(db, "SELECT status FROM inbound") == [("done",)]
    assert len(d.lines("escalation sweep failed")) == 1
    assert len(d.lines("digest failed")) == 1
    assert "RuntimeError: poisoned sweep" in d.log.read_text()


async def test_poisoned_imap_folder(dovecot: Dovecot, sink: Sink, tmp_path: Path) -> None:
    """A folder whose watcher raises backs off with the error recorded for `mailbot status`;
    the other folder's mail and the listener's are taken and handled."""
    sick, healthy = dovecot.add_user(), dovecot.add_user()
    pw = password_file(tmp_path)
    config = write_imap_config(tmp_path, sink.port, imap_table(dovecot, sick, pw),
                               imap_table(dovecot, healthy, pw))
    db = tmp_path / "mailbot.db"
    await asyncio.to_thread(dovecot.append, sick, [report(
        to="security@example.org", sender="sick@example.net", message_id="<x1@example.net>")])
    await asyncio.to_thread(dovecot.append, healthy, [report(
        to="support@example.org", sender="imap@example.net", message_id="<i1@example.net>")])
    async with poisoned(f"imap:{sick}", config, tmp_path) as d:
        await send(d.port, report(message_id="<s1@example.net>"))
        await wait_rows(db, "SELECT message_id, status FROM inbound ORDER BY message_id",
                        [("<i1@example.net>", "done"), ("<s1@example.net>", "done")])
        await until(lambda: (s := state(db, sick)) and s[0] == "backing off"
                    and "poisoned folder" in (s[2] or ""), timeout=20)
        assert state(db, healthy)[0] == "idle"  # type: ignore[index]
        assert len(d.lines("unexpected error")) >= 1


async def test_poisoned_imap_message(dovecot: Dovecot, sink: Sink, tmp_path: Path) -> None:
    """A message that cannot be taken, session after session, is set aside in quarantine
    with its UID and reason and left unmarked on the server; the messages around it are
    taken, marked and handled."""
    user = dovecot.add_user()
    config = write_imap_config(tmp_path, sink.port,
                               imap_table(dovecot, user, password_file(tmp_path)))
    db = tmp_path / "mailbot.db"
    await asyncio.to_thread(dovecot.append, user, [
        report(sender=s, message_id=f"<{n}@example.net>", subject=f"Finding {n}")
        for n, s in (("m1", "a@example.net"), ("m2", POISON), ("m3", "b@example.net"))])
    async with poisoned("imap-message", config, tmp_path) as d:
        await wait_rows(db, "SELECT message_id, status FROM inbound ORDER BY id", [
            ("<m1@example.net>", "done"), (None, "quarantined"), ("<m3@example.net>", "done")])
    ((reason,),) = table(db, "SELECT reason FROM inbound WHERE status = 'quarantined'")
    assert "UID 2" in reason and "poisoned message" in reason
    assert len(d.lines("UID 2 failed", "quarantined as inbound")) == 1
    flags = await asyncio.to_thread(dovecot.flags, user)
    assert [b"\\Seen" in f for _, f in sorted(flags.items())] == [True, False, True]


async def test_a_loop_that_crashes_is_started_again(caplog: pytest.LogCaptureFixture) -> None:
    """Should an exception escape a loop's own guards, the daemon logs it and starts that
    loop again after a backoff, instead of ending the TaskGroup and itself."""
    from mailbot import daemon

    runs: list[int] = []
    stop = asyncio.Event()

    async def loop(stop_: asyncio.Event) -> None:
        runs.append(len(runs))
        if len(runs) == 1:
            raise RuntimeError("a bug past every guard")
        stop_.set()

    with caplog.at_level(logging.ERROR, logger="mailbot.daemon"):
        await asyncio.wait_for(daemon._supervised("worker", loop, stop), 10)
    assert runs == [0, 1]
    assert [r.getMessage() for r in caplog.records] == [
        "worker: unexpected error; restarting it in 1s"]


async def test_a_job_that_keeps_failing_logs_its_traceback_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A scheduled job that raises at every run is retried at each run; its traceback is
    logged the first time, a line each time after, and its recovery is said."""
    from mailbot.jobs.schedule import _guarded

    failing: dict[str, str] = {}
    woken: list[bool] = []
    healthy = False

    async def job() -> bool:
        if not healthy:
            raise RuntimeError("poisoned sweep")
        return True

    with caplog.at_level(logging.INFO, logger="mailbot.jobs.schedule"):
        for _ in range(3):
            await _guarded("escalation sweep", job, lambda: woken.append(True), failing)
        healthy = True
        await _guarded("escalation sweep", job, lambda: woken.append(True), failing)
    assert [(r.getMessage(), r.exc_info is not None) for r in caplog.records] == [
        ("escalation sweep failed; next run will retry", True),
        ("escalation sweep failed again: RuntimeError: poisoned sweep; next run will retry",
         False),
        ("escalation sweep failed again: RuntimeError: poisoned sweep; next run will retry",
         False),
        ("escalation sweep queued", False),
        ("escalation sweep ran again without error", False)]
    assert woken == [True]
