"""Hostile PGP through a real daemon with a real inbox key: compression bombs, armor that is
corrupt, truncated or endlessly repeated, PGP hidden in deep nesting, offered secret keys,
template syntax in protected headers. The daemon lives, memory stays bounded, every mail is
kept raw and ends as a case (readable or marked undecryptable) or a quarantine entry."""

from __future__ import annotations

import base64
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.pgp_support import (
    FPR,
    KEYS,
    Client,
    gpg_run,
    inline_mail,
    kill_agent,
    pgp_mime,
    report_part,
)
from tests.reliability.test_hostile import check_headers, lf_digest, through_daemon
from tests.support import Sink, free_port, table

pytestmark = pytest.mark.slow

RSS_LIMIT_MB = 400


def bomb(client: Client, size: int) -> bytes:
    """A few hundred KB of ciphertext that inflates to `size` bytes of zeros."""
    cmd = (f"head -c {size} /dev/zero | gpg --homedir {client.home} --batch --trust-model always"
           f" --armor --encrypt --recipient {FPR['inbox']} --compress-level 9")
    return subprocess.run(cmd, shell=True, capture_output=True, check=True).stdout


def hostile_pgp(client: Client) -> dict[str, bytes]:
    armor = client.encrypt(b"readable part\n").decode()
    lines = armor.split("\n")
    corrupt = "\n".join([*lines[:4], lines[4][:10] + "!!!!" + lines[4][14:], *lines[5:]])
    nested = b"".join(f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n'
                      .encode() for i in range(3000))
    secret_key = (KEYS / "mallory.sec.asc").read_bytes()
    return {
        "bomb": pgp_mime(bomb(client, 100 << 20), message_id="<pgp-bomb@example.net>"),
        "corrupt": inline_mail(corrupt, message_id="<pgp-corrupt@example.net>"),
        "truncated": inline_mail(armor[: len(armor) // 2] + "\n",
                                 message_id="<pgp-truncated@example.net>"),
        "many-blocks": inline_mail((armor + "\n") * 200, message_id="<pgp-many@example.net>"),
        "wrong-key": pgp_mime(client.encrypt(report_part("x"), to="mallory"),
                              message_id="<pgp-wrong@example.net>"),
        "nested": (b"From: a@example.net\r\nTo: security@example.org\r\nSubject: deep\r\n"
                   b"Message-ID: <pgp-nested@example.net>\r\nMIME-Version: 1.0\r\n" + nested
                   + b"Content-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n"),
        "jinja-protected": pgp_mime(
            client.encrypt(report_part("{{ config }} {% for x in range(9**9) %}x{% endfor %}",
                                       subject="=?utf-8?q?{{_config.__class___}}=0D=0ABcc:_x@evil.example?=",
                                       key=secret_key)),
            message_id="<pgp-jinja@example.net>"),
        "autocrypt-garbage": inline_mail("hi\n", message_id="<pgp-autocrypt@example.net>")
        .replace(b"Subject:", b"Autocrypt: addr=researcher@example.net; keydata="
                 + base64.b64encode(b"\x99" + b"\xff" * 3000) + b"\r\nSubject:", 1),
    }


async def test_hostile_pgp_corpus(sink: Sink, write_config: Callable[..., Path], tmp_path: Path,
                                  pgp_client: Client) -> None:
    port = free_port()
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    gpg_run(home, "--import", str(KEYS / "inbox.sec.asc"))
    path = write_config(sink.port, max_size="10MB")
    text = path.read_text().replace("port = 0", f"port = {port}")
    text = text.replace(f'home = "{tmp_path / "mailbot.db"}.gnupg"', f'home = "{home}"')
    path.write_text(text.replace('prefix = "SEC"', f'prefix = "SEC"\npgp_key = "{FPR["inbox"]}"'))
    mails = hostile_pgp(pgp_client)
    try:
        rss = await through_daemon(path, port, tmp_path, mails, "pgp")
    except BaseException:
        kill_agent(home)  # the daemon's gpg-agent
        raise
    print(f"{len(mails)} hostile PGP mails, peak RSS {rss:.0f} MB")
    assert rss < RSS_LIMIT_MB

    db = tmp_path / "mailbot.db"
    rows = {mid: (status, reason, case, raw) for mid, status, reason, case, raw in table(
        db, "SELECT message_id, status, reason, case_id, raw FROM inbound")}
    readable = dict(table(db, "SELECT i.message_id, m.readable FROM messages m"
                              " JOIN inbound i ON i.id = m.inbound_id"))
    for name, raw in mails.items():
        found = re.search(rb"Message-ID: (<[^>]+>)", raw)
        assert found is not None
        status, reason, case, stored = rows[found.group(1).decode()]
        assert lf_digest(stored) == lf_digest(raw), f"{name}: raw mail not kept as sent"
        assert (status == "done" and case) or (status == "quarantined" and reason), name
    for mid in ("<pgp-bomb@example.net>", "<pgp-corrupt@example.net>",
                "<pgp-truncated@example.net>", "<pgp-wrong@example.net>"):
        assert readable[mid] == 0, mid  # opened, marked undecryptable
    assert readable["<pgp-jinja@example.net>"] == 1
    # The secret key offered inside the encrypted report was not taken.
    listed = gpg_run(home, "--list-secret-keys", "--with-colons").decode()
    kill_agent(home)
    assert FPR["mallory"] not in listed
    check_headers(sink)
    # The protected Subject is used, its template syntax as text, its CRLF a space.
    (ack,) = [r for r in sink.to("researcher@example.net")
              if r.msg["In-Reply-To"] == "<pgp-jinja@example.net>"]
    assert str(ack.msg["Subject"]).endswith("Re: {{ config. class }} Bcc: x@evil.example")
