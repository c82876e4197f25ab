"""A real daemon with `staff_auth = ["reply-token", "pgp"]`: a signature over one part of a
mail never makes the rest of it a staff command (issue 12 item 1), in each MIME shape; PGP/MIME
below the top level reaches staff decrypted (issue 14 item 1)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from mailbot.config import load_config
from mailbot.store import cases as case_q
from tests.pgp_support import (
    ALICE_HEAD,
    SIGNED_AT,
    Client,
    as_mail,
    command_part,
    daemon_home,
    encrypted_part,
    kill_agent,
    multipart,
    pgp_config_text,
    report_part,
    signed_part,
    text_part,
)
from tests.support import FRIDAY_EVENING, Bot, MovingClock, Received, Sink, report, running_bot

CASE = "SEC-2026-0001"
COMMANDS = "#status rejected\n#reply We will not fix this. Bye.\n"
# What alice really signed names the case (in its text, and as a protected Subject), so
# only the coverage of her signature stands between these mails and obedience.
SIGNED_TEXT = "Looking into SEC-2026-0001, more tomorrow.\n"


@pytest.fixture
def home() -> Iterator[Path]:
    h = daemon_home()
    yield h
    kill_agent(h)


@pytest.fixture
async def bot(sink: Sink, write_config: Callable[..., Path], home: Path,
              tmp_path: Path) -> AsyncIterator[Bot]:
    path = write_config(sink.port)
    path.write_text(pgp_config_text(path.read_text(), tmp_path / "mailbot.db", home))
    async with running_bot(load_config(path), MovingClock(FRIDAY_EVENING)) as b:
        yield b


async def case_state(bot: Bot) -> str:
    store = await bot.open_store()
    async with store.read() as db:
        case = await case_q.get(db, CASE)
        assert case is not None
        return str(case["state"])


async def kinds(bot: Bot) -> list[str]:
    store = await bot.open_store()
    async with store.read() as db:
        case = await case_q.get(db, CASE)
        assert case is not None
        return [str(m["kind"]) for m in await case_q.messages(db, case["id"])
                if m["direction"] == "in"]


def body(r: Received) -> str:
    part = r.msg.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def signed(c: Client, text: str = SIGNED_TEXT) -> bytes:
    return signed_part(c, command_part(text, f"Re: [{CASE}] XSS"), "alice", SIGNED_AT)


def clear(c: Client, text: str = SIGNED_TEXT) -> str:
    return c.clearsign(text, "alice", SIGNED_AT)


SHAPES: dict[str, Callable[[Client], bytes]] = {
    "unsigned text part, then alice's clear-signed part (the reported case)": lambda c:
        multipart(text_part(COMMANDS), text_part(clear(c))),
    "alice's clear-signed part, then unsigned text": lambda c: multipart(
        text_part(clear(c)), text_part(COMMANDS)),
    "commands above the armor in the same part": lambda c: text_part(
        COMMANDS + "\n" + clear(c)),
    "commands in an HTML alternative to alice's clear-signed text": lambda c: multipart(
        text_part(clear(c)), text_part(f"<p>{COMMANDS}</p>", "text/html"),
        subtype="alternative"),
    "mallory's clear-signed commands beside alice's clear-signed text": lambda c: multipart(
        text_part(c.clearsign(COMMANDS, "mallory", SIGNED_AT)), text_part(clear(c))),
    "unsigned text, then alice's multipart/signed": lambda c: multipart(
        text_part(COMMANDS), signed(c)),
    "alice's multipart/signed, then unsigned text": lambda c: multipart(
        signed(c), text_part(COMMANDS)),
    "unsigned text beside alice's signed and encrypted part": lambda c: multipart(
        text_part(COMMANDS), encrypted_part(c.encrypt(command_part(SIGNED_TEXT,
                                                                   f"Re: [{CASE}] XSS"),
                                                      sign_as="alice", at=SIGNED_AT))),
    "unsigned HTML alternative to alice's signed text": lambda c: multipart(
        signed(c), text_part(f"<p>{COMMANDS}</p>", "text/html"), subtype="alternative"),
    "encrypted: unsigned text beside alice's signed part": lambda c: encrypted_part(
        c.encrypt(multipart(text_part(COMMANDS), signed(c)))),
}


@pytest.mark.parametrize("shape", SHAPES)
async def test_commands_beside_a_genuine_signed_part_are_not_obeyed(
        bot: Bot, sink: Sink, pgp_client: Client, shape: str) -> None:
    """An attacker who holds one genuine signed text of a staff member (fresh, never seen
    by the bot) adds command lines outside it, From: that staff member: the case is not
    touched, nothing goes to the reporter, staff are alerted."""
    await bot.send(report(), mail_from="researcher@example.net", to=["security@example.org"])
    await sink.wait_for(1, to="bob@example.org")
    head = ALICE_HEAD.replace("<shape-1@", f"<attack-{abs(hash(shape))}@")
    await bot.send(as_mail(SHAPES[shape](pgp_client), head), mail_from="alice@example.org",
                   to=["security@example.org"])
    (_, alert) = await sink.wait_for(2, to="bob@example.org")
    assert "could not be authenticated" in body(alert)
    assert await case_state(bot) == "new"
    assert await kinds(bot) == ["report", "untrusted-staff"]
    assert len(sink.to("researcher@example.net")) == 1  # the acknowledgement only


async def test_the_same_signature_over_the_whole_mail_is_obeyed(
        bot: Bot, sink: Sink, pgp_client: Client) -> None:
    """The control: alice's signed command alone in a Google-Workspace-style re-wrap
    (an empty text part beside it) is staff's."""
    await bot.send(report(), mail_from="researcher@example.net", to=["security@example.org"])
    await sink.wait_for(1, to="bob@example.org")
    mail = as_mail(multipart(text_part(""), signed(pgp_client, "#status triaged\n")))
    await bot.send(mail, mail_from="alice@example.org", to=["security@example.org"])
    *_, transcript = await sink.wait_for(2, to="alice@example.org")
    assert "Applied to SEC-2026-0001" in body(transcript)
    assert await case_state(bot) == "triaged"


