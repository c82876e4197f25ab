"""Migration 0012: keys pinned from a From: line alone (before issue 12 item 5) are demoted to
the key of the case their mail opened; none stays the address's key."""

from __future__ import annotations

import shutil
from pathlib import Path

import aiosqlite

from mailbot.resources import migrations_dir
from mailbot.store.migrate import migrate


async def test_pinned_keys_become_case_keys(tmp_path: Path) -> None:
    """A key learned before the rule binds to its case only; a key whose mail has no case
    is dropped."""
    before = tmp_path / "before"
    before.mkdir()
    for path in migrations_dir().glob("*.sql"):
        if int(path.name[:4]) < 12:
            shutil.copy(path, before)
    async with aiosqlite.connect(tmp_path / "db.sqlite") as db:
        await migrate(db, before)
        await db.execute(
            "INSERT INTO cases (id, ref, inbox, reporter, subject, language, created_at,"
            " updated_at) VALUES (7, 'SEC-2026-0007', 'security', 'r@example.net', 's', 'en',"
            " 't', 't')")
        for n, case in ((1, 7), (2, None)):
            await db.execute(
                "INSERT INTO inbound (id, received_at, source, rcpt_to, inbox, digest, raw,"
                " case_id) VALUES (?, 't', 'smtp', '[]', 'security', ?, x'00', ?)",
                (n, f"d{n}", case))
        await db.executemany(
            "INSERT INTO pgp_keys (address, fingerprint, learned_at, inbound_id)"
            " VALUES (?, ?, 't', ?)", [("r@example.net", "A" * 40, 1),
                                       ("x@example.net", "B" * 40, 2)])
        await db.commit()
        applied = await migrate(db)
        assert [m.version for m in applied if m.version == 12] == [12]
        async with db.execute("SELECT case_id, address, fingerprint FROM case_keys") as cur:
            assert [tuple(r) for r in await cur.fetchall()] == [(7, "r@example.net", "A" * 40)]
        async with db.execute("SELECT count(*) FROM pgp_keys") as cur:
            assert await cur.fetchone() == (0,)
