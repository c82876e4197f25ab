"""Notifications within budgets: what staff get carries attachments up to a budget per mail
and per hour per staff member, and says plainly what it left out, its size, and the command
that writes it out from the stored raw mail."""

from __future__ import annotations

import asyncio
import os
import re
import stat
import sys
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from mailbot.config import load_config
from mailbot.errors import ConfigErrors
from mailbot.mail.attachments import extract, measure
from mailbot.mail.parse import parse
from mailbot.models import Attachment
from mailbot.triage.letters import carry
from tests.pgp_support import (
    FPR,
    KEYS,
    Client,
    gpg_run,
    kill_agent,
    pgp_mime,
    report_part,
    short_home,
)
from tests.support import (
    FRIDAY_EVENING,
    MovingClock,
    Received,
    Sink,
    report,
    running_bot,
    table,
)

STAFF = ("alice@example.org", "bob@example.org")
MB = 1024 * 1024


async def mailbot(config: Path, *args: str) -> tuple[int, str, str]:
    """`mailbot ARGS --config CONFIG` as a child process: (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mailbot", *args, "--config", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def files_under(root: Path, folder: str) -> list[str]:
    """Every file in a directory named `folder` anywhere under `root`, relative to it."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if p.is_file() and p.parent.name == folder)


def body(r: Received) -> str:
    return r.msg.get_body(("plain",)).get_content()


async def test_a_flood_of_attachments_stays_within_each_staff_members_budget(
    tmp_path: Path, sink: Sink, write_config: Callable[..., Path]
) -> None:
    """The attacker sends many reports with large attachments to make the bot mail staff
    megabytes each (amplification): past the hourly budget the notifications still come,
    one per report, naming each attachment with its size and the command instead."""
    path = write_config(sink.port, max_size="5MB")
    path.write_text(path.read_text() + "\n[limits]\nnotify_attachments_per_mail = \"1MB\"\n"
                    "notify_attachments_per_hour = \"2MB\"\n")
    count, size = 10, 600 * 1024
    async with running_bot(load_config(path), MovingClock(FRIDAY_EVENING)) as bot:
        for n in range(count):
            msg = report(sender=f"s{n}@example.net", message_id=f"<amp-{n}@example.net>")
            msg.add_attachment(os.urandom(size), maintype="application",
                               subtype="octet-stream", filename=f"dump-{n}.bin")
            await bot.send(msg)
        notes = {a: await sink.wait_for(count, to=a, timeout=30) for a in STAFF}
    for address, got in notes.items():
        total = sum(len(r.raw) for r in got)
        carried = [r for r in got if list(r.msg.iter_attachments())]
        # 2 MB of attachments in base64 (4/3), plus each notification's own text.
        assert total < 2 * MB * 4 / 3 * 1.05 + count * 16 * 1024, (address, total)
        assert len(carried) == 3  # 3 x 600 KB fit in 2 MB; a 4th would not
        for r in got:
            if r in carried:
                continue
            text = body(r)
            ref = re.search(r"SEC-2026-\d{4}", str(r.msg["Subject"]))
            assert ref is not None
            assert re.search(r"dump-\d\.bin \(600\.0 KB, 614400 bytes\), NOT attached: over "
                             r"your 2\.0 MB of attachments per hour", text), text
            assert re.search(rf"mailbot attachments {ref.group(0)} DIR --mail \d+", text)
    assert total < count * size  # against the 6 MB a staff member got before


