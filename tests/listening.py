"""Waiting for a server the tests started (Dovecot, pymap, Postfix) to greet on its port."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from typing import Literal


def wait_for_greeting(proc: subprocess.Popen[bytes], port: int, greeting: bytes,
                      timeout: float, pause: float = 0.05
                      ) -> Literal["listening", "exited", "timeout"]:
    """Until a connection to 127.0.0.1:`port` is greeted with `greeting`, the process ends,
    or `timeout` seconds pass; which of the three happened."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return "exited"
        with contextlib.suppress(OSError), socket.create_connection(
            ("127.0.0.1", port), timeout=1
        ) as s:
            if s.recv(100).startswith(greeting):
                return "listening"
        time.sleep(pause)
    return "timeout"
