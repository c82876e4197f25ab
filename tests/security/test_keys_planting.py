"""Key planting (issue 12 item 5), tried as an attacker against a real daemon: a key offered in
a mail binds only to the case that mail opened; it becomes the address's key only after a
round trip (an answer to our mail on that case, signed by that key); a confirmed key is never
replaced or shadowed except by a mail it signed. Staff see which key a mail is encrypted to."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailbot.config import load_config
from mailbot.store import cases as case_q
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
    short_home,
    signed_part,
    text_part,
)
from tests.support import (
    FRIDAY_EVENING,
    Bot,
    MovingClock,
    Received,
    Sink,
    report,
    running_bot,
    table,
)

VICTIM = "researcher@example.net"


@pytest.fixture
def home() -> Iterator[Path]:
    h = daemon_home()
    yield h
    kill_agent(h)


@pytest.fixture
def attacker() -> Iterator[tuple[Path, str]]:
    """Mallory's GnuPG home with a key she made in the victim's name."""
    h = short_home("ga")
    fpr = make_key(h, f"Rita Researcher <{VICTIM}>")
    yield h, fpr
    kill_agent(h)


@pytest.fixture
async def bot(sink: Sink, write_config: Callable[..., Path], home: Path,
              tmp_path: Path) -> AsyncIterator[Bot]:
    path = write_config(sink.port)
    path.write_text(pgp_config_text(path.read_text(), tmp_path / "mailbot.db", home))
    async with running_bot(load_config(path), MovingClock(FRIDAY_EVENING)) as b:
        yield b


def offering(key: bytes, n: int, subject: str = "XSS in /search") -> EmailMessage:
    msg = report(subject=subject, sender=VICTIM, message_id=f"<offer-{n}@example.net>")
    msg.add_attachment(key, maintype="application", subtype="pgp-keys", filename="key.asc")
    return msg


def ciphertext(r: Received) -> bytes:
    assert r.msg.get_content_type() == "multipart/encrypted", r.msg.get_content_type()
    data = list(r.msg.iter_parts())[1].get_payload(decode=True)
    assert isinstance(data, bytes)
    return data


def can_read(home: Path, data: bytes) -> bool:
    """gpg in `home` decrypts `data` (its exit code also counts the unknown signer)."""
    p = subprocess.run(["gpg", "--homedir", str(home), "--batch", "--pinentry-mode", "loopback",
                        "--passphrase", "", "--status-fd", "2", "--decrypt"], input=data,
                       capture_output=True, check=False)
    return b"[GNUPG:] DECRYPTION_OKAY" in p.stderr and bool(p.stdout)


def body(r: Received) -> str:
    part = r.msg.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def pinned(db: Path) -> list[tuple[str, str]]:
    return [tuple(r) for r in table(db, "SELECT address, fingerprint FROM pgp_keys")]


async def key_events(bot: Bot, ref: str) -> list[str]:
    store = await bot.open_store()
    async with store.read() as db:
        case = await case_q.get(db, ref)
        assert case is not None
        return [str(e["detail"]) for e in await case_q.events(db, case["id"])
                if e["action"] == "pgp key"]


async def test_a_forged_key_binds_only_to_the_forged_case(
        bot: Bot, sink: Sink, pgp_client: Client, attacker: tuple[Path, str],
        tmp_path: Path) -> None:
    """Mallory forges From: the victim and attaches a key whose user ID names the victim;
    later the victim writes with the real key: the victim's mail is encrypted to the
    victim's key, never Mallory's, and Mallory's key is never the address's key."""
    a_home, a_fpr = attacker
    a_key = gpg_run(a_home, "--armor", "--export", a_fpr)
    await bot.send(offering(a_key, 1), mail_from=VICTIM, to=["security@example.org"])
    (forged_ack,) = await sink.wait_for(1, to=VICTIM)
    # The forged case's own mail is sealed to the key its opener gave (it is their case).
    assert can_read(a_home, ciphertext(forged_ack))
    assert pinned(tmp_path / "mailbot.db") == []

    real_key = (KEYS / "reporter.pub.asc").read_bytes()
    await bot.send(offering(real_key, 2, "SQLi in /login"), mail_from=VICTIM,
                   to=["security@example.org"])
    _, ack = await sink.wait_for(2, to=VICTIM)
    data = ciphertext(ack)
    assert can_read(pgp_client.home, data) and not can_read(a_home, data)
    first, notice = await sink.wait_for(2, to="bob@example.org")
    assert f"encrypted to {a_fpr} (offered on this case" in body(first)
    assert f"encrypted to {FPR['reporter']} (offered on this case" in body(notice)


async def test_a_round_trip_confirms_the_key_and_then_nothing_shadows_it(
        bot: Bot, sink: Sink, pgp_client: Client, attacker: tuple[Path, str],
        tmp_path: Path) -> None:
    """After the victim answers our mail signed by their key, Mallory's forged reports and
    forged follow-ups with her key change nothing: every mail to the victim, on any case,
    is encrypted to the victim's key."""
    a_home, a_fpr = attacker
    db = tmp_path / "mailbot.db"
    real_key = (KEYS / "reporter.pub.asc").read_bytes()
    await bot.send(offering(real_key, 1), mail_from=VICTIM, to=["security@example.org"])
    (ack,) = await sink.wait_for(1, to=VICTIM)
    assert pinned(db) == []  # offered only: bound to SEC-2026-0001

    # Mallory answers on the victim's case, From: the victim, with her key; she never saw
    # our acknowledgement, so she cannot cite it.
    a_key = gpg_run(a_home, "--armor", "--export", a_fpr)
    follow = offering(a_key, 2, "Re: [SEC-2026-0001] XSS in /search")
    await bot.send(follow, mail_from=VICTIM, to=["security@example.org"])
    await sink.wait_for(2, to="bob@example.org")
    assert any("NOT taken" in e for e in await key_events(bot, "SEC-2026-0001"))

    # The victim answers our acknowledgement, signed by their key: the round trip.
    head = (f"From: Rita Researcher <{VICTIM}>\r\nTo: security@example.org\r\n"
            "Subject: Re: [SEC-2026-0001] XSS in /search\r\n"
            "Date: Fri, 18 Dec 2026 18:10:00 +0100\r\nMessage-ID: <rt-1@example.net>\r\n"
            f"In-Reply-To: {ack.msg['Message-ID']}\r\n")
    answer = as_mail(signed_part(pgp_client, text_part("Thanks, the PoC still works.\n"),
                                 "reporter", SIGNED_AT), head)
    await bot.send(answer, mail_from=VICTIM, to=["security@example.org"])
    await sink.wait_for(3, to="bob@example.org")
    assert pinned(db) == [(VICTIM, FPR["reporter"])]

    # Mallory again: a new forged report with her key. Not taken; sealed to the victim's.
    await bot.send(offering(a_key, 3, "CSRF in /settings"), mail_from=VICTIM,
                   to=["security@example.org"])
    _, ack2 = await sink.wait_for(2, to=VICTIM)
    data = ciphertext(ack2)
    assert can_read(pgp_client.home, data) and not can_read(a_home, data)
    assert any("NOT taken" in e for e in await key_events(bot, "SEC-2026-0002"))
    assert pinned(db) == [(VICTIM, FPR["reporter"])]

    # Staff answer the victim's case: sealed to the victim's key.
    staff = as_mail(signed_part(pgp_client, command_part("#reply\nWe are fixing it.\n",
                                                         "Re: [SEC-2026-0001] XSS"), "alice",
                                SIGNED_AT),
                    "From: Alice Lead <alice@example.org>\r\nTo: security@example.org\r\n"
                    "Subject: Re: [SEC-2026-0001] XSS in /search\r\n"
                    "Date: Fri, 18 Dec 2026 18:15:00 +0100\r\nMessage-ID: <al-1@example.org>\r\n")
    await bot.send(staff, mail_from="alice@example.org", to=["security@example.org"])
    *_, update = await sink.wait_for(3, to=VICTIM)
    data = ciphertext(update)
    assert can_read(pgp_client.home, data) and not can_read(a_home, data)
    transcript = await sink_transcript(sink)
    assert f"encrypted to {FPR['reporter']}" in body(transcript)


