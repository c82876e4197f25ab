"""List mail sorted by triage/lists.py: our own lists, reports through another's, bulk."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from mailbot.config import Config, load_config
from mailbot.errors import ConfigErrors
from mailbot.mail.dkim import DkimResult
from mailbot.mail.parse import parse
from mailbot.mail.pgp import Opened
from mailbot.models import ParsedMail
from mailbot.store.ignored import group
from mailbot.triage.auth import CaseFacts, Kind, speaker
from mailbot.triage.lists import Via, resolve, unconfigured
from tests.list_mail import (
    POSTER,
    google_group,
    m365_group,
    mailman2,
    mailman3,
    sympa,
    with_headers,
)
from tests.support import FRIDAY_EVENING

CONFIG = """
[storage]
database = "{dir}/db"
[policy.p]
timezone = "Europe/Amsterdam"
[[inbox]]
name = "security"
address = "security@example.org"
prefix = "SEC"
policy = "p"
list_ids = ["security.example.org", "Security.lists.example.org"]
aliases = ["mailbot@example.org", "security-team@example.org"]
[[inbox]]
name = "support"
address = "support@example.org"
prefix = "SUP"
policy = "p"
[[staff]]
address = "alice@example.org"
"""
VENDOR = "security@lists.vendor.example"


@pytest.fixture
def config(tmp_path: Path) -> Config:
    path = tmp_path / "mailbot.toml"
    path.write_text(CONFIG.format(dir=tmp_path))
    return load_config(path)


def sort(config: Config, raw: bytes) -> tuple[ParsedMail, Via | None]:
    mail = parse(raw, loop_markers=("security@example.org", "support@example.org"))
    return resolve(mail, config.inbox("security"), config)


def test_google_group_of_ours_rewritten_for_dmarc_answers_the_poster(config: Config) -> None:
    """A post to our Google Group whose From: the group rewrote is mail of its poster
    (X-Original-From), answered like direct mail, never at the group."""
    mail, via = sort(config, google_group())
    assert (mail.machine, mail.from_addr, mail.from_name) == (None, POSTER, "Rita Researcher")
    assert via is not None and (via.list_id, via.ours, via.quiet) == (
        "security.example.org", True, False)
    assert via.address == "security@example.org"


def test_google_group_of_ours_without_rewrite_keeps_from(config: Config) -> None:
    """A poster whose domain has no strict DMARC policy keeps From:; it is what we answer."""
    mail, via = sort(config, google_group(rewrite=False, poster="bo@example.com"))
    assert (mail.machine, mail.from_addr) == (None, "bo@example.com")
    assert via is not None and via.ours and not via.quiet


@pytest.mark.parametrize("build", [mailman2, mailman3])
def test_mailman_list_of_ours_answers_reply_to(config: Config,
                                               build: Callable[[], bytes]) -> None:
    """Mailman 2 and 3 munge From: and name the poster in Reply-To; the List-Id is matched
    without regard to case."""
    mail, via = sort(config, build())
    assert (mail.machine, mail.from_addr) == (None, POSTER)
    assert via is not None and via.list_id == "security.lists.example.org" and via.ours


def test_microsoft_365_group_is_direct_mail_to_an_alias(config: Config) -> None:
    """A Microsoft 365 group carries no list header: its address as an alias is enough."""
    mail, via = sort(config, m365_group())
    assert (mail.machine, mail.from_addr, via) == (None, POSTER, None)
    assert config.inbox_for("security-team@example.org") == config.inbox("security")
    assert config.inbox_for("mailbot+x@example.org") == config.inbox("security")


def test_sympa_post_of_another_list_copying_us_is_a_quiet_report(config: Config) -> None:
    """Another list's post that copies the inbox is a report through that list: shown,
    never answered automatically; its poster is the X-Original-From."""
    mail, via = sort(config, sympa(cc="security@example.org"))
    assert (mail.machine, mail.from_addr) == (None, POSTER)
    assert via is not None
    assert via == Via("security.lists.vendor.example", False, VENDOR, True, via.why)
    assert via.why == ("via another list security.lists.vendor.example, which rewrote From:; "
                       "the poster rita@example.net is as the list claims it; not answered "
                       "automatically")


def test_post_of_another_list_to_an_alias_is_a_report(config: Config) -> None:
    """An alias in To: names the inbox as much as its address does."""
    mail, via = sort(config, mailman3(list_address="dev@lists.vendor.example",
                                      rewrite=False, to="mailbot@example.org"))
    assert mail.machine is None and via is not None and via.quiet


def test_post_of_another_list_we_only_receive_is_ignored(config: Config) -> None:
    """A list post we get as a member, not addressed to the inbox, is list traffic."""
    mail, via = sort(config, sympa())
    assert via is None
    assert mail.machine == ("mailing list: security.lists.vendor.example, not addressed "
                            "to the inbox")
    assert group(mail.machine) == "mailing list"


def test_digest_of_our_own_list_is_ignored(config: Config) -> None:
    """A Mailman digest, even of our own list, is not one report: it opens no case."""
    mail, via = sort(config, mailman2(digest=True))
    assert (mail.machine, via) == ("mailing list digest: security.lists.example.org", None)
    assert group(mail.machine) == "mailing list digest"


def test_newsletter_is_bulk(config: Config) -> None:
    """A newsletter sent to the inbox itself (Precedence: bulk) stays bulk mail."""
    raw = with_headers(mailman2(to="security@example.org", rewrite=False).replace(
        b"Precedence: list", b"Precedence: bulk"))
    mail, via = sort(config, raw)
    assert (mail.machine, via) == ("precedence: bulk", None)


def test_autoresponder_relayed_by_our_list_stays_machine_mail(config: Config) -> None:
    """An out-of-office reply a member's autoresponder sent to our list is never
    answered, whatever the list is."""
    mail, via = sort(config, with_headers(mailman3(rewrite=False), X_Autoreply="yes"))
    assert (mail.machine, via) == ("out of office (x-autoreply)", None)
    mail, via = sort(config, with_headers(google_group(), Auto_Submitted="auto-replied"))
    assert mail.machine == "auto-submitted: auto-replied" and via is None


def test_out_of_office_subject_on_our_list_is_left_to_the_case(config: Config) -> None:
    """A subject-only auto-reply through our list is judged as direct mail would be."""
    mail, _ = sort(config, mailman3(subject="Out of office: back Monday"))
    assert mail.machine == "auto-reply subject"


def test_claim_of_a_staff_address_is_never_taken(config: Config) -> None:
    """An attacker posts to our group with X-Original-From naming staff: the claim is not
    taken, the mail stays the group's, the case is quiet, and on a case it is no staff."""
    raw = google_group(original_from="alice@example.org",
                       subject="[SEC-2026-0001] #status resolved")
    mail, via = sort(config, raw)
    assert mail.from_addr == "security@example.org" and via is not None and via.quiet
    inbox = config.inbox("security")
    who = speaker(mail, CaseFacts(1, "SEC-2026-0001", POSTER),
                  recipients=("security@example.org",), inbox=inbox, staff=config.staff,
                  machine=None, pgp=Opened(raw), pgp_replayed=False, dkim=DkimResult(),
                  threads={}, secret=b"s" * 32, now=FRIDAY_EVENING,
                  window=timedelta(days=7))
    assert who.kind is Kind.STRANGER and not who.commands


