"""Load: 10,000 mails over SMTP from 20 clients while the scheduler sweeps 10,000 open cases.

    python bench/load.py [--count 10000] [--clients 20] [--cases COUNT]

Pre-seeds the database with open cases whose deadlines lie around now (so each minute's
sweep has work: warnings, breaches, summaries), starts `mailbot run` as a child process,
sends reports (and one follow-up per four reports) from concurrent clients, and waits for
every report's acknowledgement at a sink standing in for the relay. Prints throughput,
p50/p99 from the client's send to the ack accepted by the sink, the daemon's peak RSS, the
sweeps that ran during the load, and errors (SMTP errors + acks missing + ERROR log lines).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
from aiosmtpd.smtp import SMTP, Envelope, Session
from ingest import _peak_rss_mb, free_port
from sweep import fill

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mailbot.store import Store

CONFIG = """
[storage]
database = "{work}/load.db"
[auth]
secret_file = "{work}/secret"
[gpg]
home = "{work}/gnupg"
[smtp_in]
port = {port}
[smtp_out]
port = {sink_port}
[policy.security]
timezone = "Europe/Amsterdam"
[[inbox]]
name = "security"
address = "security@example.org"
prefix = "SEC"
policy = "security"
[[staff]]
address = "alice@example.org"
role = "lead"
[[staff]]
address = "carol@example.org"
role = "manager"
[limits]
acks_per_hour = 1000000   # every report acknowledged: the bench measures, it is no flood
[escalation]
interval = "1 minute"
"""


class LoadSink:
    """The relay: when each expected acknowledgement arrived, keyed by the report's id."""

    def __init__(self, expected: set[str]) -> None:
        self.expected = expected
        self.arrived: dict[str, float] = {}
        self.other = 0  # notifications and escalations
        self.done = asyncio.Event()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        head = bytes(envelope.original_content or b"").split(b"\r\n\r\n", 1)[0]
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"in-reply-to:"):
                key = line.split(b":", 1)[1].strip().decode()
                if key in self.expected and b"\r\nX-Mailbot-Kind:" not in head:
                    self.arrived[key] = time.perf_counter()
                    if len(self.arrived) == len(self.expected):
                        self.done.set()
                    return "250 OK"
        self.other += 1
        return "250 OK"


def mails(count: int) -> list[tuple[str, EmailMessage]]:
    out = []
    for i in range(count):
        msg = EmailMessage()
        follow_up = i % 5 == 4
        reporter = i - 1 if follow_up else i
        msg["From"] = f"r{reporter}@example.net"
        msg["To"] = "security@example.org"
        msg["Subject"] = f"{'Re: ' if follow_up else ''}Finding {reporter}"
        msg["Message-ID"] = f"<load-{i}@example.net>"
        if follow_up:
            msg["In-Reply-To"] = f"<load-{reporter}@example.net>"
        msg.set_content(f"Details of finding {reporter}.\n")
        out.append((f"r{reporter}@example.net", msg))
    return out


async def run(work: Path, count: int, clients: int, cases: int) -> None:
    port = free_port()
    traffic = mails(count)
    reports = {str(m["Message-ID"]) for _, m in traffic if not m["In-Reply-To"]}
    sink = LoadSink(reports)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(sink, decode_data=False, loop=loop),
                                      "127.0.0.1", 0)
    config = work / "load.toml"
    config.write_text(CONFIG.format(work=work, port=port,
                                    sink_port=server.sockets[0].getsockname()[1]))
    store = await Store.open(work / "load.db")
    await store.close()
    fill(work / "load.db", cases, datetime.now(UTC))
    log = work / "daemon.log"
    with open(log, "wb") as err:  # noqa: ASYNC230 (once, before the clock starts)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mailbot", "run", "--config", str(config), stderr=err)
    for _ in range(600):
        with contextlib.suppress(OSError):
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            break
        await asyncio.sleep(0.05)
    queue: asyncio.Queue[tuple[str, EmailMessage]] = asyncio.Queue()
    for item in traffic:
        queue.put_nowait(item)
    sent_at: dict[str, float] = {}
    errors = 0

    async def client() -> None:
        nonlocal errors
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=60) as smtp:
            while not queue.empty():
                sender, msg = queue.get_nowait()
                sent_at[str(msg["Message-ID"])] = time.perf_counter()
                try:
                    await smtp.sendmail(sender, ["security@example.org"], msg.as_bytes())
                except aiosmtplib.SMTPException as e:
                    errors += 1
                    print(f"smtp error: {e}", file=sys.stderr)

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(sink.done.wait(), 900)
    elapsed = time.perf_counter() - start
    rss = _peak_rss_mb(proc.pid)
    proc.send_signal(signal.SIGTERM)
    await proc.wait()
    server.close()
    text = log.read_text(errors="replace")
    bad = [line for line in text.splitlines() if " ERROR " in line or "Traceback" in line]
    if bad:  # the first error with what follows it (a traceback)
        lines = text.splitlines()
        first = lines.index(bad[0])
        print("\n".join(lines[first:first + 30]), file=sys.stderr)
    log_errors = len(bad)
    sweeps = text.count("escalation sweep queued")
    latencies = sorted(sink.arrived[m] - sent_at[m] for m in sink.arrived)
    missing = len(reports) - len(latencies)
    print(f"{count} mails ({len(reports)} reports) from {clients} clients, {cases} open cases"
          f" swept (sweeps that queued mail: {sweeps})")
    print(f"throughput      {count / elapsed:8.0f} mails/s  ({elapsed:.1f} s to the last ack)")
    print(f"time to ack p50 {statistics.median(latencies):8.2f} s")
    print(f"time to ack p99 {latencies[max(0, int(len(latencies) * 0.99) - 1)]:8.2f} s")
    print(f"peak RSS        {rss:8.0f} MB (the daemon)")
    print(f"other mail      {sink.other:8d} (staff notifications, escalations)")
    print(f"errors          {errors + missing + log_errors:8d} (smtp {errors}, acks missing "
          f"{missing}, log {log_errors})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", "--mails", dest="mails", type=int, default=10_000,
                    help="mails sent (4 reports to 1 follow-up)")
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--cases", type=int, help="open cases pre-seeded (default: --count)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="mailbot-load-") as tmp:
        asyncio.run(run(Path(tmp), args.mails, args.clients, args.cases or args.mails))


if __name__ == "__main__":
    main()
