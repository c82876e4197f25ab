"""IMAP servers that are not Dovecot as Debian ships it: a personal namespace under "INBOX."
(Courier, Cyrus), a folder the server refuses, an IDLE that stays silent, keywords the server
does not keep (pymap), a SELECT without UIDNEXT (Courier).

The namespace is Dovecot's own (configured as Courier lays folders out); the silent IDLE,
the missing UIDNEXT and the trimmed PERMANENTFLAGS come from tests/imap_proxy.py in front of
Dovecot; the dropped keyword also from a real pymap.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from functools import partial
from pathlib import Path

import pytest

from mailbot.cli import main
from mailbot.config import load_config
from tests.dovecot import INBOX_NAMESPACE, PLAIN_CAPABILITIES, Dovecot, ImapServer
from tests.imap_proxy import ImapProxy
from tests.imap_support import (
    SEEN,
    Listening,
    imap_table,
    password_file,
    reports,
    rows,
    scalar,
    state,
    until,
    write_imap_config,
)
from tests.integration.test_cli import mailbot
from tests.integration.test_imap_faults import assert_once_each
from tests.support import FRIDAY_EVENING, MovingClock, Sink, report, running_bot


@pytest.fixture
def proxy() -> Iterator[Callable[..., ImapProxy]]:
    made: list[ImapProxy] = []

    def make(server: ImapServer, **behaviour: bool) -> ImapProxy:
        p = ImapProxy(server.port, **behaviour)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


def folder_row(db: Path) -> dict[str, object]:
    found = rows(db, "SELECT state, mode, warnings FROM imap_folders")
    return dict(zip(("state", "mode", "warnings"), found[0], strict=True)) if found else {}


def check(config: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["check", "--config", str(config), "--log-level", "error"])
    out, err = capsys.readouterr()
    return code, out, err


async def test_bare_processed_folder_goes_under_the_inbox_namespace(
    make_dovecot: Callable[..., Dovecot], sink: Sink, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """On a server whose folders all live under "INBOX." (Courier, Cyrus), `Processed` is
    created and used as `INBOX.Processed`; `check` names it with the server's answer."""
    server = make_dovecot(namespace=INBOX_NAMESPACE)
    user = server.add_user()
    await asyncio.to_thread(server.append, user, reports(3, "ns"))
    path = write_imap_config(tmp_path, sink.port, imap_table(
        server, user, password_file(tmp_path), processed_folder="Processed"))
    code, out, err = await asyncio.to_thread(check, path, capsys)
    assert code == 0, err
    assert "processed folder 'INBOX.Processed' created: Create completed" in out
    db = load_config(path).storage.database
    async with running_bot(load_config(path), MovingClock(FRIDAY_EVENING)):
        await until(lambda: scalar(db, "SELECT sum(marked) FROM imap_messages") == 3)
    assert server.flags(user) == {}
    assert len(server.flags(user, "INBOX.Processed")) == 3
    assert folder_row(db)["warnings"] is None
    code, out, _ = await asyncio.to_thread(check, path, capsys)
    assert code == 0 and "processed folder 'INBOX.Processed' exists" in out


ARCHIVE = """\
namespace inbox {
  inbox = yes
  mailbox "Saved" {
    special_use = \\Archive
    auto = create
  }
}
"""


async def test_special_use_archive_is_found_by_its_flag(
    make_dovecot: Callable[..., Dovecot], sink: Sink, tmp_path: Path
) -> None:
    """processed_folder = "\\Archive" moves taken mail to whichever folder the server flags
    \\Archive (RFC 6154), whatever its name."""
    server = make_dovecot(namespace=ARCHIVE)
    user = server.add_user()
    await asyncio.to_thread(server.append, user, reports(2, "archive"))
    path = write_imap_config(tmp_path, sink.port, imap_table(
        server, user, password_file(tmp_path), processed_folder="\\Archive"))
    db = load_config(path).storage.database
    async with running_bot(load_config(path), MovingClock(FRIDAY_EVENING)):
        await until(lambda: scalar(db, "SELECT sum(marked) FROM imap_messages") == 2)
    assert server.flags(user) == {}
    assert len(server.flags(user, "Saved")) == 2


