"""Ingest benchmark: the floor, `mailbot import`, and the SMTP listener with acks to a sink.

    python bench/ingest.py --count 2000 --seed 1
    python bench/ingest.py --count 2000 --database throwaway --instances 2

Prints, for each path: mails/second, the ratio to the floor, p50/p99 latency from the
client's send to the acknowledgement accepted by the sink (SMTP paths), and peak RSS.
The floor is what any Python tool pays: parse each mail with the email package and commit
one SQLite row per mail (WAL, synchronous=FULL, as mailbot's intake does).

With `--database`, the SMTP flood runs again on PostgreSQL: with one instance, then with
2..N instances (`--instances N`), each a `mailbot run` child on its own port sharing the
database, the clients spread over their listeners. `--database throwaway` starts a cluster
of its own as the tests do (tests/pgserver.py: initdb in a temp dir, a loopback port);
`--database postgresql://…` uses that server, making (and dropping) a database per run.
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
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aiosmtplib
import psycopg
from aiosmtpd.smtp import SMTP, Envelope, Session
from corpus import generate, write
from psycopg import sql as pgsql

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
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


def write_config(work: Path, port: int, sink_port: int, database: str | None = None,
                 name: str = "bench") -> Path:
    """A config with STAFF staff members: each new case and follow-up notifies all of them.
    Instances of one database share the secret; each has a gpg home of its own."""
    staff = "".join(f'[[staff]]\naddress = "staff{i}@example.org"\n' for i in range(STAFF))
    path = work / f"{name}.toml"
    path.write_text(f"""
[storage]
database = "{database or work / 'bench.db'}"
[auth]
secret_file = "{work / 'secret'}"
[gpg]
home = "{work / f'gnupg-{name}'}"
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
        self.reports: set[str] = set()  # done when each of these is acknowledged
        self.acked = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = bytes(envelope.original_content or b"")
        head = raw.split(b"\r\n\r\n", 1)[0]
        if b"\r\nX-Mailbot-Kind:" in head:
            return "250 OK"  # a staff notification: the latency measured is the reporter's
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"in-reply-to:"):
                answered = line.split(b":", 1)[1].strip().decode()
                if answered in self.reports and answered not in self.arrived:
                    self.acked += 1
                self.arrived[answered] = time.perf_counter()
        if self.acked >= len(self.reports):
            self.done.set()
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def smtp_path(
    mails: list[bytes], work: Path, clients: int, rate: float | None,
    database: str | None = None, instances: int = 1,
) -> dict[str, float]:
    """Start `instances` `mailbot run` children on `database` (SQLite when None), send the
    corpus from `clients` concurrent clients spread over their listeners (paced at `rate`
    mails/s when given), wait for every report's ack at the sink."""
    sink = AckSink()
    reports = {}
    ids = {}  # parsed before the clock starts: the clients must not eat the daemon's CPU
    answers: dict[int, str] = {}  # a follow-up: the Message-ID of the mail it answers
    for raw in mails:
        msg = message_from_bytes(raw, policy=policy.compat32)
        ids[id(raw)] = str(msg["Message-ID"])
        if msg["In-Reply-To"]:
            answers[id(raw)] = str(msg["In-Reply-To"]).strip()
        else:
            reports[str(msg["Message-ID"])] = raw
    # As a reporter would: a follow-up is sent once the mail it answers has been answered
    # (8 clients taking the next mail at once would otherwise send both at the same moment,
    # and the follow-up, stored first, would open the case).
    answered = {ids[id(raw)]: asyncio.Event() for raw in mails}
    sink.reports = set(reports)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(sink, decode_data=False, loop=loop),
                                      "127.0.0.1", 0)
    sink_port = server.sockets[0].getsockname()[1]
    (work / "bench.db").unlink(missing_ok=True)
    ports: list[int] = []
    procs: list[asyncio.subprocess.Process] = []
    try:
        for n in range(instances):
            port = free_port()
            config = write_config(work, port, sink_port, database, f"bench-{n}")
            profile = ["-m", "cProfile", "-o", f"{PROFILE}.{n}" if n else PROFILE] \
                if PROFILE else []
            procs.append(await asyncio.create_subprocess_exec(
                sys.executable, *profile, "-m", "mailbot", "run", "--config", str(config),
                "--log-level", "warning",
            ))
            ports.append(port)
            # One at a time: the first applies the migrations, the others find them done.
            await _listening(port)
        sent_at: dict[str, float] = {}
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        for raw in mails:
            queue.put_nowait(raw)
        errors = 0
        replies: dict[str, int] = {}  # each error's text, counted: told at the end of the run
        interval = clients / rate if rate else 0.0

        async def client(port: int) -> None:
            nonlocal errors
            smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=30)
            await smtp.connect()
            while not queue.empty():
                raw = queue.get_nowait()
                if (parent := answers.get(id(raw))) in answered:
                    await answered[parent].wait()
                tick = time.perf_counter()
                sent_at[ids[id(raw)]] = tick
                try:
                    await smtp.sendmail("researcher@example.net", ["security@example.org"], raw)
                except aiosmtplib.SMTPException as e:
                    errors += 1
                    replies[str(e)[:120]] = replies.get(str(e)[:120], 0) + 1
                answered[ids[id(raw)]].set()
                if interval:
                    await asyncio.sleep(max(0.0, interval - (time.perf_counter() - tick)))
            await smtp.quit()

        start = time.perf_counter()
        await asyncio.gather(*(client(ports[i % instances]) for i in range(clients)))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(sink.done.wait(), 600)
        elapsed = time.perf_counter() - start
        rss = max(_peak_rss_mb(p.pid) for p in procs)  # of one instance
        cpu = sum(_cpu_seconds(p.pid) for p in procs)  # of all instances
    finally:  # the daemons end with the run, also when it is interrupted
        for p in procs:
            if p.returncode is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            await p.wait()
        server.close()
    for text, n in replies.items():
        print(f"  {n} x {text}", file=sys.stderr)
    latencies = sorted(sink.arrived[m] - sent_at[m] for m in reports if m in sink.arrived)
    missing = len(reports) - len(latencies)
    others = len(set(sink.arrived) - set(reports))
    if missing or others:
        print(f"  {missing} reports not acknowledged; {others} acknowledgements of mails"
              " that are not reports (a follow-up that opened a case)", file=sys.stderr)
    return {
        "rate": len(mails) / elapsed,
        "p50": statistics.median(latencies) if latencies else float("nan"),
        "p99": latencies[int(len(latencies) * 0.99) - 1] if latencies else float("nan"),
        "rss_mb": rss,
        "cores": cpu / elapsed,
        "errors": errors + missing,
    }


