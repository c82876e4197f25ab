"""`require_encryption` never fails open (issue 12 item 11): through a real daemon, a reporter
key on file that gpg cannot encrypt to (expired, revoked, gone from the keyring) withholds
the acknowledgement and the reporter update, and staff are told why."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mailbot.config import Config, load_config
from mailbot.store import open_store
from tests.pgp_support import (
    FPR,
    KEYS,
    SIGNED_AT,
    Client,
    as_mail,
    command_part,
    daemon_home,
    gpg_run,
    kill_agent,
    make_key,
    pgp_config_text,
    revocation,
    short_home,
    signed_part,
)
from tests.support import (
    FRIDAY_EVENING,
    MovingClock,
    Received,
    Sink,
    direct,
    report,
    running_bot,
    table,
)

EXPIRED, REVOKED, GONE = "old@example.net", "rev@example.net", "gone@example.net"


@pytest.fixture
def keys_on_file() -> Iterator[tuple[Path, dict[str, str]]]:
    """The daemon's home holding an expired and a revoked reporter key; a third reporter's
    key is on file but no longer in the keyring."""
    home = daemon_home()
    gpg_run(home, "--import", str(KEYS / "old.pub.asc"))
    maker = short_home("gr")
    rev = make_key(maker, f"Revoked Reporter <{REVOKED}>")
    gpg_run(home, "--import", data=gpg_run(maker, "--armor", "--export", rev))
    # gpg imports it, then trips over its trust database (exit 2): check the key instead.
    subprocess.run(["gpg", "--homedir", str(home), "--batch", "--import"],
                   input=revocation(maker, rev), capture_output=True, check=False)
    listed = gpg_run(home, "--with-colons", "--list-keys", rev).decode()
    assert "pub:r:" in listed
    kill_agent(maker)
    yield home, {EXPIRED: FPR["old"], REVOKED: rev, GONE: FPR["mallory"]}
    kill_agent(home)


async def configured(write_config: Callable[..., Path], sink: Sink, tmp_path: Path,
                     home: Path, fingerprints: dict[str, str], require: str) -> Config:
    path = write_config(sink.port)
    db = tmp_path / "mailbot.db"
    path.write_text(pgp_config_text(path.read_text(), db, home, require))
    config = load_config(path)
    store = await open_store(config.storage)  # migrated, then the keys put on file as if learned
    await store.close()
    with direct(db) as conn:
        for address, fingerprint in fingerprints.items():
            conn.execute("INSERT INTO pgp_keys (address, fingerprint, learned_at, how)"
                         " VALUES (?, ?, '2026-01-01T00:00:00+00:00', 'test')",
                         (address, fingerprint))
    return config


def body(r: Received) -> str:
    part = r.msg.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def staff_reply(client: Client, ref: str) -> bytes:
    """alice's signed `#reply` on the case."""
    return as_mail(signed_part(client, command_part("#reply\nA fix is on its way.\n",
                                                    f"Re: [{ref}] x"), "alice",
                               SIGNED_AT),
                   "From: Alice Lead <alice@example.org>\r\nTo: security@example.org\r\n"
                   f"Subject: Re: [{ref}] x\r\nDate: Fri, 18 Dec 2026 18:15:00 +0100\r\n"
                   f"Message-ID: <reply-{ref}@example.org>\r\n")


async def test_unusable_reporter_keys_withhold_what_must_be_encrypted(
        write_config: Callable[..., Path], sink: Sink, tmp_path: Path, pgp_client: Client,
        keys_on_file: tuple[Path, dict[str, str]]) -> None:
    """A reporter's key on file has expired, been revoked, or left the keyring: nothing the
    policy requires encrypted goes to them in clear, and staff read why in the notification,
    the transcript and the case's events."""
    home, fingerprints = keys_on_file
    config = await configured(write_config, sink, tmp_path, home, fingerprints,
                              'require_encryption = ["ack", "update"]')
    db = tmp_path / "mailbot.db"
    async with running_bot(config, MovingClock(FRIDAY_EVENING)) as bot:
        for n, address in enumerate((EXPIRED, REVOKED, GONE), start=1):
            await bot.send(report(sender=address, message_id=f"<r{n}@example.net>"),
                           mail_from=address, to=["security@example.org"])
            *_, notice = await sink.wait_for(n, to="bob@example.org")
            text = body(notice)
            assert "acknowledgement NOT sent: the policy requires encryption and cannot " \
                   f"encrypt to {fingerprints[address]}" in text, address
        await bot.send(staff_reply(pgp_client, "SEC-2026-0001"), mail_from="alice@example.org",
                       to=["security@example.org"])
        transcript = await _transcript(sink)
        assert f"update NOT sent: the policy requires encryption and cannot encrypt to " \
               f"{FPR['old']}" in body(transcript)
    for address in (EXPIRED, REVOKED, GONE):
        assert sink.to(address) == [], address
    assert table(db, "SELECT purpose FROM outbox WHERE purpose LIKE 'ack:%'"
                     " OR purpose LIKE 'reporter:%'") == []
    withheld = table(db, "SELECT c.ref, e.action FROM events e JOIN cases c ON c.id = e.case_id"
                         " WHERE e.action LIKE '% withheld' ORDER BY e.id")
    assert withheld == [("SEC-2026-0001", "acknowledgement withheld"),
                        ("SEC-2026-0002", "acknowledgement withheld"),
                        ("SEC-2026-0003", "acknowledgement withheld"),
                        ("SEC-2026-0001", "update withheld")]


async def test_without_the_requirement_staff_learn_the_mail_went_in_clear(
        write_config: Callable[..., Path], sink: Sink, tmp_path: Path,
        keys_on_file: tuple[Path, dict[str, str]]) -> None:
    """Where the policy allows clear mail, a key gpg cannot use means a clear
    acknowledgement, and staff are told so (never a silent downgrade)."""
    home, fingerprints = keys_on_file
    config = await configured(write_config, sink, tmp_path, home, fingerprints, "")
    async with running_bot(config, MovingClock(FRIDAY_EVENING)) as bot:
        await bot.send(report(sender=REVOKED), mail_from=REVOKED, to=["security@example.org"])
        (ack,) = await sink.wait_for(1, to=REVOKED)
        (notice,) = await sink.wait_for(1, to="bob@example.org")
    assert ack.msg.get_content_type() == "text/plain"
    assert f"acknowledgement sent in CLEAR: cannot encrypt to {fingerprints[REVOKED]}" \
        in body(notice)


async def _transcript(sink: Sink) -> Received:
    for n in range(1, 20):
        got = [r for r in await sink.wait_for(n, to="alice@example.org")
               if r.msg["X-Mailbot-Kind"] == "transcript"]
        if got:
            return got[0]
    raise AssertionError("no transcript")
