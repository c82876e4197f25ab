"""The assessment in the pipeline: stored, renewed by the reporter only, never a failure."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailbot.config import load_config
from mailbot.triage.assess import HOST_LIMIT, assess
from mailbot.triage.assessing import block
from tests.support import (
    CONFIG,
    FRIDAY_EVENING,
    Bot,
    MovingClock,
    Sink,
    report,
    running_bot,
    table,
)
from tests.triage.support import triage_config

ALICE = "alice@example.org"
REPORTER = "researcher@example.net"


@pytest.fixture
async def bot(sink: Sink, tmp_path: Path) -> AsyncIterator[Bot]:
    config = load_config(triage_config(tmp_path, sink.port))
    async with running_bot(config, MovingClock(FRIDAY_EVENING)) as b:
        yield b


def _stored(bot: Bot, ref: str = "SEC-2026-0001") -> dict[str, object]:
    [(text,)] = table(bot.config.storage.database, "SELECT a.assessment FROM assessments a "
                      "JOIN cases c ON c.id = a.case_id WHERE c.ref = ?", (ref,))
    return dict(json.loads(text))


def _write(bot: Bot, sql: str) -> None:
    """A change made behind the daemon's back, committed."""
    with contextlib.closing(sqlite3.connect(bot.config.storage.database)) as db, db:
        db.execute(sql)


def _reply(ack: EmailMessage, sender: str, text: str, n: int) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"] = sender, "security@example.org"
    msg["Subject"] = f"Re: {ack['Subject']}"
    msg["In-Reply-To"] = str(ack["Message-ID"])
    msg["Message-ID"] = f"<reply-{n}@example.net>"
    msg.set_content(text)
    return msg


async def test_reporter_text_renews_it_a_strangers_does_not(bot: Bot, sink: Sink) -> None:
    """The reporter's follow-up is read with the report (new hosts, a class); a stranger
    who learned the reference and mails on the case changes nothing staff read."""
    await bot.send(report(body="Something odd on https://app.example.com/login"))
    [ack] = await sink.wait_for(1)
    await sink.wait_for(1, to=ALICE)
    assert _stored(bot)["out_of_scope_classes"] == []
    await bot.send(_reply(ack.msg, "mallory@example.com",
                          "No DMARC on example.nl, p=none, spoofing! evil.example.com", 1))
    await sink.wait_for(2, to=ALICE)
    assert _stored(bot)["hosts"] == {"in_scope": ["app.example.com"], "out_of_scope": [],
                                     "unknown": []}
    await bot.send(_reply(ack.msg, REPORTER, "Also legacy.example.nl has no DMARC "
                                             "record (p=none).", 2))
    note = (await sink.wait_for(3, to=ALICE))[-1].msg.get_content()
    stored = _stored(bot)
    assert stored["hosts"] == {"in_scope": ["app.example.com"],
                               "out_of_scope": ["legacy.example.nl"], "unknown": []}
    assert [c["id"] for c in stored["out_of_scope_classes"]] == ["spf-dkim-dmarc"]  # type: ignore[attr-defined]
    assert "Hosts OUT of scope: legacy.example.nl" in note


async def test_damaged_row_costs_only_itself(bot: Bot, sink: Sink) -> None:
    """An earlier case's stored features that cannot be read are skipped: the next report
    is still assessed, compared with the others, and processed as usual."""
    body = "Stored XSS in https://app.example.com/tickets/view?id=1 for all users."
    for n in range(2):
        await bot.send(report(body=body, message_id=f"<r{n}@example.net>"))
        await sink.wait_for(n + 1, to=ALICE)
    await asyncio.to_thread(_write, bot, "UPDATE assessments SET features = 'not json' "
                                         "WHERE case_id = 1")
    await bot.send(report(body=body, message_id="<r2@example.net>"))
    note = (await sink.wait_for(3, to=ALICE))[-1].msg.get_content()
    assert "Likely duplicate of SEC-2026-0002" in note
    assert [d["ref"] for d in _stored(bot, "SEC-2026-0003")["duplicates"]] == [  # type: ignore[attr-defined]
        "SEC-2026-0002"]
    assert table(bot.config.storage.database,
                 "SELECT count(*) FROM inbound WHERE status = 'done'") == [(3,)]