async def _listening(port: int) -> None:
    for _ in range(600):
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise SystemExit(f"mailbot did not listen on {port} within 30 s")


def _cpu_seconds(pid: int) -> float:
    """The CPU time (user + system) a live process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class Postgres:
    """Where the PostgreSQL runs go: a cluster of the bench's own (`throwaway`, started as
    the tests start one) or the server at a URL; each run gets a fresh database, dropped
    after it."""

    def __init__(self, spec: str) -> None:
        self.server = None
        if spec == "throwaway":
            from tests.pgserver import PgServer, available

            if why := available():
                raise SystemExit(f"--database throwaway: {why}")
            self.server = PgServer()
            self.server.start()
            self.url = self.server.url()
            self.where = f"a throwaway cluster on 127.0.0.1:{self.server.port}"
        else:
            from mailbot.store.pg import redact

            self.url = spec
            self.where = redact(spec)
        self.runs = 0

    def _admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.url, autocommit=True, connect_timeout=10)

    @contextlib.contextmanager
    def fresh(self) -> Iterator[str]:
        """A new empty database for one run: its URL."""
        self.runs += 1
        name = f"mailbot_bench_{os.getpid()}_{self.runs}"
        with self._admin() as c:
            c.execute(pgsql.SQL("CREATE DATABASE {}").format(pgsql.Identifier(name)))
        try:
            yield urlunsplit(urlsplit(self.url)._replace(path=f"/{name}"))
        finally:
            with self._admin() as c:
                c.execute(pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                          .format(pgsql.Identifier(name)))

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


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
    ap.add_argument("--database", metavar="postgresql://…|throwaway",
                    help="also run the SMTP flood on PostgreSQL: the server at this URL (a"
                         " database made and dropped per run), or a throwaway cluster")
    ap.add_argument("--instances", type=int, default=1,
                    help="with --database: the flood on 1..N instances sharing the database")
    args = ap.parse_args()
    if args.instances < 1 or (args.instances > 1 and not args.database):
        ap.error("--instances N needs --database (SQLite is one instance's database)")
    if args.database and args.database != "throwaway" \
            and not args.database.startswith(("postgresql://", "postgres://")):
        ap.error("--database: a postgresql:// URL or `throwaway`")
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
        flood = 0.0
        for label, clients, pace, subset in (
            (f"smtp, {args.clients} clients, flood", args.clients, None, mails),
            (f"smtp, paced {args.paced_rate:.0f}/s", 4, args.paced_rate,
             mails[: args.paced_count]),
        ):
            r = asyncio.run(smtp_path(subset, work, clients, pace))
            flood = flood or r["rate"]
            print(f"{label:<28}{r['rate']:>10.0f}{r['rate'] / fl:>9.2f}{r['p50'] * 1000:>9.0f}"
                  f"{r['p99'] * 1000:>9.0f}{r['rss_mb']:>8.0f}{r['errors']:>8}")
        figures = {"floor": round(fl), "sqlite": round(flood)}
        if args.database:
            figures |= on_postgres(args.database, args.instances, mails, work, args.clients,
                                   flood)
        print(json.dumps(figures))


def on_postgres(database: str, instances: int, mails: list[bytes], work: Path, clients: int,
                sqlite_rate: float) -> dict[str, int]:
    """The SMTP flood again on PostgreSQL, with 1..`instances` instances; each row's rate
    against SQLite's flood of this run, and (past one instance) against one instance."""
    pg = Postgres(database)
    figures = {}
    try:
        print(f"\nthe flood on PostgreSQL ({pg.where}), {clients} clients spread over the"
              " instances' listeners; cores: the instances' CPU seconds per second")
        print(f"{'path':<28}{'mails/s':>10}{'x sqlite':>9}{'p50 ms':>9}{'p99 ms':>9}"
              f"{'RSS MB':>8}{'errors':>8}{'x 1 inst':>9}{'cores':>7}")
        one = 0.0
        for n in range(1, instances + 1):
            with pg.fresh() as url:
                r = asyncio.run(smtp_path(mails, work, clients, None, url, n))
            one = one or r["rate"]
            label = f"postgresql, {n} instance{'s' if n > 1 else ''}"
            print(f"{label:<28}{r['rate']:>10.0f}{r['rate'] / sqlite_rate:>9.2f}"
                  f"{r['p50'] * 1000:>9.0f}{r['p99'] * 1000:>9.0f}{r['rss_mb']:>8.0f}"
                  f"{r['errors']:>8}{r['rate'] / one:>9.2f}{r['cores']:>7.2f}")
            figures[f"postgresql_{n}"] = round(r["rate"])
    finally:
        pg.close()
    return figures


if __name__ == "__main__":
    main()
