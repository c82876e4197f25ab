"""A real `mailbot run` child process, clients that behave like sending MTAs, and a ledger
of what each client was told, checked against the database and the relay at the end."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import signal
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
from aiosmtpd.smtp import SMTP

from tests.support import Received, Sink, report, start_daemon, table

STAFF = ("alice@example.org", "bob@example.org")


@dataclass(frozen=True)
class Sent:
    message_id: str
    sender: str
    kind: str  # report | follow-up
    report_id: str  # the report it belongs to (itself for a report)
    digest: str  # of the bytes sent, line ends as LF (SMTP carries them as CRLF)


@dataclass
class Ledger:
    """What the clients were told: a mail is in `accepted` only once it got 250."""

    accepted: dict[str, Sent] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)  # 5xx: must stay empty
    retries: int = 0  # 4xx, refused connections and hang-ups, each retried


class Daemon:
    """`mailbot run --config F` in a child process that the test may SIGKILL and restart."""

    def __init__(self, config: Path, port: int, log: Path) -> None:
        self.config, self.port, self.log = config, port, log
        self.proc: asyncio.subprocess.Process | None = None
        self.kills = 0

    async def start(self) -> None:
        self.proc = await start_daemon(self.config, self.port, log=self.log)

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()
        self.kills += 1

    async def stop(self) -> int:
        """SIGTERM; the exit code."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.proc.wait(), 30)

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def workload(reporters: int, follow_ups: int, clients: int,
             rng: random.Random) -> list[list[tuple[EmailMessage, Sent]]]:
    """Per client, its mails in the order it sends them: each reporter's report before
    its follow-ups, which answer the report by In-Reply-To."""
    plans: list[list[tuple[EmailMessage, Sent]]] = [[] for _ in range(clients)]
    for i in range(reporters):
        sender = f"r{i}@example.net"
        rid = f"<rep-{i}@example.net>"
        mails = [report(subject=f"Finding {i}: injection in endpoint {i}", sender=sender,
                        body=f"Proof of concept {i}: reflected parameter number {i}.\n",
                        message_id=rid)]
        for j in range(follow_ups):
            mails.append(report(subject=f"Re: Finding {i}: injection in endpoint {i}",
                                sender=sender, message_id=f"<fu-{i}-{j}@example.net>",
                                body=f"Follow-up {j} of reporter {i}: more detail here.\n",
                                In_Reply_To=rid))
        plan = plans[i % clients]
        for n, msg in enumerate(mails):
            sent = Sent(str(msg["Message-ID"]), sender, "follow-up" if n else "report", rid,
                        _lf_digest(msg.as_bytes()))
            # Follow-ups go anywhere after their report, interleaved with other reporters.
            start = 0 if n == 0 else next(k for k, (_, s) in enumerate(plan)
                                          if s.message_id == rid) + 1
            plan.insert(rng.randint(start, len(plan)), (msg, sent))
    return plans


def _lf_digest(raw: bytes) -> str:
    return hashlib.sha256(raw.replace(b"\r\n", b"\n")).hexdigest()


async def client(port: int | Callable[[], int], plan: list[tuple[EmailMessage, Sent]],
                 ledger: Ledger, pause: float = 0.1) -> None:
    """Send like an MTA: a mail not answered 250 (4xx, refused, hung up) is sent again.
    `port` may pick a listener for each try (an MTA with several MX hosts)."""
    for msg, sent in plan:
        raw = msg.as_bytes()
        while True:
            where = port() if callable(port) else port
            try:
                async with aiosmtplib.SMTP(hostname="127.0.0.1", port=where, timeout=15) as smtp:
                    await smtp.sendmail(sent.sender, ["security@example.org"], raw)
                ledger.accepted[sent.message_id] = sent
                break
            except aiosmtplib.SMTPResponseException as e:
                if e.code >= 500:
                    ledger.refused.append(f"{sent.message_id}: {e.code} {e.message}")
                    break
            except (aiosmtplib.SMTPException, OSError):
                pass
            ledger.retries += 1
            await asyncio.sleep(pause)


