"""Test helpers: a real relay sink, a daemon on loopback, a moving clock, mail builders."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib
import psycopg
from aiosmtpd.smtp import SMTP, Envelope, Session

from mailbot import daemon
from mailbot.config import Config, load_config
from mailbot.store import Store, open_store
from mailbot.store.db import is_postgres
from mailbot.store.pg import bind, translate

FIXTURES = Path(__file__).parent / "fixtures"


class MovingClock:
    """Starts at a chosen moment and runs at real speed; `advance` jumps ahead."""

    def __init__(self, start: datetime) -> None:
        self.start = start
        self.t0 = time.monotonic()
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return self.start + self.offset + timedelta(seconds=time.monotonic() - self.t0)

    def advance(self, delta: timedelta) -> None:
        self.offset += delta


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes

    @property
    def msg(self) -> EmailMessage:
        return message_from_bytes(self.raw, policy=policy.default)


def plain_text(msg: EmailMessage) -> str:
    """The text of the mail's text/plain body; a mail without one fails the test."""
    part = msg.get_body(("plain",))
    assert part is not None, "no text/plain body"
    text = part.get_content()
    assert isinstance(text, str)
    return text


@dataclass
class Sink:
    """An SMTP server standing in for the relay: it keeps what it is given."""

    port: int = 0
    received: list[Received] = field(default_factory=list)
    refuse_with: str | None = None  # e.g. "451 4.3.0 try later" while the relay is "down"
    _cond: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.refuse_with:
            return self.refuse_with
        async with self._cond:
            self.received.append(Received(str(envelope.mail_from), list(envelope.rcpt_tos),
                                          bytes(envelope.original_content or b"")))
            self._cond.notify_all()
        return "250 OK"

    def to(self, address: str | None) -> list[Received]:
        """What was sent to `address` (everything when None)."""
        return [r for r in self.received if address is None or address in r.rcpt_tos]

    async def wait_for(
        self, count: int, timeout: float = 10.0, to: str | None = "researcher@example.net"
    ) -> list[Received]:
        """Wait until `count` mails went to `to` (by default the usual reporter); return them."""
        async with self._cond:
            await asyncio.wait_for(
                self._cond.wait_for(lambda: len(self.to(to)) >= count), timeout
            )
        return self.to(to)


CONFIG = """
[storage]
database = "{db}"

[auth]
secret_file = "{db}.secret"

[gpg]
home = "{db}.gnupg"

[smtp_in]
host = "127.0.0.1"
port = 0
protocol = "{protocol}"
max_message_size = "{max_size}"

[smtp_out]
host = "127.0.0.1"
port = {sink_port}
timeout = 5

[policy.security]
timezone = "Europe/Amsterdam"
holidays = "NL"
first_response = "3 business days"
resolution = "30 days"
warn_before = "1 business day"

[policy.support]
timezone = "Europe/Brussels"
holidays = "BE"
first_response = "5 business days"
resolution = "30 days"

[[inbox]]
name = "security"
address = "security@example.org"
prefix = "SEC"
policy = "security"
language = "en"

[[inbox]]
name = "support"
address = "support@example.org"
prefix = "SUP"
policy = "support"
language = "nl"

[[staff]]
address = "alice@example.org"
role = "lead"

[[staff]]
address = "bob@example.org"
role = "member"
"""


@dataclass
class Bot:
    config: Config
    port: int
    clock: MovingClock
    store: Store | None = None

    async def send(self, msg: EmailMessage | bytes, *, mail_from: str | None = None,
                   to: list[str] | None = None, timeout: float = 10) -> Any:
        return await send(self.port, msg, mail_from=mail_from, to=to, timeout=timeout)

    async def open_store(self) -> Store:
        if self.store is None:
            self.store = await open_store(self.config.storage)
        return self.store


async def send(port: int, msg: EmailMessage | bytes, *, mail_from: str | None = None,
               to: list[str] | None = None, timeout: float = 10) -> Any:
    """Send over SMTP to 127.0.0.1:port; envelope from the headers unless given."""
    if isinstance(msg, EmailMessage):
        if mail_from is None:
            mail_from = str(msg["From"].addresses[0].addr_spec)
        to = to or [a.addr_spec for a in msg["To"].addresses]
        raw = msg.as_bytes()
    else:
        raw = msg
    assert mail_from is not None and to
    # The SMTP object, not aiosmtplib.send(), which refuses the null return path "<>".
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=timeout) as smtp:
        return await smtp.sendmail(mail_from, to, raw)


# Friday 18 December 2026, 18:00 in Amsterdam: after office hours, before Christmas.
FRIDAY_EVENING = datetime(2026, 12, 18, 17, 0, tzinfo=UTC)


@contextlib.asynccontextmanager
async def running_bot(
    config: Config, clock: MovingClock, dkim_dns: Callable[..., bytes | None] | None = None
) -> AsyncIterator[Bot]:
    stop = asyncio.Event()
    ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(daemon.run(config, clock=clock, stop=stop,
                                          on_ready=ready.set_result, dkim_dns=dkim_dns))
    port = await asyncio.wait_for(asyncio.shield(ready), 10)
    b = Bot(config, port, clock)
    try:
        yield b
    finally:
        if b.store is not None:
            await b.store.close()
        stop.set()
        await asyncio.wait_for(task, 15)


