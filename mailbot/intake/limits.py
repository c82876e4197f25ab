"""What one client can take from the listener: connections, memory, and time.

- `Connections` admits a session or says why not (421): at most `max_connections` at once
  and `max_connections_per_ip` from one address, so one host cannot take every slot.
- `MemoryGate` lets spooled mails into memory (to be stored) up to a byte budget at once;
  the others wait their turn (their bytes are on disk meanwhile, so waiting holds nothing).
- `quiet_accept_errors` logs "out of file descriptors" on accept once per interval, not
  once per try.
- `raise_file_limit` lifts the soft RLIMIT_NOFILE to the hard one: each session is a file.
- `return_large_blocks` makes glibc give large blocks back to the system when freed.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import resource
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

log = logging.getLogger(__name__)

TOO_MANY = "421 4.7.0 too many connections; try again later"
TOO_MANY_FROM_YOU = "421 4.7.0 too many connections from your address; try again later"
SPARE_FILES = 64  # descriptors kept free for the database, spools, gpg, logs


class Connections:
    def __init__(self, limit: int, per_ip: int) -> None:
        self.limit = limit
        self.per_ip = per_ip
        self.open = 0
        self.by_ip: Counter[str] = Counter()

    def admit(self, ip: str) -> str | None:
        """None when the session may go on (counted until `release`), else the 421 reply."""
        if self.open >= self.limit:
            return TOO_MANY
        if self.by_ip[ip] >= self.per_ip:
            return TOO_MANY_FROM_YOU
        self.open += 1
        self.by_ip[ip] += 1
        return None

    def release(self, ip: str) -> None:
        self.open -= 1
        self.by_ip[ip] -= 1
        if not self.by_ip[ip]:
            del self.by_ip[ip]


class MemoryGate:
    """At most `budget` bytes of spooled mail in memory at once; a mail larger than the
    budget goes in alone, so none waits for ever."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.held = 0
        self._cond = asyncio.Condition()

    @asynccontextmanager
    async def hold(self, size: int) -> AsyncIterator[None]:
        async with self._cond:
            await self._cond.wait_for(lambda: self.held == 0 or self.held + size <= self.budget)
            self.held += size
        try:
            yield
        finally:
            async with self._cond:
                self.held -= size
                self._cond.notify_all()


ACCEPT_ERROR = "socket.accept() out of system resource"


def quiet_accept_errors(loop: asyncio.AbstractEventLoop, interval: float = 60.0) -> None:
    """asyncio reports every failed accept (EMFILE, ENFILE, ENOBUFS, ENOMEM) through the
    loop's exception handler, as often as the listener becomes readable: report it once per
    `interval` with the count since, and pass everything else on."""
    previous = loop.get_exception_handler()
    last = -interval
    since = 0

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        nonlocal last, since
        if context.get("message") != ACCEPT_ERROR:
            if previous is not None:
                previous(loop, context)
            else:
                loop.default_exception_handler(context)
            return
        since += 1
        now = loop.time()
        if now - last >= interval:
            log.error("listener: cannot accept connections: %s (%d times since the last "
                      "report; sessions hold the file descriptors)",
                      context.get("exception"), since)
            last, since = now, 0

    loop.set_exception_handler(handler)


def raise_file_limit() -> int:
    """Lift the soft limit on open files to the hard limit; return the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard and (hard == resource.RLIM_INFINITY or soft < hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as e:
            log.warning("cannot raise the open-file limit from %d: %s", soft, e)
    return soft


def session_cap(max_connections: int) -> int:
    """`max_connections`, lowered to what the open-file limit leaves room for."""
    files = raise_file_limit()
    if files == resource.RLIM_INFINITY:
        return max_connections
    room = max(1, files - SPARE_FILES)
    if room < max_connections:
        log.warning("smtp_in.max_connections %d is more than the open-file limit (%d) allows;"
                    " taking %d at once", max_connections, files, room)
        return room
    return max_connections


def return_large_blocks() -> None:
    """Have glibc's malloc map every block of 1 MB or more on its own (and unmap it when
    freed), in at most two arenas. By default it raises that threshold to the largest block
    freed (up to 32 MB) and keeps an arena per thread, so 20 MB mails passing through the
    spool, SQLite and the parser threads stay resident long after: measured with 100
    concurrent 20 MB transfers, peak RSS 555 MB by default, 287 MB so. No-op elsewhere."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    m_mmap_threshold, m_arena_max = -3, -8  # glibc's <malloc.h>
    mallopt(m_mmap_threshold, 1 << 20)
    mallopt(m_arena_max, 2)