async def test_an_attachment_too_large_to_keep_is_named_never_promised(
    tmp_path: Path, sink: Sink, write_config: Callable[..., Path]
) -> None:
    """A report with a 10 MB capture (more than parse keeps): the notification carries no
    empty stand-in, says it is not attached with its size and the command, and that command
    writes out the exact bytes from the stored raw mail."""
    path = write_config(sink.port, max_size="20MB")
    capture, poc = os.urandom(10 * MB), b"GET /upload?f=../../etc/passwd\n"
    msg = report()
    msg.add_attachment(poc, maintype="text", subtype="plain", filename="poc.txt")
    msg.add_attachment(capture, maintype="application", subtype="vnd.tcpdump.pcap",
                       filename="capture.pcap")
    async with running_bot(load_config(path), MovingClock(FRIDAY_EVENING)) as bot:
        await bot.send(msg)
        notes = [(await sink.wait_for(1, to=a, timeout=30))[0] for a in STAFF]
    for note in notes:
        assert list(note.msg.iter_attachments()) == []
        text = body(note)
        assert "attached to this mail" not in text
        assert "capture.pcap (10.0 MB, 10485760 bytes), NOT attached" in text
        assert "poc.txt (31 bytes), NOT attached" in text
        assert "mailbot attachments SEC-2026-0001 DIR --mail 1" in text
    out = tmp_path / "out"
    code, printed, err = await mailbot(path, "attachments", "SEC-2026-0001", str(out),
                                       "--mail", "1")
    assert code == 0, err
    assert (out / "capture.pcap").read_bytes() == capture
    assert (out / "poc.txt").read_bytes() == poc
    assert stat.S_IMODE((out / "capture.pcap").stat().st_mode) == 0o600
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert "10485760 bytes" in printed


async def test_attachment_names_cannot_escape_the_directory(
    tmp_path: Path, sink: Sink, write_config: Callable[..., Path]
) -> None:
    """The attacker names attachments `../../x`, `/etc/cron.d/y` and `.bashrc`, twice, hoping
    that writing them out plants files elsewhere: each lands inside the directory, under a
    name without path or leading dot, and none overwrites another."""
    path = write_config(sink.port)
    msg = report()
    for n, name in enumerate(["../../escaped.sh", "/etc/cron.d/planted", ".bashrc",
                              "..\\..\\win.bat", "../../escaped.sh"]):
        msg.add_attachment(f"payload {n}\n".encode(), maintype="application",
                           subtype="octet-stream", filename=name)
    async with running_bot(load_config(path), MovingClock(FRIDAY_EVENING)) as bot:
        await bot.send(msg)
        await sink.wait_for(1, to=STAFF[0])
    out = tmp_path / "deep" / "out"
    code, _, err = await mailbot(path, "attachments", "SEC-2026-0001", str(out))
    assert code == 0, err
    written = files_under(tmp_path, "mail-1")
    assert written == ["deep/out/mail-1/bashrc", "deep/out/mail-1/escaped (2).sh",
                       "deep/out/mail-1/escaped.sh", "deep/out/mail-1/planted",
                       "deep/out/mail-1/win.bat"]
    assert (out / "mail-1" / "escaped.sh").read_bytes() == b"payload 0\n"
    assert (out / "mail-1" / "escaped (2).sh").read_bytes() == b"payload 4\n"
    assert not (tmp_path / "escaped.sh").exists()


async def test_attachments_of_an_unknown_case_or_mail_is_a_clear_error(
    tmp_path: Path, sink: Sink, write_config: Callable[..., Path]
) -> None:
    """A wrong reference or a mail of another case gets one line, not a traceback."""
    path = write_config(sink.port)
    async with running_bot(load_config(path), MovingClock(FRIDAY_EVENING)) as bot:
        await bot.send(report())
        await sink.wait_for(1, to=STAFF[0])
    code, _, err = await mailbot(path, "attachments", "SEC-2026-0099", str(tmp_path))
    assert (code, err.strip()) == (1, "error: no case SEC-2026-0099")
    code, _, err = await mailbot(path, "attachments", "SEC-2026-0001", "--mail", "7")
    assert code == 1 and err.strip().startswith("error: mail 7 is not a mail of SEC-2026-0001")


def test_carry_takes_whole_attachments_in_order_while_each_budget_holds() -> None:
    """Each attachment goes in whole when it fits both budgets, else it is named with why;
    a later small one still goes in after a big one left out; one not kept is never carried."""
    small, big = Attachment("a.txt", "text/plain", b"a" * 10), Attachment("b", "x/y", b"b" * 90)
    cut = Attachment("c.pcap", "x/y", b"", 10_000)
    chosen = carry([big, small, cut, small], per_mail=50, per_hour=1000, spent=0)
    assert chosen.attached == (small, small)
    assert [(o.name, o.size) for o in chosen.left_out] == [("b", 90), ("c.pcap", 10_000)]
    assert "a notification carries" in chosen.left_out[0].why
    assert "reads from one mail into memory" in chosen.left_out[1].why
    spent = carry([small, small], per_mail=50, per_hour=1000, spent=985)
    assert spent.attached == (small,) and "per hour" in spent.left_out[0].why


