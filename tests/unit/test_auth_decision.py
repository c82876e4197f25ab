"""auth.speaker, the one decision of who is speaking: a table over every sender, proof,
machine signal and the ways each proof can fail."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mailbot.config import InboxConfig, StaffConfig
from mailbot.mail.dkim import DkimResult, DkimSignature
from mailbot.mail.parse import parse
from mailbot.mail.pgp import Opened
from mailbot.models import USED_HEADERS, ParsedMail
from mailbot.triage.auth import (
    CaseFacts,
    Kind,
    Speaker,
    named_ids,
    reply_address,
    reply_token,
    speaker,
)

SECRET = b"k" * 32
NOW = datetime(2026, 12, 18, 17, 0, tzinfo=UTC)
WINDOW = timedelta(days=7)
ALICE_KEY = "A" * 40
ALL = ("reply-token", "dkim", "pgp")
INBOX = InboxConfig("security", "security@example.org", "SEC", "security", staff_auth=ALL)
STAFF = (StaffConfig("alice@example.org", pgp_fingerprint=ALICE_KEY),
         StaffConfig("bob@example.org"))
CASE = CaseFacts(1, "SEC-2026-0001", "researcher@example.net")
TOKEN_TO = reply_address("security@example.org", CASE.ref,
                         reply_token(SECRET, CASE.ref, "alice@example.org"))


def staff_mail(*extra: str, sender: str = "Alice <alice@example.org>",
               subject: str = "Re: [SEC-2026-0001] XSS", body: str = "#status triaged\n",
               date: datetime = NOW) -> ParsedMail:
    head = [f"From: {sender}", "To: security@example.org", f"Subject: {subject}",
            f"Date: {date.strftime('%a, %d %b %Y %H:%M:%S +0000')}",
            "Message-ID: <cmd@example.org>", *extra]
    return parse(("\r\n".join(head) + f"\r\n\r\n{body}").encode())


MAIL = staff_mail()
SIGNED = DkimResult((DkimSignature("example.org", frozenset(USED_HEADERS), False),),
                    MAIL.headers)
PGP = Opened(b"", signature="good", signer=ALICE_KEY, signed_at=NOW, whole=True, sig_id="s",
             protected=(("Subject", "Re: [SEC-2026-0001] XSS"),))


UNSIGNED_PGP = Opened(b"")
UNSIGNED = DkimResult()


def decide(mail: ParsedMail = MAIL, case: CaseFacts | None = CASE, *,
           recipients: tuple[str, ...] = ("security@example.org",), proofs: tuple[str, ...] = ALL,
           machine: str | None = None, pgp: Opened = UNSIGNED_PGP, replayed: bool = False,
           dkim: DkimResult = UNSIGNED, threads: dict[str, int] | None = None,
           now: datetime = NOW) -> Speaker:
    return speaker(mail, case, recipients=recipients, inbox=replace(INBOX, staff_auth=proofs),
                   staff=STAFF, machine=machine, pgp=pgp, pgp_replayed=replayed, dkim=dkim,
                   threads=threads or {}, secret=SECRET, now=now, window=WINDOW)


REPORTER = staff_mail(sender="Rita <researcher@example.net>")
STRANGER = staff_mail(sender="Mallory <mallory@evil.example>")

# (name, the arguments of `decide`, kind, trusted, a fragment of the reason or proof)
TABLE: list[tuple[str, dict[str, Any], Kind, bool, str | None]] = [
    ("new case", {"case": None}, Kind.REPORT, True, None),
    ("new case, machine", {"case": None, "machine": "auto-submitted"}, Kind.MACHINE, False,
     "auto-submitted"),
    ("staff on no case opens one", {"case": None, "dkim": SIGNED}, Kind.REPORT, True, None),
    ("reporter", {"mail": REPORTER}, Kind.FOLLOW_UP, True, None),
    ("reporter, machine", {"mail": REPORTER, "machine": "loop: X-Loop"}, Kind.MACHINE, True,
     "X-Loop"),
    ("stranger", {"mail": STRANGER}, Kind.STRANGER, False, "not on the case"),
    ("stranger, machine", {"mail": STRANGER, "machine": "loop: X-Loop"}, Kind.MACHINE, False,
     "not on the case"),
    ("stranger with alice's token", {"mail": STRANGER, "recipients": (TOKEN_TO,)},
     Kind.STRANGER, False, None),
    ("staff, no proof", {}, Kind.UNTRUSTED_STAFF, False, "no valid reply token"),
    ("staff, machine, no proof", {"machine": "auto-submitted: auto-replied"},
     Kind.UNTRUSTED_STAFF, False, "machine mail (auto-submitted"),
    ("staff, machine, proven", {"machine": "auto-submitted", "dkim": SIGNED}, Kind.MACHINE,
     True, "dkim:example.org"),
    # reply token
    ("token", {"recipients": (TOKEN_TO,)}, Kind.STAFF, True, "reply-token"),
    ("token of another case", {"recipients": (reply_address(
        "security@example.org", "SEC-2026-0002",
        reply_token(SECRET, "SEC-2026-0002", "alice@example.org")),)},
     Kind.UNTRUSTED_STAFF, False, "no valid reply token"),
    ("token of another staff member", {"recipients": (reply_address(
        "security@example.org", CASE.ref, reply_token(SECRET, CASE.ref, "bob@example.org")),)},
     Kind.UNTRUSTED_STAFF, False, "no valid reply token"),
    ("token not accepted by the inbox", {"recipients": (TOKEN_TO,), "proofs": ("dkim",)},
     Kind.UNTRUSTED_STAFF, False, "no valid DKIM signature"),
    # DKIM
    ("dkim", {"dkim": SIGNED}, Kind.STAFF, True, "dkim:example.org"),
    ("dkim by a parent domain", {"dkim": DkimResult((DkimSignature(
        "org", frozenset(USED_HEADERS), False),), MAIL.headers)},
     Kind.UNTRUSTED_STAFF, False, "no valid DKIM signature"),
    ("dkim of another domain", {"dkim": DkimResult((DkimSignature(
        "evil.example", frozenset(USED_HEADERS), False),), MAIL.headers)},
     Kind.UNTRUSTED_STAFF, False, "no valid DKIM signature"),
    ("dkim with l= short of the body", {"dkim": DkimResult((DkimSignature(
        "example.org", frozenset(USED_HEADERS), True),), MAIL.headers)},
     Kind.UNTRUSTED_STAFF, False, "l= signs only"),
    ("dkim not covering Subject", {"dkim": DkimResult((DkimSignature(
        "example.org", frozenset(USED_HEADERS) - {"subject"}, False),), MAIL.headers)},
     Kind.UNTRUSTED_STAFF, False, "subject not signed"),
    ("dkim not covering Date", {"dkim": DkimResult((DkimSignature(
        "example.org", frozenset({"from"}), False),), MAIL.headers)},
     Kind.UNTRUSTED_STAFF, False, "date"),
    ("dkim, one bad and one good signature", {"dkim": DkimResult((
        DkimSignature("example.org", frozenset({"from"}), False),
        DkimSignature("example.org", frozenset(USED_HEADERS), False)), MAIL.headers)},
     Kind.STAFF, True, "dkim:example.org"),
    ("dkim over other header values", {"dkim": replace(SIGNED, headers=tuple(
        (n, "Re: [SEC-2026-0009] other" if n == "subject" else v) for n, v in MAIL.headers))},
     Kind.UNTRUSTED_STAFF, False, "not the headers read"),
    ("dkim, signed date too old", {"dkim": SIGNED, "now": NOW + timedelta(days=8)},
     Kind.UNTRUSTED_STAFF, False, "replay window"),
    ("dkim, subject of another case", {
        "mail": staff_mail(subject="Re: [SEC-2026-0002] other"),
        "dkim": replace(SIGNED, headers=staff_mail(subject="Re: [SEC-2026-0002] o").headers)},
     Kind.UNTRUSTED_STAFF, False, None),
    ("dkim not accepted by the inbox", {"dkim": SIGNED, "proofs": ("reply-token",)},
     Kind.UNTRUSTED_STAFF, False, "no valid reply token"),
    # PGP
    ("pgp", {"pgp": PGP}, Kind.STAFF, True, f"pgp:{ALICE_KEY}"),
    ("pgp, bad signature", {"pgp": replace(PGP, signature="bad")}, Kind.UNTRUSTED_STAFF,
     False, "no good signature"),
    ("pgp, another key", {"pgp": replace(PGP, signer="B" * 40)}, Kind.UNTRUSTED_STAFF, False,
     "no good signature"),
    ("pgp over part of the mail", {"pgp": replace(PGP, whole=False)}, Kind.UNTRUSTED_STAFF,
     False, "only part"),
    ("pgp signed long ago", {"pgp": replace(PGP, signed_at=NOW - timedelta(days=9))},
     Kind.UNTRUSTED_STAFF, False, "replay window"),
    ("pgp signature seen before", {"pgp": PGP, "replayed": True}, Kind.UNTRUSTED_STAFF, False,
     "replay"),
    ("pgp for a staff member without a key", {
        "mail": staff_mail(sender="bob@example.org"), "pgp": PGP}, Kind.UNTRUSTED_STAFF,
     False, "no key configured"),
    ("pgp, protected subject of another case", {
        "pgp": replace(PGP, protected=(("Subject", "[SEC-2026-0002] x"),))},
     Kind.UNTRUSTED_STAFF, False, "does not name SEC-2026-0001"),
    ("pgp, protected References of the case", {
        "pgp": replace(PGP, protected=(("References", "<ack-1@example.org>"),)),
        "threads": {"<ack-1@example.org>": 1}}, Kind.STAFF, True, "pgp:"),
    ("pgp, protected References of another case", {
        "pgp": replace(PGP, protected=(("In-Reply-To", "<ack-2@example.org>"),)),
        "threads": {"<ack-2@example.org>": 2}}, Kind.UNTRUSTED_STAFF, False, "does not name"),
    ("pgp, protected subject wins over the text", {
        "mail": staff_mail(body="#status triaged\nSEC-2026-0001\n"),
        "pgp": replace(PGP, protected=(("Subject", "[SEC-2026-0002] x"),))},
     Kind.UNTRUSTED_STAFF, False, "does not name"),
    ("pgp, signed text names the case", {
        "mail": staff_mail(body="#status triaged\nOn SEC-2026-0001.\n"),
        "pgp": replace(PGP, protected=())}, Kind.STAFF, True, "pgp:"),
    ("pgp, signed text names no case", {"pgp": replace(PGP, protected=())},
     Kind.UNTRUSTED_STAFF, False, "does not name"),
    ("pgp, signed text names another case", {
        "mail": staff_mail(body="#status triaged\nOn SEC-2026-00012.\n"),
        "pgp": replace(PGP, protected=())}, Kind.UNTRUSTED_STAFF, False, "does not name"),
    ("pgp not accepted by the inbox", {"pgp": PGP, "proofs": ("reply-token", "dkim")},
     Kind.UNTRUSTED_STAFF, False, "no valid DKIM"),
    # From: that is not one plain address: the envelope sender speaks, never as staff
    ("ambiguous From:, staff envelope, every proof", {
        "mail": replace(MAIL, from_addr="alice@example.org",
                        from_problem="From: invalid address in address-list"),
        "recipients": (TOKEN_TO,), "dkim": SIGNED, "pgp": PGP},
     Kind.UNTRUSTED_STAFF, False, "invalid address"),
    ("ambiguous From:, reporter envelope", {
        "mail": replace(MAIL, from_addr="researcher@example.net", from_problem="From: group")},
     Kind.FOLLOW_UP, True, "group"),
]


@pytest.mark.parametrize(("name", "args", "kind", "trusted", "why"), TABLE,
                         ids=[row[0] for row in TABLE])
def test_speaker_table(name: str, args: dict[str, Any], kind: Kind, trusted: bool,
                       why: str | None) -> None:
    """Each sender, proof and failure of a proof gives its kind, trust and reason."""
    who = decide(**args)
    assert (who.kind, who.trusted) == (kind, trusted)
    assert who.commands == (kind is Kind.STAFF)
    if why is not None:
        assert why in f"{who.reason} {who.proof}"


PROOF_ARGS: dict[str, dict[str, Any]] = {
    "reply-token": {"recipients": (TOKEN_TO,)}, "dkim": {"dkim": SIGNED}, "pgp": {"pgp": PGP}}


@pytest.mark.parametrize(("proof", "accepted"), [
    (p, a) for p in ALL for n in range(len(ALL) + 1) for a in itertools.combinations(ALL, n)])
def test_a_proof_counts_only_where_the_inbox_accepts_it(
    proof: str, accepted: tuple[str, ...]
) -> None:
    """Every proof, under every set of accepted proofs: staff exactly when it is accepted."""
    who = decide(proofs=accepted, **PROOF_ARGS[proof])
    assert (who.kind is Kind.STAFF) == (proof in accepted)


@pytest.mark.parametrize(("header", "proof"), list(itertools.product(USED_HEADERS, ALL)))
def test_a_repeated_used_header_defeats_every_proof(header: str, proof: str) -> None:
    """A header the bot reads that occurs twice leaves no proof standing: the bot reads one
    copy, a signature or token may vouch for the other."""
    value = {"from": "Alice <alice@example.org>", "date": "Fri, 18 Dec 2026 17:00:00 +0000",
             "subject": "Re: [SEC-2026-0001] XSS", "message-id": "<x@example.org>",
             "in-reply-to": "<x@example.org>", "references": "<x@example.org>",
             "to": "security@example.org", "cc": "security@example.org"}[header]
    twice = staff_mail(f"{header}: {value}", f"{header}: {value}") if header in (
        "in-reply-to", "references", "cc") else staff_mail(f"{header}: {value}")
    assert [n for n, _ in twice.headers].count(header) == 2
    if header == "from":  # no From: address: the pipeline gives the envelope sender's
        twice = replace(twice, from_addr="alice@example.org")
    args = dict(PROOF_ARGS[proof])
    if proof == "dkim":
        args["dkim"] = replace(SIGNED, headers=twice.headers)
    who = decide(twice, **args)
    assert (who.kind, who.trusted) == (Kind.UNTRUSTED_STAFF, False)
    assert who.reason is not None
    assert ("2 From: headers" if header == "from" else "occurs 2 times") in who.reason


def test_named_ids_include_the_protected_headers() -> None:
    """The Message-IDs whose case the decision needs: those the mail and its signed
    protected headers answer."""
    mail = staff_mail("In-Reply-To: <a@x>", "References: <b@x> <a@x>")
    pgp = replace(PGP, protected=(("References", "<c@x>"), ("Subject", "<not-an-id@x>")))
    assert named_ids(mail, pgp) == ("<a@x>", "<b@x>", "<c@x>")