async def sink_transcript(sink: Sink) -> Received:
    """The first transcript the relay got for alice."""
    for n in range(1, 20):
        got = [r for r in await sink.wait_for(n, to="alice@example.org")
               if r.msg["X-Mailbot-Kind"] == "transcript"]
        if got:
            return got[0]
    raise AssertionError("no transcript")


async def test_a_confirmed_key_is_replaced_only_by_mail_it_signed(
        bot: Bot, sink: Sink, pgp_client: Client, attacker: tuple[Path, str],
        tmp_path: Path) -> None:
    """A key rotation announced in a mail signed by the confirmed key is taken; the same
    offer unsigned (as anyone could send it) is not."""
    db = tmp_path / "mailbot.db"
    real_key = (KEYS / "reporter.pub.asc").read_bytes()
    await bot.send(offering(real_key, 1), mail_from=VICTIM, to=["security@example.org"])
    (ack,) = await sink.wait_for(1, to=VICTIM)
    head = (f"From: Rita Researcher <{VICTIM}>\r\nTo: security@example.org\r\n"
            "Subject: Re: [SEC-2026-0001] XSS\r\nDate: Fri, 18 Dec 2026 18:10:00 +0100\r\n"
            f"Message-ID: <rt-2@example.net>\r\nIn-Reply-To: {ack.msg['Message-ID']}\r\n")
    await bot.send(as_mail(signed_part(pgp_client, text_part("ok\n"), "reporter", SIGNED_AT),
                           head), mail_from=VICTIM, to=["security@example.org"])
    await sink.wait_for(2, to="bob@example.org")
    assert pinned(db) == [(VICTIM, FPR["reporter"])]

    # A second key of the victim's own, offered unsigned: refused.
    v_home = pgp_client.home
    new_fpr = make_key(v_home, f"Rita Researcher (2027) <{VICTIM}>")
    new_key = gpg_run(v_home, "--armor", "--export", new_fpr)
    try:
        await bot.send(offering(new_key, 3, "Re: [SEC-2026-0001] XSS"), mail_from=VICTIM,
                       to=["security@example.org"])
        await sink.wait_for(3, to="bob@example.org")
        assert pinned(db) == [(VICTIM, FPR["reporter"])]
        # The same key in a mail signed by the confirmed key: taken.
        entity = (b'Content-Type: multipart/mixed; boundary="k"\r\n\r\n--k\r\n'
                  + text_part("My new key.\n") + b"\r\n--k\r\nContent-Type: application/"
                  b'pgp-keys; name="new.asc"\r\n\r\n' + new_key.replace(b"\n", b"\r\n")
                  + b"\r\n--k--\r\n")
        signed = as_mail(signed_part(pgp_client, entity, "reporter", SIGNED_AT),
                         head.replace("<rt-2@", "<rt-3@"))
        await bot.send(signed, mail_from=VICTIM, to=["security@example.org"])
        await sink.wait_for(4, to="bob@example.org")
        assert pinned(db) == [(VICTIM, new_fpr)]
    finally:
        gpg_run(v_home, "--delete-secret-and-public-keys", "--yes", new_fpr)


