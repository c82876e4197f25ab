"""Mail through mailing lists and groups, end to end through the daemon and a relay sink."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from mailbot.cli import main
from mailbot.config import load_config
from mailbot.jobs import digest
from mailbot.mail.render import Templates
from tests.dovecot import Dovecot
from tests.imap_support import imap_table, password_file, until, write_imap_config
from tests.integration.test_staff_commands import staff_reply
from tests.list_mail import POSTER, google_group, m365_group, mailman2, mailman3, sympa
from tests.list_mail import with_headers as headed
from tests.reliability.harness import settle
from tests.support import CONFIG, FRIDAY_EVENING, Bot, MovingClock, Sink, report, running_bot
from tests.support import table as rows

ALICE = "alice@example.org"
VENDOR = "security@lists.vendor.example"
OURS = ("security@example.org", "mailbot@example.org", "security-team@example.org",
        "security@lists.example.org")
LISTS = """list_ids = ["security.example.org", "security.lists.example.org"]
aliases = ["mailbot@example.org", "security-team@example.org", "security@lists.example.org"]
"""


@pytest.fixture
async def bot(sink: Sink, tmp_path: Path) -> AsyncIterator[Bot]:
    """A daemon whose security inbox is also our Google Group, Mailman list and Microsoft
    365 group (the bot is a member as mailbot@example.org)."""
    text = CONFIG.format(db=tmp_path / "mailbot.db", sink_port=sink.port, protocol="smtp",
                         max_size="1MB").replace('prefix = "SEC"\n', 'prefix = "SEC"\n' + LISTS)
    path = tmp_path / "mailbot.toml"
    path.write_text(text)
    async with running_bot(load_config(path), MovingClock(FRIDAY_EVENING)) as b:
        yield b


def db_of(bot: Bot) -> Path:
    return Path(bot.config.storage.database)


def sent_to(bot: Bot) -> list[str]:
    """Every recipient of every mail the bot queued, in order."""
    return [r for (rcpts,) in rows(db_of(bot), "SELECT rcpt_to FROM outbox ORDER BY id")
            for r in json.loads(rcpts)]


def events(bot: Bot, ref: str = "SEC-2026-0001") -> list[tuple[str, str | None, str | None]]:
    return rows(db_of(bot), "SELECT e.action, e.new, e.detail FROM events e JOIN cases c"
                            " ON c.id = e.case_id WHERE c.ref = ? ORDER BY e.id", (ref,))


async def test_post_to_our_google_group_is_acknowledged_to_its_poster(bot: Bot,
                                                                      sink: Sink) -> None:
    """A report to our Google Group, From: rewritten for DMARC, opens a case whose
    acknowledgement goes to the poster, never to the group or its members' addresses."""
    await bot.send(google_group(), mail_from="security+bncBAABBQ5X@example.org",
                   to=["mailbot@example.org"])
    (ack,) = await sink.wait_for(1, to=POSTER)
    await settle(db_of(bot), 20)
    assert ack.msg["To"] == POSTER and ack.msg["In-Reply-To"] == "<gg-1@example.net>"
    assert "SEC-2026-0001" in ack.msg["Subject"]
    assert rows(db_of(bot), "SELECT reporter, reporter_name FROM cases") == [
        (POSTER, "Rita Researcher")]
    assert sorted(sent_to(bot)) == sorted([POSTER, ALICE, "bob@example.org"])
    assert not set(OURS) & {r for m in sink.received for r in m.rcpt_tos}
    assert ("via list", "security.example.org") in [e[:2] for e in events(bot)]


async def test_follow_up_through_our_mailman_list_threads_onto_the_case(bot: Bot,
                                                                        sink: Sink) -> None:
    """The poster answers our acknowledgement on the Mailman 3 list: a follow-up on the
    same case, shown to staff, no second case."""
    await bot.send(mailman3(), mail_from="security-bounces@lists.example.org",
                   to=["mailbot@example.org"])
    (ack,) = await sink.wait_for(1, to=POSTER)
    await bot.send(mailman3(message_id="<mm3-2@example.net>",
                            in_reply_to=str(ack.msg["Message-ID"]),
                            subject="Re: [Security] [SEC-2026-0001] XSS in /search"),
                   mail_from="security-bounces@lists.example.org", to=["mailbot@example.org"])
    await sink.wait_for(2, to=ALICE)
    await settle(db_of(bot), 20)
    assert rows(db_of(bot), "SELECT count(*) FROM cases") == [(1,)]
    assert rows(db_of(bot), "SELECT kind, sender FROM messages WHERE direction = 'in'"
                            " ORDER BY id") == [("report", POSTER), ("follow-up", POSTER)]
    assert sent_to(bot).count(POSTER) == 1  # the acknowledgement only


