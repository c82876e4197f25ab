"""IMAP intake benchmark against a real IMAP server, as the tests run them.

    python bench/imap.py --count 5000 --latency 100 --server dovecot|pymap|silent

`dovecot`: Debian's dovecot-imapd; `pymap`: pymap from PyPI (pure Python, a second
implementation); `silent`: Dovecot behind tests/imap_proxy.py, which withholds every IDLE
notice (as Courier without enhanced IDLE and Cyrus without idled do), so only the watcher's
look every `--idle-check` seconds finds new mail.

Prints the initial sync rate (messages already in the folder when the daemon starts:
stored per second, and processed into cases per second) and the new-mail latency: from the
start of another client's APPEND to the case in the database, p50/p99. Targets: at least
200 messages/s initial sync (Dovecot), p99 under 1 s where IDLE reports new mail and under
idle_check + 1 s everywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mailbot import daemon
from mailbot.config import load_config
from tests.dovecot import PASSWORD, Dovecot, ImapServer
from tests.imap_proxy import ImapProxy
from tests.pymap_server import Pymap
from tests.support import report

CONFIG = """
[storage]
database = "{work}/bench.db"
[auth]
secret_file = "{work}/secret"
[smtp_in]
port = 0
[smtp_out]
maildir = "{work}/outbox"
[policy.security]
timezone = "Europe/Amsterdam"
[[inbox]]
name = "security"
address = "security@example.org"
prefix = "SEC"
policy = "security"
[inbox.imap]
host = "127.0.0.1"
port = {port}
tls = "none"
username = "{user}"
password_file = "{work}/pw"
poll_interval = 3600
idle_check = {idle_check}
[[staff]]
address = "alice@example.org"
"""


def mails(count: int, tag: str) -> list[bytes]:
    # One sender per mail: each opens its own case, acknowledged (no per-sender limit).
    return [report(subject=f"{tag} {i}", sender=f"r{i}@{tag}.example.net",
                   message_id=f"<{tag}-{i}@example.net>").as_bytes() for i in range(count)]


def count(db: Path, sql: str, params: tuple[object, ...] = ()) -> int:
    with sqlite3.connect(db, timeout=10) as conn:
        return int(conn.execute(sql, params).fetchone()[0])


async def wait_for(db: Path, sql: str, want: int, params: tuple[object, ...] = (),
                   every: float = 0.002) -> float:
    while await asyncio.to_thread(count, db, sql, params) < want:  # noqa: ASYNC110
        await asyncio.sleep(every)
    return time.perf_counter()


async def bench(server: ImapServer, port: int, work: Path, n: int, latencies: int,
                idle_check: float) -> None:
    user = server.add_user()
    (work / "pw").write_text(PASSWORD)
    (work / "mailbot.toml").write_text(CONFIG.format(work=work, port=port, user=user,
                                                     idle_check=idle_check))
    config = load_config(work / "mailbot.toml")
    db = config.storage.database
    print(f"appending {n} messages to {server.name}...", file=sys.stderr)
    await asyncio.to_thread(server.append, user, mails(n, "sync"))

    stop = asyncio.Event()
    start = time.perf_counter()
    ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(daemon.run(config, stop=stop, on_ready=ready.set_result))
    try:
        await ready
        await wait_for(db, "SELECT count(*) FROM imap_messages WHERE marked = 1", n, every=0.01)
        stored = time.perf_counter() - start
        await wait_for(db, "SELECT count(*) FROM inbound WHERE status = 'done'", n, every=0.01)
        processed = time.perf_counter() - start
        print(f"initial sync, {n} messages: stored and marked in {stored:.2f}s"
              f" ({n / stored:.0f} msg/s); processed into cases in {processed:.2f}s"
              f" ({n / processed:.0f} msg/s)")

        # Steady state: the acknowledgements and notifications of the sync are sent.
        await wait_for(db, "SELECT count(*) = 0 FROM outbox WHERE status = 'pending'", 1,
                       every=0.1)
        took = []
        for i, raw in enumerate(mails(latencies, "late")):
            await asyncio.sleep(0.05)  # the watcher is back in IDLE
            t0 = time.perf_counter()
            await asyncio.to_thread(server.append, user, [raw])
            done = await wait_for(db, "SELECT count(*) FROM inbound WHERE message_id = ?"
                                      " AND case_id IS NOT NULL", 1, (f"<late-{i}@example.net>",))
            took.append(done - t0)
        slowest = max(range(len(took)), key=took.__getitem__)
        took.sort()
        p50 = statistics.median(took)
        p99 = took[min(len(took) - 1, int(len(took) * 0.99))]
        print(f"new-mail latency (APPEND by another client -> case in the database),"
              f" {latencies} mails: p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms,"
              f" max {took[-1] * 1000:.0f} ms")
        print("slowest:", ", ".join(f"{t * 1000:.0f}" for t in took[-5:]), "ms; the slowest"
              f" was mail {slowest}", file=sys.stderr)
    finally:
        stop.set()
        await task


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=5000, help="messages waiting at the start")
    ap.add_argument("--latency", type=int,
                    help="new mails timed one by one (default: 100, at most a quarter of"
                         " --count: each takes Dovecot's half second)")
    ap.add_argument("--server", choices=("dovecot", "pymap", "silent"), default="dovecot")
    ap.add_argument("--idle-check", type=float, default=10.0,
                    help="the watcher's idle_check, seconds (0: trust IDLE)")
    args = ap.parse_args()
    if args.latency is None:
        args.latency = max(1, min(100, args.count // 4))
    server: ImapServer = Pymap() if args.server == "pymap" else Dovecot()
    server.start()
    proxy = ImapProxy(server.port, silent_idle=True) if args.server == "silent" else None
    print(f"server: {args.server}, idle_check {args.idle_check:g}s")
    try:
        with tempfile.TemporaryDirectory(prefix="mailbot-bench-imap-") as work:
            asyncio.run(bench(server, proxy.port if proxy else server.port, Path(work),
                              args.count, args.latency, args.idle_check))
    finally:
        if proxy:
            proxy.close()
        server.close()


if __name__ == "__main__":
    main()
