"""A user's mistake on the command line: one line naming the file, port or key, a non-zero
exit, no traceback (unless asked for), and no gpg-agent left behind."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.pgp_support import kill_agent, short_home

TRACEBACK = "Traceback (most recent call last)"


def mailbot(config: Path, *args: str, level: str = "error",
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailbot", *args, "--config", str(config), "--log-level", level],
        capture_output=True, text=True, timeout=timeout,
    )


def agent_running(home: Path) -> bool:
    """A gpg-agent process serving this GnuPG home, as the process table shows it."""
    found = subprocess.run(["pgrep", "-f", f"gpg-agent --homedir {home}"], capture_output=True,
                           check=False)
    return found.returncode == 0


@pytest.fixture
def home() -> Iterator[Path]:
    h = short_home("go")
    yield h
    kill_agent(h)


@pytest.fixture
def config(write_config: Callable[..., Path], home: Path) -> Path:
    path = write_config()
    path.write_text(re.sub(r'(?m)^home = ".*"$', f'home = "{home}"', path.read_text()))
    return path


def assert_one_line_error(result: subprocess.CompletedProcess[str], *names: str) -> None:
    assert result.returncode != 0
    assert TRACEBACK not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for name in names:
        assert name in lines[0]


def test_import_of_a_missing_file(config: Path, tmp_path: Path) -> None:
    """An operator mistypes the mbox name: the name and 'no such file' in one line, rc 1."""
    result = mailbot(config, "import", str(tmp_path / "nofile.mbox"))
    assert_one_line_error(result, "nofile.mbox", "no such file")


def test_import_of_an_empty_directory(config: Path, tmp_path: Path) -> None:
    """A directory that is not a Maildir is named as such, not a FileNotFoundError on cur/."""
    (tmp_path / "emptydir").mkdir()
    result = mailbot(config, "import", str(tmp_path / "emptydir"))
    assert_one_line_error(result, "emptydir", "not a Maildir")


def test_import_of_a_file_that_is_no_mbox(config: Path, tmp_path: Path) -> None:
    """A text file is refused as neither mbox nor Maildir instead of 'stored 0 new mails'."""
    notes = tmp_path / "notes.txt"
    notes.write_text("Subject: not an mbox\n\nhello\n")
    result = mailbot(config, "import", str(notes))
    assert_one_line_error(result, "notes.txt", "neither an mbox file")
    assert "stored" not in result.stdout


def test_key_import_of_a_missing_file(config: Path, tmp_path: Path, home: Path) -> None:
    """`key import` of a missing file names it, and leaves no gpg-agent for the home."""
    result = mailbot(config, "key", "import", str(tmp_path / "nofile.asc"))
    assert_one_line_error(result, "nofile.asc", "no such file")
    assert not agent_running(home)


def test_key_generate_leaves_no_agent(config: Path, home: Path) -> None:
    """gpg starts an agent to make a key; the command stops it before it returns."""
    result = mailbot(config, "key", "generate", "security")
    assert result.returncode == 0, result.stderr
    assert not agent_running(home)


def test_a_second_run_on_a_busy_port(config: Path) -> None:
    """A port another process holds: the daemon names host:port and the reason and exits."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config.write_text(config.read_text().replace("port = 0", f"port = {port}", 1))
        result = mailbot(config, "run", timeout=30)
    assert_one_line_error(result, f"127.0.0.1:{port}", "address already in use")


@pytest.mark.sqlite_only
def test_debug_shows_where_an_unexpected_error_came_from(config: Path, tmp_path: Path) -> None:
    """An unexpected error is one line at the usual level and a traceback with debug."""
    db = tmp_path / "mailbot.db"
    db.write_bytes(b"this is not a SQLite database, whatever its name says" * 100)
    plain = mailbot(config, "tickets")
    assert_one_line_error(plain)
    debug = mailbot(config, "tickets", level="debug")
    assert debug.returncode != 0 and TRACEBACK in debug.stderr


def test_a_busy_http_port(config: Path) -> None:
    """`[http] listen` on a port another process holds: one line naming the key and port."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config.write_text(config.read_text() + f'\n[http]\nlisten = "127.0.0.1:{port}"\n')
        result = mailbot(config, "run", timeout=30)
    assert_one_line_error(result, f"http.listen: cannot listen on 127.0.0.1:{port}",
                          "address already in use")
