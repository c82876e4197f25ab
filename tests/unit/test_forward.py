"""The report inside a staff forward, and the `#open-for` command line."""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from mailbot.triage.commands import parse as parse_commands
from mailbot.triage.forward import original


def report_mail() -> EmailMessage:
    m = EmailMessage()
    m["From"] = "Rita Researcher <Rita@Example.net>"
    m["To"] = "alice@example.org"
    m["Subject"] = "XSS in /search"
    m["Message-ID"] = "<rita-1@example.net>"
    m["Date"] = "Wed, 16 Dec 2026 09:00:00 +0100"
    m.set_content("The q parameter is reflected.\n")
    return m


def test_attached_message_is_the_original() -> None:
    """A message/rfc822 attachment gives its sender, name, date, subject and Message-ID."""
    fwd = EmailMessage()
    fwd["From"] = "alice@example.org"
    fwd["Subject"] = "Fwd: XSS"
    fwd.set_content("see attached")
    fwd.add_attachment(report_mail())
    found = original(fwd.as_bytes(), "see attached")
    assert found is not None and found.attached
    assert (found.sender, found.sender_name, found.subject, found.message_id) == (
        "rita@example.net", "Rita Researcher", "XSS in /search", "<rita-1@example.net>")
    assert found.date is not None and found.date.isoformat() == "2026-12-16T09:00:00+01:00"


FORWARDS = {
    "gmail": "FYI\n\n---------- Forwarded message ---------\nFrom: Rita <rita@example.net>\n"
             "Date: Wed, 16 Dec 2026 at 09:00\nSubject: XSS\nTo: <alice@example.org>\n\nbody\n",
    "apple mail": "FYI\n\nBegin forwarded message:\n\nFrom: Rita <rita@example.net>\n"
                  "Subject: XSS\nDate: 16 December 2026 at 09:00:00 CET\n\nbody\n",
    "thunderbird dutch": "Zie onder.\n\n-------- Doorgestuurd bericht --------\n"
                         "Onderwerp: \tXSS\nDatum: \tWed, 16 Dec 2026 09:00:00 +0100\n"
                         "Van: \tRita <rita@example.net>\nAan: \talice@example.org\n\nbody\n",
    "outlook german": "Siehe unten.\n\n-----Ursprüngliche Nachricht-----\n"
                      "Von: Rita <rita@example.net>\nGesendet: Mittwoch, 16. Dezember 2026\n"
                      "An: alice@example.org\nBetreff: XSS\n\nbody\n",
}


@pytest.mark.parametrize("text", FORWARDS.values(), ids=FORWARDS.keys())
def test_inline_forward_names_the_sender(text: str) -> None:
    """The header block under a client's forward line names the original sender."""
    found = original(b"From: alice@example.org\r\n\r\n" + text.encode(), text)
    assert found is not None and not found.attached
    assert found.sender == "rita@example.net" and found.subject == "XSS"


def test_no_forward_no_original() -> None:
    """A mail that forwards nothing (an address in prose) has no original."""
    text = "Please ask rita@example.net.\nFrom: the logs it looks exploitable.\n"
    assert original(b"From: a@example.org\r\n\r\n" + text.encode(), text) is None


def test_open_for_line() -> None:
    """`#open-for ADDRESS [original-date]` is read with the address lower-cased."""
    parsed = parse_commands("#open-for <Rita@Example.net> original-date\n")
    assert parsed.errors == ()
    (c,) = parsed.commands
    assert (c.name, c.value, c.flag) == ("open-for", "rita@example.net", True)


@pytest.mark.parametrize(("line", "error"), [
    ("#open-for", "#open-for needs an argument"),
    ("#open-for rita", "'rita' is not an address"),
    ("#open-for a@b.example,mallory@y.example", "is not an address"),
    ("#open-for rita@example.net tomorrow", "optionally 'original-date'"),
    ("#open-for rita@example.net\n#reply\nHi", "#open-for and #reply exclude each other"),
])
def test_open_for_bad_lines(line: str, error: str) -> None:
    """An attacker's or a typo's `#open-for` line is refused with its reason."""
    parsed = parse_commands(line)
    assert any(error in str(e) for e in parsed.errors), parsed.errors
