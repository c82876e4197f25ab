"""The digest as users meet it: `mailbot digest`, `--send`, and once per period."""

from __future__ import annotations

import mailbox
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from mailbot.config import load_config
from mailbot.jobs import digest
from mailbot.mail.render import Templates
from mailbot.store import Store
from mailbot.store import outbox as outbox_q
from tests.support import report


def mailbot(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailbot", *args, "--config", str(config), "--log-level", "error"],
        capture_output=True, text=True, timeout=60,
    )


def test_digest_command_prints_and_queues(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    """`mailbot digest` prints this week's cases; `--send` queues the mail to the digest list."""
    config = write_config()
    box = mailbox.mbox(tmp_path / "in.mbox")
    box.add(report(subject="<b>XSS</b> in /search").as_bytes())
    box.close()
    mailbot(config, "import", str(tmp_path / "in.mbox"))
    printed = mailbot(config, "digest")
    assert printed.returncode == 0, printed.stderr
    assert "== security ==" in printed.stdout
    assert "New cases: 1" in printed.stdout
    assert "<b>XSS</b> in /search" in printed.stdout
    sent = mailbot(config, "digest", "--send")
    assert "digest queued for alice@example.org, bob@example.org" in sent.stdout


async def test_one_digest_per_period_across_restarts(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    """Running the scheduled job again (a restart, a catch-up) queues nothing more."""
    config = load_config(write_config())
    store = await Store.open(config.storage.database)
    templates = Templates()
    now = datetime(2026, 12, 21, 10, 0, tzinfo=UTC)
    # Nothing existed before the period ended: a new installation owes no digest.
    assert not await digest.scheduled_run(store, config, templates, now)
    async with store.write() as db:
        await db.execute(
            "INSERT INTO cases (ref, inbox, reporter, subject, language, created_at, updated_at)"
            " VALUES ('SEC-2026-0001', 'security', 'r@example.net', 's', 'en', ?, ?)",
            ((now - timedelta(days=3)).isoformat(),) * 2,
        )
    assert await digest.scheduled_run(store, config, templates, now)
    assert not await digest.scheduled_run(store, config, templates, now + timedelta(hours=5))
    assert await digest.scheduled_run(store, config, templates, now + timedelta(days=7))
    async with store.read() as db:
        assert await outbox_q.counts(db) == {"pending": 2}
    await store.close()
