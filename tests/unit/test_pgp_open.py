"""What a received mail becomes after PGP, in every MIME shape: a signature speaks for the
mail only when it covers all that the parser reads (issue 12 item 1), protected headers come
only from the signed entity (item 10), and PGP/MIME is found below the top level, never
passing as an empty clear mail (issue 14 item 1). Real gpg, keys of the fixtures."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from mailbot.mail.parse import MAX_DEPTH, parse
from mailbot.mail.pgp import Gpg
from tests.pgp_support import (
    FPR,
    KEYS,
    Client,
    as_mail,
    bot_home,
    clearsigned_part,
    encrypted_part,
    kill_agent,
    multipart,
    report_part,
    signed_part,
    text_part,
)

COMMANDS = "#status rejected\n#reply Closed, sorry.\n"
SIGNED_TEXT = "Thanks, looking into it.\n"


@pytest.fixture
def gpg() -> Iterator[Gpg]:
    g, home = bot_home()
    yield g
    kill_agent(home)


def _sign_encrypt(c: Client, entity: bytes) -> bytes:
    return encrypted_part(c.encrypt(entity, sign_as="alice"))


# Each builds a mail carrying a genuine signature of alice's over SIGNED_TEXT and, outside
# what she signed, the attacker's command lines.
PARTIAL: dict[str, Callable[[Client], bytes]] = {
    "text part before a clear-signed part": lambda c: multipart(
        text_part(COMMANDS), clearsigned_part(c, SIGNED_TEXT)),
    "text part after a clear-signed part": lambda c: multipart(
        clearsigned_part(c, SIGNED_TEXT), text_part(COMMANDS)),
    "text before the armor in the same part": lambda c: text_part(
        COMMANDS + "\n" + c.clearsign(SIGNED_TEXT, "alice")),
    "text after the armor in the same part": lambda c: text_part(
        c.clearsign(SIGNED_TEXT, "alice") + "\n" + COMMANDS),
    "HTML alternative beside a signed plain part": lambda c: multipart(
        clearsigned_part(c, SIGNED_TEXT), text_part(f"<p>{COMMANDS}</p>", "text/html"),
        subtype="alternative"),
    "multipart/signed after an unsigned text part": lambda c: multipart(
        text_part(COMMANDS), signed_part(c, text_part(SIGNED_TEXT))),
    "multipart/signed before an unsigned text part": lambda c: multipart(
        signed_part(c, text_part(SIGNED_TEXT)), text_part(COMMANDS)),
    "signed multipart/signed beside an unsigned attachment": lambda c: multipart(
        signed_part(c, text_part(SIGNED_TEXT)),
        b"Content-Type: text/x-commands\r\n\r\n" + COMMANDS.encode()),
    "encrypted and signed, an unsigned part beside": lambda c: multipart(
        text_part(COMMANDS), _sign_encrypt(c, text_part(SIGNED_TEXT))),
    "two clear-signed blocks in one part": lambda c: text_part(
        c.clearsign(COMMANDS, "reporter") + "\n" + c.clearsign(SIGNED_TEXT, "alice")),
    "two clear-signed parts": lambda c: multipart(
        clearsigned_part(c, COMMANDS, "reporter"), clearsigned_part(c, SIGNED_TEXT)),
    "encrypted, inside it an unsigned part beside a signed one": lambda c: encrypted_part(
        c.encrypt(multipart(text_part(COMMANDS), signed_part(c, text_part(SIGNED_TEXT))))),
    "a signed mail forwarded as message/rfc822": lambda c: multipart(
        text_part(""), b"Content-Type: message/rfc822\r\n\r\n"
        + as_mail(signed_part(c, text_part(COMMANDS)))),
}


@pytest.mark.parametrize("shape", PARTIAL)
def test_a_signature_over_part_of_a_mail_never_speaks_for_all_of_it(
        pgp_client: Client, gpg: Gpg, shape: str) -> None:
    """An attacker puts command lines beside a genuine signed text of a staff member (any
    MIME shape): the signature is seen, but it does not cover what the parser reads."""
    opened = gpg.open_mail(as_mail(PARTIAL[shape](pgp_client)))
    assert opened.signature == "good" and opened.signer == FPR["alice"], shape
    assert not opened.whole, shape
    assert opened.protected == (), shape


WHOLE: dict[str, Callable[[Client], bytes]] = {
    "multipart/signed": lambda c: signed_part(c, text_part(SIGNED_TEXT)),
    "clear-signed text": lambda c: clearsigned_part(c, SIGNED_TEXT),
    "clear-signed text in HTML": lambda c: text_part(
        "<pre>" + c.clearsign(SIGNED_TEXT, "alice") + "</pre>", "text/html"),
    "multipart/signed beside an empty text part (a re-wrap)": lambda c: multipart(
        text_part("\r\n"), signed_part(c, text_part(SIGNED_TEXT))),
    "encrypted and signed beside an empty text part (Google Workspace)": lambda c: multipart(
        text_part(""), _sign_encrypt(c, text_part(SIGNED_TEXT))),
    "multipart/signed inside multipart/encrypted": lambda c: encrypted_part(
        c.encrypt(signed_part(c, text_part(SIGNED_TEXT)))),
    "multipart/signed alone in a multipart/mixed": lambda c: multipart(
        signed_part(c, text_part(SIGNED_TEXT))),
}


@pytest.mark.parametrize("shape", WHOLE)
def test_a_signature_over_all_the_content_speaks_for_the_mail(
        pgp_client: Client, gpg: Gpg, shape: str) -> None:
    """When one signature covers all the content, the parser reads exactly the signed text."""
    opened = gpg.open_mail(as_mail(WHOLE[shape](pgp_client)))
    assert (opened.signature, opened.signer, opened.whole) == ("good", FPR["alice"], True)
    mail = parse(opened.raw)
    assert mail.text.strip() == SIGNED_TEXT.strip()
    assert mail.attachments == ()


def test_a_signed_text_quoted_in_a_reply_proves_nothing(pgp_client: Client, gpg: Gpg) -> None:
    """An attacker quotes a staff member's signed mail under their own commands."""
    signed = pgp_client.clearsign(SIGNED_TEXT, "alice")
    quoted = COMMANDS + "\n" + "\n".join("> " + ln for ln in signed.split("\n"))
    opened = gpg.open_mail(as_mail(text_part(quoted)))
    assert (opened.signature, opened.whole) == ("none", False)


