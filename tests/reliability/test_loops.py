"""Loops and floods: two bots answering each other, a naive autoresponder, many senders."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from mailbot.config import load_config
from tests.support import (
    FRIDAY_EVENING,
    MovingClock,
    Received,
    Sink,
    free_port,
    report,
    running_bot,
    send,
    table,
)

BOT = """
[storage]
database = "{dir}/{name}.db"
[auth]
secret_file = "{dir}/{name}.secret"
[gpg]
home = "{dir}/{name}.gnupg"
[smtp_in]
port = {port}
[smtp_out]
port = {relay}
timeout = 5
[policy.p]
timezone = "Europe/Amsterdam"
[[inbox]]
name = "security"
address = "security@{domain}"
prefix = "{prefix}"
policy = "p"
[[staff]]
address = "staff@{domain}"
[limits]
acks_per_sender_per_hour = 3
acks_per_hour = {global_limit}
"""


def bot_config(tmp_path: Path, name: str, domain: str, port: int, relay: int,
               global_limit: int = 200) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(BOT.format(dir=tmp_path, name=name, domain=domain, port=port, relay=relay,
                               prefix=name.upper(), global_limit=global_limit))
    return path


async def quiet(dbs: list[Path], seconds: float = 1.5) -> None:
    """Wait until nothing moved in the databases for `seconds`."""
    sql = "SELECT (SELECT count(*) FROM inbound) + (SELECT count(*) FROM outbox WHERE status" \
          " != 'pending')"
    last: list[list[tuple[Any, ...]]] = []
    async with asyncio.timeout(60):
        while True:
            now = [table(db, sql) for db in dbs]
            if now == last:
                return
            last = now
            await asyncio.sleep(seconds)


@pytest.mark.sqlite_only("two bots, two databases: $MAILBOT_DATABASE names one")
async def test_two_bots_stop_after_one_exchange(tmp_path: Path) -> None:
    """Bot A acknowledges a report that came from bot B's address; B records A's automatic
    answer and sends nothing back: one exchange, then silence."""
    port_a, port_b = free_port(), free_port()
    a = load_config(bot_config(tmp_path, "a", "a.example", port_a, relay=port_b))
    b = load_config(bot_config(tmp_path, "b", "b.example", port_b, relay=port_a))
    clock = MovingClock(FRIDAY_EVENING)
    async with running_bot(a, clock), running_bot(b, clock):
        await send(port_a, report(sender="security@b.example", to="security@a.example"))
        await quiet([tmp_path / "a.db", tmp_path / "b.db"])
    # A: one case, its ack sent to B. B: that ack recorded as machine mail, never answered.
    assert table(tmp_path / "a.db", "SELECT count(*) FROM inbound") == [(1,)]
    assert table(tmp_path / "b.db", "SELECT status, reason FROM inbound") == [
        ("ignored", "auto-submitted: auto-replied")]
    assert table(tmp_path / "b.db", "SELECT count(*) FROM outbox") == [(0,)]


class Autoresponder:
    """Answers every mail with a fresh one: no Auto-Submitted, no X-Loop, no threading."""

    def __init__(self, bot_port: int) -> None:
        self.bot_port = bot_port
        self.got: list[Received] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.got.append(Received(str(envelope.mail_from), list(envelope.rcpt_tos),
                                 bytes(envelope.original_content or b"")))
        if envelope.rcpt_tos == ["robot@example.net"]:
            msg = EmailMessage()
            msg["From"], msg["To"] = "robot@example.net", "security@a.example"
            msg["Subject"] = f"I am away (reply {len(self.got)})"
            msg.set_content("I will read your mail when I am back.\n")
            asyncio.get_running_loop().create_task(send(self.bot_port, msg))
        return "250 OK"


async def test_naive_autoresponder_is_bounded_by_the_sender_limit(tmp_path: Path) -> None:
    """An autoresponder that marks nothing opens a new case each time; the per-sender limit
    stops the exchange after acks_per_sender_per_hour acknowledgements."""
    port, responder_port = free_port(), free_port()
    config = load_config(bot_config(tmp_path, "a", "a.example", port, relay=responder_port))
    responder = Autoresponder(port)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(responder, decode_data=False, loop=loop),
                                      "127.0.0.1", responder_port)
    try:
        async with running_bot(config, MovingClock(FRIDAY_EVENING)):
            await send(port, report(sender="robot@example.net", to="security@a.example"))
            await quiet([tmp_path / "a.db"])
    finally:
        server.close()
    acks = [r for r in responder.got if r.rcpt_tos == ["robot@example.net"]]
    assert len(acks) == 3
    # Each answer is still stored and opened a case; the 4th got no acknowledgement.
    assert table(tmp_path / "a.db", "SELECT count(*) FROM cases") == [(4,)]
    assert table(tmp_path / "a.db", "SELECT count(*) FROM events WHERE action ="
                 " 'acknowledgement withheld'") == [(1,)]


async def test_global_ack_limit_holds_across_senders(
    tmp_path: Path, sink: Sink, write_config: Callable[..., Path]
) -> None:
    """Past [limits] acks_per_hour, reports from new senders open cases (stored, threaded)
    but get no acknowledgement; their follow-ups still land on their cases."""
    path = write_config(sink.port)
    path.write_text(path.read_text()
                    + "\n[limits]\nacks_per_sender_per_hour = 2\nacks_per_hour = 3\n")
    async with running_bot(load_config(path), MovingClock(FRIDAY_EVENING)) as bot:
        for i in range(6):
            await bot.send(report(sender=f"r{i}@example.net", message_id=f"<g{i}@example.net>"))
        await bot.send(report(sender="r5@example.net", message_id="<g5-fu@example.net>",
                              subject="Re: more", In_Reply_To="<g5@example.net>"))
        await quiet([tmp_path / "mailbot.db"])
    db = tmp_path / "mailbot.db"
    acked = {r.rcpt_tos[0] for r in sink.received if r.rcpt_tos[0].startswith("r")}
    assert acked == {"r0@example.net", "r1@example.net", "r2@example.net"}
    assert table(db, "SELECT count(*) FROM cases") == [(6,)]
    assert table(db, "SELECT count(*) FROM events WHERE action = 'acknowledgement withheld'"
                 " AND detail LIKE '3 acknowledgements%'") == [(3,)]
    assert table(db, "SELECT count(DISTINCT case_id) FROM inbound WHERE message_id IN"
                 " ('<g5@example.net>', '<g5-fu@example.net>')") == [(1,)]