@pytest.mark.parametrize("claim", ["security@example.org", "mailbot@example.org",
                                   "support@example.org", VENDOR])
def test_claim_of_our_own_or_the_lists_address_is_not_taken(config: Config,
                                                             claim: str) -> None:
    """An attacker makes a rewritten post claim to come from one of our addresses or the
    list's, to make us mail ourselves or the list: nothing is answered."""
    mail, via = sort(config, sympa(original_from=claim, cc="security@example.org"))
    assert mail.from_addr == VENDOR and via is not None and via.quiet


def test_claims_are_ignored_when_from_is_the_poster(config: Config) -> None:
    """An attacker adds X-Original-From to a post whose From: is not rewritten, to be
    answered at another address: From: is what counts."""
    raw = with_headers(mailman3(rewrite=False, poster="mallory@example.com"),
                       X_Original_From="victim@example.com")
    mail, _ = sort(config, raw)
    assert mail.from_addr == "mallory@example.com"


def test_forged_list_id_of_ours_is_no_more_than_direct_mail(config: Config) -> None:
    """An attacker writes our List-Id on a direct mail: it is treated as direct mail from
    its From:, nothing more (no staff, no other address answered)."""
    raw = (b"From: Mallory <mallory@example.com>\r\nTo: security@example.org\r\n"
           b"List-Id: <security.example.org>\r\nX-Original-From: alice@example.org\r\n"
           b"Subject: hi\r\n\r\nbody\r\n")
    mail, via = sort(config, raw)
    assert (mail.machine, mail.from_addr) == (None, "mallory@example.com")
    assert via is not None and via.ours