async def test_past_the_notification_limit_follow_ups_come_in_the_summary(
    tmp_path: Path, sink: Sink, write_config: Callable[..., Path]
) -> None:
    """A reporter (or anyone who learned a reference) floods a case with follow-ups to flood
    staff: past notifications_per_hour each staff member gets no more one by one, but every
    held mail is listed, with its sender and subject, in the next summary."""
    path = write_config(sink.port)
    path.write_text(path.read_text() + "\n[limits]\nnotifications_per_hour = 3\n")
    db = tmp_path / "mailbot.db"
    async with running_bot(load_config(path), MovingClock(FRIDAY_EVENING)) as bot:
        await bot.send(report())
        for n in range(6):
            await bot.send(report(subject=f"Re: more detail {n}", message_id=f"<more-{n}@ex.net>",
                                  In_Reply_To="<report-1@example.net>"))
        async with asyncio.timeout(20):
            while table(db, "SELECT count(*) FROM held_notices") != [(4,)]:
                await asyncio.sleep(0.05)
        # A tick may have listed the first held mails already: the next may come at once.
        bot.clock.advance(timedelta(minutes=2))
        for address in STAFF:
            async with asyncio.timeout(20):  # the summary job looks every 5 seconds
                while summarised(sink, address).count(
                        "SEC-2026-0001  follow-up from the reporter") < 4:
                    await asyncio.sleep(0.05)
    for address in STAFF:
        kinds = Counter(str(r.msg["X-Mailbot-Kind"]) for r in sink.to(address))
        assert (kinds["new"], kinds["follow-up"]) == (1, 2)
        text = summarised(sink, address)
        assert [f"Re: more detail {n}" for n in range(2, 6)] == re.findall(
            r"^    Subject: (.*?)\r?$", text, re.M)


def summarised(sink: Sink, address: str) -> str:
    """The text of every summary `address` got."""
    return "\n".join(body(r) for r in sink.to(address) if r.msg["X-Mailbot-Kind"] == "summary")


def shapes() -> list[bytes]:
    """Mails whose attachments sit in each MIME shape: nested, forwarded, quoted-printable,
    8-bit, unnamed, an HTML body, plus the fixtures and the hostile corpus."""
    made = []
    inner = report(subject="forwarded", body="inner text\n")
    inner.add_attachment(b"inner bytes", maintype="application", subtype="zip",
                         filename="inner.zip")
    outer = report(body="see the forwarded mail\n")
    outer.add_attachment(inner)
    made.append(outer.as_bytes())
    msg = report()
    msg.add_alternative("<p>html body</p>", subtype="html")
    msg.add_attachment("caf\u00e9 = 1\n" * 50, subtype="plain", filename="qp.txt",
                       cte="quoted-printable")
    msg.add_attachment(b"\x00\x01 raw", maintype="application", subtype="octet-stream")
    msg.add_attachment("line\n" * 10, subtype="csv", filename="8bit.csv", cte="8bit")
    made.append(msg.as_bytes())
    fixtures = Path(__file__).parent.parent
    made += [p.read_bytes() for p in sorted((fixtures / "fixtures" / "mail").glob("*.eml"))]
    made += [p.read_bytes() for p in sorted((fixtures / "corpus" / "hostile").glob("*.eml"))]
    return made


def test_every_listing_of_attachments_agrees_with_parse() -> None:
    """The n-th attachment a notification names (parse), the size it states for a mail too
    large to parse (measure) and the n-th file the command writes (extract) are one."""
    for raw in shapes():
        seen = [(a.filename, a.content_type, a.length) for a in parse(raw).attachments]
        assert [(a.filename, a.content_type, a.length) for a in measure(raw)] == seen
        assert [(a.filename, a.content_type, len(a.data)) for a in extract(raw)] == seen
        assert [a.data for a in extract(raw)] == [a.data for a in parse(raw).attachments]


