"""PGP end to end over SMTP: the real daemon, the real gpg, the sink as relay."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailbot.config import Config, load_config
from mailbot.store import cases as case_q
from tests.pgp_support import (
    FPR,
    KEYS,
    Client,
    gpg_run,
    inline_mail,
    kill_agent,
    pgp_mime,
    report_part,
    short_home,
    signed_mime,
)
from tests.support import FRIDAY_EVENING, Bot, MovingClock, Received, Sink, running_bot

CASE = "SEC-2026-0001"
SIGNED_AT = "20261218T170500"  # the tests' clock: Friday evening


@pytest.fixture
def pgp_config(write_config: Callable[..., Path], sink: Sink) -> Iterator[Callable[..., Config]]:
    """The test config with the inbox key, alice's key, and PGP as a staff proof."""
    home = short_home("gi")
    gpg_run(home, "--import", str(KEYS / "inbox.sec.asc"))
    gpg_run(home, "--import", str(KEYS / "alice.pub.asc"))

    def make(require: str = "") -> Config:
        path = write_config(sink.port)
        text = path.read_text()
        text = text.replace(f'home = "{path.parent / "mailbot.db"}.gnupg"', f'home = "{home}"')
        text = text.replace('prefix = "SEC"', f'prefix = "SEC"\npgp_key = "{FPR["inbox"]}"\n'
                            'staff_auth = ["reply-token", "pgp"]')
        text = text.replace('role = "lead"', f'role = "lead"\npgp_fingerprint = "{FPR["alice"]}"')
        text = text.replace('warn_before = "1 business day"',
                            f'warn_before = "1 business day"\n{require}')
        text += '\n[security_txt]\nencryption = "https://example.org/pgp-key.txt"\n'
        path.write_text(text)
        return load_config(path)

    yield make
    kill_agent(home)


@pytest.fixture
async def pgp_bot(pgp_config: Callable[..., Config]) -> AsyncIterator[Bot]:
    async with running_bot(pgp_config(), MovingClock(FRIDAY_EVENING)) as b:
        yield b


async def messages(bot: Bot) -> list[dict[str, object]]:
    store = await bot.open_store()
    async with store.read() as db:
        case = await case_q.get(db, CASE)
        assert case is not None
        return await case_q.messages(db, case["id"])


async def events(bot: Bot) -> list[str]:
    store = await bot.open_store()
    async with store.read() as db:
        case = await case_q.get(db, CASE)
        assert case is not None
        return [e["action"] for e in await case_q.events(db, case["id"])]


def read_sealed(pgp_client: Client, got: Received) -> tuple[EmailMessage, str]:
    """The inner mail of a PGP/MIME mail and gpg's status lines, as the recipient reads it."""
    outer = got.msg
    assert outer.get_content_type() == "multipart/encrypted"
    payload = list(outer.iter_parts())[1].get_payload(decode=True)
    assert isinstance(payload, bytes)
    plain, status = pgp_client.decrypt(payload)
    inner = message_from_bytes(plain, policy=policy.default)
    assert isinstance(inner, EmailMessage)
    return inner, status


async def test_encrypted_report_opens_a_case_and_is_answered_encrypted(
    pgp_bot: Bot, sink: Sink, pgp_client: Client,
) -> None:
    key = (KEYS / "reporter.pub.asc").read_bytes()
    entity = report_part("SQL injection in /login, payload attached.", attachment=b"' OR 1=1",
                         subject="SQLi in login", key=key)
    await pgp_bot.send(pgp_mime(pgp_client.encrypt(entity, sign_as="reporter"), subject="..."),
                       mail_from="researcher@example.net", to=["security@example.org"])
    (ack,) = await sink.wait_for(1)
    (notice,) = await sink.wait_for(1, to="alice@example.org")
    (clear_notice,) = await sink.wait_for(1, to="bob@example.org")

    (report,) = [m for m in await messages(pgp_bot) if m["direction"] == "in"]
    assert report["body"] == "SQL injection in /login, payload attached."
    assert (report["encrypted"], report["readable"], report["subject"]) == (
        True, True, "SQLi in login")
    # Signed by the reporter, whose key came inside the encrypted mail itself: at the time
    # of decryption gpg did not know it yet.
    assert report["signature"] == "unknown-key" and report["signer"] == FPR["reporter"]

    inner, status = read_sealed(pgp_client, ack)
    assert "GOODSIG" in status and FPR["inbox"] in status  # signed by the inbox key
    assert inner["Subject"] == f"[{CASE}] Re: SQLi in login"
    assert ack.msg["Subject"] == f"[{CASE}] ..."  # nothing of the report outside
    assert b"SQLi" not in ack.raw and b"SQL injection" not in ack.raw
    assert "We have registered it as case" in inner.get_content()

    staff_inner, _ = read_sealed(pgp_client, notice)  # alice has a key: encrypted to her
    assert "SQL injection in /login" in staff_inner.get_body(("plain",)).get_content()
    assert b"SQL injection in /login" not in notice.raw
    assert clear_notice.msg.get_content_type() != "multipart/encrypted"  # bob has none
    assert b"PGP: encrypted, decrypted; signature unknown-key" in clear_notice.raw


