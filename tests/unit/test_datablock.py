"""The listener's parts alone: reading a DATA block (over a real StreamReader), dot-unstuffing
over chunks, the caps, the memory gate, the accept-error log and the file limit."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailbot.intake.datablock import Refused, _Unstuffer, read_block, unstuff
from mailbot.intake.limits import ACCEPT_ERROR, Connections, MemoryGate, quiet_accept_errors
from mailbot.intake.tls import is_loopback

PIECES = st.lists(st.sampled_from([b"\r", b"\n", b".", b"a", b"\r\n", b"\r\n.", b".."]),
                  max_size=60).map(b"".join)


@given(PIECES, st.lists(st.integers(min_value=1, max_value=7), min_size=1))
def test_unstuffing_chunk_by_chunk_equals_unstuffing_the_whole(
    data: bytes, cuts: list[int]
) -> None:
    """However a block is cut into chunks (a CRLF or dot at any chunk edge), the spooled
    bytes are those of the block unstuffed at once."""
    stream = b"\r\n" + data
    u = _Unstuffer()
    out, at, i = b"", 0, 0
    while at < len(stream):
        n = cuts[i % len(cuts)]
        out += u.feed(stream[at:at + n])
        at, i = at + n, i + 1
    out += u.end()
    assert out == unstuff(stream)


def test_caps_count_per_address_and_in_total() -> None:
    """Past the per-address cap one host is refused while others get in, up to the total."""
    c = Connections(limit=3, per_ip=2)
    assert [c.admit("192.0.2.1") for _ in range(3)][2] is not None
    assert c.admit("192.0.2.2") is None
    assert c.admit("192.0.2.3") is not None  # full
    c.release("192.0.2.1")
    assert c.admit("192.0.2.3") is None
    assert c.by_ip == {"192.0.2.1": 1, "192.0.2.2": 1, "192.0.2.3": 1}


async def test_the_memory_gate_admits_up_to_its_budget_and_one_oversized_alone() -> None:
    """Two mails fit the budget together, a third waits until one is stored; a mail over
    the whole budget goes in when nothing else is held."""
    gate = MemoryGate(budget=10)
    order: list[str] = []

    async def take(name: str, size: int, hold: float) -> None:
        async with gate.hold(size):
            order.append(f"+{name}")
            await asyncio.sleep(hold)
            order.append(f"-{name}")

    await asyncio.gather(take("a", 5, 0.05), take("b", 5, 0.05), take("c", 5, 0),
                         take("huge", 50, 0))
    assert order[:2] == ["+a", "+b"]
    assert order.index("+c") > order.index("-a")
    assert order.index("+huge") > order.index("-c")
    assert gate.held == 0


async def test_accept_errors_are_logged_once_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A listener out of file descriptors is reported once per interval with a count, not
    once per failed accept (the issue saw 411,000 lines in 40 s); other errors pass on."""
    loop = asyncio.get_running_loop()
    seen: list[str] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, ctx: seen.append(ctx["message"]))
    try:
        quiet_accept_errors(loop, interval=3600)
        with caplog.at_level(logging.ERROR, logger="mailbot.intake.limits"):
            for _ in range(1000):
                loop.call_exception_handler({"message": ACCEPT_ERROR,
                                             "exception": OSError(24, "Too many open files")})
            loop.call_exception_handler({"message": "something else"})
    finally:
        loop.set_exception_handler(previous)
    assert len([r for r in caplog.records if "cannot accept" in r.getMessage()]) == 1
    assert seen == ["something else"]


@pytest.mark.parametrize(("peer", "local"), [
    (("127.0.0.1", 25), True), (("127.9.9.9", 25), True), (("::1", 25, 0, 0), True),
    (("::ffff:127.0.0.1", 25, 0, 0), True), (("192.0.2.1", 25), False),
    (("2001:db8::1", 25, 0, 0), False), (("::ffff:192.0.2.1", 25, 0, 0), False),
    (None, False),
])
def test_only_loopback_peers_are_exempt_from_require_tls(peer: object, local: bool) -> None:
    """require_tls exempts this host alone, also as an IPv4-mapped IPv6 address."""
    assert is_loopback(peer) is local


async def test_a_block_that_cannot_be_spooled_gets_451_and_the_session_stays_in_step(
    tmp_path: Path,
) -> None:
    """When the spool cannot be written (here: its directory is a file; a full disk alike),
    the block is read to its end marker, refused with 451, and what follows is the next
    command."""
    reader = asyncio.StreamReader(limit=1024)
    big = b"Subject: big\r\n\r\n" + (b"z" * 98 + b"\r\n") * 5000
    reader.feed_data(big + b".\r\nQUIT\r\n")
    reader.feed_eof()
    (tmp_path / "file").write_text("")
    with pytest.raises(Refused) as refused:
        await read_block(reader, max_size=10**6, spool_dir=tmp_path / "file", block=4096)
    assert refused.value.reply.startswith("451 4.3.1")
    assert await reader.readline() == b"QUIT\r\n"


async def test_a_large_block_is_spooled_to_a_private_file(tmp_path: Path) -> None:
    """A block past the in-memory size lands, unstuffed, in a spool file only we can read."""
    reader = asyncio.StreamReader(limit=1024)
    big = b"Subject: big\r\n\r\n" + (b"..dot\r\n" + b"z" * 98 + b"\r\n") * 500
    reader.feed_data(big + b".\r\nQUIT\r\n")
    reader.feed_eof()
    block = await read_block(reader, max_size=10**6, spool_dir=tmp_path, block=4096)
    try:
        assert block.spool is not None
        assert os.fstat(block.spool.fileno()).st_mode & 0o777 == 0o600
        assert await block.load() == big.replace(b"\r\n..", b"\r\n.")
    finally:
        await block.close()
    assert await reader.readline() == b"QUIT\r\n"


def test_max_connections_is_lowered_to_what_the_file_limit_allows() -> None:
    """A process allowed 200 open files takes at most 136 sessions (64 spare for the
    database, spools and gpg), however many max_connections asks for."""
    code = ("import resource; resource.setrlimit(resource.RLIMIT_NOFILE, (200, 200)); "
            "from mailbot.intake.limits import session_cap; print(session_cap(1000), "
            "session_cap(50))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["136", "50"]