async def test_rewrapped_pgp_mime_reaches_staff_decrypted(
        bot: Bot, sink: Sink, pgp_client: Client) -> None:
    """Google Workspace's re-wrap of Thunderbird's PGP/MIME (multipart/mixed with an empty
    text part and the multipart/encrypted) opens a case with the decrypted report."""
    head = ("From: Rita Researcher <researcher@example.net>\r\nTo: security@example.org\r\n"
            "Subject: ...\r\nDate: Fri, 18 Dec 2026 17:55:00 +0100\r\n"
            "Message-ID: <gw-1@example.net>\r\n")
    entity = report_part("Stored XSS in the profile page.", subject="XSS in profile")
    raw = as_mail(multipart(text_part(""), encrypted_part(pgp_client.encrypt(entity))), head)
    await bot.send(raw, mail_from="researcher@example.net", to=["security@example.org"])
    (notice,) = await sink.wait_for(1, to="bob@example.org")
    text = body(notice)
    assert "Stored XSS in the profile page." in text and "XSS in profile" in text
    store = await bot.open_store()
    async with store.read() as db:
        case = await case_q.get(db, CASE)
        assert case is not None
        (msg,) = [m for m in await case_q.messages(db, case["id"]) if m["direction"] == "in"]
    assert (msg["encrypted"], msg["readable"]) == (True, True)


async def test_nested_pgp_that_cannot_be_read_is_marked_not_empty(
        bot: Bot, sink: Sink, pgp_client: Client) -> None:
    """A re-wrapped PGP/MIME mail to a key we do not hold is kept as undecryptable, and the
    reporter is told how to reach us: never an empty clear report."""
    head = ("From: Rita Researcher <researcher@example.net>\r\nTo: security@example.org\r\n"
            "Subject: ...\r\nDate: Fri, 18 Dec 2026 17:55:00 +0100\r\n"
            "Message-ID: <gw-2@example.net>\r\n")
    raw = as_mail(multipart(text_part(""), encrypted_part(
        pgp_client.encrypt(text_part("x"), to="mallory"))), head)
    await bot.send(raw, mail_from="researcher@example.net", to=["security@example.org"])
    (notice,) = await sink.wait_for(1, to="bob@example.org")
    assert "COULD NOT BE DECRYPTED" in body(notice)
    (ack,) = await sink.wait_for(1, to="researcher@example.net")
    assert "We could not decrypt your message" in body(ack)