async def test_undecryptable_report_is_kept_and_the_reporter_told(
    pgp_bot: Bot, sink: Sink, pgp_client: Client,
) -> None:
    armor = pgp_client.encrypt(b"lost in transit\n", to="mallory").decode()
    raw = inline_mail(armor, subject="Vulnerability report")
    await pgp_bot.send(raw, mail_from="researcher@example.net", to=["security@example.org"])
    (ack,) = await sink.wait_for(1)
    (notice,) = await sink.wait_for(1, to="bob@example.org")

    text = ack.msg.get_content()
    assert "We could not decrypt your message" in text
    assert "1849 8F79 206E 2FB4" in text and "https://example.org/pgp-key.txt" in text
    assert "Traceback" not in text
    assert "COULD NOT BE DECRYPTED" in notice.msg.get_content()
    (report,) = [m for m in await messages(pgp_bot) if m["direction"] == "in"]
    assert (report["encrypted"], report["readable"]) == (True, False)
    assert "BEGIN PGP MESSAGE" in str(report["body"])  # kept as received
    assert "undecryptable" in await events(pgp_bot)


async def test_signed_staff_command_is_obeyed_and_forgeries_are_not(
    pgp_bot: Bot, sink: Sink, pgp_client: Client,
) -> None:
    await pgp_bot.send(inline_mail("Plain report.\n", subject="XSS in /search"),
                       mail_from="researcher@example.net", to=["security@example.org"])
    await sink.wait_for(1, to="bob@example.org")

    # Signed by mallory's key with alice's From: not alice's proof.
    forged = signed_mime(pgp_client, report_part("#status rejected\n"), as_="mallory",
                         subject=f"Re: [{CASE}] XSS", at=SIGNED_AT)
    await pgp_bot.send(forged, mail_from="alice@example.org", to=["security@example.org"])
    await sink.wait_for(2, to="bob@example.org")  # the untrusted-staff alert
    # A signature made long ago (a replayed signed mail) proves nothing either.
    stale = signed_mime(pgp_client, report_part("#status rejected\n"), subject=f"Re: [{CASE}] XSS",
                        at="20261124T120000").replace(b"signed-alice", b"signed-stale")
    await pgp_bot.send(stale, mail_from="alice@example.org", to=["security@example.org"])
    await sink.wait_for(3, to="bob@example.org")

    # The signed text names its case: an unsigned Subject cannot send it to another one.
    good = signed_mime(pgp_client, report_part(f"#status triaged\n\nOn {CASE}.\n"),
                       subject=f"Re: [{CASE}] XSS", at=SIGNED_AT)
    await pgp_bot.send(good, mail_from="alice@example.org", to=["security@example.org"])
    # alice: three notifications (the report, two alerts), encrypted; then the transcript.
    *_, transcript = await sink.wait_for(4, to="alice@example.org")
    assert "Applied to SEC-2026-0001" in transcript.msg.get_content()
    # The same signed mail sent again under a new Message-ID (a captured one, replayed).
    replay = good.replace(b"<signed-alice@", b"<replayed@")
    await pgp_bot.send(replay, mail_from="alice@example.org", to=["security@example.org"])
    await sink.wait_for(4, to="bob@example.org")  # one more untrusted-staff alert
    kinds = [(m["kind"], m["signature"]) for m in await messages(pgp_bot)
             if m["direction"] == "in"]
    assert kinds == [("report", "none"), ("untrusted-staff", "unknown-key"),
                     ("untrusted-staff", "good"), ("staff", "good"),
                     ("untrusted-staff", "good")]


async def test_policy_requiring_encryption_withholds_the_clear_ack(
    pgp_config: Callable[..., Config], sink: Sink,
) -> None:
    config = pgp_config(require='require_encryption = ["ack"]')
    async with running_bot(config, MovingClock(FRIDAY_EVENING)) as bot:
        await bot.send(inline_mail("No key attached.\n"), mail_from="researcher@example.net",
                       to=["security@example.org"])
        (notice,) = await sink.wait_for(1, to="bob@example.org")
        assert "acknowledgement NOT sent" in notice.msg.get_content()
        assert sink.to("researcher@example.net") == []
        assert "acknowledgement withheld" in await events(bot)