def _protected(subject: str, extra: str = "") -> bytes:
    return text_part(SIGNED_TEXT, headers=f"Subject: {subject}\r\n{extra}").replace(
        b"Content-Type: text/plain; charset=utf-8",
        b'Content-Type: text/plain; charset=utf-8; protected-headers="v1"')


def test_protected_headers_come_from_the_signed_entity(pgp_client: Client, gpg: Gpg) -> None:
    """The header fields inside a signed entity are given with their canonical names."""
    entity = _protected("=?utf-8?q?Re:_[SEC-2026-0002]_caf=C3=A9?=",
                        "In-Reply-To: <ack.SEC-2026-0002.1@example.org>\r\n"
                        "References: <a@example.org>\r\n <ack.SEC-2026-0002.1@example.org>\r\n"
                        "From: Alice Lead <alice@example.org>\r\n"
                        "to: security+SEC-2026-0002.abc@example.org\r\nX-Other: no\r\n")
    opened = gpg.open_mail(as_mail(signed_part(pgp_client, entity)))
    assert opened.whole
    assert opened.protected == (
        ("Subject", "Re: [SEC-2026-0002] café"),
        ("In-Reply-To", "<ack.SEC-2026-0002.1@example.org>"),
        ("References", "<a@example.org> <ack.SEC-2026-0002.1@example.org>"),
        ("From", "Alice Lead <alice@example.org>"),
        ("To", "security+SEC-2026-0002.abc@example.org"))
    assert parse(opened.raw).subject == "Re: [SEC-2026-0002] café"
    both = gpg.open_mail(as_mail(_sign_encrypt(pgp_client, _protected("[SEC-2026-0003] x"))))
    assert (both.whole, both.protected) == (True, (("Subject", "[SEC-2026-0003] x"),))


