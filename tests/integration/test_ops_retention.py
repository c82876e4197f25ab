"""Data protection: the retention job with the clock moved past a closed case's retention,
and a reporter's export and erasure requests through the command line."""

from __future__ import annotations

import asyncio
import json
import mailbox
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from mailbot.config import load_config
from mailbot.jobs import report, report_view, retention
from mailbot.store.db import is_postgres
from tests.integration.test_staff_commands import ALICE, staff_reply
from tests.support import (
    FRIDAY_EVENING,
    Bot,
    MovingClock,
    Sink,
    assert_confidential,
    running_bot,
    table,
)
from tests.support import report as a_report

BODY = "The q parameter is reflected in the page without escaping."


def run(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mailbot", *args, "--config", str(config),
                           "--log-level", "error"], capture_output=True, text=True,
                          timeout=60, check=False)


@pytest.fixture
async def kept_bot(write_config: Callable[..., Path], sink: Sink) -> AsyncIterator[Bot]:
    """The daemon with `retention = "30 days"` on the security inbox."""
    path = write_config(sink.port)
    text = await asyncio.to_thread(path.read_text)
    await asyncio.to_thread(path.write_text, text.replace(
        'prefix = "SEC"', 'prefix = "SEC"\nretention = "30 days"'))
    async with running_bot(load_config(path), MovingClock(FRIDAY_EVENING)) as bot:
        yield bot


def file_bytes(db: Path) -> bytes:
    """The database as it lies on disk, with its WAL; on PostgreSQL, every value of every
    table (what a dump would hold: its files keep freed tuples until reused, see
    docs/operations.md)."""
    if not is_postgres(os.environ.get("MAILBOT_DATABASE", "")):
        wal = db.with_name(db.name + "-wal")
        return db.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
    out = []
    for (name,) in table(db, "SELECT table_name FROM information_schema.tables"
                             " WHERE table_schema = 'public'"):
        for row in table(db, f"SELECT * FROM {name}"):
            out += [v if isinstance(v, bytes) else str(v).encode() for v in row]
    return b"\n".join(out)


async def compliance(bot: Bot, now: datetime) -> dict[str, object]:
    store = await bot.open_store()
    found = await report.build(store, bot.config, date(2026, 12, 1), date(2027, 3, 1), None,
                               now)
    return report_view.to_json(found)


async def test_retention_erases_expired_closed_cases(kept_bot: Bot, sink: Sink) -> None:
    """A case closed more than 30 days ago loses its raw mail and texts, the file is
    compacted so the text is gone from the disk too, a case still open keeps everything,
    and the compliance report's numbers do not change."""
    bot = kept_bot
    await bot.send(a_report(body=BODY + "\n"))
    (note,) = await sink.wait_for(1, to=ALICE)
    await bot.send(a_report(subject="Open redirect", message_id="<report-2@example.net>",
                            body="The next parameter redirects anywhere at all, sadly.\n"))
    await sink.wait_for(2, to=ALICE)
    await bot.send(staff_reply(note.msg, "#status resolved\n"), to=[str(note.msg["Reply-To"])])
    db = bot.config.storage.database
    for _ in range(200):
        if table(db, "SELECT state FROM cases WHERE ref = 'SEC-2026-0001'") == [("resolved",)]:
            break
        await asyncio.sleep(0.05)
    store = await bot.open_store()
    assert await retention.run(store, bot.config, bot.clock()) == 0  # not yet due
    bot.clock.advance(timedelta(days=31))
    now = bot.clock()
    before = await compliance(bot, now)
    # The sink checks at teardown who got which case's text, by reporter: check it now,
    # while the reporter is still on record.
    assert_confidential(sink.received, db, bot.config)
    sink.received.clear()
    assert await retention.run(store, bot.config, now) == 1

    gone = table(db, "SELECT length(i.raw) FROM inbound i JOIN cases c ON c.id = i.case_id"
                     " WHERE c.ref = 'SEC-2026-0001'")
    assert gone and all(n == 0 for (n,) in gone)
    assert table(db, "SELECT count(*) FROM messages m JOIN cases c ON c.id = m.case_id"
                     " WHERE c.ref = 'SEC-2026-0001' AND (m.body != '' OR m.new_text != '')"
                 ) == [(0,)]
    assert table(db, "SELECT reporter, severity IS NULL, resolved_at IS NOT NULL FROM cases"
                     " WHERE ref = 'SEC-2026-0001'") == [("erased-case-1@invalid", 1, 1)]
    assert BODY.encode() not in await asyncio.to_thread(file_bytes, db)
    kept = table(db, "SELECT length(i.raw) FROM inbound i JOIN cases c ON c.id = i.case_id"
                     " WHERE c.ref = 'SEC-2026-0002'")
    assert kept and all(n > 0 for (n,) in kept)
    assert await compliance(bot, now) == before
    assert await retention.run(store, bot.config, bot.clock()) == 0  # once is enough