async def test_post_to_our_microsoft_365_group_is_direct_mail(bot: Bot, sink: Sink) -> None:
    """A Microsoft 365 group delivers without list headers to its address, an alias."""
    await bot.send(m365_group(), mail_from=POSTER, to=["security-team@example.org"])
    (ack,) = await sink.wait_for(1, to=POSTER)
    assert "SEC-2026-0001" in ack.msg["Subject"]
    await settle(db_of(bot), 20)
    assert rows(db_of(bot), "SELECT inbox, reporter FROM cases") == [("security", POSTER)]


async def test_report_through_another_list_is_shown_never_answered(bot: Bot,
                                                                   sink: Sink) -> None:
    """A post to a vendor's Sympa list that copies us opens a case marked via that list;
    staff are notified; nothing goes to the list or the poster until staff #reply, which
    reaches the poster only."""
    await bot.send(sympa(cc="security@example.org"),
                   mail_from="security-owner@lists.vendor.example", to=["security@example.org"])
    (note,) = await sink.wait_for(1, to=ALICE)
    await settle(db_of(bot), 20)
    assert "via another list security.lists.vendor.example" in note.msg.get_content()
    assert sorted(sent_to(bot)) == [ALICE, "bob@example.org"]
    assert [e[:2] for e in events(bot)][1:3] == [
        ("via list", "security.lists.vendor.example"), ("acknowledgement withheld", None)]

    await bot.send(staff_reply(note.msg, "#reply\nThanks, we are looking into it."),
                   to=[str(note.msg["Reply-To"])])
    (update,) = await sink.wait_for(1, to=POSTER)
    await settle(db_of(bot), 20)
    assert "Thanks, we are looking into it." in update.msg.get_content()
    assert update.rcpt_tos == [POSTER]
    assert VENDOR not in sent_to(bot) and POSTER in sent_to(bot)


async def test_follow_up_through_another_list_joins_the_case_unanswered(bot: Bot,
                                                                          sink: Sink) -> None:
    """The poster answers their own post on the vendor's list, still copying us: the mail
    joins the case as a follow-up marked via that list, staff hear of it, the poster and
    the list get nothing."""
    await bot.send(sympa(cc="security@example.org"),
                   mail_from="security-owner@lists.vendor.example", to=["security@example.org"])
    await sink.wait_for(1, to=ALICE)
    follow_up = sympa(cc="security@example.org", message_id="<sympa-2@example.net>",
                      subject="Re: [security] XSS in /search").replace(
        b"X-Loop:", b"In-Reply-To: <sympa-1@example.net>\r\nX-Loop:")
    await bot.send(follow_up, mail_from="security-owner@lists.vendor.example",
                   to=["security@example.org"])
    await sink.wait_for(2, to=ALICE)
    await settle(db_of(bot), 20)
    assert rows(db_of(bot), "SELECT count(*) FROM cases") == [(1,)]
    assert ("follow-up", None, "via another list security.lists.vendor.example, which "
            "rewrote From:; the poster rita@example.net is as the list claims it; not "
            "answered automatically") in events(bot)
    assert sorted(sent_to(bot)) == sorted([ALICE, "bob@example.org"] * 2)


async def test_reply_is_refused_when_the_list_named_no_poster(bot: Bot, sink: Sink) -> None:
    """A foreign list rewrote From: and kept no poster: the case is the list's, and a
    staff #reply is refused rather than sent to the list."""
    raw = sympa(cc="security@example.org").replace(
        b"X-Original-From: Rita Researcher <rita@example.net>\r\n", b"")
    await bot.send(raw, mail_from="security-owner@lists.vendor.example",
                   to=["security@example.org"])
    (note,) = await sink.wait_for(1, to=ALICE)
    await bot.send(staff_reply(note.msg, "#reply\nCould you send the request?"),
                   to=[str(note.msg["Reply-To"])])
    (_, transcript) = await sink.wait_for(2, to=ALICE)
    await settle(db_of(bot), 20)
    assert f"NOT sent to {VENDOR}" in transcript.msg.get_content()
    assert VENDOR not in sent_to(bot)
    assert rows(db_of(bot), "SELECT reporter FROM cases") == [(VENDOR,)]


async def test_staff_claim_through_our_group_is_not_obeyed(bot: Bot, sink: Sink) -> None:
    """An attacker posts to our group a command mail whose X-Original-From names staff:
    it is shown as a stranger's, never obeyed, and no transcript is sent."""
    await bot.send(report())
    await sink.wait_for(1)
    await bot.send(google_group(original_from=ALICE, subject="Re: [SEC-2026-0001] XSS",
                                message_id="<forged@example.net>",
                                body="#status resolved\n#reply\nAll fixed, go away.\n"),
                   mail_from="security+bncBAABBQ5X@example.org", to=["mailbot@example.org"])
    await sink.wait_for(2, to=ALICE)
    await settle(db_of(bot), 20)
    assert rows(db_of(bot), "SELECT state FROM cases") == [("new",)]
    assert rows(db_of(bot), "SELECT kind, trusted FROM messages WHERE direction = 'in'"
                            " ORDER BY id") == [("report", 1), ("stranger", 0)]
    assert sent_to(bot).count("researcher@example.net") == 1  # the acknowledgement only
    assert not [r for r in sink.to(ALICE) if "commands" in str(r.msg["Subject"])]