async def test_refused_processed_folder_never_stops_intake(
    make_dovecot: Callable[..., Dovecot], sink: Sink, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
) -> None:
    """A processed folder the server refuses to create: mail is still taken and marked
    \\Seen in place; `status` and the log say why once, with the server's words; `check`
    fails with them."""
    server = make_dovecot(namespace=INBOX_NAMESPACE)
    user = server.add_user()
    await asyncio.to_thread(server.append, user, reports(4, "refused"))
    path = write_imap_config(tmp_path, sink.port, imap_table(
        server, user, password_file(tmp_path), processed_folder=".Done"))
    code, _, err = await asyncio.to_thread(check, path, capsys)
    assert code == 2
    assert "processed folder '.Done' refused" in err
    assert "Invalid mailbox name: Begins with hierarchy separator" in err
    db = load_config(path).storage.database
    caplog.set_level(logging.INFO)
    async with running_bot(load_config(path), MovingClock(FRIDAY_EVENING)):
        await until(lambda: scalar(db, "SELECT count(*) FROM inbound WHERE status = 'done'")
                    == 4)
        await until(lambda: scalar(db, "SELECT sum(marked) FROM imap_messages") == 4)
        await until(lambda: (state(db, user) or ("",))[0] == "idle")
        result = await asyncio.to_thread(mailbot, path, "status")
    assert_once_each(db, 4)
    assert all(f == (SEEN,) for f in server.flags(user).values())
    warning = str(folder_row(db)["warnings"])
    assert "processed folder '.Done' refused" in warning and "Begins with hierarchy" in warning
    assert f"warning: {warning}" in result.stdout
    logged = [r for r in caplog.records if "processed folder '.Done' refused" in r.message]
    assert len(logged) == 1 and logged[0].levelno == logging.ERROR


def _cases_are(db: Path, n: int) -> bool:
    return bool(scalar(db, "SELECT count(*) FROM cases") == n)


async def test_silent_idle_is_looked_past_every_idle_check(
    dovecot: Dovecot, proxy: Callable[..., ImapProxy], sink: Sink, tmp_path: Path
) -> None:
    """A server that accepts IDLE but never reports new mail during it: the mail is still a
    case within seconds (the look every idle_check; polling is hourly), and `status` says
    IDLE stayed silent. (The latency itself is bench/imap.py --server silent's figure.)"""
    silent = proxy(dovecot, silent_idle=True)
    user = dovecot.add_user()
    path = write_imap_config(tmp_path, sink.port, imap_table(
        silent, user, password_file(tmp_path), idle_check=1))
    db = load_config(path).storage.database
    async with running_bot(load_config(path), MovingClock(FRIDAY_EVENING)):
        await until(lambda: (state(db, user) or ("",))[0] == "idle")
        for i in range(2):
            await asyncio.sleep(0.1)  # back in IDLE after the last mail
            await asyncio.to_thread(dovecot.append, user, [report(
                subject=f"silent {i}", sender=f"r{i}@example.net",
                message_id=f"<silent-{i}@example.net>")])
            await until(partial(_cases_are, db, i + 1), timeout=5)
        await until(lambda: "silent" in str(folder_row(db)["mode"]))
        result = await asyncio.to_thread(mailbot, path, "status", "--json")
    assert silent.withheld >= 1, "the proxy never withheld an EXISTS: the test proves nothing"
    (shown,) = json.loads(result.stdout)
    assert shown["state"] == "idle"
    assert shown["mode"].startswith("IDLE, with a look every 1s (idle_check)")
    assert "stayed silent about new mail" in shown["mode"]


async def test_status_says_how_each_watcher_waits(
    make_dovecot: Callable[..., Dovecot], dovecot: Dovecot, sink: Sink, tmp_path: Path
) -> None:
    """`status` says IDLE with looks on a server with IDLE, polling and why without."""
    plain = make_dovecot(PLAIN_CAPABILITIES)
    sec, sup = dovecot.add_user(), plain.add_user()
    path = write_imap_config(
        tmp_path, sink.port, imap_table(dovecot, sec, password_file(tmp_path)),
        imap_table(plain, sup, password_file(tmp_path), poll_interval=0.5))
    db = load_config(path).storage.database
    async with running_bot(load_config(path), MovingClock(FRIDAY_EVENING)):
        await until(lambda: scalar(db, "SELECT count(mode) FROM imap_folders") == 2)
        result = await asyncio.to_thread(mailbot, path, "status", "--json")
    modes = {r["inbox"]: r["mode"] for r in json.loads(result.stdout)}
    assert modes == {"security": "IDLE, with a look every 10s (idle_check)",
                     "support": "polling every 0.5s: the server does not offer IDLE"}


