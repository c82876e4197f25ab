"""The store as an operator meets it on either backend: a newer schema refused, a
PostgreSQL URL that is wrong or unreachable named in one line without its password."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from mailbot.config import load_config
from mailbot.errors import SchemaTooNew
from mailbot.store import Store, open_store
from mailbot.store.pg import redact, translate
from tests.pgserver import PgServer
from tests.support import Sink, table

TRACEBACK = "Traceback (most recent call last)"


def mailbot(config: Path, *args: str, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mailbot", *args, "--config", str(config),
                           "--log-level", "error"], capture_output=True, text=True,
                          timeout=60, check=False, env=env)


def one_line_error(result: subprocess.CompletedProcess[str], *names: str) -> str:
    assert result.returncode != 0, result.stdout
    assert TRACEBACK not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for name in names:
        assert name in lines[0], lines[0]
    return lines[0]


async def test_a_newer_schema_is_refused(write_config: Callable[..., Path]) -> None:
    """A database that a newer mailbot migrated (a rollback of the code, or two versions
    side by side) is refused by `run`, `migrate` and every command that reads it, on the
    configured backend, rather than read with a schema this code does not know."""
    config_path = write_config()
    config = load_config(config_path)
    store = await open_store(config.storage)
    version = await store.schema_version()
    await store.close()
    assert version is not None and version >= 25
    table(config.storage.database, "INSERT INTO schema_migrations (version, name, applied_at)"
          " VALUES (?, 'from_the_future', '2027-01-01T00:00:00+00:00')", (version + 100,))
    with pytest.raises(SchemaTooNew, match=f"version {version + 100}, newer"):
        await open_store(config.storage)
    with pytest.raises(SchemaTooNew):
        await open_store(config.storage, apply_migrations=False)
    for command in (["migrate"], ["tickets"], ["run"]):
        one_line_error(mailbot(config_path, *command), f"version {version + 100}")


def test_a_wrong_url_is_a_config_error(write_config: Callable[..., Path]) -> None:
    """A PostgreSQL URL without a host, or with a port that is no number, is named as the
    configuration's mistake before anything connects."""
    path = write_config()
    for url in ("postgresql:///mailbot", "postgresql://u@h:port/db"):
        text = re.sub(r'(?m)^database = ".*"$', f'database = "{url}"', path.read_text())
        path.write_text(text)
        result = mailbot(path, "check", "--offline",
                         env={"PATH": "/usr/bin:/bin"})  # no $MAILBOT_DATABASE from a test run
        assert result.returncode == 2, result.stderr
        assert "storage.database" in result.stderr and TRACEBACK not in result.stderr


