"""Fixtures: a real relay sink, a real daemon on loopback with a moving clock."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP
from hypothesis import settings

from mailbot.config import load_config
from tests.support import CONFIG, FRIDAY_EVENING, Bot, MovingClock, Sink, running_bot


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    s = Sink()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(s, decode_data=False, enable_SMTPUTF8=True, loop=loop), "127.0.0.1", 0
    )
    s.port = server.sockets[0].getsockname()[1]
    yield s
    server.close()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(server.wait_closed(), 2)


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    def write(sink_port: int = 1, protocol: str = "smtp", max_size: str = "1MB") -> Path:
        path = tmp_path / "mailbot.toml"
        path.write_text(CONFIG.format(db=tmp_path / "mailbot.db", sink_port=sink_port,
                                      protocol=protocol, max_size=max_size))
        return path

    return write


@pytest.fixture
async def bot(sink: Sink, write_config: Callable[..., Path]) -> AsyncIterator[Bot]:
    config = load_config(write_config(sink.port))
    async with running_bot(config, MovingClock(FRIDAY_EVENING)) as b:
        yield b


# CI replays the same examples every run (a landing must not fail by chance); local runs
# keep exploring new ones.
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
