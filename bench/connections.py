"""Listener under many connections: idle sessions beside a paced sender, and many large
DATA transfers at once, against `mailbot run` in a child process.

    python bench/connections.py                 # both, at the issue's sizes (--count 1000)
    python bench/connections.py --only idle --count 1000 --rate 20
    python bench/connections.py --only big --count 1000 --big-mb 20

`--count N`: N idle sessions, N/5 paced mails, N/10 large transfers.

Prints, for the idle run: how many idle sessions the listener held and refused, and the
paced sender's time from connect to the `250` after DATA (p50, p99, max). It runs twice:
with `max_connections` raised above the idle count (the idle sessions come from 50 loopback
addresses, 20 each), and with the defaults (all idle sessions from one address, so the
per-address cap leaves room). For the large run: how many transfers got `250` (or 4xx),
the time taken and the daemon's peak RSS (VmHWM). The open-file soft limit of this process
(and so of the daemon) is raised to the hard limit first.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

CRLF = b"\r\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(work: Path, port: int, smtp_in: str) -> Path:
    path = work / "bench.toml"
    path.write_text(f"""
[storage]
database = "{work / 'bench.db'}"
[auth]
secret_file = "{work / 'secret'}"
[gpg]
home = "{work / 'gnupg'}"
[limits]
acks_per_hour = 1000000
[smtp_in]
port = {port}
max_message_size = "25MB"
{smtp_in}
[smtp_out]
maildir = "{work / 'outbox'}"
[policy.security]
timezone = "Europe/Amsterdam"
[[inbox]]
name = "security"
address = "security@example.org"
prefix = "SEC"
policy = "security"
[[staff]]
address = "staff@example.org"
""")
    return path


class Daemon:
    """`mailbot run` in a child process on a fresh database."""

    def __init__(self, smtp_in: str = "") -> None:
        self.work = Path(tempfile.mkdtemp(prefix="mailbot-bench-conn-"))
        self.port = free_port()
        self.config = write_config(self.work, self.port, smtp_in)
        self.proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> Daemon:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mailbot", "run", "--config", str(self.config),
            "--log-level", "warning", stderr=open(self.work / "daemon.log", "wb"),  # noqa: SIM115, ASYNC230
        )
        for _ in range(400):
            with contextlib.suppress(OSError):
                _, w = await asyncio.open_connection("127.0.0.1", self.port)
                w.close()
                return self
            await asyncio.sleep(0.05)
        raise RuntimeError("mailbot did not start listening")

    async def __aexit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.terminate()
        await self.proc.wait()

    def peak_rss_mb(self) -> float:
        assert self.proc is not None
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def log_lines(self, word: str) -> int:
        return sum(word in line for line in (self.work / "daemon.log").read_text().splitlines())


async def reply(reader: asyncio.StreamReader) -> bytes:
    while True:
        line = await reader.readline()
        if not line or line[3:4] != b"-":
            return line


async def transaction(port: int, body: bytes, source: str = "127.0.0.1",
                      chunk: int = 1 << 20) -> tuple[bytes, float]:
    """One mail on a new connection: the final reply and the time from connect to it."""
    start = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    try:
        greeting = await reply(reader)
        if not greeting.startswith(b"220"):
            return greeting, time.perf_counter() - start
        writer.write(b"EHLO bench.example.net\r\nMAIL FROM:<researcher@example.net>\r\n"
                     b"RCPT TO:<security@example.org>\r\nDATA\r\n")
        for _ in range(4):
            last = await reply(reader)
        if not last.startswith(b"354"):
            return last, time.perf_counter() - start
        for at in range(0, len(body), chunk):
            writer.write(body[at:at + chunk])
            await writer.drain()
        writer.write(b".\r\n")
        done = await reply(reader)
        elapsed = time.perf_counter() - start
        writer.write(b"QUIT\r\n")
        return done, elapsed
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def report_mail(i: int, size: int = 0) -> bytes:
    head = (f"From: researcher@example.net\r\nTo: security@example.org\r\nSubject: report {i}"
            f"\r\nMessage-ID: <bench-{i}-{time.time_ns()}@example.net>\r\n\r\n").encode()
    line = b"x" * 76 + CRLF
    return head + b"The q parameter is reflected.\r\n" + line * (size // len(line))


async def idle_run(smtp_in: str, idle: int, per_address: int, paced: int,
                   rate: float) -> None:
    async with Daemon(smtp_in) as daemon:
        held: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        refused = 0
        for i in range(idle):
            source = f"127.0.0.{2 + i // per_address}"
            try:
                r, w = await asyncio.open_connection("127.0.0.1", daemon.port,
                                                     local_addr=(source, 0))
            except OSError:
                refused += 1
                continue
            if (await reply(r)).startswith(b"220"):
                held.append((r, w))
            else:
                refused += 1
                w.close()
        times: list[float] = []
        errors = 0
        start = time.perf_counter()
        tasks = []
        for i in range(paced):
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(transaction(daemon.port, report_mail(i))))
        for answer, took in await asyncio.gather(*tasks):
            if answer.startswith(b"250"):
                times.append(took)
            else:
                errors += 1
        still = sum(not r.at_eof() for r, _ in held)  # the server closed none
        for _, w in held:
            w.close()
        times.sort()
        print(f"  [smtp_in] {smtp_in or '(defaults)'}: {len(held)} idle sessions held, "
              f"{refused} refused with 421 ({still} still open at the end); paced sender "
              f"{paced} mails at {rate:g}/s: time to 250 p50 {statistics.median(times) * 1000:.0f}"
              f" ms, p99 {times[max(0, int(len(times) * 0.99) - 1)] * 1000:.0f} ms, max "
              f"{times[-1] * 1000:.0f} ms, {errors} not 250; daemon peak RSS "
              f"{daemon.peak_rss_mb():.0f} MB")


async def big_run(count: int, megabytes: int) -> None:
    body = report_mail(0, megabytes * 1024 * 1024)
    async with Daemon(f"max_connections = {count + 10}\nmax_connections_per_ip = "
                      f"{count + 10}") as daemon:
        start = time.perf_counter()
        results = await asyncio.gather(*(
            transaction(daemon.port, body.replace(b"report 0", b"report %d" % i, 1))
            for i in range(count)))
        elapsed = time.perf_counter() - start
        ok = sum(a.startswith(b"250") for a, _ in results)
        soft = sum(a.startswith(b"4") for a, _ in results)
        print(f"  {count} concurrent {megabytes} MB DATA transfers: {ok} x 250, {soft} x 4xx, "
              f"{count - ok - soft} other, in {elapsed:.1f} s; daemon peak RSS "
              f"{daemon.peak_rss_mb():.0f} MB")


def raise_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", choices=["idle", "big"])
    ap.add_argument("--count", type=int, default=1000,
                    help="idle sessions; a fifth as many paced mails, a tenth large transfers")
    ap.add_argument("--rate", type=float, default=20.0, help="paced mails per second")
    ap.add_argument("--big-mb", type=int, default=20, help="size of each large transfer")
    args = ap.parse_args()
    idle, paced, big = args.count, max(1, args.count // 5), max(1, args.count // 10)
    raise_file_limit()
    print(f"open-file limit {resource.getrlimit(resource.RLIMIT_NOFILE)[0]}, "
          f"{os.cpu_count()} CPUs")
    if args.only in (None, "idle"):
        print(f"{idle} idle connections beside a paced sender:")
        await idle_run(f"max_connections = {idle + 100}", idle, 20, paced, args.rate)
        await idle_run("", idle, idle, paced, args.rate)
    if args.only in (None, "big"):
        await big_run(big, args.big_mb)


if __name__ == "__main__":
    asyncio.run(main())