def report(subject: str = "XSS in /search", sender: str = "researcher@example.net",
           to: str = "security@example.org", body: str = "The q parameter is reflected.\n",
           message_id: str | None = "<report-1@example.net>", **headers: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = f"Rita Researcher <{sender}>"
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = "Fri, 18 Dec 2026 17:55:00 +0100"
    if message_id:
        msg["Message-ID"] = message_id
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    return msg


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def start_daemon(config: Path, port: int, *, paused: bool = False,
                       log: Path | None = None) -> asyncio.subprocess.Process:
    """`mailbot run` as a child process, returned once it listens on `port`; its log is
    appended to `log` (or discarded)."""
    env = {k: v for k, v in os.environ.items() if k != "MAILBOT_TEST_PAUSE_WORKER"}
    if paused:
        env["MAILBOT_TEST_PAUSE_WORKER"] = "1"
    # A local file opened once per start: not worth a thread.
    out = open(log, "ab") if log else None  # noqa: ASYNC230, SIM115
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mailbot", "run", "--config", str(config), env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=out or asyncio.subprocess.DEVNULL,
        )
    finally:
        if out:
            out.close()
    for _ in range(400):
        if proc.returncode is not None:
            break
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return proc
        except OSError:
            await asyncio.sleep(0.05)
    if proc.returncode is None:
        proc.kill()
    raise AssertionError(f"daemon did not start listening on {port}")


class _Translating:
    """A psycopg connection that takes the store's `?` SQL, like sqlite3's."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[object] | Mapping[str, object] = ()) -> Any:
        text, numbered = translate(sql)
        if isinstance(params, Mapping):  # sqlite3's :name style
            return self.conn.execute(re.sub(r"(?<![:\w]):(\w+)", r"%(\1)s", text).encode(),
                                     params)
        return self.conn.execute(text.encode(), bind(params, numbered))


@contextlib.contextmanager
def direct(db: Path | str) -> Iterator[Any]:
    """A plain connection to the test's database, outside the daemon, committed at the end:
    `db` when it is a PostgreSQL URL, else (with `--backend postgresql`) the database
    $MAILBOT_DATABASE names, else the SQLite file `db`. Both take the same SQL
    (`execute(sql, params)`, then fetchone/fetchall)."""
    url = str(db) if is_postgres(db) else os.environ.get("MAILBOT_DATABASE", "")
    if is_postgres(url):
        with psycopg.connect(url) as pg:
            yield _Translating(pg)
        return
    with contextlib.closing(sqlite3.connect(db, timeout=10)) as conn, conn:
        yield conn


def table(db: Path | str, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
    """Run one statement on the test's database (see `direct`); its rows."""
    with direct(db) as conn:
        cur = conn.execute(sql, params)
        return [tuple(r) for r in cur.fetchall()] if cur.description else []


def _text_of(r: Received) -> str:
    """Headers and every decodable text part of a mail the sink received."""
    msg = r.msg
    out = [f"{k}: {v}" for k, v in msg.items()]
    for part in msg.walk():
        if part.get_content_maintype() == "text":
            with contextlib.suppress(Exception):
                out.append(part.get_content())
    return "\n".join(out)


def leaks(received: list[Received], db: Path | str, config: Config) -> list[str]:
    """Mails that carry text of a case to someone who is neither staff nor its reporter.

    A case's text is its reference, its subject and the longer lines its reporter wrote;
    insiders are staff, the inboxes' notification lists and the digest's readers."""
    insiders = {s.address.lower() for s in config.staff} | {a.lower() for a in config.digest.to}
    for inbox in config.inboxes:
        insiders |= {a.lower() for a in inbox.notify}
    marks: dict[str, set[int]] = {}  # a text may belong to several cases (a common subject)
    reporters: dict[int, str] = {}
    for case_id, ref, reporter, subject in table(
            db, "SELECT id, ref, reporter, subject FROM cases"):
        reporters[case_id] = reporter.lower()
        marks.setdefault(ref, set()).add(case_id)
        if len(subject) >= 16:
            marks.setdefault(subject, set()).add(case_id)
    for case_id, body in table(db, "SELECT case_id, body FROM messages WHERE direction = 'in'"
                                   " AND kind IN ('report', 'follow-up')"):
        for line in (body or "").splitlines():
            if len(line.strip()) >= 24:
                marks.setdefault(line.strip(), set()).add(case_id)
    if not marks:
        return []
    # One alternation, longest first, finds every case text in a mail in one pass.
    pattern = re.compile("|".join(re.escape(m) for m in sorted(marks, key=len, reverse=True)))
    found = []
    for r in received:
        texts = {m.group(0) for m in pattern.finditer(_text_of(r))}
        for rcpt in r.rcpt_tos:
            rcpt = rcpt.lower()
            if rcpt in insiders:
                continue
            found += [f"{rcpt} got {t[:40]!r} of case(s) {sorted(marks[t])}" for t in texts
                      if all(reporters[c] != rcpt for c in marks[t])]
    return found


def assert_confidential(received: list[Received], db: Path | str,
                        config: Config | Path) -> None:
    if isinstance(config, Path):
        config = load_config(config)
    problems = leaks(received, db, config)
    assert not problems, "confidentiality: " + "; ".join(problems[:5])
