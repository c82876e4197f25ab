"""A real PostgreSQL (Debian's `postgresql` package) for the tests: a cluster of its own made
by `initdb` in a temp dir, started by `pg_ctl` on a free loopback port, removed at the end.

It never touches the system's clusters or service. PostgreSQL refuses to run as root, so
when the tests run as root the cluster belongs to the package's `postgres` user and every
server command runs as that user (`runuser`). Clients connect over TCP to 127.0.0.1 as the
superuser `postgres` without a password (`trust`, loopback only).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg
from psycopg import sql

from tests.dovecot import free_port

# The PostgreSQL migrations (the whole schema up to 0024 in one file, then one file each).
MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations" / "postgresql"
SUPERUSER = "postgres"
SYSTEM_USER = "postgres"  # who runs the server when we are root
_VERSION_DIR = re.compile(r"^\d+$")


def _bin_dir() -> Path | None:
    """The newest installed server's bin dir (`/usr/lib/postgresql/<major>/bin`)."""
    root = Path("/usr/lib/postgresql")
    found = [p for p in root.iterdir() if _VERSION_DIR.match(p.name)] if root.is_dir() else []
    for version in sorted(found, key=lambda p: int(p.name), reverse=True):
        if (version / "bin" / "initdb").exists() and (version / "bin" / "pg_ctl").exists():
            return version / "bin"
    return None


def available() -> str | None:
    """Why a PostgreSQL cannot be started here, or None when it can."""
    if _bin_dir() is None:
        return "PostgreSQL is not installed (bash scripts/test.sh installs postgresql)"
    if os.getuid() == 0:
        try:
            pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            return f"running as root and there is no {SYSTEM_USER!r} user to run PostgreSQL"
        if shutil.which("runuser") is None:
            return "running as root and runuser(1) is missing"
    return None


class PgServer:
    """One throwaway cluster; each test gets a database of its own (`create_database`)."""

    def __init__(self) -> None:
        bin_dir = _bin_dir()
        assert bin_dir is not None, available()
        self.bin = bin_dir
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="mailbot-pg-"))
        self.data = self.root / "data"
        self.sockets = self.root / "run"  # the Unix socket: ours, not /var/run/postgresql
        self.log = self.root / "server.log"
        self._as_root = os.getuid() == 0
        self._names = itertools.count(1)
        self.started = False
        self.sockets.mkdir()
        if self._as_root:
            for path in (self.root, self.sockets):
                shutil.chown(path, SYSTEM_USER, SYSTEM_USER)
        self.root.chmod(0o700)

    def _run(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if self._as_root:
            command = ["runuser", "-u", SYSTEM_USER, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120,
                              cwd=self.root)
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stderr.strip()}"
                               f"\n{self.log_text()}")

    def start(self) -> None:
        """initdb (once), then start and wait until the server takes connections."""
        if not (self.data / "PG_VERSION").exists():
            self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "-E", "UTF8",
                      "--locale=C", "--auth=trust", "--no-instructions")
            # Loopback only: no `local` line, so the socket (which the server still needs)
            # admits no one, and no address but 127.0.0.1.
            hba = self.data / "pg_hba.conf"
            hba.write_text("host all all 127.0.0.1/32 trust\n")
            if self._as_root:
                shutil.chown(hba, SYSTEM_USER, SYSTEM_USER)
        # fsync=off for speed only, because a test cluster is thrown away (a crash of the
        # machine may corrupt it); never a setting for a real server. Commits are otherwise
        # as on a real server (synchronous_commit stays on).
        options = (f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1"
                   " -c fsync=off")
        self._run("pg_ctl", "start", "-D", str(self.data), "-l", str(self.log), "-w",
                  "-t", "60", "-o", options)
        self.started = True
        with self.connect() as c:
            c.execute("SELECT 1")

    def stop(self) -> None:
        if self.started:
            self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "fast", "-w")
            self.started = False

    def close(self) -> None:
        """Stop the server and remove its files."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    def connect(self, dbname: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        """An autocommit connection (CREATE/DROP DATABASE cannot run in a transaction)."""
        return psycopg.connect(self.url(dbname), autocommit=True, connect_timeout=10)

    def create_database(self, name: str | None = None) -> str:
        """A new empty database (a copy of template1, which is fast); its URL."""
        name = name or f"test_{os.getpid()}_{next(self._names)}"
        with self.connect() as c:
            c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop it, closing any connection a test left open to it."""
        with self.connect() as c:
            c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                      .format(sql.Identifier(name)))

    def log_text(self) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")
        return ""


def apply_migrations(url: str) -> list[int]:
    """Run each PostgreSQL migration file in order, each in a transaction of its own, as
    the runner does (one simple-query batch per file); the versions applied."""
    versions = []
    for path in sorted(MIGRATIONS.glob("*.sql")):
        with psycopg.connect(url) as c:  # commits on leaving the block, rolls back on error
            c.execute(path.read_text(encoding="utf-8").encode())
        versions.append(int(path.name.split("_", 1)[0]))
    return versions
