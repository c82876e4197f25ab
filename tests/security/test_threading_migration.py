"""Migration 0014 on a database written before it: citations filed as a case's own
Message-IDs (the squatting of issue 12) stop threading other people's mail."""

from __future__ import annotations

import shutil
from pathlib import Path

import aiosqlite

from mailbot.resources import migrations_dir
from mailbot.store import cases as case_q
from mailbot.store import outbox as outbox_q
from mailbot.store.migrate import migrate

AT = "2026-12-18T17:00:00+00:00"


async def test_old_citations_thread_only_their_reporters_mail(tmp_path: Path) -> None:
    """An attacker's case that cited a public advisory before the upgrade no longer
    captures replies to that advisory; its own mail, ours and the reporter's still thread."""
    before = tmp_path / "before"
    before.mkdir()
    for path in migrations_dir().glob("*.sql"):
        if int(path.name[:4]) < 14:
            shutil.copy(path, before / path.name)
    async with aiosqlite.connect(tmp_path / "m.db", isolation_level=None) as db:
        await migrate(db, before)
        await db.execute("BEGIN")
        case_id, _ = await case_q.open_case(db, case_q.NewCase(
            inbox="security", prefix="SEC", year=2026, reporter="mallory@evil.example",
            reporter_name=None, subject="s", language="en", created_at=AT,
            first_response_due=AT, resolution_due=AT))
        for kind, direction, sender, mid in [
                ("report", "in", "Mallory@evil.example", "<squat@evil.example>"),
                ("stranger", "in", "other@example.net", "<stranger@example.net>"),
                ("ack", "out", "security@example.org", "<ack@example.org>")]:
            await case_q.add_message(
                db, case_id=case_id, direction=direction, kind=kind, sender=sender,
                recipients=[], message_id=mid, subject="s", date=AT, body="", new_text="")
        await outbox_q.enqueue(db, purpose="notify:1:alice@example.org", case_id=case_id,
                               created_at=AT, mail_from="security@example.org",
                               rcpt_to=["alice@example.org"], message_id="<notice@example.org>",
                               raw=b"x")
        # What the old pipeline filed: every citation, as the case's own.
        await db.execute("INSERT INTO message_ids (message_id, case_id) VALUES (?, ?), (?, ?)",
                         ("<advisory@lists.example>", case_id, "<notice@example.org>", case_id))
        await db.execute("COMMIT")
        await migrate(db, migrations_dir())

        async def thread(mid: str, sender: str) -> int | None:
            return await case_q.case_of_message_ids(db, [mid], sender=sender)

        assert await thread("<advisory@lists.example>", "researcher@example.net") is None
        assert await thread("<advisory@lists.example>", "mallory@evil.example") == case_id
        assert await thread("<stranger@example.net>", "researcher@example.net") is None
        assert await thread("<squat@evil.example>", "researcher@example.net") is None
        assert await thread("<squat@evil.example>", "mallory@evil.example") == case_id
        assert await thread("<ack@example.org>", "anyone@example.net") == case_id
        assert await thread("<notice@example.org>", "anyone@example.net") == case_id
        # And after it, the trigger files only mail of the case's own parties.
        await db.execute("BEGIN")
        await case_q.add_message(
            db, case_id=case_id, direction="in", kind="stranger", sender="x@example.net",
            recipients=[], message_id="<later-stranger@example.net>", subject="s", date=AT,
            body="", new_text="")
        await db.execute("COMMIT")
        assert await thread("<later-stranger@example.net>", "x@example.net") is None