async def test_list_traffic_is_listed_by_inbound_ignored(bot: Bot, sink: Sink,
                                                         tmp_path: Path) -> None:
    """Posts we only receive as a member, digests and relayed auto-replies open no case,
    send nothing, and `mailbot inbound --ignored` lists each with its reason."""
    await bot.send(sympa(), mail_from="security-owner@lists.vendor.example",
                   to=["security@example.org"])
    await bot.send(mailman2(digest=True), mail_from="security-bounces@lists.example.org",
                   to=["mailbot@example.org"])
    await bot.send(headed(mailman3(rewrite=False, message_id="<ooo@example.net>"),
                          X_Autoreply="yes"),
                   mail_from="security-bounces@lists.example.org", to=["mailbot@example.org"])
    await settle(db_of(bot), 20)
    assert rows(db_of(bot), "SELECT count(*) FROM cases") == [(0,)]
    assert sent_to(bot) == []
    config = str(tmp_path / "mailbot.toml")
    listed = await mailbot("inbound", "--ignored", "--json", "--config", config)
    assert [(r["reason"], r["group"]) for r in json.loads(listed.out)] == [
        ("mailing list: security.lists.vendor.example, not addressed to the inbox",
         "mailing list"),
        ("mailing list digest: security.lists.example.org", "mailing list digest"),
        ("out of office (x-autoreply)", "out of office")]
    later = await mailbot("inbound", "--ignored", "--since", "2999-01-01", "--config", config)
    assert (later.code, later.out, later.err.strip()) == (0, "", "no ignored mail since "
                                                                 "2999-01-01T00:00:00+00:00")
    bad = await mailbot("inbound", "--ignored", "--since", "last week", "--config", config)
    assert bad.code == 2 and "is not a date like 2026-12-01" in bad.err
    assert "Traceback" not in bad.err


async def test_weekly_digest_counts_ignored_mail_by_reason(bot: Bot, sink: Sink) -> None:
    """The digest of an otherwise quiet week says how much mail opened no case, and why,
    so that a rule swallowing reports is seen."""
    await bot.send(sympa(), mail_from="security-owner@lists.vendor.example",
                   to=["security@example.org"])
    await bot.send(sympa(message_id="<sympa-2@example.net>"),
                   mail_from="security-owner@lists.vendor.example", to=["security@example.org"])
    await bot.send(mailman2(digest=True), mail_from="security-bounces@lists.example.org",
                   to=["mailbot@example.org"])
    await settle(db_of(bot), 20)
    store = await bot.open_store()
    digests = await digest.build(store, bot.config, bot.clock() + timedelta(minutes=1))
    text, html = digest.render(Templates(), digests, "en", "Europe/Amsterdam")
    line = ("Mail that opened no case: 3 (mailing list 2, mailing list digest 1); "
            "`mailbot inbound --ignored` lists each")
    assert line in text and line in html
    assert text.count("Mail that opened no case") == 1  # the support inbox had none


class Run:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err


async def mailbot(*args: str) -> Run:
    """The `mailbot` command as a user runs it."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mailbot", *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode())


async def test_check_warns_of_a_watched_folder_full_of_an_unconfigured_list(
    dovecot: Dovecot, sink: Sink, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The bot was made a member of a group nobody configured: once the daemon has taken
    the folder's mail, `mailbot check` warns, naming the List-Id to add."""
    user = dovecot.add_user()
    posts = [sympa(list_address="team@lists.example.org", message_id=f"<t{i}@example.net>")
             for i in range(3)]
    await asyncio.to_thread(dovecot.append, user, [*posts, m365_group()])
    path = write_imap_config(tmp_path, sink.port,
                             imap_table(dovecot, user, password_file(tmp_path)))
    config = load_config(path)
    async with running_bot(config, MovingClock(FRIDAY_EVENING)):
        await until(lambda: rows(config.storage.database, "SELECT count(*) FROM inbound"
                                 " WHERE status != 'pending'") == [(4,)])
    code = await asyncio.to_thread(main, ["check", "--config", str(path), "--log-level",
                                          "error"])
    _, err = capsys.readouterr()
    assert code == 0
    assert (f"warning: inbox security: IMAP {user}@127.0.0.1/INBOX: 3 of the last 4 mails "
            "came through the list team.lists.example.org") in err
    assert 'list_ids = ["team.lists.example.org"]' in err
