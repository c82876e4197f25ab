"""mail/pgp.py with the real gpg: mail made the ways clients make it, and the ways it breaks."""

from __future__ import annotations

from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest

from mailbot.mail import pgp
from mailbot.mail.parse import header_block, parse
from mailbot.mail.pgp import Gpg, PgpSetupError, offered_keys, verdict
from tests.pgp_support import (
    FPR,
    KEYS,
    SUPPORT_PASSPHRASE,
    Client,
    autocrypt,
    bot_home,
    inline_mail,
    kill_agent,
    pgp_mime,
    report_part,
    signed_mime,
)


@pytest.fixture
def gpg() -> Iterator[Gpg]:
    g, home = bot_home()
    yield g
    kill_agent(home)


def test_inline_encrypted_and_signed_by_a_key_we_lack(pgp_client: Client, gpg: Gpg) -> None:
    armor = pgp_client.encrypt(b"The admin panel has no CSRF token.\n", sign_as="reporter")
    opened = gpg.open_mail(inline_mail(armor.decode()))
    assert (opened.encrypted, opened.readable) == (True, True)
    # gpg exits 2 here (no key for the signature) although decryption worked.
    assert opened.signature == "unknown-key"
    assert parse(opened.raw).text.strip() == "The admin panel has no CSRF token."


def test_inline_signature_turns_good_once_the_key_is_known(pgp_client: Client, gpg: Gpg) -> None:
    gpg.import_keys((KEYS / "reporter.pub.asc").read_bytes())
    armor = pgp_client.encrypt(b"secret\n", sign_as="reporter")
    opened = gpg.open_mail(inline_mail(armor.decode()))
    assert (opened.signature, opened.signer) == ("good", FPR["reporter"])
    assert opened.whole


def test_inline_armor_mangled_by_clients(pgp_client: Client, gpg: Gpg) -> None:
    armor = pgp_client.encrypt(b"still readable\n").decode()
    lines = armor.strip().split("\n")
    # CRLF, indentation, non-breaking spaces, trailing blanks, blank lines in the base64.
    mangled = "\r\n".join(["  " + lines[0] + " ", "\xa0", *(f"\xa0{ln}  " for ln in lines[1:3]),
                           "", *lines[3:]]) + "\r\n"
    opened = gpg.open_mail(inline_mail(mangled))
    assert opened.readable and "still readable" in parse(opened.raw).text


def test_partial_inline_block_between_clear_text(pgp_client: Client, gpg: Gpg) -> None:
    armor = pgp_client.encrypt(b"the secret part\n").decode()
    opened = gpg.open_mail(inline_mail(f"Hello team,\n\n{armor}\nRegards, Rita\n"))
    text = parse(opened.raw).text
    assert opened.readable
    assert text.index("Hello team") < text.index("the secret part") < text.index("Regards")


def test_inline_in_an_html_body(pgp_client: Client, gpg: Gpg) -> None:
    armor = pgp_client.encrypt(b"from the webmail\n").decode()
    html = "<html><body><p>" + armor.replace("\n", "<br>\n") + "</p></body></html>"
    opened = gpg.open_mail(inline_mail(html, html=True))
    assert opened.readable and "from the webmail" in parse(opened.raw).text


def test_pgp_mime_with_attachment_and_protected_headers(pgp_client: Client, gpg: Gpg) -> None:
    entity = report_part("Details inside.", attachment=b"print('poc')\n",
                         subject="RCE in the upload form")
    opened = gpg.open_mail(pgp_mime(pgp_client.encrypt(entity), subject="..."))
    mail = parse(opened.raw)
    assert (opened.encrypted, opened.readable) == (True, True)
    assert mail.subject == "RCE in the upload form"  # the inner one, not "..."
    assert mail.text.strip() == "Details inside."
    assert [(a.filename, a.data) for a in mail.attachments] == [("poc.py", b"print('poc')\n")]
    assert mail.message_id == "<mime-1@example.net>"  # outer headers kept


