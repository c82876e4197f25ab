"""A config without [[staff]]: `check`, `run` and `import` agree that it works, and warn.

An operator trying mailbot out often starts with inboxes only. Every command accepts such
a config and says, in one line, what is lost: nobody notified, no command by mail obeyed.
"""

from __future__ import annotations

import asyncio
import mailbox
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import CONFIG, Sink, free_port, report, send, start_daemon, table

WARNING = ("no [[staff]]: mail is stored and acknowledged, but nobody is notified of new cases"
           " in security, support, no command by mail is obeyed, no escalation is sent")


def _config(tmp_path: Path, sink_port: int = 1, port: int = 0) -> Path:
    text = CONFIG.format(db=tmp_path / "mailbot.db", sink_port=sink_port, protocol="smtp",
                         max_size="1MB").replace("port = 0", f"port = {port}", 1)
    text = re.sub(r"\[\[staff\]\]\naddress = .*\nrole = .*\n", "", text)
    assert "[[staff]]" not in text
    path = tmp_path / "mailbot.toml"
    path.write_text(text)
    return path


def _mailbot(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mailbot", *args, "--config", str(config)],
                          capture_output=True, text=True, timeout=60)


def test_check_warns_and_passes(tmp_path: Path) -> None:
    """`mailbot check` on a config without staff exits 0 with a warning saying what is lost."""
    proc = _mailbot(_config(tmp_path), "check", "--offline")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == f"warning: {WARNING}"
    assert "OK (2 inboxes, 2 policies, 0 staff)" in proc.stdout


def test_import_warns_and_opens_cases(tmp_path: Path) -> None:
    """`mailbot import` without staff opens the case and logs the same warning."""
    box = mailbox.mbox(tmp_path / "in.mbox")
    box.add(report().as_bytes())
    box.close()
    proc = _mailbot(_config(tmp_path), "import", str(tmp_path / "in.mbox"))
    assert proc.returncode == 0, proc.stderr
    assert WARNING in proc.stderr
    assert table(tmp_path / "mailbot.db", "SELECT ref, reporter FROM cases") == [
        ("SEC-2026-0001", "researcher@example.net")]


@pytest.mark.slow
async def test_run_warns_and_acknowledges(tmp_path: Path, sink: Sink) -> None:
    """`mailbot run` without staff logs the warning, then acknowledges a report as usual."""
    port = free_port()
    log = tmp_path / "daemon.log"
    proc = await start_daemon(_config(tmp_path, sink.port, port), port, log=log)
    try:
        await send(port, report())
        [ack] = await sink.wait_for(1)
    finally:
        proc.send_signal(signal.SIGTERM)
        await proc.wait()
    assert ack.msg["X-Mailbot-Case"] == table(tmp_path / "mailbot.db",
                                              "SELECT ref FROM cases")[0][0]
    assert sink.to(None) == [ack]  # nobody else: there is no staff to notify
    assert WARNING in await asyncio.to_thread(log.read_text)
