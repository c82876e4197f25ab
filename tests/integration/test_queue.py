"""The outgoing queue made visible: `mailbot queue`, `queue retry`, `queue drop`, the relay
check of `mailbot check` and the sender line of `mailbot status`, over a real daemon, a real
relay (aiosmtpd) and a real database, each command run as a subprocess."""

from __future__ import annotations

import asyncio
import json
import mailbox
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP, AuthResult

from tests.integration.test_cli import mailbot
from tests.support import Sink, free_port, report, start_daemon, table


async def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI in a thread, so the relay in this test's loop keeps answering."""
    return await asyncio.to_thread(mailbot, config, *args)


async def until(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    for _ in range(int(timeout / 0.1)):
        if predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not reached")


@pytest.fixture
def imported(write_config: Callable[..., Path], tmp_path: Path) -> Path:
    """A config whose relay port nobody listens on, and one report imported: its
    acknowledgement waits in the outbox."""
    config = write_config(free_port())
    box = mailbox.mbox(tmp_path / "in.mbox")
    box.add(report().as_bytes())
    box.close()
    assert mailbot(config, "import", str(tmp_path / "in.mbox")).returncode == 0
    return config


@pytest.fixture
async def daemon(imported: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    port = free_port()
    set_ports(imported, listen=port)
    proc = await start_daemon(imported, port)
    yield proc
    proc.terminate()
    await proc.wait()


def set_ports(config: Path, *, relay: int | None = None, listen: int | None = None,
              smtp_out: str = "") -> None:
    """Point the config at this relay port, listen on this port, add `[smtp_out]` keys."""
    text = config.read_text()
    if relay is not None:
        text = text.replace(f"port = {_relay_port(text)}", f"port = {relay}")
    if listen is not None:
        text = text.replace("port = 0", f"port = {listen}", 1)
    config.write_text(text.replace("timeout = 5", "timeout = 5\n" + smtp_out))


def db_of(config: Path) -> Path:
    return config.parent / "mailbot.db"


async def test_a_relay_that_refuses_connections_shows_in_queue_and_status(
        imported: Path, daemon: asyncio.subprocess.Process) -> None:
    """While the relay is down, `queue` lists the acknowledgement with its attempts and the
    error, and `status` says the sender is retrying and for how long mail has waited."""
    db = db_of(imported)
    await until(lambda: min(r[0] for r in table(db, "SELECT attempts FROM outbox")) >= 1)
    listed = json.loads((await cli(imported, "queue", "--json")).stdout)
    assert {m["purpose"]: m["recipients"] for m in listed} == {
        "ack:SEC-2026-0001": ["researcher@example.net"],
        "notify:1:alice@example.org": ["alice@example.org"],
        "notify:1:bob@example.org": ["bob@example.org"]}
    for m in listed:
        assert m["status"] == "pending" and m["attempts"] >= 1 and m["age_seconds"] >= 0
        assert "errno 111" in m["last_error"].lower()  # connection refused
    text = (await cli(imported, "queue")).stdout
    assert "ack:SEC-2026-0001" in text and "last error:" in text
    status = (await cli(imported, "status")).stdout
    assert "sender" in status and "retrying: 3 waiting, the oldest for" in status


async def test_check_says_the_relay_cannot_be_reached(imported: Path) -> None:
    """A relay that refuses connections: `check` names host:port, the step and the reason."""
    port = free_port()
    set_ports(imported, relay=port)
    result = await cli(imported, "check")
    assert result.returncode == 2
    assert f"error: relay 127.0.0.1:{port}: connect: connection refused" in result.stderr


def _relay_port(text: str) -> int:
    section = text.split("[smtp_out]", 1)[1]
    return int(section.split("port = ", 1)[1].split("\n", 1)[0])


async def test_check_talks_to_a_live_relay(imported: Path, sink: Sink) -> None:
    """A relay that answers: `check` says OK after EHLO and nothing is sent."""
    set_ports(imported, relay=sink.port)
    result = await cli(imported, "check")
    assert result.returncode == 0, result.stderr
    assert f"relay 127.0.0.1:{sink.port}: OK (EHLO)" in result.stdout
    assert sink.received == []


async def test_check_names_a_missing_starttls_and_a_refused_login(
        imported: Path, tmp_path: Path) -> None:
    """A relay without STARTTLS where it is required, and one refusing the login: each named
    by its step; the password is never printed."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(Sink(), auth_require_tls=False,
                     authenticator=lambda *a: AuthResult(success=False, handled=False)),
        "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    secret = tmp_path / "relay.secret"
    await asyncio.to_thread(secret.write_text, "hunter2-relay\n")
    config = await asyncio.to_thread(imported.read_text)
    try:
        set_ports(imported, relay=port, smtp_out='tls = "starttls"')
        tls = await cli(imported, "check")
        assert tls.returncode == 2
        assert f"relay 127.0.0.1:{port}: STARTTLS: not offered" in tls.stderr
        await asyncio.to_thread(imported.write_text, config)
        set_ports(imported, relay=port,
                  smtp_out=f'username = "bot"\npassword_file = "{secret}"')
        auth = await cli(imported, "check")
        assert auth.returncode == 2
        assert f"relay 127.0.0.1:{port}: AUTH: 535" in auth.stderr
        assert "hunter2" not in auth.stderr + auth.stdout
    finally:
        server.close()


async def test_drop_marks_the_mail_and_audits_it(imported: Path) -> None:
    """`queue drop ID` keeps the row marked dropped, out of the queue, with an audit row and
    an event in the case's log; an unknown id is a one-line error."""
    db = db_of(imported)
    (outbox_id,) = table(db, "SELECT id FROM outbox WHERE purpose LIKE 'ack:%'")[0]
    dropped = await cli(imported, "queue", "drop", str(outbox_id))
    assert dropped.returncode == 0, dropped.stderr
    assert table(db, "SELECT status FROM outbox WHERE id = ?", (outbox_id,)) == [("dropped",)]
    listed = json.loads((await cli(imported, "queue", "--json")).stdout)
    assert outbox_id not in [m["id"] for m in listed] and len(listed) == 2
    assert table(db, "SELECT action, outbox_id FROM ops_audit") == [
        ("outbox dropped", outbox_id)]
    events = json.loads((await cli(imported, "show", "SEC-2026-0001", "--json")).stdout)
    assert [e["action"] for e in events["events"]][-1] == "outbox dropped"
    again = await cli(imported, "queue", "drop", str(outbox_id))
    assert again.returncode == 1 and "Traceback" not in again.stderr
    assert again.stderr.strip() == f"error: outbox {outbox_id} is neither pending nor failed"


async def test_retry_all_failed_sends_again(imported: Path, sink: Sink) -> None:
    """Mail the relay refused for good (550) is failed; `queue retry --all-failed` makes it
    due again, and the next daemon delivers it to a relay that now accepts."""
    db = db_of(imported)
    port = free_port()
    set_ports(imported, relay=sink.port, listen=port)
    sink.refuse_with = "550 5.7.1 not today"
    proc = await start_daemon(imported, port)
    try:
        await until(lambda: ("ack:SEC-2026-0001", "failed") in table(
            db, "SELECT purpose, status FROM outbox"))
    finally:
        proc.terminate()
        await proc.wait()
    retried = await cli(imported, "queue", "retry", "--all-failed")
    assert retried.returncode == 0, retried.stderr
    assert table(db, "SELECT status, attempts FROM outbox WHERE purpose = 'ack:SEC-2026-0001'"
                 ) == [("pending", 0)]
    assert ("outbox retried",) in table(db, "SELECT action FROM ops_audit")
    sink.refuse_with = None
    proc = await start_daemon(imported, port)
    try:
        await sink.wait_for(1)
    finally:
        proc.terminate()
        await proc.wait()
    usage = await cli(imported, "queue", "retry")
    assert usage.returncode == 2 and "give one ID or --all-failed" in usage.stderr