async def test_show_json_of_a_case_never_assessed(bot: Bot, sink: Sink, tmp_path: Path) -> None:
    """A case from before the triage help shows `assessment: null`, and its text form
    runs; with one, the text form names the class."""
    await bot.send(report(body="DMARC p=none on example.nl"))
    await sink.wait_for(1, to=ALICE)
    config = tmp_path / "mailbot.toml"

    def show(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "mailbot", "show", "SEC-2026-0001", *args,
                               "--config", str(config)], capture_output=True, text=True,
                              timeout=60)

    text = await asyncio.to_thread(show)
    assert "out-of-scope class:  spf-dkim-dmarc (0.8): Missing or" in text.stdout
    await asyncio.to_thread(_write, bot, "DELETE FROM assessments")
    shown = await asyncio.to_thread(show, "--json")
    assert json.loads(shown.stdout)["assessment"] is None
    assert (await asyncio.to_thread(show)).returncode == 0


def test_flood_of_hosts_is_bounded() -> None:
    """A report naming 10,000 hosts keeps 50 per bucket, and staff see 8 and a count."""
    from tests.triage.corpus import SCOPE

    text = " ".join(f"h{i}.example.nl x{i}.other.com" for i in range(5000))
    a = assess(text, SCOPE, "en")
    assert len(a.in_scope) == HOST_LIMIT and len(a.unknown) == HOST_LIMIT
    shown = block(a, SCOPE, None)
    assert "(+42 more)" in shown
    assert len(shown) < 2000


async def test_keys_follow_the_stored_assessment(tmp_path: Path) -> None:
    """The keys a later report is matched on are the latest assessment's, exactly (the
    triggers of migration 0018 replace them with the row)."""
    from mailbot.store import Store
    from mailbot.store import assessments as assess_q

    store = await Store.open(tmp_path / "k.db")
    try:
        async with store.write() as db:
            await db.execute("INSERT INTO cases (id, ref, inbox, reporter, subject, language,"
                             " created_at, updated_at) VALUES (1, 'SEC-2026-0001', 'security',"
                             " 'r@example.net', 's', 'en', '2026-12-18', '2026-12-18')")
            for keys in (["path:a/x", "text:1"], ["path:a/y", "text:1"], []):
                await assess_q.save(db, 1, inbox="security", at="2026-12-18T17:00:00+00:00",
                                    assessment={}, features={}, keys=keys)
                rows = await db.execute_fetchall("SELECT key FROM assessment_keys ORDER BY key")
                assert [r[0] for r in rows] == keys
            await assess_q.save(db, 1, inbox="security", at="2026-12-18T17:00:00+00:00",
                                assessment={}, features={"hosts": []}, keys=["path:a/z"])
            found = await assess_q.candidates(db, "security", 2, ["path:a/z", "text:9"],
                                              "2026-01-01")
            assert found == [("SEC-2026-0001", {"hosts": []})]
            assert await assess_q.candidates(db, "security", 2, ["text:9"], "2026-01-01") == []
            assert await assess_q.candidates(db, "support", 2, ["path:a/z"], "2026-01-01") == []
    finally:
        await store.close()


async def test_a_policy_naming_no_scope_assesses_nothing(sink: Sink, tmp_path: Path) -> None:
    """Without in_scope, out_of_scope_hosts, out_of_scope or same_codebase in its policy,
    an inbox pays nothing for the triage help: no assessment is stored, the mail is
    handled as before (acknowledged, staff notified)."""
    path = tmp_path / "mailbot.toml"
    path.write_text(CONFIG.format(db=tmp_path / "mailbot.db", sink_port=sink.port,
                                  protocol="smtp", max_size="1MB"))
    config = load_config(path)
    assert not any(p.scope.named for p in config.policies.values())
    async with running_bot(config, MovingClock(FRIDAY_EVENING)) as b:
        await b.send(report(body="No DMARC record on example.nl (p=none)."))
        await sink.wait_for(1, to=REPORTER)
    assert table(config.storage.database, "SELECT count(*) FROM assessments") == [(0,)]
    assert table(config.storage.database, "SELECT count(*) FROM cases") == [(1,)]