def test_reasons_are_grouped_by_kind() -> None:
    """The digest counts reasons by kind, without the list id or Message-ID in them."""
    assert group("duplicate of <a@b> already on a case") == "duplicate"
    assert group("out of office (x-autoreply)") == "out of office"
    assert group("loop: X-Loop") == "loop"
    assert group("auto-submitted: auto-replied") == "auto-submitted"
    assert group(None) == "unknown"


def test_list_ids_and_aliases_are_checked(tmp_path: Path) -> None:
    """A List-Id written with its angle brackets, a bad alias, or an alias shared by two
    inboxes are configuration errors naming the key."""
    text = CONFIG.format(dir=tmp_path).replace(
        'list_ids = ["security.example.org", "Security.lists.example.org"]',
        'list_ids = ["<security.example.org>"]').replace(
        'aliases = ["mailbot@example.org", "security-team@example.org"]',
        'aliases = ["not an address", "support@example.org"]')
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigErrors) as e:
        load_config(path)
    text = "\n".join(str(x) for x in e.value.errors)
    assert "inbox[0].list_ids" in text and "inbox[0].aliases" in text
    assert "inbox.address" in text


def test_check_warns_when_most_recent_mail_is_an_unconfigured_list(config: Config) -> None:
    """Most of a folder's recent mail through a list that is not ours: a warning naming the
    List-Id and the key to set; configured lists, a minority or too few mails: none."""
    inbox = config.inbox("security")
    foreign = [sympa(message_id=f"<s{i}@example.net>") for i in range(3)]
    warning = unconfigured([*foreign, m365_group()], inbox)
    assert warning is not None and "3 of the last 4 mails" in warning
    assert 'list_ids = ["security.lists.vendor.example"]' in warning
    assert unconfigured([*foreign, m365_group(), m365_group(), m365_group()], inbox) is None
    assert unconfigured(foreign[:2], inbox) is None
    assert unconfigured([google_group(), mailman3(), mailman2(), sympa()], inbox) is None


def test_list_id_cannot_carry_control_characters(config: Config) -> None:
    """An attacker puts terminal escapes in a List-Id, which `mailbot inbound` prints and
    staff see: they are dropped."""
    raw = (b"From: x@example.com\r\nTo: y@example.com\r\nList-Id: <ev\x1b[2Jil.example.com>"
           b"\r\nSubject: s\r\n\r\nb\r\n")
    mail, _ = sort(config, raw)
    assert mail.machine == "mailing list: ev[2jil.example.com, not addressed to the inbox"


def test_mailman3_reply_to_list_names_the_poster_in_cc(config: Config) -> None:
    """Mailman 3 with replies going to the list sets Reply-To to itself and copies the
    poster in Cc: the poster is the one other address there."""
    raw = mailman3().replace(b"Reply-To: Rita Researcher <rita@example.net>",
                             b"Reply-To: security@lists.example.org\r\n"
                             b"Cc: Rita Researcher <rita@example.net>")
    mail, via = sort(config, raw)
    assert mail.from_addr == POSTER and via is not None and not via.quiet
    two = raw.replace(b"Cc: Rita Researcher <rita@example.net>",
                      b"Cc: rita@example.net, mallory@example.com")
    mail, via = sort(config, two)
    assert mail.from_addr == "security@lists.example.org" and via is not None and via.quiet


def test_list_mail_without_one_from_address_answers_no_bounce_address(config: Config) -> None:
    """A list post whose From: holds two addresses: the envelope sender (the list's bounce
    address) is never taken for the poster; the list's claim is."""
    raw = mailman2(rewrite=False).replace(b"From: Rita Researcher <rita@example.net>",
                                          b"From: a@example.com, b@example.com\r\n"
                                          b"X-Original-From: rita@example.net")
    mail = parse(raw)
    assert mail.from_problem
    mail = replace(mail, from_addr="security-bounces@lists.example.org", from_name="")
    mail, via = resolve(mail, config.inbox("security"), config)
    assert mail.from_addr == POSTER and via is not None and via.ours
