"""Secret keys offered in mail (issue 12 item 9), through a real daemon: whatever the shape
of the offer, only public key material reaches the bot's keyring."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path

from mailbot.config import load_config
from tests.pgp_support import (
    FPR,
    KEYS,
    _dearmor,
    daemon_home,
    gpg_run,
    kill_agent,
    pgp_config_text,
)
from tests.support import FRIDAY_EVENING, MovingClock, Sink, report, running_bot, table


def _armor(data: bytes) -> bytes:
    b64 = base64.encodebytes(data).decode()
    return f"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n{b64}-----END PGP PUBLIC KEY BLOCK-----\n" \
        .encode()


async def test_secret_keys_hidden_in_offered_keys_are_never_imported(
        sink: Sink, write_config: Callable[..., Path], tmp_path: Path) -> None:
    """An attacker attaches key blocks that carry secret keys after, before and between
    public ones (armored as public, binary, and in an Autocrypt header) hoping the bot
    imports them: none is, and the public key offered for the sender is still learned."""
    home = daemon_home()
    pub = _dearmor((KEYS / "reporter.pub.asc").read_text())
    sec = _dearmor((KEYS / "mallory.sec.asc").read_text())
    old_sec = _dearmor((KEYS / "old.sec.asc").read_text())
    offers = [_armor(pub + sec), sec + pub, _armor(old_sec + pub + sec)]
    path = write_config(sink.port)
    path.write_text(pgp_config_text(path.read_text(), tmp_path / "mailbot.db", home))
    try:
        async with running_bot(load_config(path), MovingClock(FRIDAY_EVENING)) as bot:
            for n, data in enumerate(offers, start=1):
                msg = report(message_id=f"<sec-{n}@example.net>", subject=f"Finding {n}")
                msg.add_attachment(data, maintype="application", subtype="pgp-keys",
                                   filename="keys.asc")
                await bot.send(msg, mail_from="researcher@example.net",
                               to=["security@example.org"])
            b64 = base64.b64encode(pub + sec).decode()
            folded = "\r\n ".join(b64[i:i + 72] for i in range(0, len(b64), 72))
            raw = report(message_id="<sec-4@example.net>", subject="Finding 4").as_bytes()
            raw = (b"Autocrypt: addr=researcher@example.net; keydata=\r\n "
                   + folded.encode() + b"\r\n" + raw)
            await bot.send(raw, mail_from="researcher@example.net", to=["security@example.org"])
            await sink.wait_for(4, to="bob@example.org")
        secret = gpg_run(home, "--list-secret-keys", "--with-colons").decode()
        for name in ("mallory", "old", "reporter"):
            assert FPR[name] not in secret, name
        keys = table(tmp_path / "mailbot.db", "SELECT fingerprint FROM case_keys")
        assert keys == [(FPR["reporter"],)] * 4
    finally:
        kill_agent(home)