async def killer(daemon: Daemon, kills: int, rng: random.Random, spread: float) -> None:
    """SIGKILL the daemon `kills` times at random moments, restarting it each time; the
    pauses average `spread` seconds, so the kills fall in intake, processing and sending."""
    for _ in range(kills):
        await asyncio.sleep(rng.uniform(0.0, 2 * spread))
        await daemon.kill()
        await daemon.start()


async def settle(db: Path | str, timeout: float) -> None:
    """Wait until nothing is pending: no inbound mail, no outgoing mail due."""
    async with asyncio.timeout(timeout):
        while True:
            with contextlib.suppress(Exception):  # the daemon may hold the write lock
                rows = table(db, "SELECT (SELECT count(*) FROM inbound WHERE status = 'pending')"
                                 " + (SELECT count(*) FROM outbox WHERE status = 'pending')")
                if rows == [(0,)]:
                    return
            await asyncio.sleep(0.2)


def check_ledger(db: Path | str, ledger: Ledger) -> None:
    """Every mail that got 250 is stored once and handled; each report opened one case and
    each follow-up is on its report's case."""
    assert not ledger.refused, ledger.refused[:3]
    stored = {mid: (status, _lf_digest(raw), case) for mid, status, raw, case in table(
        db, "SELECT message_id, status, raw, case_id FROM inbound")}
    assert len(stored) == len(table(db, "SELECT id FROM inbound")), "a mail stored twice"
    missing = [m for m in ledger.accepted if m not in stored]
    assert not missing, f"answered 250 but not stored: {missing[:5]}"
    for mid, sent in ledger.accepted.items():
        status, digest, _ = stored[mid]
        assert digest == sent.digest, f"{mid}: stored bytes differ from the bytes sent"
        assert status == "done", f"{mid}: {status}"
    case_of = {mid: case for mid, (_, _, case) in stored.items()}
    reports = [s for s in ledger.accepted.values() if s.kind == "report"]
    cases = dict(table(db, "SELECT id, reporter FROM cases"))
    assert len(cases) == len(reports)
    assert len({case_of[s.message_id] for s in reports}) == len(reports)
    for s in ledger.accepted.values():
        assert case_of[s.message_id] == case_of[s.report_id], f"{s.message_id} on wrong case"
        assert cases[case_of[s.message_id]] == s.sender
    kinds = dict(table(db, "SELECT message_id, kind FROM messages WHERE direction = 'in'"))
    assert all(kinds.get(m) == s.kind for m, s in ledger.accepted.items())


def check_relay(db: Path | str, received: list[Received], ledger: Ledger, kills: int) -> int:
    """Each case's reporter got exactly one acknowledgement, each staff member one notice
    per mail, and every queued mail arrived. Returns the copies sent again: only a kill
    between the relay's 250 and the record of it can cause one (at least once, the same
    Message-ID), so there are at most as many as kills. (The sent journal narrows that
    window to the relay's answer in flight; see outbox.py.)"""
    ids = Counter(str(r.msg["Message-ID"]) for r in received)
    queued = dict(table(db, "SELECT message_id, status FROM outbox"))
    assert set(ids) == set(queued), "relay and outbox disagree"
    assert set(queued.values()) == {"sent"}
    refs = dict(table(db, "SELECT reporter, ref FROM cases"))
    for sender in {s.sender for s in ledger.accepted.values()}:
        acks = {str(r.msg["Message-ID"]) for r in received if r.rcpt_tos == [sender]}
        assert len(acks) == 1, f"{sender}: {len(acks)} acknowledgements"
        (ack,) = [r for r in received if r.rcpt_tos == [sender]][:1]
        assert refs[sender] in str(ack.msg["Subject"])
    for staff in STAFF:
        notices = {str(r.msg["Message-ID"]) for r in received if r.rcpt_tos == [staff]}
        assert len(notices) == len(ledger.accepted), staff
    again = sum(ids.values()) - len(ids)
    assert again <= kills, f"{again} mails sent twice in {kills} kills"
    return again


@contextlib.asynccontextmanager
async def relay(sink: Sink, port: int) -> AsyncIterator[None]:
    """The sink listening on a fixed port, for as long as the block runs (the relay up)."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(sink, decode_data=False, enable_SMTPUTF8=True, loop=loop),
        "127.0.0.1", port)
    try:
        yield
    finally:
        server.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 2)