def test_exchange_rewrapped_pgp_mime(pgp_client: Client, gpg: Gpg) -> None:
    raw = pgp_mime(pgp_client.encrypt(report_part("via Exchange")), exchange=True)
    assert message_from_bytes(raw).get_content_type() == "multipart/mixed"
    opened = gpg.open_mail(raw)
    assert opened.readable and parse(opened.raw).text.strip() == "via Exchange"


def test_hidden_recipient_is_tried_against_the_inbox_key(pgp_client: Client, gpg: Gpg) -> None:
    opened = gpg.open_mail(pgp_mime(pgp_client.encrypt(report_part("bcc'd"), hidden=True)))
    assert opened.readable and parse(opened.raw).text.strip() == "bcc'd"


def test_encrypted_and_signed_pgp_mime(pgp_client: Client, gpg: Gpg) -> None:
    gpg.import_keys((KEYS / "reporter.pub.asc").read_bytes())
    opened = gpg.open_mail(pgp_mime(pgp_client.encrypt(report_part("both"), sign_as="reporter")))
    assert (opened.encrypted, opened.signature, opened.signer) == (True, "good", FPR["reporter"])


def test_signed_then_encrypted_pgp_mime(pgp_client: Client, gpg: Gpg) -> None:
    inner = signed_mime(pgp_client, report_part("#status triaged\n"))
    entity = inner.split(b"MIME-Version: 1.0\r\n", 1)[1]  # the multipart/signed entity
    opened = gpg.open_mail(pgp_mime(pgp_client.encrypt(entity)))
    assert (opened.encrypted, opened.signature, opened.signer) == (True, "good", FPR["alice"])
    assert "#status triaged" in parse(opened.raw).text


