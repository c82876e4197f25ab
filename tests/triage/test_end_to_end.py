"""The triage help through a real `mailbot run`: notification, canned reply, transcript."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mailbot.triage.catalogue import CATALOGUE
from tests.support import Sink, free_port, report, send, start_daemon, table
from tests.triage.support import staff_reply, triage_config

REPORTER = "onderzoeker@example.net"
ALICE = "alice@example.org"
DMARC_NL = ("Goedemiddag,\n\nHet domein mail.example.nl heeft geen DMARC-record "
            "(_dmarc.mail.example.nl bestaat niet) en het DMARC-beleid van example.nl staat op "
            "p=none. Hierdoor kunnen e-mails worden gespoofd.\n\nGraag een beloning.\n")


def _mailbot(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mailbot", *args, "--config", str(config)],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.slow
async def test_dmarc_report_to_dutch_canned_reply(tmp_path: Path, sink: Sink) -> None:
    """A Dutch DMARC report on an in-scope host: staff are told the class and the policy's
    sentence; `#template out-of-scope` with `#close` sends the Dutch canned reply quoting
    it to the reporter; the transcript says so; `show --json` carries the assessment."""
    port = free_port()
    config = triage_config(tmp_path, sink.port, port)
    proc = await start_daemon(config, port, log=tmp_path / "daemon.log")
    try:
        await send(port, report(subject="Geen DMARC", sender=REPORTER, body=DMARC_NL,
                                to="support@example.org"))
        [note] = await sink.wait_for(1, to=ALICE)
        text = note.msg.get_content()
        clause = CATALOGUE["spf-dkim-dmarc"].nl
        assert "Out-of-scope class: spf-dkim-dmarc" in text
        assert f'policy: "{clause}"' in text
        assert "Hosts in scope:" in text and "mail.example.nl" in text
        assert "Suggested reply: #template out-of-scope" in text
        assert "#template NAME" in text  # the cheat-sheet
        [ack] = await sink.wait_for(1, to=REPORTER)

        await send(port, staff_reply(note.msg, "#template out-of-scope\n#close out of scope\n"))
        mails = await sink.wait_for(2, to=REPORTER)
        transcript = (await sink.wait_for(2, to=ALICE))[-1].msg.get_content()
    finally:
        proc.send_signal(signal.SIGTERM)
        await proc.wait()
    canned = mails[-1].msg
    body = canned.get_content()
    assert canned["From"] == "support@example.org"
    assert f'"{clause}"' in body
    assert "buiten de scope" in body and "https://example.nl/cvd" in body
    assert "Dank u voor uw melding" in body
    ref = ack.msg["X-Mailbot-Case"]
    assert "#template out-of-scope: the canned reply (nl) was sent to the reporter" in transcript
    assert "mailbot wrote" not in body  # the text below the commands was a note
    assert table(tmp_path / "mailbot.db", "SELECT state FROM cases WHERE ref = ?",
                 (ref,)) == [("closed",)]
    shown = await asyncio.to_thread(_mailbot, config, "show", ref, "--json")
    assert shown.returncode == 0, shown.stderr
    assessment = json.loads(shown.stdout)["assessment"]
    assert assessment["hosts"] == {"in_scope": ["mail.example.nl", "example.nl"],
                                   "out_of_scope": [], "unknown": []}
    [cls] = assessment["out_of_scope_classes"]
    assert (cls["id"], cls["clause"]) == ("spf-dkim-dmarc", clause)
    assert assessment["duplicates"] == []
