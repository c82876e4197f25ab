"""Several mailbot instances on one PostgreSQL database: their configs, and a client that
sends like an MTA with several MX hosts (any instance; another one when that one is down)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

from mailbot.leasing import CLAIM, LEASE, RENEW_EVERY
from tests.reliability.harness import Daemon, Ledger, Sent, client
from tests.support import CONFIG, free_port, table


class Instance(Daemon):
    """A daemon that remembers the pid of each of its starts: a claim or lease names its
    holder as host:pid:random, and the pid tells which instance (and which start) it is."""

    def __init__(self, config: Path, port: int, log: Path) -> None:
        super().__init__(config, port, log)
        self.pids: list[int] = []

    async def start(self) -> None:
        await super().start()
        assert self.proc is not None
        self.pids.append(self.proc.pid)

    def holds(self, holder: str | None) -> bool:
        """Whether `holder` (host:pid:random) is one of this instance's starts."""
        parts = (holder or "").split(":")
        return len(parts) >= 2 and parts[-2].isdigit() and int(parts[-2]) in self.pids


def instance_config(tmp_path: Path, name: str, url: str, sink_port: int, port: int = 0,
                    extra: str = "", imap: str | None = None) -> Path:
    """The usual test config for instance `name` on the database at `url`: a gpg home of its
    own, the secret shared by every instance (their reply tokens must agree); `imap`, an
    inline table for the security inbox (tests/imap_support.imap_table)."""
    own = tmp_path / name
    text = CONFIG.format(db=own, sink_port=sink_port, protocol="smtp", max_size="1MB")
    if imap:
        text = text.replace('prefix = "SEC"\n', f'prefix = "SEC"\n{imap}\n')
    text = (text.replace(f'database = "{own}"', f'database = "{url}"')
            .replace(f'secret_file = "{own}.secret"',
                     f'secret_file = "{tmp_path / "shared.secret"}"')
            .replace("port = 0", f"port = {port}"))
    assert url in text and "shared.secret" in text
    # Hundreds of reporters in the long run: past the default global ack limit.
    path = tmp_path / f"{name}.toml"
    path.write_text(text + "\n[limits]\nacks_per_hour = 100000\n" + extra)
    return path


def daemons(tmp_path: Path, url: str, sink_port: int, count: int = 2,
            extra: str = "", imap: str | None = None) -> list[Instance]:
    """`count` instances, each a `mailbot run` child on a fixed loopback port of its own."""
    made = []
    for i in range(count):
        port = free_port()
        name = f"instance-{i}"
        made.append(Instance(instance_config(tmp_path, name, url, sink_port, port, extra, imap),
                             port, tmp_path / f"{name}.log"))
    return made


async def spread_client(ports: list[int], plan: list[tuple[EmailMessage, Sent]],
                        ledger: Ledger, rng: random.Random) -> None:
    """Send each mail to a listener picked at random; one not answered 250 (4xx, refused,
    hung up: that instance is down) is sent again to a listener picked again."""
    await client(lambda: rng.choice(ports), plan, ledger, pause=0.05)


def leasing_seconds() -> tuple[float, float, float]:
    """(a claim's length, a lease's length, a lease's renewal period) of mailbot.leasing."""
    return CLAIM.total_seconds(), LEASE.total_seconds(), RENEW_EVERY


def lease_holders(url: str) -> dict[str, str]:
    """Each named lease (the scheduler's leader, each watched folder) and its holder."""
    if "leases" not in {str(r[0]) for r in table(
            url, "SELECT table_name FROM information_schema.tables")}:
        return {}
    return {str(n): str(h) for n, h in table(url, "SELECT name, holder FROM leases")}


async def until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Wait until `check()` (a look at the database) holds; fail with `what` after `timeout`
    seconds."""
    try:
        async with asyncio.timeout(timeout):
            while not check():
                await asyncio.sleep(0.2)
    except TimeoutError:
        raise AssertionError(f"not within {timeout:.0f} s: {what}") from None