async def test_a_mail_of_many_small_attachments_makes_a_bounded_notification(
    tmp_path: Path, sink: Sink, write_config: Callable[..., Path]
) -> None:
    """The attacker attaches 300 tiny files, under every byte budget, to make each staff
    notification hundreds of parts and lines: it carries 50, names 50 more and counts
    the rest, all of which the command still writes out."""
    path = write_config(sink.port)
    msg = report()
    for n in range(300):
        msg.add_attachment(f"part {n}\n".encode(), maintype="application",
                           subtype="octet-stream", filename=f"f{n:03}.bin")
    async with running_bot(load_config(path), MovingClock(FRIDAY_EVENING)) as bot:
        await bot.send(msg)
        (note,) = await sink.wait_for(1, to=STAFF[0])
    assert [p.get_filename() for p in note.msg.iter_attachments()] == [
        f"f{n:03}.bin" for n in range(50)]
    text = body(note)
    assert text.count("NOT attached: a notification carries at most 50 attachments") == 50
    assert "... and 200 more attachments, NOT attached" in text
    assert len(note.raw) < 64 * 1024
    code, _, err = await mailbot(path, "attachments", "SEC-2026-0001", str(tmp_path / "all"))
    assert code == 0, err
    assert len(files_under(tmp_path, "mail-1")) == 300


async def test_an_encrypted_reports_attachment_is_written_out_decrypted(
    tmp_path: Path, sink: Sink, write_config: Callable[..., Path], pgp_client: Client
) -> None:
    """An encrypted report's attachment over the budget is named in the notification, and
    the command writes the plaintext bytes (decrypted with the inbox key), not ciphertext."""
    home = short_home("gn")
    try:
        gpg_run(home, "--import", str(KEYS / "inbox.sec.asc"))
        path = write_config(sink.port)
        text = path.read_text().replace(f'home = "{path.parent / "mailbot.db"}.gnupg"',
                                        f'home = "{home}"')
        text = text.replace('prefix = "SEC"', f'prefix = "SEC"\npgp_key = "{FPR["inbox"]}"')
        path.write_text(text + "\n[limits]\nnotify_attachments_per_mail = \"100KB\"\n")
        poc = os.urandom(300 * 1024)
        entity = report_part("RCE, exploit attached.", attachment=poc, subject="RCE")
        async with running_bot(load_config(path), MovingClock(FRIDAY_EVENING)) as bot:
            await bot.send(pgp_mime(pgp_client.encrypt(entity)), mail_from="researcher@example.net",
                           to=["security@example.org"])
            (note,) = await sink.wait_for(1, to="bob@example.org")  # bob has no key: clear
        assert list(note.msg.iter_attachments()) == []
        assert "poc.py (300.0 KB, 307200 bytes), NOT attached: over the 100.0 KB" in body(note)
        code, _, err = await mailbot(path, "attachments", "SEC-2026-0001", str(tmp_path / "o"),
                                     "--mail", "1")
        assert code == 0, err
        assert (tmp_path / "o" / "poc.py").read_bytes() == poc
    finally:
        kill_agent(home)


@pytest.mark.parametrize(
    ("snippet", "key", "reason"),
    [
        ('notify_attachments_per_mail = "6MB"\nnotify_attachments_per_hour = "5MB"\n',
         "limits.notify_attachments_per_hour", "at least notify_attachments_per_mail"),
        ('notify_attachments_per_mail = "lots"\n', "limits.notify_attachments_per_mail",
         "not a size"),
        ("notifications_per_hour = 0\n", "limits.notifications_per_hour", "at least 1"),
        ('summary_interval = "2 business days"\n', "limits.summary_interval",
         "minutes or hours"),
    ],
)
def test_budget_keys_are_checked(
    write_config: Callable[..., Path], snippet: str, key: str, reason: str
) -> None:
    """A bad budget or interval is reported with its key and why, before anything runs."""
    path = write_config()
    path.write_text(path.read_text() + "\n[limits]\n" + snippet)
    with pytest.raises(ConfigErrors) as info:
        load_config(path)
    (err,) = info.value.errors
    assert (err.key, reason in err.reason) == (key, True)


def test_budget_defaults_follow_the_ack_limit(write_config: Callable[..., Path]) -> None:
    """Unset, notifications_per_hour follows acks_per_hour and the budgets are 5 and 20 MB."""
    path = write_config()
    path.write_text(path.read_text() + "\n[limits]\nacks_per_hour = 500\n")
    limits = load_config(path).limits
    assert (limits.notifications_per_hour, limits.notify_attachments_per_mail,
            limits.notify_attachments_per_hour, limits.summary_interval) == (
        500, 5 * MB, 20 * MB, timedelta(minutes=1))
