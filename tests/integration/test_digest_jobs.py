"""The digest as users meet it: `mailbot digest`, `--send`, and once per period."""

from __future__ import annotations

import mailbox
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import default
from pathlib import Path
from zoneinfo import ZoneInfo

from mailbot.config import load_config
from mailbot.jobs import digest
from mailbot.mail.render import Templates
from mailbot.store import open_store
from mailbot.store import outbox as outbox_q
from tests.email_lint import problems
from tests.support import direct, report, table


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
    store = await open_store(config.storage)
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


def test_digest_lists_a_day_and_the_broken_promises(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    """`mailbot digest --due DAY` lists every case due that day, `--broken` every broken
    promise: what the digest's "and N more" lines point to."""
    config = write_config()
    box = mailbox.mbox(tmp_path / "in.mbox")
    box.add(report(subject="Open redirect in /login").as_bytes())
    box.close()
    mailbot(config, "import", str(tmp_path / "in.mbox"))
    db = tmp_path / "mailbot.db"
    ((ref, due),) = table(db, "SELECT ref, first_response_due FROM cases")
    day = datetime.fromisoformat(due).astimezone(ZoneInfo("Europe/Amsterdam")).date()
    listed = mailbot(config, "digest", "--inbox", "security", "--due", day.isoformat())
    assert listed.returncode == 0, listed.stderr
    assert ref in listed.stdout and "Open redirect in /login" in listed.stdout
    assert "first response within 3 business days" in listed.stdout
    other = mailbot(config, "digest", "--due", (day + timedelta(days=1)).isoformat())
    assert ref not in other.stdout
    past = (datetime.now(UTC) - timedelta(days=9)).isoformat()
    with direct(db) as conn:
        conn.execute("INSERT INTO cases (ref, inbox, reporter, subject, language, created_at,"
                     " updated_at, first_response_due) VALUES ('SEC-2026-0999', 'security',"
                     " 'r@example.net', 'Old one', 'en', ?, ?, ?)", (past, past, past))
    broken = mailbot(config, "digest", "--broken")
    assert "SEC-2026-0999" in broken.stdout and "overdue since" in broken.stdout
    assert ref not in broken.stdout
    bad = mailbot(config, "digest", "--due", "2026-99-01")
    assert bad.returncode == 2 and "is not a date" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_sent_digest_is_text_and_lint_clean_html(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    """The queued digest is multipart/alternative: the text, and HTML that passes the email
    lint (no SVG, no <style>, no external resource)."""
    config = write_config()
    box = mailbox.mbox(tmp_path / "in.mbox")
    box.add(report(subject="<img src=https://evil.example/x.gif>").as_bytes())
    box.close()
    mailbot(config, "import", str(tmp_path / "in.mbox"))
    assert mailbot(config, "digest", "--send").returncode == 0
    ((raw,),) = table(tmp_path / "mailbot.db",
                      "SELECT raw FROM outbox WHERE purpose LIKE 'digest:%'")
    mail = message_from_bytes(raw, policy=default)
    assert mail.get_content_type() == "multipart/alternative"
    html_part = mail.get_body(("html",))
    text_part = mail.get_body(("plain",))
    assert html_part is not None and text_part is not None
    html = html_part.get_content()
    assert problems(html) == []
    assert "&lt;img src=https://evil.example/x.gif&gt;" in html
    assert "New and closed cases, last 12 weeks" in text_part.get_content()