def test_protected_headers_outside_a_signature_are_not_given(pgp_client: Client,
                                                             gpg: Gpg) -> None:
    """An encrypted but unsigned entity's headers, or a signed part beside others, carry no
    protected headers a command could rely on."""
    clear = gpg.open_mail(as_mail(encrypted_part(pgp_client.encrypt(
        _protected("[SEC-2026-0002] moved")))))
    assert (clear.encrypted, clear.signature, clear.protected) == (True, "none", ())
    assert parse(clear.raw).subject == "[SEC-2026-0002] moved"  # still shown to staff
    beside = gpg.open_mail(as_mail(multipart(
        text_part(COMMANDS), signed_part(pgp_client, _protected("[SEC-2026-0002] x")))))
    assert (beside.whole, beside.protected) == (False, ())


# -- issue 14: PGP/MIME below the top level --

def test_google_workspace_rewrap_of_thunderbird_pgp_mime(pgp_client: Client, gpg: Gpg) -> None:
    """multipart/mixed[empty text/plain, multipart/encrypted] is the encrypted mail."""
    entity = report_part("RCE in the importer.", attachment=b"poc", subject="RCE")
    opened = gpg.open_mail(as_mail(multipart(text_part(""), encrypted_part(
        pgp_client.encrypt(entity)))))
    mail = parse(opened.raw)
    assert (opened.encrypted, opened.readable) == (True, True)
    assert (mail.subject, mail.text.strip()) == ("RCE", "RCE in the importer.")
    assert [a.filename for a in mail.attachments] == ["poc.py"]


def test_workspace_rewrap_with_a_bare_signature_delimiter(pgp_client: Client,
                                                         gpg: Gpg) -> None:
    """The text part Google Workspace adds may hold only "-- " and blank lines (as in
    deltachat's google-workspace-mixed-up.eml): still the encrypted mail, signature whole."""
    entity = report_part("RCE in the importer.", subject="RCE")
    opened = gpg.open_mail(as_mail(multipart(text_part("\n-- \n\n\n\n"), encrypted_part(
        pgp_client.encrypt(entity, sign_as="alice")))))
    assert (opened.encrypted, opened.readable, opened.signature, opened.whole) == (
        True, True, "good", True)
    assert parse(opened.raw).text.strip() == "RCE in the importer."


def test_a_delimiter_with_a_signature_under_it_is_content(pgp_client: Client,
                                                          gpg: Gpg) -> None:
    """An attacker hides commands under a "-- " line beside a genuine signed part: that
    text is content, so the signature does not speak for the mail."""
    opened = gpg.open_mail(as_mail(multipart(
        text_part("-- \n" + COMMANDS), signed_part(pgp_client, text_part(SIGNED_TEXT)))))
    assert (opened.signature, opened.whole) == ("good", False)


def test_encrypted_part_beside_text_is_decrypted_in_place(pgp_client: Client,
                                                          gpg: Gpg) -> None:
    """Text beside the encrypted part stays; the decrypted part takes the encrypted one's
    place, so staff read both."""
    opened = gpg.open_mail(as_mail(multipart(text_part("See the encrypted part.\n"),
                                             encrypted_part(pgp_client.encrypt(
                                                 text_part("the secret detail\n"))))))
    mail = parse(opened.raw)
    assert (opened.encrypted, opened.readable, opened.whole) == (True, True, False)
    assert mail.text.strip() == "See the encrypted part."
    assert any(b"the secret detail" in a.data for a in mail.attachments)
    assert b"BEGIN PGP MESSAGE" not in opened.raw


