"""The `mailbot` command line over a real database: import, tickets, show, quarantine, retry."""

from __future__ import annotations

import json
import mailbox
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import report

SPEC_FIELDS = {
    "ref", "inbox", "state", "severity", "reporter", "subject", "language", "assignee",
    "created_at", "first_response_due", "first_responded_at", "resolution_due", "resolved_at",
    "messages", "events",
}
MESSAGE_FIELDS = {"direction", "kind", "sender", "recipients", "message_id", "date",
                  "encrypted", "signature", "body", "new_text"}


def mailbot(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailbot", *args, "--config", str(config), "--log-level", "error"],
        capture_output=True, text=True, timeout=60,
    )


@pytest.fixture
def config(write_config: Callable[..., Path]) -> Path:
    return write_config()


@pytest.fixture
def mbox(tmp_path: Path) -> Path:
    path = tmp_path / "reports.mbox"
    box = mailbox.mbox(path)
    box.add(report(message_id="<a@example.net>").as_bytes())
    follow = report(subject="Re: XSS in /search", body="More detail.\n\n> The q parameter\n",
                    message_id="<b@example.net>")
    follow["In-Reply-To"] = "<a@example.net>"
    box.add(follow.as_bytes())
    box.add(report(to="support@example.org", subject="Wachtwoord vergeten",
                   sender="klant@example.nl", message_id="<c@example.nl>").as_bytes())
    box.add(b"To: security@example.org\nSubject: anonymous\n\nno sender\n")
    box.close()
    return path


def test_import_is_idempotent_and_threads(config: Path, mbox: Path) -> None:
    """An mbox import files reports per inbox, threads the follow-up, and a rerun adds nothing."""
    first = mailbot(config, "import", str(mbox))
    assert first.returncode == 0, first.stderr
    assert "stored 4 new mails" in first.stdout
    assert "2 new cases" in first.stdout
    again = mailbot(config, "import", str(mbox))
    assert "stored 0 new mails (4 already stored)" in again.stdout

    listing = json.loads(mailbot(config, "tickets", "--json").stdout)
    assert [(c["ref"], c["inbox"]) for c in listing] == [
        ("SEC-2026-0001", "security"), ("SUP-2026-0001", "support")]
    assert [c["ref"] for c in json.loads(
        mailbot(config, "tickets", "--json", "--inbox", "support").stdout)] == ["SUP-2026-0001"]
    assert json.loads(mailbot(config, "tickets", "--json", "--state", "closed").stdout) == []


def test_import_maildir(config: Path, tmp_path: Path) -> None:
    """A Maildir imports through the same path."""
    md = mailbox.Maildir(tmp_path / "Maildir")
    md.add(report(message_id="<m1@example.net>").as_bytes())
    result = mailbot(config, "import", str(tmp_path / "Maildir"))
    assert "stored 1 new mails" in result.stdout, result.stderr


def test_show_json_has_the_spec_fields(config: Path, mbox: Path) -> None:
    """`show --json` carries every field docs/reference.md lists, for the case and each message."""
    mailbot(config, "import", str(mbox))
    result = mailbot(config, "show", "SEC-2026-0001", "--json")
    assert result.returncode == 0, result.stderr
    case = json.loads(result.stdout)
    assert case.keys() >= SPEC_FIELDS
    assert case["first_response_due"].endswith("+00:00")
    kinds = [(m["direction"], m["kind"]) for m in case["messages"]]
    assert kinds == [("in", "report"), ("out", "ack"), ("in", "follow-up")]
    for m in case["messages"]:
        assert m.keys() >= MESSAGE_FIELDS
    follow = case["messages"][2]
    assert follow["body"].startswith("More detail.")
    assert follow["new_text"] == "More detail."
    assert [e["action"] for e in case["events"]] == ["opened", "follow-up"]


def test_show_text_and_unknown_ref(config: Path, mbox: Path) -> None:
    """`show` prints the case for people; an unknown reference exits 1 with a message."""
    mailbot(config, "import", str(mbox))
    text = mailbot(config, "show", "SEC-2026-0001")
    assert "XSS in /search" in text.stdout and "audit log:" in text.stdout
    missing = mailbot(config, "show", "SEC-2026-9999")
    assert missing.returncode == 1
    assert "no case SEC-2026-9999" in missing.stderr


def test_quarantine_lists_reason_and_retry_reprocesses(config: Path, mbox: Path) -> None:
    """A mail without sender is listed with its reason; retry processes it again, still kept."""
    mailbot(config, "import", str(mbox))
    listing = json.loads(mailbot(config, "quarantine", "--json").stdout)
    assert [q["reason"] for q in listing] == ["no sender address in From:"]
    retried = mailbot(config, "retry", str(listing[0]["id"]))
    assert retried.returncode == 1
    assert "quarantined (no sender address in From:)" in retried.stdout
    assert len(json.loads(mailbot(config, "quarantine", "--json").stdout)) == 1
    not_there = mailbot(config, "retry", "99999")
    assert not_there.returncode == 1 and "not in quarantine" in not_there.stderr


def test_migrate_reports_state(config: Path, backend: str) -> None:
    """`migrate` applies the schema once and then says it is up to date."""
    first = "0001_initial" if backend == "sqlite" else "0024_schema"
    assert f"applied {first}" in mailbot(config, "migrate").stdout
    assert "up to date" in mailbot(config, "migrate").stdout
