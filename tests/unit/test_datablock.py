"""The listener's pure parts: dot-unstuffing over chunks, the caps, the memory gate, and the
accept-error log."""

from __future__ import annotations

import asyncio
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailbot.intake.datablock import _Unstuffer, unstuff
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
