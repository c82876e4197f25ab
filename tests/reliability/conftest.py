"""The reliability suite: a real daemon process on a fixed loopback port."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.reliability.harness import Daemon
from tests.support import Sink, free_port


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/reliability/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.reliability)


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> random.Random:
    """Seeded per test (printed on failure) so a failing run can be replayed."""
    seed = random.randrange(1 << 32)
    print(f"seed {seed}")
    return random.Random(seed)


@pytest.fixture
def daemon(sink: Sink, write_config: Callable[..., Path], tmp_path: Path) -> Daemon:
    port = free_port()
    path = write_config(sink.port)
    # 500 reporters in the long run: past the default global ack limit (200 an hour).
    path.write_text(path.read_text().replace("port = 0", f"port = {port}")
                    + "\n[limits]\nacks_per_hour = 100000\n")
    return Daemon(path, port, tmp_path / "daemon.log")
