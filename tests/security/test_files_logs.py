"""Secrets on disk and in logs: a real `mailbot run` under umask 022, logging at DEBUG,
fed a report by SMTP and by IMAP and a staff command to a reply-token address."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import stat
import sys
from email import message_from_bytes, policy
from email.utils import formatdate
from pathlib import Path

import aiosmtplib
import pytest

from mailbot import logsafe
from tests.dovecot import PASSWORD, Dovecot
from tests.imap_support import imap_table, password_file, until
from tests.support import CONFIG, free_port, report, table

CASE_TEXT = "The admin panel at /zz-hidden-console accepts any session cookie"
IMAP_TEXT = "Stored XSS via the avatar upload field, found by the IMAP reporter"
PASSPHRASE = "correct-horse-battery-staple-4711"


def write_config(tmp_path: Path, port: int, dovecot: Dovecot, user: str) -> Path:
    """Everything mailbot keeps under var/, which it creates; outgoing mail to a maildir."""
    var = tmp_path / "var"
    text = CONFIG.format(db=var / "mailbot.db", sink_port=1, protocol="smtp", max_size="1MB")
    text = text.replace("port = 0", f"port = {port}")
    text = text.replace(f'secret_file = "{var}/mailbot.db.secret"', f'secret_file = "{var}/secret"')
    text = text.replace(f'home = "{var}/mailbot.db.gnupg"',
                        f'home = "{var}/gnupg"\npassphrase_file = "{tmp_path}/passphrase"')
    text = text.replace("timeout = 5\n", f'timeout = 5\nmaildir = "{var}/outbox"\n')
    text = text.replace('prefix = "SUP"\n',
                        f'prefix = "SUP"\n{imap_table(dovecot, user, password_file(tmp_path))}\n')
    (tmp_path / "passphrase").write_text(PASSPHRASE + "\n")
    path = tmp_path / "mailbot.toml"
    path.write_text(text)
    return path


async def start(config: Path, port: int, log: Path) -> asyncio.subprocess.Process:
    """`mailbot run --log-level debug` under umask 022, once it listens."""
    with open(log, "wb") as out:  # noqa: ASYNC230 (opened once, before the child starts)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mailbot", "run", "--config", str(config),
            "--log-level", "debug", stdout=asyncio.subprocess.DEVNULL, stderr=out,
            preexec_fn=lambda: os.umask(0o022),
        )
    for _ in range(400):
        if proc.returncode is not None:
            break
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return proc
        except OSError:
            await asyncio.sleep(0.05)
    proc.kill()
    raise AssertionError(f"daemon did not start; see {log}")


def reply_address(outbox: Path) -> str:
    """The tokenised Reply-To of a staff notification the daemon wrote to its maildir."""
    for f in sorted((outbox / "new").iterdir()):
        msg = message_from_bytes(f.read_bytes(), policy=policy.default)
        if msg["To"] == "alice@example.org" and msg["Reply-To"]:
            return str(msg["Reply-To"])
    raise AssertionError("no notification to alice")


async def test_files_private_and_log_clean(dovecot: Dovecot, tmp_path: Path, backend: str
                                          ) -> None:
    """A local user who reads the disk or the DEBUG log tries to learn case text, a staff
    reply token, the IMAP password or the GnuPG passphrase: every file mailbot (and gpg and
    SQLite for it) made is 0600 and every directory 0700 under umask 022, and none of these
    is in the log."""
    user = dovecot.add_user()
    port = free_port()
    config = write_config(tmp_path, port, dovecot, user)
    db, log = tmp_path / "var" / "mailbot.db", tmp_path / "daemon.log"
    await asyncio.to_thread(dovecot.append, user, [report(
        subject="Avatar upload", to="support@example.org", message_id="<imap-1@example.net>",
        body=IMAP_TEXT + "\n")])
    # An inbox key, as an operator makes it: gpg writes the GnuPG home, under umask 022.
    gen = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mailbot", "key", "generate", "security", "--config", str(config),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        preexec_fn=lambda: os.umask(0o022))
    _, err = await gen.communicate()
    assert gen.returncode == 0, err
    proc = await start(config, port, log)
    try:
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=10) as smtp:
            await smtp.send_message(report(subject="Hidden console", body=CASE_TEXT + "\n"))
        await until(lambda: table(db, "SELECT count(*) FROM inbound WHERE status = 'done'")
                    == [(2,)], timeout=30)
        await until(lambda: table(db, "SELECT count(*) FROM outbox WHERE status = 'pending'")
                    == [(0,)], timeout=30)
        token_address = reply_address(tmp_path / "var" / "outbox")
        command = report(subject="Re: your case", sender="alice@example.org",
                         to=token_address, body="#status triaged\n", message_id="<c@x.org>")
        del command["Date"]
        command["Date"] = formatdate()  # inside the replay window of the real clock
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=10) as smtp:
            await smtp.sendmail("alice@example.org", [token_address], command.as_bytes())
        ref = token_address.split("+")[1].split(".")[0]
        await until(lambda: table(db, "SELECT state FROM cases WHERE ref = ?", (ref,))
                    == [("triaged",)], timeout=30)
        assert backend == "postgresql" or (tmp_path / "var" / "mailbot.db-wal").exists()
        modes = {p: stat.S_IMODE(p.lstat().st_mode) for p in [tmp_path / "var",
                                                               *(tmp_path / "var").rglob("*")]}
    finally:
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    loose = {str(p.relative_to(tmp_path)): oct(m) for p, m in modes.items() if m & 0o077}
    assert not loose, f"readable by others: {loose}"
    made = {p.name for p in modes}
    database = {"mailbot.db", "mailbot.db-wal", "mailbot.db-shm", "mailbot.db.sent"}
    assert {*(database if backend == "sqlite" else ()), "secret", "gnupg", "pubring.kbx",
            "private-keys-v1.d", "outbox", "new"} <= made

    text = log.read_text(errors="replace")
    assert "DEBUG" in text and "inbound" in text  # the log ran at DEBUG and has content
    token = token_address.split("@")[0].split(".")[-1]
    assert len(token) == 20 and token not in text
    for secret in (CASE_TEXT, IMAP_TEXT, "zz-hidden-console", PASSPHRASE):
        assert secret not in text, f"{secret!r} in the log"
    assert not re.search(rf"\b{PASSWORD}\b", text), "the IMAP password in the log"


@pytest.mark.parametrize(("line", "masked"), [
    ("RCPT TO:<security+SEC-2026-0001.0123456789abcdef0123@example.org>",
     "RCPT TO:<security+SEC-2026-0001.****@example.org>"),
    ("to Support+sup-2026-12345.ABCDEF0123456789abcd@example.org and more",
     "to Support+sup-2026-12345.****@example.org and more"),
    ("security+SEC-2026-0001@example.org has no token", None),
])
def test_mask_tokens(line: str, masked: str | None) -> None:
    """Someone reading the log tries to lift a reply token: any tokenised address is masked."""
    assert logsafe.mask(line) == (masked or line)


def test_mask_filter_covers_arguments_and_tracebacks() -> None:
    """A token passed as a log argument or inside an exception message is masked too."""
    address = "security+SEC-2026-0001.0123456789abcdef0123@example.org"
    try:
        raise ValueError(address)
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "to %s", (address,),
                                   sys.exc_info())
    assert logsafe.MaskTokens().filter(record)
    assert "0123456789abcdef0123" not in record.getMessage()
    assert record.exc_text and "0123456789abcdef0123" not in record.exc_text
