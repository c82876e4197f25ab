"""Ingest benchmark: the floor, `mailbot import`, and the SMTP listener with acks to a sink.

    python bench/ingest.py --count 2000 --seed 1

Prints, for each path: mails/second, the ratio to the floor, p50/p99 latency from the
client's send to the acknowledgement accepted by the sink (SMTP paths), and peak RSS.
The floor is what any Python tool pays: parse each mail with the email package and commit
one SQLite row per mail (WAL, synchronous=FULL, as mailbot's intake does).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import mailbox
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from email import message_from_bytes, policy
from pathlib import Path

import aiosmtplib
from aiosmtpd.smtp import SMTP, Envelope, Session
from corpus import generate, write

ROOT = Path(__file__).resolve().parents[1]
PROFILE = os.environ.get("MAILBOT_BENCH_PROFILE")  # a file: run the daemon under cProfile
STAFF = 1  # set by --staff


def corpus(count: int, seed: int, out: Path) -> list[bytes]:
    """The mails of bench/corpus.py's mbox for this count and seed, as `import` reads it."""
    mbox = out / f"corpus-{count}-{seed}.mbox"
    if not mbox.exists():
        write(generate(count, seed), mbox)
    box = mailbox.mbox(mbox, factory=None, create=False)
    mails = [box.get_bytes(k) for k in box.iterkeys()]
    box.close()
    return mails


def floor(mails: list[bytes], work: Path) -> dict[str, float]:
    db = sqlite3.connect(work / "floor.db", isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = FULL")
    db.execute("CREATE TABLE m (id INTEGER PRIMARY KEY, message_id TEXT, subject TEXT, raw BLOB)")
    start = time.perf_counter()
    for raw in mails:
        msg = message_from_bytes(raw, policy=policy.default)
        body = msg.get_body(("plain", "html"))
        text = body.get_content() if body is not None else ""
        db.execute("BEGIN")
        db.execute("INSERT INTO m (message_id, subject, raw) VALUES (?, ?, ?)",
                   (str(msg["Message-ID"]), str(msg["Subject"]) + text[:0], raw))
        db.execute("COMMIT")
    elapsed = time.perf_counter() - start
    db.close()
    return {"rate": len(mails) / elapsed}


def write_config(work: Path, port: int, sink_port: int) -> Path:
    """A config with STAFF staff members: each new case and follow-up notifies all of them."""
    staff = "".join(f'[[staff]]\naddress = "staff{i}@example.org"\n' for i in range(STAFF))
    path = work / "bench.toml"
    path.write_text(f"""
[storage]
database = "{work / 'bench.db'}"
[auth]
secret_file = "{work / 'secret'}"
[gpg]
home = "{work / 'gnupg'}"
[limits]
acks_per_hour = 1000000   # every report acknowledged: the bench measures, it is no flood
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
{staff}""")
    return path


def import_path(mails_file: Path, work: Path) -> dict[str, float]:
    """`mailbot import` in a child process: wall time and the child's peak RSS."""
    config = write_config(work, 0, 1)
    (work / "bench.db").unlink(missing_ok=True)
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "mailbot", "import", str(mails_file), "--config", str(config),
         "--log-level", "warning"],
        capture_output=True, text=True, check=True,
    )
    elapsed = time.perf_counter() - start
    import resource

    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"elapsed": elapsed, "rss_mb": rss, "out": proc.stdout.strip()}  # type: ignore[dict-item]


