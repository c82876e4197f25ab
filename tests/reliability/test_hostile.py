"""Hostile mail through a real daemon: it survives, memory stays bounded, every mail is kept
raw and ends as a case or a quarantine entry with a reason, and no answer carries an
injected header or evaluated template syntax."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from email import message_from_bytes, policy
from pathlib import Path

import aiosmtplib
import pytest

from tests.corpus.make_hostile import SMALL, big_attachment
from tests.reliability.harness import Daemon, settle
from tests.support import Sink, free_port, plain_text, table

pytestmark = pytest.mark.slow

RSS_LIMIT_MB = 400  # the daemon's peak, with a 50 MB attachment among the mails


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


async def through_daemon(config: Path, port: int, tmp_path: Path, mails: dict[str, bytes],
                         prefix: str) -> float:
    """Send each mail (envelope sender `<prefix>-<name>@example.net`) to a real daemon, wait
    until all is processed and sent, stop it cleanly; its peak RSS in MB."""
    daemon = Daemon(config, port, tmp_path / "daemon.log")
    await daemon.start()
    assert daemon.proc is not None
    try:
        for name, raw in mails.items():
            async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=120) as smtp:
                await smtp.sendmail(f"{prefix}-{name}@example.net", ["security@example.org"], raw)
        await settle(tmp_path / "mailbot.db", 120)
        assert daemon.proc.returncode is None, "the daemon died"
        rss = await asyncio.to_thread(peak_rss_mb, daemon.proc.pid)
        assert await daemon.stop() == 0
        return rss
    except BaseException:
        print(daemon.log_tail())
        raise
    finally:
        if daemon.proc.returncode is None:
            daemon.proc.kill()


def lf_digest(raw: bytes) -> str:
    return hashlib.sha256(raw.replace(b"\r\n", b"\n")).hexdigest()


async def test_hostile_corpus(
    sink: Sink, write_config: Callable[..., Path], tmp_path: Path, long_run: bool
) -> None:
    """Every hostile mail is stored raw and becomes a case or a quarantine entry with a
    reason; the daemon lives, its peak RSS stays bounded, the answers are clean."""
    port = free_port()
    path = write_config(sink.port, max_size="80MB")
    path.write_text(path.read_text().replace("port = 0", f"port = {port}"))
    mails = {name: make() for name, make in SMALL.items()}
    mails["big-attachment"] = big_attachment(50_000_000 if long_run else 20_000_000)
    rss = await through_daemon(path, port, tmp_path, mails, "hostile")
    print(f"{len(mails)} hostile mails, peak RSS {rss:.0f} MB")
    assert rss < RSS_LIMIT_MB

    db = tmp_path / "mailbot.db"
    rows = {mid: (status, reason, case, raw) for mid, status, reason, case, raw in table(
        db, "SELECT message_id, status, reason, case_id, raw FROM inbound")}
    for name, raw in mails.items():
        status, reason, case, stored = rows[f"<hostile-{name}@example.net>"]
        assert lf_digest(stored) == lf_digest(raw), f"{name}: raw mail not kept as sent"
        assert (status == "done" and case) or (status == "quarantined" and reason), name
    assert rows["<hostile-no-from@example.net>"][:2] == ("quarantined",
                                                        "no sender address in From:")
    check_answers(sink)


def check_answers(sink: Sink) -> None:
    """Clean headers, and template syntax left as text."""
    check_headers(sink)
    (ack,) = sink.to("hostile-jinja-subject@example.net")
    assert "{{ config }}" in str(ack.msg["Subject"])
    notice = next(r for r in sink.to("alice@example.org")
                  if "<hostile-jinja-subject@example.net>" in str(r.msg["In-Reply-To"]))
    assert "{{ 7 * 7 }}" in plain_text(notice.msg)


def check_headers(sink: Sink) -> None:
    """One recipient each, no header the sender smuggled in, no script passed on."""
    assert sink.received
    for r in sink.received:
        msg = message_from_bytes(r.raw, policy=policy.strict)
        names = {k.lower() for k in msg}
        assert "bcc" not in names and len(r.rcpt_tos) == 1, r.raw[:400]
        assert all("\n" not in str(v) and "\r" not in str(v) for v in msg.values())
        assert b"<script" not in r.raw.lower()
        assert "victim@example.com" not in r.rcpt_tos[0]
