"""The column types meet the values mailbot's store writes: each table gets a row the way a
function of mailbot/store/ writes it (its columns, Python types as it passes them: ints for
flags, bytes for raw mail, JSON text), on SQLite and on PostgreSQL, and both read back the
same rows with the same Python types."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import aiosqlite
import psycopg

from mailbot.store.migrate import migrate
from tests.pgserver import apply_migrations

T = "2026-01-05T10:00:00+00:00"
RAW = b"From: r@example.org\r\nSubject: XSS\r\n\r\n\x00\xff binary-safe"
# (store function it follows, statement with `?` placeholders, parameters). The statements
# are the store's INSERTs (its upserts in their first-time form), in an order that fills
# each foreign key first.
WRITES: list[tuple[str, str, tuple[Any, ...]]] = [
    ("cases.open_case", "INSERT INTO ref_counters (inbox, year, last) VALUES (?, ?, 1)",
     ("security", 2026)),
    ("cases.open_case",
     "INSERT INTO cases (ref, inbox, reporter, reporter_name, subject, language, created_at,"
     " updated_at, first_response_due, resolution_due, last_reporter_update_at)"
     " VALUES (?,?,?,?,?,?,?,?,?,?,?) RETURNING id",
     ("SEC-2026-0001", "security", "R@Example.org", "Ré Porter", "XSS in /search", "en",
      T, T, T, T, T)),
    ("inbound.insert",
     "INSERT INTO inbound (received_at, source, source_ref, peer, mail_from, rcpt_to, inbox,"
     " message_id, digest, raw, raw_of) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
     " ON CONFLICT DO NOTHING RETURNING id",
     (T, "imap", "imap:u@h/INBOX:7:1", "127.0.0.1", "r@example.org",
      json.dumps(["security@example.com"]), "security", "<m1@x>", "a" * 64, RAW, None)),
    ("inbound.insert (raw_of)",
     "INSERT INTO inbound (received_at, source, source_ref, peer, mail_from, rcpt_to, inbox,"
     " message_id, digest, raw, raw_of) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
     " ON CONFLICT DO NOTHING RETURNING id",
     (T, "smtp", None, "127.0.0.1", "", json.dumps(["support@example.com"]), "support",
      "<m1@x>", "b" * 64, b"", 1)),
    ("inbound.finish",
     "UPDATE inbound SET status = ?, reason = ?, case_id = ?, processed_at = ?"
     " WHERE id = ? AND status = 'pending'", ("done", None, 1, T, 1)),
    ("outbox.enqueue",
     "INSERT INTO outbox (purpose, case_id, created_at, mail_from, rcpt_to, message_id, raw,"
     " next_attempt_at) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (purpose) DO NOTHING RETURNING id",
     ("ack:SEC-2026-0001", 1, T, "security@example.com", json.dumps(["r@example.org"]),
      "<o1@x>", RAW, T)),
    ("cases.add_message",
     "INSERT INTO messages (case_id, direction, kind, inbound_id, outbox_id, sender,"
     " recipients, message_id, subject, date, encrypted, signature, signer, readable, body,"
     " new_text, trusted) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) RETURNING id",
     (1, "in", "report", 1, None, "R@Example.org", json.dumps(["security@example.com"]),
      "<m1@x>", "XSS in /search", T, int(False), "good", "FP" * 20, int(True), "body",
      "new", int(True))),
    ("cases.add_message (out)",
     "INSERT INTO messages (case_id, direction, kind, inbound_id, outbox_id, sender,"
     " recipients, message_id, subject, date, encrypted, signature, signer, readable, body,"
     " new_text, trusted) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) RETURNING id",
     (1, "out", "ack", None, 1, "security@example.com", json.dumps(["r@example.org"]),
      "<o1@x>", "Re: XSS", T, int(True), "none", None, int(True), "ack", "ack", int(True))),
    ("cases.remember_message_ids",
     "INSERT INTO message_ids (message_id, case_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
     ("<notice@x>", 1)),
    ("cases.remember_citations",
     "INSERT INTO cited_ids (message_id, case_id, sender) VALUES (?, ?, ?)"
     " ON CONFLICT DO NOTHING", ("<cited@x>", 1, "r@example.org")),
    ("cases.add_event",
     "INSERT INTO events (case_id, at, actor, action, old, new, detail)"
     " VALUES (?,?,?,?,?,?,?)", (1, T, "staff@example.com", "state", "new", "triaged", None)),
    ("cases.record_escalations",
     "INSERT INTO escalations (case_id, deadline, due_at, level, sent_at) VALUES (?,?,?,?,?)",
     (1, "first-response", T, "warning", T)),
    ("keys.remember",
     "INSERT INTO pgp_keys (address, fingerprint, learned_at, inbound_id, how)"
     " VALUES (?,?,?,?,?) ON CONFLICT (address) DO UPDATE SET"
     " fingerprint = excluded.fingerprint, learned_at = excluded.learned_at,"
     " inbound_id = excluded.inbound_id, how = excluded.how",
     ("r@example.org", "FP" * 20, T, 1, "round trip")),
    ("keys.set_case_key",
     "INSERT INTO case_keys (case_id, address, fingerprint, offered_at, inbound_id)"
     " VALUES (?,?,?,?,?) ON CONFLICT (case_id, address) DO UPDATE SET"
     " fingerprint = excluded.fingerprint, offered_at = excluded.offered_at,"
     " inbound_id = excluded.inbound_id", (1, "r@example.org", "FP" * 20, T, 1)),
    ("keys.remember_signature",
     "INSERT INTO signatures (sig_id, inbound_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
     ("SIGID", 1)),
    ("imap.new_generation",
     "INSERT INTO imap_folders (mailbox, inbox, uidvalidity, resync_below, state, state_at)"
     " VALUES (?, ?, ?, ?, 'syncing', ?) ON CONFLICT (mailbox) DO UPDATE SET"
     " uidvalidity = excluded.uidvalidity, resync_below = excluded.resync_below",
     ("u@h/INBOX", "security", 4_000_000_000, 0, T)),  # UIDVALIDITY is 32-bit unsigned
    ("imap.set_mode", "UPDATE imap_folders SET mode = ?, warnings = ? WHERE mailbox = ?",
     ("idle", None, "u@h/INBOX")),
    ("imap.taken",
     "INSERT INTO imap_messages (mailbox, uidvalidity, uid, message_id, inbound_id)"
     " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
     ("u@h/INBOX", 4_000_000_000, 4_000_000_001, "<m1@x>", 1)),
    ("notices.record", "INSERT INTO notices (address, at, attachment_bytes) VALUES (?, ?, ?)",
     ("staff@example.com", T, 10_000)),
    ("notices.summarise",
     "INSERT INTO notice_summaries (created_at, mails) VALUES (?, ?) RETURNING id", (T, 1)),
    ("notices.hold",
     "INSERT INTO held_notices (inbound_id, case_id, kind, sender, subject, held_at, reason)"
     " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (inbound_id) DO NOTHING",
     (2, 1, "new", "r@example.org", "XSS", T, "acknowledgement limit")),
    ("notices.summarise", "UPDATE held_notices SET summary_id = ? WHERE inbound_id = ?"
     " AND summary_id IS NULL", (1, 2)),
    ("assessments.save",
     "INSERT INTO assessments (case_id, inbox, assessed_at, assessment, features, keys)"
     " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (case_id) DO UPDATE SET"
     " assessed_at = excluded.assessed_at, assessment = excluded.assessment,"
     " features = excluded.features, keys = excluded.keys",
     (1, "security", T, json.dumps({"hosts": ["é.example"]}, ensure_ascii=False),
      json.dumps({"hosts": []}), json.dumps(sorted({"host:a", "path:/x"})))),
    ("disclosures.propose",
     "INSERT INTO disclosures (case_id, proposed_on, proposed_at, proposed_by, agreed_at,"
     " agreed_by, reminded) VALUES (?, ?, ?, ?, ?, ?, '') ON CONFLICT (case_id) DO UPDATE"
     " SET proposed_on = excluded.proposed_on, proposed_at = excluded.proposed_at,"
     " proposed_by = excluded.proposed_by, agreed_at = excluded.agreed_at,"
     " agreed_by = excluded.agreed_by, reminded = ''",
     (1, "2026-02-01", T, "staff@example.com", T, "staff@example.com")),
    ("lists.remember",
     "INSERT INTO case_lists (case_id, list_id, address, ours) VALUES (?,?,?,?)",
     (1, "list.example.org", "list@example.org", int(True))),
    ("outbox.audit", "INSERT INTO ops_audit (at, actor, action, outbox_id, detail)"
     " VALUES (?,?,?,?,?)", (T, "operator", "drop", 1, None)),
    ("claims.claim_outbox", "UPDATE outbox SET claimed_by = ?, claimed_until = ? WHERE id IN (?)",
     ("host:1:ab", T, 1)),
    ("leases.take",
     "INSERT INTO leases (name, holder, until) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE"
     " SET holder = excluded.holder, until = excluded.until"
     " WHERE leases.holder = excluded.holder OR leases.until <= ? RETURNING holder",
     ("scheduler", "host:1:ab", T, T)),
]


def _sqlite_rows(path: Path, tables: list[str]) -> dict[str, list[tuple[Any, ...]]]:
    async def run() -> None:
        async with aiosqlite.connect(path, isolation_level=None) as db:
            await migrate(db)
    asyncio.run(run())
    with sqlite3.connect(path, isolation_level=None) as db:
        db.execute("PRAGMA foreign_keys = ON")
        for _, sql, params in WRITES:
            db.execute(sql, params).fetchall()
        return {t: db.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall() for t in tables}


def test_store_writes_fit_every_table(tmp_path: Path, pg_url: str) -> None:
    """Every table takes the store's values on PostgreSQL, and reads back what SQLite does:
    the same rows (defaults and trigger rows included) with the same Python types."""
    apply_migrations(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as c:
        tables = sorted(r[0] for r in c.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))
        for where, sql, params in WRITES:
            try:
                c.execute(sql.replace("?", "%s").encode(), params)
            except psycopg.Error as e:
                raise AssertionError(f"{where}: {e}") from e
        on_pg = {t: c.execute(f"SELECT * FROM {t} ORDER BY 1, 2".encode()).fetchall()
                 for t in tables}
    on_sqlite = _sqlite_rows(tmp_path / "m.db", tables)
    assert [t for t in tables if not on_pg[t]] == [], "tables the writes leave empty"
    for table in tables:
        assert on_pg[table] == on_sqlite[table], table
        for pg_row, sqlite_row in zip(on_pg[table], on_sqlite[table], strict=True):
            assert [type(v) for v in pg_row] == [type(v) for v in sqlite_row], table
