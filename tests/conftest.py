"""Fixtures: a real relay sink, a real daemon on loopback with a moving clock."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP
from hypothesis import settings

from mailbot.config import load_config
from tests.dovecot import Dovecot, ImapServer
from tests.dovecot import available as dovecot_available
from tests.pgp_support import Client
from tests.pgserver import PgServer
from tests.pgserver import available as pg_available
from tests.pymap_server import Pymap
from tests.pymap_server import available as pymap_available
from tests.support import (
    CONFIG,
    FRIDAY_EVENING,
    Bot,
    MovingClock,
    Sink,
    assert_confidential,
    running_bot,
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--long", action="store_true",
                     help="run the full reliability suite (kills, 1,000 mails, big hostile mail)")
    parser.addoption("--backend", choices=("sqlite", "postgresql"), default="sqlite",
                     help="the database every configured mailbot uses: postgresql gives each"
                          " test a fresh database on a throwaway cluster ($MAILBOT_DATABASE)")


@pytest.fixture(autouse=True)
def same_umask() -> Iterator[None]:
    """A test that runs `mailbot.cli.main` in this process leaves its umask 077 behind;
    the next test gets the umask the run started with (Postfix's integrity check refuses
    the queue directories a 077 umask makes)."""
    before = os.umask(0o022)
    os.umask(before)
    yield
    os.umask(before)


@pytest.fixture(autouse=True)
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """With --backend postgresql, each test's configured mailbot (in this process or a
    child `mailbot run`) uses a database of its own on the session's PostgreSQL."""
    chosen = str(request.config.getoption("--backend"))
    only = request.node.get_closest_marker("sqlite_only")
    if chosen == "postgresql" and only:
        pytest.skip(only.args[0] if only.args else "about the SQLite file itself")
    # A test that reads a module's shared database (module_database) keeps that one.
    if chosen == "postgresql" and "module_database" not in request.fixturenames:
        monkeypatch.setenv("MAILBOT_DATABASE", request.getfixturevalue("pg_url"))
    return chosen


@pytest.fixture(scope="module")
def module_database(request: pytest.FixtureRequest) -> Iterator[None]:
    """For module-scoped fixtures that fill one database which the module's tests read:
    with --backend postgresql, a database of the module's own, named by $MAILBOT_DATABASE
    while the module runs (a test of the module that does not use it gets its own)."""
    if request.config.getoption("--backend") != "postgresql":
        yield
        return
    server: PgServer = request.getfixturevalue("pg_server")
    url = server.create_database()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MAILBOT_DATABASE", url)
        yield
    server.drop_database(url.rpartition("/")[2])


@pytest.fixture
def long_run(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--long"))


@pytest.fixture
async def sink(tmp_path: Path) -> AsyncIterator[Sink]:
    """The relay; when the test leaves a mailbot database and config behind, everything the
    relay got is checked for case text sent to an outsider."""
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
    db, config = tmp_path / "mailbot.db", tmp_path / "mailbot.toml"
    if s.received and db.exists() and config.exists():
        assert_confidential(s.received, db, config)


@pytest.fixture(scope="session")
def pgp_client() -> Iterator[Client]:
    """The outside world's gpg (reporters' and staff's keys): read-only, shared."""
    c = Client()
    yield c
    c.close()


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


@pytest.fixture(scope="session")
def dovecot_server() -> Iterator[Dovecot]:
    """One real Dovecot for the session; tests keep apart by each using their own user."""
    if not dovecot_available():
        pytest.skip("Dovecot is not installed (bash scripts/test.sh installs dovecot-imapd)")
    server = Dovecot()
    server.start()
    yield server
    server.close()


@pytest.fixture
def dovecot(dovecot_server: Dovecot) -> Dovecot:
    if dovecot_server.proc is None:  # a test stopped it and failed before restarting it
        dovecot_server.start()
    return dovecot_server


@pytest.fixture
def make_dovecot() -> Iterator[Callable[..., Dovecot]]:
    """Dovecots of the test's own, for tests that stop one or change what it offers."""
    if not dovecot_available():
        pytest.skip("Dovecot is not installed (bash scripts/test.sh installs dovecot-imapd)")
    made: list[Dovecot] = []

    def make(capabilities: str | None = None, namespace: str = "") -> Dovecot:
        server = Dovecot(capabilities, namespace)
        made.append(server)
        server.start()
        return server

    yield make
    for server in made:
        server.close()


@pytest.fixture(scope="session")
def pymap_server() -> Iterator[Pymap]:
    """One real pymap (a second IMAP implementation) for the session, users kept apart."""
    if why := pymap_available():
        pytest.skip(why)
    server = Pymap()
    try:
        server.start()
    except RuntimeError as e:
        pytest.skip(f"pymap cannot start here: {e}")
    yield server
    server.close()


@pytest.fixture
def pymap(pymap_server: Pymap) -> Pymap:
    if pymap_server.proc is None:
        pymap_server.start()
    return pymap_server


@pytest.fixture(params=["dovecot", "pymap"])
def imap_server(request: pytest.FixtureRequest) -> ImapServer:
    """Each IMAP watcher test runs against Dovecot and against pymap."""
    server: ImapServer = request.getfixturevalue(request.param)
    return server


@pytest.fixture(params=["dovecot", "pymap"])
def own_imap_server(request: pytest.FixtureRequest) -> Iterator[ImapServer]:
    """A started server of the test's own (it may stop and start it): Dovecot, then pymap."""
    server: ImapServer
    if request.param == "dovecot":
        server = request.getfixturevalue("make_dovecot")()
        yield server
        return
    if why := pymap_available():
        pytest.skip(why)
    server = Pymap()
    try:
        server.start()
    except RuntimeError as e:
        pytest.skip(f"pymap cannot start here: {e}")
    yield server
    server.close()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One real PostgreSQL cluster for the session; tests keep apart by database."""
    if why := pg_available():
        pytest.skip(why)
    server = PgServer()
    try:
        server.start()
    except BaseException:
        server.close()
        raise
    yield server
    server.close()


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """A fresh empty database of the test's own, dropped afterwards; its URL."""
    if not pg_server.started:  # a test stopped it and failed before restarting it
        pg_server.start()
    url = pg_server.create_database()
    yield url
    pg_server.drop_database(url.rpartition("/")[2])


# CI replays the same examples every run (a landing must not fail by chance); local runs
# keep exploring new ones.
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