@pytest.mark.parametrize("case", ["wrong-key", "corrupt", "truncated"])
def test_undecryptable_mail_is_kept_as_received(pgp_client: Client, gpg: Gpg, case: str) -> None:
    armor = pgp_client.encrypt(b"lost\n", to="mallory" if case == "wrong-key" else "inbox").decode()
    if case == "corrupt":
        lines = armor.split("\n")
        lines[4] = lines[4][:10] + "!!!!" + lines[4][14:]
        armor = "\n".join(lines)
    if case == "truncated":
        armor = armor[: len(armor) // 2]
    raw = inline_mail(armor)
    opened = gpg.open_mail(raw)
    assert (opened.encrypted or case != "wrong-key", opened.readable) == (True, False)
    assert opened.raw == raw
    assert opened.error and "Traceback" not in opened.error
    if case == "wrong-key":
        assert "key we do not hold" in opened.error


def test_pgp_mime_to_a_wrong_key(pgp_client: Client, gpg: Gpg) -> None:
    raw = pgp_mime(pgp_client.encrypt(report_part("x"), to="mallory"))
    opened = gpg.open_mail(raw)
    assert (opened.encrypted, opened.readable, opened.raw) == (True, False, raw)


def test_multipart_signed_over_canonical_crlf(pgp_client: Client, gpg: Gpg) -> None:
    for lf in (False, True):  # a relay that rewrote line ends to LF must not break it
        opened = gpg.open_mail(signed_mime(pgp_client, report_part("#status resolved\n"),
                                           transport_lf=lf))
        assert (opened.signature, opened.signer, opened.whole) == ("good", FPR["alice"], True)
        mail = parse(opened.raw)
        assert mail.text.strip() == "#status resolved"
        assert mail.attachments == ()  # the signature is not an attachment


def test_tampered_signed_part_is_bad(pgp_client: Client, gpg: Gpg) -> None:
    opened = gpg.open_mail(signed_mime(pgp_client, report_part("#status resolved\n"), tamper=True))
    assert opened.signature == "bad"


def test_signature_by_an_unknown_key(pgp_client: Client, gpg: Gpg) -> None:
    opened = gpg.open_mail(signed_mime(pgp_client, report_part("hi\n"), as_="mallory"))
    assert (opened.signature, opened.signer) == ("unknown-key", FPR["mallory"])


def test_signature_by_an_expired_key(pgp_client: Client, gpg: Gpg) -> None:
    gpg.import_keys((KEYS / "old.pub.asc").read_bytes())
    opened = gpg.open_mail(inline_mail(pgp_client.clearsign("hello\n", "old")))
    assert opened.signature == "expired"


def test_clearsigned_text_and_a_quoted_one(pgp_client: Client, gpg: Gpg) -> None:
    signed = pgp_client.clearsign("#assign bob@example.org\n", "alice")
    opened = gpg.open_mail(inline_mail(signed))
    assert (opened.signature, opened.signer, opened.whole) == ("good", FPR["alice"], True)
    assert parse(opened.raw).text.strip() == "#assign bob@example.org"
    quoted = "Thanks!\n\n" + "\n".join("> " + ln for ln in signed.split("\n"))
    assert gpg.open_mail(inline_mail(quoted)).signature == "none"
    partly = gpg.open_mail(inline_mail("#status resolved\n\n" + signed))
    assert partly.signature == "good" and not partly.whole


def test_plain_mail_is_untouched_without_running_gpg(gpg: Gpg) -> None:
    raw = inline_mail("Nothing to see.\n")
    assert gpg.open_mail(raw).raw is raw


def test_passphrase_protected_inbox_key(pgp_client: Client) -> None:
    g, home = bot_home(passphrase=SUPPORT_PASSPHRASE)
    try:
        armor = pgp_client.encrypt(b"to support\n", to="support").decode()
        opened = g.open_mail(inline_mail(armor))
        assert opened.readable and "to support" in parse(opened.raw).text
    finally:
        kill_agent(home)
    g, home = bot_home(passphrase=None)
    try:
        with pytest.raises(PgpSetupError, match="passphrase"):
            g.open_mail(inline_mail(pgp_client.encrypt(b"x\n", to="support").decode()))
    finally:
        kill_agent(home)


def test_seal_gives_pgp_mime_the_reporter_can_read(pgp_client: Client, gpg: Gpg) -> None:
    gpg.import_keys((KEYS / "reporter.pub.asc").read_bytes())
    clear = (b"From: security@example.org\r\nTo: researcher@example.net\r\n"
             b"Subject: [SEC-2026-0001] Re: RCE in upload\r\nMessage-ID: <ack.1@example.org>\r\n"
             b"Content-Type: text/plain; charset=\"utf-8\"\r\nMIME-Version: 1.0\r\n"
             b"Content-Transfer-Encoding: 7bit\r\n\r\nWe received your report.\r\n")
    sealed = gpg.seal(clear, [FPR["reporter"]], FPR["inbox"], "[SEC-2026-0001] ...")
    outer = message_from_bytes(sealed, policy=policy.default)
    assert isinstance(outer, EmailMessage)
    assert outer.get_content_type() == "multipart/encrypted"
    assert outer["Subject"] == "[SEC-2026-0001] ..."
    assert b"RCE in upload" not in sealed and b"We received" not in sealed
    parts = list(outer.iter_parts())
    plain, status = pgp_client.decrypt(parts[1].get_payload(decode=True))
    assert "GOODSIG" in status and FPR["inbox"] in status
    inner = message_from_bytes(plain, policy=policy.default)
    assert inner["Subject"] == "[SEC-2026-0001] Re: RCE in upload"  # protected header
    assert 'protected-headers="v1"' in inner["Content-Type"]
    assert isinstance(inner, EmailMessage)
    assert inner.get_content().strip() == "We received your report."


def test_learn_only_keys_naming_the_sender(gpg: Gpg) -> None:
    key = (KEYS / "reporter.pub.asc").read_bytes()
    assert gpg.learn("Researcher@Example.NET", [key]) == FPR["reporter"]
    assert gpg.learn("someone-else@example.net", [key]) is None
    # A secret key offered in a mail is never imported.
    secret = (KEYS / "mallory.sec.asc").read_bytes()
    assert gpg.learn("mallory@example.com", [secret]) is None
    assert not gpg.has_secret(FPR["mallory"])


def test_keys_offered_by_attachment_and_autocrypt(gpg: Gpg) -> None:
    key = (KEYS / "reporter.pub.asc").read_bytes()
    header = autocrypt("researcher@example.net", "reporter")
    raw = f"From: r@example.net\r\nAutocrypt: {header}\r\nSubject: x\r\n\r\nhi\r\n".encode()
    offered = offered_keys(header_block(raw), [("application/pgp-keys", "k.asc", key),
                                          ("text/plain", "notes.txt", b"hello")])
    assert len(offered) == 2
    assert gpg.learn("researcher@example.net", offered[1:]) == FPR["reporter"]  # Autocrypt


def test_generate_and_export(gpg: Gpg) -> None:
    fpr = gpg.generate("Test inbox", "test@example.org", passphrase=None, expire="1y")
    assert gpg.has_secret(fpr)
    info = gpg.key(fpr)
    assert info is not None and info.usable and info.expires is not None
    assert "BEGIN PGP PUBLIC KEY BLOCK" in gpg.export(fpr)


def test_verdict_reads_status_lines_not_exit_codes() -> None:
    status = ("[GNUPG:] ENC_TO 1234 18 0\n[GNUPG:] BEGIN_DECRYPTION\n[GNUPG:] NEWSIG\n"
              "[GNUPG:] ERRSIG AAAA 22 8 00 1700000000 9 " + "B" * 40 + "\n"
              "[GNUPG:] NO_PUBKEY AAAA\n[GNUPG:] DECRYPTION_OKAY\n[GNUPG:] GOODMDC\n"
              "[GNUPG:] END_DECRYPTION\n")
    v = verdict(status)
    assert (v.encrypted, v.decrypted, v.signature, v.signer) == (True, True, "unknown-key",
                                                                 "B" * 40)
    assert verdict("[GNUPG:] NODATA 1\n").error


def test_compression_bomb_is_cut_off(pgp_client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    """A small ciphertext that inflates beyond the plaintext limit is not read into memory
    whole and counts as undecryptable (gpg itself stops at --max-output yet says OK)."""
    monkeypatch.setattr(pgp, "MAX_PLAINTEXT", 1 << 20)  # 1 MB here; 64 MB in the daemon
    g, home = bot_home()
    try:
        armor = pgp_client.encrypt(b"\0" * (3 << 20))  # compresses to a few kilobytes
        assert len(armor) < 64 * 1024
        opened = g.open_mail(pgp_mime(armor))
        assert (opened.encrypted, opened.readable) == (True, False)
        assert opened.error and "compression bomb" in opened.error
    finally:
        kill_agent(home)


def test_deeply_nested_pgp_beyond_the_limits_is_marked_unreadable(gpg: Gpg) -> None:
    """PGP nested past the parse limits is not looked for, yet the mail, which shows no
    text, never passes as an empty clear mail (issue 14)."""
    nested = b"".join(f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n'.encode()
                      for i in range(3000))
    raw = (b"From: a@example.net\r\nSubject: deep\r\nMIME-Version: 1.0\r\n" + nested
           + b"Content-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n")
    opened = gpg.open_mail(raw)
    assert (opened.raw, opened.encrypted, opened.readable) == (raw, True, False)
    assert opened.error and "beyond the limits" in opened.error


def test_verdict_keeps_the_signature_id() -> None:
    status = ("[GNUPG:] NEWSIG\n[GNUPG:] SIG_ID DvdLUsPATV0VFZ2a0WkZlc2ONjY 2026-12-18 1797613500\n"
              "[GNUPG:] GOODSIG 0FFCBE2B30DA9E2D Alice\n[GNUPG:] VALIDSIG " + "A" * 40
              + " 2026-12-18 1797613500 0 4 0 22 8 00 " + "A" * 40 + "\n")
    v = verdict(status)
    assert (v.signature, v.signer, v.sig_id) == ("good", "A" * 40, "DvdLUsPATV0VFZ2a0WkZlc2ONjY")