def test_an_unreachable_server_is_one_line_without_the_password(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    """The database is down (or a failover is under way): `mailbot run` says which server
    did not answer in one line, and never prints the password from the URL or the file."""
    path = write_config()
    secret = tmp_path / "pg.pw"
    secret.write_text("hunter2-file\n")
    url = "postgresql://mailbot:hunter2-url@127.0.0.1:1/mailbot?connect_timeout=2"
    text = re.sub(r'(?m)^database = ".*"$', f'database = "{url}"\npassword_file = "{secret}"',
                  path.read_text())
    path.write_text(text)
    result = mailbot(path, "tickets", env={"PATH": "/usr/bin:/bin"})
    line = one_line_error(result, "127.0.0.1:1")
    assert "hunter2" not in result.stderr + result.stdout and "***" in line


async def test_check_asks_the_database(write_config: Callable[..., Path], sink: Sink,
                                 pg_url: str) -> None:
    """Before the first start, `mailbot check` logs in to the PostgreSQL database and says
    what its schema lacks; after `migrate`, that it is up to date; with the server away,
    one error line (exit 2) naming the server."""
    path = write_config(sink.port)
    path.write_text(re.sub(r'(?m)^database = ".*"$', f'database = "{pg_url}"',
                           path.read_text()))
    env = {"PATH": "/usr/bin:/bin"}  # the URL of the file, not a test run's $MAILBOT_DATABASE
    before = await asyncio.to_thread(mailbot, path, "check", env=env)
    assert before.returncode == 0, before.stderr
    assert re.search(r"database: postgresql://\S+: OK \(empty, \d+ migrations to apply",
                     before.stdout), before.stdout
    assert (await asyncio.to_thread(mailbot, path, "migrate", env=env)).returncode == 0
    after = await asyncio.to_thread(mailbot, path, "check", env=env)
    assert "database: " in after.stdout and "up to date)" in after.stdout, after.stdout
    path.write_text(path.read_text().replace(pg_url, "postgresql://nobody@127.0.0.1:1/x"))
    away = await asyncio.to_thread(mailbot, path, "check", env=env)
    assert away.returncode == 2 and TRACEBACK not in away.stderr
    assert "error: cannot connect to the database postgresql://nobody@127.0.0.1:1/x" in (
        away.stderr)


async def test_the_password_file_is_what_logs_in(pg_server: PgServer, tmp_path: Path) -> None:
    """A role with a password logs in with the password from `password_file`, and a wrong
    one is refused in words that name no password."""
    with pg_server.connect() as admin:
        admin.execute("CREATE ROLE keeper LOGIN PASSWORD 'right-one'")
    name = pg_server.create_database().rpartition("/")[2]
    with pg_server.connect() as admin:
        admin.execute(f'ALTER DATABASE "{name}" OWNER TO keeper')
    hba = pg_server.data / "pg_hba.conf"
    hba.write_text("host all postgres 127.0.0.1/32 trust\n"
                   "host all keeper 127.0.0.1/32 scram-sha-256\n")
    with pg_server.connect() as admin:
        admin.execute("SELECT pg_reload_conf()")
    url = f"postgresql://keeper@127.0.0.1:{pg_server.port}/{name}"
    try:
        store = await Store.open(url, password="right-one")
        assert await store.schema_version() is not None
        await store.close()
        with pytest.raises(Exception, match="keeper") as refused:
            await Store.open(url, password="wrong-one")
        assert "wrong-one" not in str(refused.value) and "right-one" not in str(refused.value)
    finally:
        hba.write_text("host all all 127.0.0.1/32 trust\n")
        with pg_server.connect() as admin:
            admin.execute("SELECT pg_reload_conf()")


def test_placeholders_become_psycopg_ones() -> None:
    """The store's SQL is written once: `?` and `?N` become psycopg's placeholders, and a
    `%` or `?` inside a string literal is text, not a placeholder."""
    assert translate("SELECT a FROM t WHERE b = ? AND c LIKE 'x%?'") == (
        "SELECT a FROM t WHERE b = %s AND c LIKE 'x%%?'", 0)
    assert translate("SELECT ?1, ?2, ?1") == ("SELECT %(p1)s, %(p2)s, %(p1)s", 2)
    assert translate("SELECT 'it''s ?'") == ("SELECT 'it''s ?'", 0)


def test_a_password_in_the_url_is_hidden() -> None:
    """What mailbot prints of a database URL never carries its password."""
    assert redact("postgresql://u:s3cret@db.example.org:5433/m?sslmode=require") == (
        "postgresql://u:***@db.example.org:5433/m?sslmode=require")
    assert redact("postgresql://u@db/m") == "postgresql://u@db/m"


async def test_a_session_says_who_it_is_and_cannot_hang_for_ever(pg_url: str) -> None:
    """Each PostgreSQL session of an instance carries the instance's name (how the others
    tell it is alive) and ends a transaction left idle by a hung instance, so its locks do
    not hold the other instances up for ever."""
    store = await Store.open(pg_url)
    try:
        async with store.read() as db:
            rows = list(await db.execute_fetchall(
                "SELECT current_setting('application_name'),"
                " current_setting('idle_in_transaction_session_timeout')"))
    finally:
        await store.close()
    assert rows[0][0] == store.instance and rows[0][1] == "5min"