def _signed_offer(a_home: Path, a_fpr: str, cites: str, n: int) -> bytes:
    """Mallory's answer From: the victim citing `cites`, offering and signed by her key."""
    a_key = gpg_run(a_home, "--armor", "--export", a_fpr)
    entity = (b'Content-Type: multipart/mixed; boundary="k"\r\n\r\n--k\r\n'
              + text_part("Please use my new key.\n") + b"\r\n--k\r\nContent-Type: "
              b'application/pgp-keys; name="k.asc"\r\n\r\n' + a_key.replace(b"\n", b"\r\n")
              + b"\r\n--k--\r\n")
    canonical = entity.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    sig = gpg_run(a_home, "--faked-system-time", SIGNED_AT, "--armor", "--detach-sign",
                  "--local-user", a_fpr, data=canonical)
    body = (b'Content-Type: multipart/signed; protocol="application/pgp-signature"; '
            b'micalg=pgp-sha256; boundary="s"\r\n\r\n--s\r\n' + canonical
            + b"\r\n--s\r\nContent-Type: application/pgp-signature\r\n\r\n" + sig
            + b"\r\n--s--\r\n")
    head = (f"From: Rita Researcher <{VICTIM}>\r\nTo: security@example.org\r\n"
            "Subject: Re: [SEC-2026-0001] XSS\r\nDate: Fri, 18 Dec 2026 18:10:00 +0100\r\n"
            f"Message-ID: <leak-{n}@example.net>\r\nIn-Reply-To: {cites}\r\n")
    return as_mail(body, head)


