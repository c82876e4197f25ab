"""A PGP-signed staff command acts only on the case its signed content names."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from mailbot.config import Config, load_config
from tests.pgp_support import (
    FPR,
    KEYS,
    Client,
    gpg_run,
    inline_mail,
    kill_agent,
    report_part,
    short_home,
    signed_mime,
)
from tests.support import FRIDAY_EVENING, Bot, MovingClock, Sink, running_bot, table

SIGNED_AT = "20261218T170500"  # the tests' clock: Friday evening


@pytest.fixture
def pgp_bot_config(write_config: Callable[..., Path], sink: Sink) -> Iterator[Config]:
    """Alice's key configured, PGP accepted as a staff proof."""
    home = short_home("ga")
    gpg_run(home, "--import", str(KEYS / "inbox.sec.asc"))
    gpg_run(home, "--import", str(KEYS / "alice.pub.asc"))
    path = write_config(sink.port)
    text = path.read_text()
    text = text.replace(f'home = "{path.parent / "mailbot.db"}.gnupg"', f'home = "{home}"')
    text = text.replace('prefix = "SEC"', f'prefix = "SEC"\npgp_key = "{FPR["inbox"]}"\n'
                        'staff_auth = ["pgp"]')
    text = text.replace('role = "lead"', f'role = "lead"\npgp_fingerprint = "{FPR["alice"]}"')
    path.write_text(text)
    yield load_config(path)
    kill_agent(home)


@pytest.fixture
async def pgp_bot(pgp_bot_config: Config) -> AsyncIterator[Bot]:
    async with running_bot(pgp_bot_config, MovingClock(FRIDAY_EVENING)) as b:
        yield b


async def settled_kinds(bot: Bot, count: int) -> dict[str, tuple[str, str, str]]:
    """Once `count` mails are processed: Message-ID -> (case, kind, case state)."""
    db = bot.config.storage.database
    async with asyncio.timeout(20):
        while True:
            with contextlib.suppress(sqlite3.OperationalError):  # the daemon is writing
                rows = table(db, "SELECT i.message_id, c.ref, m.kind, c.state FROM inbound i"
                                 " JOIN messages m ON m.inbound_id = i.id"
                                 " JOIN cases c ON c.id = m.case_id")
                pending = table(db, "SELECT count(*) FROM inbound WHERE status = 'pending'")
                if len(rows) >= count and pending == [(0,)]:
                    return {str(r[0]): (str(r[1]), str(r[2]), str(r[3])) for r in rows}
            await asyncio.sleep(0.05)


async def test_a_signed_command_cannot_be_sent_to_another_case(
    pgp_bot: Bot, sink: Sink, pgp_client: Client
) -> None:
    """The attacker captures alice's signed command for SEC-2026-0001 and sends it first,
    under a new Message-ID and an outer Subject naming SEC-2026-0002, hoping it acts on
    that case and that alice's genuine mail is then refused as its replay."""
    for n, subject in ((1, "XSS in /search"), (2, "SQLi in /login")):
        await pgp_bot.send(inline_mail(f"Report {n}.\n", subject=subject,
                                       message_id=f"<r{n}@example.net>"),
                           mail_from="researcher@example.net", to=["security@example.org"])
    await settled_kinds(pgp_bot, 2)
    genuine = signed_mime(pgp_client, report_part("#status triaged\n\nOn SEC-2026-0001.\n"),
                          subject="Re: [SEC-2026-0001] XSS", at=SIGNED_AT)
    moved = genuine.replace(b"Subject: Re: [SEC-2026-0001] XSS",
                            b"Subject: Re: [SEC-2026-0002] SQLi").replace(
        b"<signed-alice@", b"<moved@")
    await pgp_bot.send(moved, mail_from="alice@example.org", to=["security@example.org"])
    await settled_kinds(pgp_bot, 3)
    await pgp_bot.send(genuine, mail_from="alice@example.org", to=["security@example.org"])
    seen = await settled_kinds(pgp_bot, 4)
    assert seen["<moved@example.org>"] == ("SEC-2026-0002", "untrusted-staff", "new")
    assert seen["<signed-alice@example.org>"] == ("SEC-2026-0001", "staff", "triaged")
