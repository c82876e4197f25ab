"""Fixtures for conformance with real mail software: a Postfix of the test's own in front
of (and behind) mailbot, and mailbot's config on a port known before it starts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mailbot.config import Config, load_config
from tests.postfix import Postfix
from tests.postfix import available as postfix_available
from tests.support import CONFIG


@pytest.fixture
def make_postfix() -> Iterator[Callable[..., Postfix]]:
    """Postfixes of the test's own (stopped and removed afterwards). Start one with
    `await asyncio.to_thread(p.start)`: mailbot runs in the test's loop."""
    if not postfix_available():
        pytest.skip("needs root and Debian's postfix (bash scripts/test.sh installs it)")
    made: list[Postfix] = []

    def make(mailbot_port: int, protocol: str = "lmtp") -> Postfix:
        p = Postfix(mailbot_port, protocol)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


@pytest.fixture
def config_for(tmp_path: Path) -> Callable[..., Config]:
    """mailbot's test config on a fixed port, relaying through Postfix; staff at
    example.com, so that their notifications land in Postfix's Maildirs rather than back
    at mailbot."""

    def make(port: int, relay_port: int, protocol: str = "lmtp", extra: str = "") -> Config:
        text = CONFIG.format(db=tmp_path / "mailbot.db", sink_port=relay_port,
                             protocol=protocol, max_size="30MB")
        text = text.replace("port = 0\n", f"port = {port}\n{extra}\n", 1)
        text = text.replace('@example.org"\nrole', '@example.com"\nrole')
        path = tmp_path / "mailbot.toml"
        path.write_text(text)
        return load_config(path)

    return make
