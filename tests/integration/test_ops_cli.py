"""The command line as people use it: options anywhere, checked choices, help without
implementation notes, local times with offsets, references in any case, JSON logs."""

from __future__ import annotations

import asyncio
import json
import mailbox
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.test_staff_commands import ALICE, staff_reply
from tests.support import Bot, Sink, free_port, report, send, table

Run = Callable[..., subprocess.CompletedProcess[str]]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mailbot", *args], capture_output=True,
                          text=True, timeout=60, check=False)


@pytest.fixture
def config(write_config: Callable[..., Path], tmp_path: Path) -> Path:
    path = write_config()
    box = mailbox.mbox(tmp_path / "in.mbox")
    box.add(report().as_bytes())
    box.close()
    assert run("import", str(tmp_path / "in.mbox"), "--config", str(path)).returncode == 0
    return path


def test_config_before_or_after_the_command(config: Path) -> None:
    """`--config` and `--log-level` work on either side of the command, the same way."""
    before = run("--config", str(config), "--log-level", "error", "tickets", "--json")
    after = run("tickets", "--json", "--config", str(config), "--log-level", "error")
    assert before.returncode == after.returncode == 0, before.stderr + after.stderr
    assert json.loads(before.stdout) == json.loads(after.stdout) != []


def test_unknown_state_and_inbox_are_refused(config: Path) -> None:
    """A state outside the list, or an inbox not configured, is a usage error (rc 2) that
    names the valid ones, not an empty listing."""
    state = run("tickets", "--state", "open", "--config", str(config))
    assert state.returncode == 2 and "'needs-info'" in state.stderr
    inbox = run("tickets", "--inbox", "secuirty", "--config", str(config))
    assert inbox.returncode == 2
    assert inbox.stderr.strip() == ("error: no inbox named 'secuirty' (the inboxes: "
                                    "security, support)")


def test_help_lists_states_and_no_implementation_notes() -> None:
    """`--help` says what mailbot does and lists the states; no notes on its internals."""
    top = run("--help").stdout
    assert "asyncio" not in top and "Thin" not in top and "Exit status" in top
    tickets = run("tickets", "--help").stdout
    assert "needs-info" in tickets and "only this inbox" in tickets


def test_tickets_show_both_deadlines_in_the_policy_zone(config: Path) -> None:
    """`tickets` has a header row and both deadlines with the Amsterdam offset."""
    lines = run("tickets", "--config", str(config)).stdout.splitlines()
    assert lines[0].split()[:2] == ["REF", "STATE"] and "RESOLUTION DUE" in lines[0]
    case = json.loads(run("show", "SEC-2026-0001", "--json", "--config", str(config)).stdout)
    assert lines[1].startswith("SEC-2026-0001")
    assert lines[1].count("+01:00") == 2
    assert case["first_response_due"].endswith("+00:00")  # JSON stays in UTC


def test_show_takes_a_reference_in_any_case(config: Path) -> None:
    """`show sec-2026-0001` finds SEC-2026-0001 and prints its times with the offset."""
    shown = run("show", "sec-2026-0001", "--config", str(config))
    assert shown.returncode == 0, shown.stderr
    assert "ref:                 SEC-2026-0001" in shown.stdout
    due = next(ln for ln in shown.stdout.splitlines() if ln.startswith("first_response_due"))
    assert due.endswith("+01:00")


async def test_json_logs_one_object_per_line(write_config: Callable[..., Path], sink: Sink,
                                             tmp_path: Path) -> None:
    """`run --log-format json`: every stderr line is one JSON object with time, level,
    logger and event, and the lines about the case carry its reference."""
    config = write_config(sink.port)
    port = free_port()
    text = await asyncio.to_thread(config.read_text)
    await asyncio.to_thread(config.write_text, text.replace("port = 0", f"port = {port}", 1))
    log = tmp_path / "log.jsonl"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mailbot", "run", "--config", str(config), "--log-format",
            "json", stdout=asyncio.subprocess.DEVNULL, stderr=out)
    try:
        for _ in range(200):
            try:
                await send(port, report())
                break
            except OSError:
                await asyncio.sleep(0.05)
        await sink.wait_for(1)
    finally:
        proc.terminate()
        await proc.wait()
    lines = (await asyncio.to_thread(log.read_text)).splitlines()
    records = [json.loads(line) for line in lines]
    assert records and all({"time", "level", "logger", "event", "inbound_id", "case_ref"}
                           <= r.keys() for r in records)
    assert any(r["case_ref"] == "SEC-2026-0001" for r in records)


async def test_tickets_follow_a_due_command(bot: Bot, sink: Sink) -> None:
    """After staff's `#due 2027-01-08`, `tickets` shows that resolution deadline, end of
    the day in Amsterdam with its offset."""
    await bot.send(report())
    (note,) = await sink.wait_for(1, to=ALICE)
    await bot.send(staff_reply(note.msg, "#due 2027-01-08\n"),
                   to=[str(note.msg["Reply-To"])])
    db = bot.config.storage.database
    for _ in range(200):
        if table(db, "SELECT resolution_due FROM cases") == [("2027-01-08T22:59:59+00:00",)]:
            break
        await asyncio.sleep(0.05)
    assert bot.config.source is not None
    listed = await asyncio.to_thread(run, "tickets", "--config", str(bot.config.source))
    (line,) = listed.stdout.splitlines()[1:]
    assert "2027-01-08 23:59 +01:00" in line
