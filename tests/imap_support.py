"""Helpers for the IMAP tests: a daemon config watching IMAP folders, and waiting on the
database the daemon writes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from tests.support import CONFIG, report, table

SEEN = rb"\Seen"


class Listening(Protocol):
    port: int


def imap_table(server: Listening, user: str, password_file: Path, **options: Any) -> str:
    """An inline `imap = {...}` for an [[inbox]] watching `user`'s folder on `server` (an
    IMAP server, or a proxy in front of one)."""
    values: dict[str, Any] = {
        "host": "127.0.0.1", "port": server.port, "tls": "none", "username": user,
        "password_file": str(password_file), "poll_interval": 3600, "backoff_max": 0.5,
        "timeout": 5,
    }
    # pymap's IDLE tells a session of another session's APPEND late or not at all (seen
    # with two users appended to at once): on such a server the watcher's look every
    # idle_check seconds takes the mail, and the tests' waits are shorter than the default.
    if (idle_check := getattr(server, "idle_check", None)) is not None:
        values["idle_check"] = idle_check
    values |= options
    body = ", ".join(f"{k} = {v!r}" if isinstance(v, str) else f"{k} = {v}"
                     for k, v in values.items())
    return "imap = { " + body.replace("'", '"') + " }"


def write_imap_config(tmp_path: Path, sink_port: int, security: str | None,
                      support: str | None = None) -> Path:
    """The tests' usual config, with the given imap tables on the two inboxes."""
    text = CONFIG.format(db=tmp_path / "mailbot.db", sink_port=sink_port, protocol="smtp",
                         max_size="1MB")
    if security:
        text = text.replace('prefix = "SEC"\n', f'prefix = "SEC"\n{security}\n')
    if support:
        text = text.replace('prefix = "SUP"\n', f'prefix = "SUP"\n{support}\n')
    path = tmp_path / "mailbot.toml"
    path.write_text(text)
    return path


def password_file(tmp_path: Path, password: str = "secret", name: str = "imap.pw") -> Path:
    path = tmp_path / name
    path.write_text(password + "\n")
    return path


def rows(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    return table(db, sql, params)


def scalar(db: Path, sql: str, params: tuple[Any, ...] = ()) -> Any:
    return rows(db, sql, params)[0][0]


async def until(check: Callable[[], Any], timeout: float = 10.0, every: float = 0.02) -> Any:
    """Poll `check` (off the loop: it may read the database) until it returns a truthy value."""
    deadline = time.monotonic() + timeout
    while True:
        value = await asyncio.to_thread(check)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still {value!r} after {timeout}s")
        await asyncio.sleep(every)


def state(db: Path, user: str) -> tuple[Any, ...] | None:
    """(state, failures, last_error) of the watcher of `user`'s folder."""
    found = rows(db, "SELECT state, failures, last_error FROM imap_folders"
                     " WHERE mailbox LIKE ?", (f"{user}@%",))
    return found[0] if found else None


def reports(count: int, tag: str, sender: str = "researcher@example.net") -> list[bytes]:
    """`count` distinct reports (their own Message-IDs), as raw bytes."""
    return [report(subject=f"{tag} finding {i}", sender=sender,
                   message_id=f"<{tag}-{i}@example.net>").as_bytes() for i in range(count)]