@pytest.fixture
def imported(write_config: Callable[..., Path], tmp_path: Path) -> Path:
    """One report of researcher@example.net imported: an open case, assessed against the
    policy's scope (the triage help keeps what it read of the report)."""
    config = write_config()
    config.write_text(config.read_text().replace(
        'warn_before = "1 business day"',
        'warn_before = "1 business day"\nin_scope = ["example.nl", "*.example.nl"]', 1))
    box = mailbox.mbox(tmp_path / "in.mbox")
    box.add(a_report(body=BODY + "\n").as_bytes())
    box.close()
    assert run(config, "import", str(tmp_path / "in.mbox")).returncode == 0
    return config


def test_export_refuses_an_open_case_then_exports_it(imported: Path, tmp_path: Path) -> None:
    """The reporter's access request: refused while their case is open (one line, rc 1);
    with --force an mbox of their mail and the case fields as JSON, both private."""
    out = tmp_path / "export"
    refused = run(imported, "export", "--reporter", "Researcher@example.net", "--out", str(out))
    assert refused.returncode == 1
    assert refused.stderr.strip() == ("error: Researcher@example.net has open cases "
                                      "(SEC-2026-0001): close them first, or --force")
    done = run(imported, "export", "--reporter", "researcher@example.net", "--out", str(out),
               "--force")
    assert done.returncode == 0, done.stderr
    box = mailbox.mbox(out / "reporter.mbox")
    mails = list(box)
    box.close()
    assert len(mails) == 1 and BODY in mails[0].get_payload()
    cases = json.loads((out / "cases.json").read_text())
    assert [c["ref"] for c in cases] == ["SEC-2026-0001"]
    assert cases[0]["messages"][0]["body"].startswith(BODY)
    assert {(out / n).stat().st_mode & 0o777 for n in ("reporter.mbox", "cases.json")} == {
        0o600}


def test_erase_refuses_an_open_case_then_erases_everywhere(imported: Path) -> None:
    """The erasure request: refused while the case is open; with --force the address and
    the text are gone from the database file, the pending acknowledgement is dropped, and
    the case keeps its reference, dates and an `erased` event."""
    refused = run(imported, "erase", "--reporter", "researcher@example.net")
    assert refused.returncode == 1 and "open cases (SEC-2026-0001)" in refused.stderr
    db = imported.parent / "mailbot.db"
    assert table(db, "SELECT count(*) FROM assessments") == [(1,)]  # what erasure must take
    done = run(imported, "erase", "--reporter", "researcher@example.net", "--force")
    assert done.returncode == 0, done.stderr
    data = file_bytes(db)
    assert b"researcher@example.net" not in data.lower() and BODY.encode() not in data
    assert table(db, "SELECT status FROM outbox WHERE purpose LIKE 'ack:%'") == [("dropped",)]
    assert table(db, "SELECT count(*) FROM assessments") == [(0,)]
    assert table(db, "SELECT count(*) FROM assessment_keys") == [(0,)]
    shown = json.loads(run(imported, "show", "SEC-2026-0001", "--json").stdout)
    assert shown["reporter"].startswith("erased-") and shown["created_at"]
    assert shown["events"][-1]["action"] == "erased"