class AckSink:
    """The relay: records when each acknowledgement arrived, by the report it answers."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.done = asyncio.Event()
        self.expected = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = bytes(envelope.original_content or b"")
        head = raw.split(b"\r\n\r\n", 1)[0]
        if b"\r\nX-Mailbot-Kind:" in head:
            return "250 OK"  # a staff notification: the latency measured is the reporter's
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"in-reply-to:"):
                self.arrived[line.split(b":", 1)[1].strip().decode()] = time.perf_counter()
        if len(self.arrived) >= self.expected:
            self.done.set()
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def smtp_path(
    mails: list[bytes], work: Path, clients: int, rate: float | None
) -> dict[str, float]:
    """Start `mailbot run`, send the corpus from `clients` concurrent clients (paced at `rate`
    mails/s when given), wait for every report's ack at the sink."""
    sink = AckSink()
    reports = {}
    ids = {}  # parsed before the clock starts: the clients must not eat the daemon's CPU
    for raw in mails:
        msg = message_from_bytes(raw, policy=policy.compat32)
        ids[id(raw)] = str(msg["Message-ID"])
        if not msg["In-Reply-To"]:
            reports[str(msg["Message-ID"])] = raw
    sink.expected = len(reports)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(sink, decode_data=False, loop=loop),
                                      "127.0.0.1", 0)
    sink_port = server.sockets[0].getsockname()[1]
    port = free_port()
    (work / "bench.db").unlink(missing_ok=True)
    config = write_config(work, port, sink_port)
    profile = ["-m", "cProfile", "-o", PROFILE] if PROFILE else []
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *profile, "-m", "mailbot", "run", "--config", str(config),
        "--log-level", "warning",
    )
    for _ in range(200):
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            break
        except OSError:
            await asyncio.sleep(0.05)
    sent_at: dict[str, float] = {}
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for raw in mails:
        queue.put_nowait(raw)
    errors = 0
    interval = clients / rate if rate else 0.0

    async def client() -> None:
        nonlocal errors
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=30)
        await smtp.connect()
        while not queue.empty():
            raw = queue.get_nowait()
            tick = time.perf_counter()
            sent_at[ids[id(raw)]] = tick
            try:
                await smtp.sendmail("researcher@example.net", ["security@example.org"], raw)
            except aiosmtplib.SMTPException:
                errors += 1
            if interval:
                await asyncio.sleep(max(0.0, interval - (time.perf_counter() - tick)))
        await smtp.quit()

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(sink.done.wait(), 600)
    elapsed = time.perf_counter() - start
    rss = _peak_rss_mb(proc.pid)
    proc.send_signal(signal.SIGTERM)
    await proc.wait()
    server.close()
    latencies = sorted(sink.arrived[m] - sent_at[m] for m in reports if m in sink.arrived)
    missing = len(reports) - len(latencies)
    return {
        "rate": len(mails) / elapsed,
        "p50": statistics.median(latencies) if latencies else float("nan"),
        "p99": latencies[int(len(latencies) * 0.99) - 1] if latencies else float("nan"),
        "rss_mb": rss,
        "errors": errors + missing,
    }


def _peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--paced-rate", type=float, default=50.0)
    ap.add_argument("--paced-count", type=int,
                    help="mails of the paced run (default: 500, at most --count)")
    ap.add_argument("--staff", type=int, default=1,
                    help="staff members notified of each mail (0: acknowledgements only)")
    args = ap.parse_args()
    if args.paced_count is None:
        args.paced_count = min(500, args.count)
    global STAFF
    STAFF = args.staff
    os.chdir(ROOT)
    with tempfile.TemporaryDirectory(prefix="mailbot-bench-") as tmp:
        work = Path(tmp)
        mails = corpus(args.count, args.seed, work)
        mbox = work / f"corpus-{args.count}-{args.seed}.mbox"
        print(f"corpus: {len(mails)} mails (bench/corpus.py --count {args.count}"
              f" --seed {args.seed}), {args.staff} staff notified")
        fl = floor(mails, work)["rate"]
        print(f"{'path':<28}{'mails/s':>10}{'x floor':>9}{'p50 ms':>9}{'p99 ms':>9}"
              f"{'RSS MB':>8}{'errors':>8}")
        print(f"{'floor (parse + 1 commit)':<28}{fl:>10.0f}{1:>9.2f}")
        imp = import_path(mbox, work)
        rate = len(mails) / imp["elapsed"]
        print(f"{'mailbot import':<28}{rate:>10.0f}{rate / fl:>9.2f}{'':>9}{'':>9}"
              f"{imp['rss_mb']:>8.0f}{0:>8}")
        for label, clients, pace, subset in (
            (f"smtp, {args.clients} clients, flood", args.clients, None, mails),
            (f"smtp, paced {args.paced_rate:.0f}/s", 4, args.paced_rate,
             mails[: args.paced_count]),
        ):
            r = asyncio.run(smtp_path(subset, work, clients, pace))
            print(f"{label:<28}{r['rate']:>10.0f}{r['rate'] / fl:>9.2f}{r['p50'] * 1000:>9.0f}"
                  f"{r['p99'] * 1000:>9.0f}{r['rss_mb']:>8.0f}{r['errors']:>8}")
        print(json.dumps({"floor": round(fl)}))


if __name__ == "__main__":
    main()
