"""Message-ID squatting: threading follows only Message-IDs that are a case's own."""

from __future__ import annotations

from tests.security.conftest import World, mail, now_date

ADVISORY = "<advisory-2026-42@lists.example>"  # public: anyone may cite it


def reply(sender: str, message_id: str, *, in_reply_to: str, references: str,
          subject: str = "Re: [oss-security] CVE-2026-0042 in libfoo") -> bytes:
    return mail([("From", f"<{sender}>"), ("To", "security@example.org"),
                 ("Subject", subject), ("Date", now_date()), ("Message-ID", message_id),
                 ("In-Reply-To", in_reply_to), ("References", references)],
                f"Message from {sender}: the advisory misses our product.\n")


def case_of(world: World, raw_id: str) -> tuple[str, str]:
    """(case reference, its reporter) of the mail with this Message-ID."""
    ((ref, reporter),) = world.rows(
        "SELECT c.ref, c.reporter FROM inbound i JOIN cases c ON c.id = i.case_id"
        " WHERE i.message_id = ?", (raw_id,))
    return str(ref), str(reporter)


def acked(world: World, address: str) -> bool:
    return any(address in r for (r,) in world.rows(
        "SELECT rcpt_to FROM outbox WHERE purpose LIKE 'ack:%'"))


async def test_a_cited_public_message_id_does_not_capture_its_replies(world: World) -> None:
    """The attacker opens a case whose In-Reply-To/References cite a public advisory's
    Message-ID, hoping every researcher who answers that advisory lands on their case
    (as an unanswered stranger, and later staff replies go to the attacker)."""
    await world.send(reply("mallory@evil.example", "<squat-1@evil.example>",
                           in_reply_to=ADVISORY, references=ADVISORY),
                     mail_from="mallory@evil.example")
    await world.settled()
    await world.send(reply("researcher@example.net", "<real-1@example.net>",
                           in_reply_to=ADVISORY, references=ADVISORY),
                     mail_from="researcher@example.net")
    await world.settled()
    squat, real = case_of(world, "<squat-1@evil.example>"), case_of(world, "<real-1@example.net>")
    assert squat[0] != real[0] and real[1] == "researcher@example.net"
    assert acked(world, "researcher@example.net")


async def test_a_message_id_taken_as_ones_own_does_not_capture_replies(world: World) -> None:
    """The attacker sends their report under the advisory's own Message-ID (and another
    under a researcher's Message-ID seen on a list, before the researcher's mail
    arrives), hoping answers to it, or the researcher's report itself, land with them or
    are dropped as duplicates."""
    await world.send(mail([("From", "<mallory@evil.example>"), ("To", "security@example.org"),
                           ("Subject", "CVE-2026-0042 in libfoo"), ("Date", now_date()),
                           ("Message-ID", ADVISORY)], "Squatting.\n"),
                     mail_from="mallory@evil.example")
    await world.send(mail([("From", "<mallory@evil.example>"), ("To", "security@example.org"),
                           ("Subject", "Heap overflow"), ("Date", now_date()),
                           ("Message-ID", "<researchers-report@example.net>")], "Squat.\n"),
                     mail_from="mallory@evil.example")
    await world.settled()
    await world.send(reply("researcher@example.net", "<real-2@example.net>",
                           in_reply_to=ADVISORY, references=ADVISORY),
                     mail_from="researcher@example.net")
    await world.send(mail([("From", "<other@example.net>"), ("To", "security@example.org"),
                           ("Subject", "Heap overflow"), ("Date", now_date()),
                           ("Message-ID", "<researchers-report@example.net>")],
                          "The real report.\n"), mail_from="other@example.net")
    await world.settled()
    refs = {str(r) for (r,) in world.rows("SELECT reporter FROM cases")}
    assert refs == {"mallory@evil.example", "researcher@example.net", "other@example.net"}
    assert acked(world, "researcher@example.net") and acked(world, "other@example.net")
    mallory_cases = world.rows("SELECT id FROM cases WHERE reporter = 'mallory@evil.example'")
    strangers = world.rows("SELECT count(*) FROM messages WHERE kind = 'stranger'")
    assert len(mallory_cases) == 2 and strangers == [(0,)]


async def test_a_reporters_own_mail_id_does_not_thread_a_third_party(world: World) -> None:
    """The attacker answers a report's Message-ID (seen on a list the researcher copied)
    hoping to be filed on that case and read what staff write there."""
    await world.send(mail([("From", "<researcher@example.net>"),
                           ("To", "security@example.org"), ("Subject", "Heap overflow"),
                           ("Date", now_date()), ("Message-ID", "<report-a@example.net>")],
                          "The report.\n"), mail_from="researcher@example.net")
    await world.settled()
    await world.send(reply("mallory@evil.example", "<nosy@evil.example>",
                           in_reply_to="<report-a@example.net>",
                           references="<report-a@example.net>", subject="About that bug"),
                     mail_from="mallory@evil.example")
    await world.settled()
    assert case_of(world, "<nosy@evil.example>")[1] == "mallory@evil.example"
    assert case_of(world, "<report-a@example.net>")[1] == "researcher@example.net"


async def test_the_reporters_own_replies_still_thread_in_any_order(world: World) -> None:
    """The control: a reporter's follow-up that overtakes the report it answers, then the
    report, then a reply citing only the report, all land on one case, while a stranger
    citing the same report does not."""
    follow = reply("researcher@example.net", "<f-1@example.net>",
                   in_reply_to="<r-1@example.net>", references="<r-1@example.net>")
    await world.send(follow, mail_from="researcher@example.net")
    await world.settled()
    second = reply("researcher@example.net", "<f-2@example.net>",
                   in_reply_to="<r-1@example.net>", references="<r-1@example.net>")
    await world.send(second, mail_from="researcher@example.net")
    await world.send(mail([("From", "<researcher@example.net>"),
                           ("To", "security@example.org"), ("Subject", "Report"),
                           ("Date", now_date()), ("Message-ID", "<r-1@example.net>")],
                          "The report.\n"), mail_from="researcher@example.net")
    await world.send(reply("mallory@evil.example", "<m-1@evil.example>",
                           in_reply_to="<r-1@example.net>", references="<r-1@example.net>"),
                     mail_from="mallory@evil.example")
    await world.settled()
    mine = {case_of(world, m)[0] for m in ("<f-1@example.net>", "<f-2@example.net>",
                                           "<r-1@example.net>")}
    assert len(mine) == 1
    assert case_of(world, "<m-1@evil.example>")[0] not in mine