def test_pgp_mime_inside_a_forwarded_message(pgp_client: Client, gpg: Gpg) -> None:
    """An encrypted mail forwarded as message/rfc822 is decrypted in place (staff read it),
    and is never taken for the forwarding mail itself."""
    inner = as_mail(encrypted_part(pgp_client.encrypt(text_part("forwarded secret\n"))),
                    head="From: r@example.net\r\nSubject: original\r\n")
    opened = gpg.open_mail(as_mail(multipart(text_part(""), b"Content-Type: message/rfc822"
                                             b"\r\n\r\n" + inner)))
    assert (opened.encrypted, opened.readable, opened.whole) == (True, True, False)
    mail = parse(opened.raw)
    assert any(b"forwarded secret" in a.data for a in mail.attachments)
    assert mail.subject == "Re: [SEC-2026-0001] XSS"  # the outer one


def _nested(entity: bytes, levels: int) -> bytes:
    for _ in range(levels):
        entity = multipart(entity)
    return entity


def test_pgp_mime_at_the_parse_depth_limit(pgp_client: Client, gpg: Gpg) -> None:
    """multipart/encrypted nested as deep as the parser reads is found and decrypted."""
    entity = encrypted_part(pgp_client.encrypt(text_part("deep down\n")))
    opened = gpg.open_mail(as_mail(_nested(entity, MAX_DEPTH - 2)))
    assert (opened.encrypted, opened.readable) == (True, True)
    assert parse(opened.raw).text.strip() == "deep down"


@pytest.mark.parametrize("shape", ["wrong key", "version part only", "beyond the limit",
                                   "corrupt attachment"])
def test_pgp_with_no_visible_text_is_never_an_empty_clear_mail(
        pgp_client: Client, gpg: Gpg, shape: str) -> None:
    """A mail that shows nothing but PGP we cannot read is marked unreadable, with why."""
    wrong = encrypted_part(pgp_client.encrypt(text_part("x"), to="mallory"))
    entity = {
        "wrong key": multipart(text_part(""), wrong),
        "version part only": multipart(text_part(""), b"Content-Type: multipart/encrypted; "
                                       b'boundary="v"\r\n\r\n--v\r\nContent-Type: '
                                       b"application/pgp-encrypted\r\n\r\nVersion: 1\r\n--v--"),
        "beyond the limit": _nested(wrong, MAX_DEPTH + 2),
        "corrupt attachment": multipart(text_part(""), b"Content-Type: application/octet-stream"
                                        b'; name="report.txt.asc"\r\n\r\n-----BEGIN PGP MESSAGE'
                                        b"-----\r\n\r\nhQEMA!!!!\r\n-----END PGP MESSAGE-----"),
    }[shape]
    raw = as_mail(entity)
    opened = gpg.open_mail(raw)
    assert (opened.encrypted, opened.readable) == (True, False), shape
    assert opened.error, shape
    assert opened.raw == raw


def test_an_encrypted_attachment_with_no_text_beside_is_the_message(pgp_client: Client,
                                                                   gpg: Gpg) -> None:
    """A mail with no text and an armored `.asc` attachment shows the decrypted text."""
    armor = pgp_client.encrypt(b"Report in the attachment.\n")
    raw = as_mail(multipart(text_part(" "), b"Content-Type: application/octet-stream; "
                            b'name="report.txt.asc"\r\nContent-Disposition: attachment; '
                            b'filename="report.txt.asc"\r\n\r\n' + armor))
    opened = gpg.open_mail(raw)
    assert (opened.encrypted, opened.readable) == (True, True)
    assert parse(opened.raw).text.strip() == "Report in the attachment."


def test_a_key_attachment_is_no_pgp_message(gpg: Gpg) -> None:
    """A mail offering only a public key is a clear mail, not an unreadable one."""
    key = (KEYS / "reporter.pub.asc").read_bytes()
    raw = as_mail(multipart(text_part(""), b"Content-Type: application/pgp-keys\r\n\r\n" + key))
    opened = gpg.open_mail(raw)
    assert (opened.encrypted, opened.readable, opened.raw) == (False, True, raw)