async def test_a_leaked_message_id_does_not_replace_the_case_key(
        bot: Bot, sink: Sink, attacker: tuple[Path, str], tmp_path: Path) -> None:
    """Mallory learns the Message-ID of our acknowledgement (the victim copied a list on
    their answer) and answers it From: the victim, offering and signing with her key, twice
    (the second time the bot knows her key): the case keeps the victim's key, and nothing is
    pinned for the victim's address."""
    a_home, a_fpr = attacker
    db = tmp_path / "mailbot.db"
    await bot.send(offering((KEYS / "reporter.pub.asc").read_bytes(), 1), mail_from=VICTIM,
                   to=["security@example.org"])
    (ack,) = await sink.wait_for(1, to=VICTIM)
    for n in (1, 2):
        await bot.send(_signed_offer(a_home, a_fpr, ack.msg["Message-ID"], n),
                       mail_from=VICTIM, to=["security@example.org"])
        await sink.wait_for(1 + n, to="bob@example.org")
    assert table(db, "SELECT fingerprint FROM case_keys") == [(FPR["reporter"],)]
    assert pinned(db) == []
    assert len([e for e in await key_events(bot, "SEC-2026-0001") if "NOT taken" in e]) == 2


async def test_a_leaked_message_id_never_confirms_a_key_for_the_address(
        bot: Bot, sink: Sink, attacker: tuple[Path, str], tmp_path: Path) -> None:
    """The victim reported without a key, so our acknowledgement went in clear; Mallory,
    holding its Message-ID, answers it twice with her key: at most that one case uses her
    key, the address never gets it (the mail she cites was not encrypted to it), and the
    victim's next case is not encrypted to her."""
    a_home, a_fpr = attacker
    db = tmp_path / "mailbot.db"
    await bot.send(report(sender=VICTIM), mail_from=VICTIM, to=["security@example.org"])
    (ack,) = await sink.wait_for(1, to=VICTIM)
    for n in (1, 2):
        await bot.send(_signed_offer(a_home, a_fpr, ack.msg["Message-ID"], n),
                       mail_from=VICTIM, to=["security@example.org"])
        await sink.wait_for(1 + n, to="bob@example.org")
    assert pinned(db) == []
    await bot.send(report(sender=VICTIM, subject="Second finding",
                          message_id="<second@example.net>"),
                   mail_from=VICTIM, to=["security@example.org"])
    _, second = await sink.wait_for(2, to=VICTIM)
    assert second.msg.get_content_type() == "text/plain"  # no key of the victim's: clear