@pytest.mark.parametrize("server_kind", ["pymap", "dovecot trimmed by a proxy"])
async def test_keyword_the_server_does_not_keep_falls_back_to_seen(
    server_kind: str, request: pytest.FixtureRequest, proxy: Callable[..., ImapProxy],
    sink: Sink, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """mark = "keyword" on a folder whose PERMANENTFLAGS cannot keep it: taken mail is
    marked \\Seen (never left looking untaken), with a warning in `check` and `status`."""
    server: ImapServer
    listening: Listening
    if server_kind == "pymap":
        server = listening = request.getfixturevalue("pymap")
    else:
        server = request.getfixturevalue("dovecot")
        listening = proxy(server, no_keywords=True)
    user = server.add_user()
    await asyncio.to_thread(server.append, user, reports(2, "kw"))
    path = write_imap_config(tmp_path, sink.port, imap_table(
        listening, user, password_file(tmp_path), mark="keyword"))
    code, _, err = await asyncio.to_thread(check, path, capsys)
    assert code == 0
    assert "warning: inbox security: IMAP" in err
    assert "does not keep the keyword $MailbotTaken" in err
    db = load_config(path).storage.database
    async with running_bot(load_config(path), MovingClock(FRIDAY_EVENING)):
        await until(lambda: scalar(db, "SELECT sum(marked) FROM imap_messages") == 2)
        await until(lambda: folder_row(db).get("warnings"))
    assert list(server.flags(user).values()) == [(SEEN,), (SEEN,)]
    assert "marked \\Seen instead" in str(folder_row(db)["warnings"])


async def test_select_without_uidnext_keeps_the_message_id_check(
    dovecot: Dovecot, proxy: Callable[..., ImapProxy], sink: Sink, tmp_path: Path
) -> None:
    """A server whose SELECT gives no UIDNEXT, then renumbers the folder: the re-sync still
    knows which UIDs were there before (UID SEARCH), so a rewritten copy of a mail already
    taken is recognised by its Message-ID and not stored again."""
    bare = proxy(dovecot, strip_uidnext=True)
    user = dovecot.add_user()
    old = reports(4, "no-uidnext")
    await asyncio.to_thread(dovecot.append, user, old, "Reports")
    path = write_imap_config(tmp_path, sink.port, imap_table(
        bare, user, password_file(tmp_path), folder="Reports", poll_interval=0.3))
    db = load_config(path).storage.database
    async with running_bot(load_config(path), MovingClock(FRIDAY_EVENING)):
        await until(lambda: scalar(db, "SELECT count(*) FROM inbound WHERE status = 'done'")
                    == 4)
        (before,) = rows(db, "SELECT uidvalidity FROM imap_folders")[0]
        migrated: list[bytes | EmailMessage] = [
            old[0], b"X-Migrated: yes\r\n" + old[1], old[2], old[3],
            report(subject="new after move", message_id="<fresh@example.net>")]
        await asyncio.to_thread(dovecot.append, user, migrated, "Rebuilt")
        with dovecot.client(user) as c:
            c.delete_folder("Reports")
            c.rename_folder("Rebuilt", "Reports")
        await until(lambda: scalar(db, "SELECT count(*) FROM imap_messages"
                                       " WHERE uidvalidity != ? AND marked = 1", (before,)) == 5)
        await until(lambda: scalar(db, "SELECT count(*) FROM inbound WHERE status = 'done'")
                    == 5)
    assert bare.withheld >= 2, "the proxy never withheld UIDNEXT: the test proves nothing"
    assert_once_each(db, 5)
    assert rows(db, "SELECT resync_below FROM imap_folders") == [(6,)]


async def test_processed_folder_deleted_while_watching_never_stops_intake(
    dovecot: Dovecot, sink: Sink, tmp_path: Path
) -> None:
    """A colleague deletes the processed folder while the watcher runs: the MOVE is refused,
    so new mail is stored and marked \\Seen in place instead, with a warning."""
    user = dovecot.add_user()
    path = write_imap_config(tmp_path, sink.port, imap_table(
        dovecot, user, password_file(tmp_path), processed_folder="Done"))
    db = load_config(path).storage.database
    async with running_bot(load_config(path), MovingClock(FRIDAY_EVENING)):
        await until(lambda: (state(db, user) or ("",))[0] == "idle")
        await asyncio.to_thread(dovecot.append, user, reports(1, "first"))
        await until(lambda: scalar(db, "SELECT sum(marked) FROM imap_messages") == 1)
        with dovecot.client(user) as c:
            c.delete_folder("Done")
        await asyncio.to_thread(dovecot.append, user, reports(2, "after"))
        await until(lambda: scalar(db, "SELECT sum(marked) FROM imap_messages") == 3)
        await until(lambda: folder_row(db).get("warnings"))
    assert scalar(db, "SELECT count(*) FROM inbound") == 3
    assert list(dovecot.flags(user).values()) == [(SEEN,), (SEEN,)]
    assert "processed folder 'Done' refused" in str(folder_row(db)["warnings"])
