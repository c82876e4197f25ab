"""`mailbot check` and `mailbot status` for IMAP inboxes, against a real Dovecot (and pymap)."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

from mailbot.cli import main
from mailbot.config import load_config
from tests.dovecot import Dovecot, ImapServer
from tests.imap_support import imap_table, password_file, reports, scalar, until, write_imap_config
from tests.integration.test_cli import mailbot
from tests.support import FRIDAY_EVENING, MovingClock, Sink, running_bot


def check(config: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["check", "--config", str(config), "--log-level", "error"])
    out, err = capsys.readouterr()
    return code, out, err


def test_check_logs_in_and_selects_the_folder(
    imap_server: ImapServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`mailbot check` says the folder was selected, with its size and UIDVALIDITY."""
    user = imap_server.add_user()
    imap_server.append(user, reports(2, "check"))
    config = write_imap_config(tmp_path, 1, imap_table(imap_server, user, password_file(tmp_path)))
    code, out, err = check(config, capsys)
    assert code == 2 and err.strip().startswith("error: relay 127.0.0.1:1:")  # the only error
    assert f"inbox security: IMAP {user}@127.0.0.1/INBOX: OK (2 messages, UIDVALIDITY" in out


@pytest.mark.parametrize(
    ("options", "password", "expected"),
    [
        ({}, "hunter2-wrong",
         "login as '{user}' refused by 127.0.0.1:{port}: [AUTHENTICATIONFAILED]"),
        ({"folder": "Nope"}, "secret", "cannot select folder 'Nope' on 127.0.0.1:{port}:"),
        ({"tls": "implicit"}, "secret", "TLS with 127.0.0.1:{port} failed:"),
        ({"tls": "starttls"}, "secret", "127.0.0.1:{port} does not offer STARTTLS"),
        ({"port": 1}, "secret", "cannot talk to 127.0.0.1:1 (connect): Connection refused"),
    ],
)
def test_check_reports_imap_failures_without_the_secret(
    dovecot: Dovecot, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    options: dict[str, object], password: str, expected: str,
) -> None:
    """A wrong password, a missing folder, a TLS or connection failure: exit 2, a clear
    reason naming the inbox and the folder, and never the password."""
    user = dovecot.add_user()
    config = write_imap_config(tmp_path, 1, imap_table(
        dovecot, user, password_file(tmp_path, password), **options))
    code, out, err = check(config, capsys)
    assert code == 2
    port = options.get("port", dovecot.port)
    assert f"error: inbox security: IMAP {user}@127.0.0.1/" in err
    assert expected.format(user=user, port=port) in err
    assert password not in out + err


async def test_status_shows_each_watcher_from_another_process(
    imap_server: ImapServer, sink: Sink, tmp_path: Path
) -> None:
    """`mailbot status` (another process) shows state, UIDVALIDITY and last UID per folder,
    a configured folder no daemon has watched yet, and which instance holds the scheduler
    and each folder."""
    user = imap_server.add_user()
    await asyncio.to_thread(imap_server.append, user, reports(3, "status"))
    path = write_imap_config(tmp_path, sink.port, imap_table(
        imap_server, user, password_file(tmp_path)), imap_table(
        imap_server, "nobody", password_file(tmp_path), folder="Elsewhere"))
    config = load_config(path)
    db = config.storage.database
    async with running_bot(config, MovingClock(FRIDAY_EVENING)):
        await until(lambda: scalar(db, "SELECT count(*) FROM imap_messages") == 3)
        await until(lambda: scalar(db, "SELECT state FROM imap_folders WHERE inbox = 'security'")
                    == "idle")
        await until(lambda: scalar(db, "SELECT failures FROM imap_folders"
                                       " WHERE inbox = 'support'"))
        result = await asyncio.to_thread(mailbot, path, "status", "--json")
        text = await asyncio.to_thread(mailbot, path, "status")
    assert result.returncode == 0, result.stderr
    security, support = sorted(json.loads(result.stdout), key=lambda r: r["inbox"])
    assert security["state"] == "idle" and security["mailbox"] == f"{user}@127.0.0.1/INBOX"
    assert (security["last_uid"], security["taken"], security["unmarked"]) == (3, 3, 0)
    assert isinstance(security["uidvalidity"], int)
    assert support["state"] in ("backing off", "connecting")
    assert "refused" in support["last_error"]
    assert f"{user}@127.0.0.1/INBOX" in text.stdout and "last UID 3" in text.stdout
    held = re.findall(r"(?m)^lease +(\S+) +held by (\S+) until", text.stdout)
    assert ("scheduler", held[0][1]) in held and any(n.startswith("imap:") for n, _ in held)
    assert len({h for _, h in held}) == 1  # one daemon holds them all
