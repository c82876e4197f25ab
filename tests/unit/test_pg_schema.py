"""The PostgreSQL schema (migrations/postgresql/) is the SQLite schema (migrations/) in
PostgreSQL's words: both are built for real and read back from each database's catalogue,
then compared table by table; their triggers are run on both and leave the same rows."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite
import psycopg
import pytest

from mailbot.resources import migrations_dir
from mailbot.store.migrate import discover, migrate
from tests.pgserver import MIGRATIONS, apply_migrations

# SQLite's declared type → the PostgreSQL type the schema uses for it.
TYPES = {"INTEGER": "bigint", "TEXT": "text", "BLOB": "bytea", "REAL": "double precision"}
# pg_constraint's action codes, in SQLite's words.
ACTIONS = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL",
           "d": "SET DEFAULT"}


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: str
    not_null: bool
    default: str | None
    identity: bool  # PostgreSQL: an identity column; SQLite: a rowid alias named `id`


@dataclass(frozen=True, slots=True)
class Index:
    name: str | None  # None: made by a UNIQUE constraint (each side names those its own way)
    unique: bool
    columns: tuple[str, ...]
    where: str | None


@dataclass(frozen=True, slots=True)
class ForeignKey:
    columns: tuple[str, ...]
    table: str
    to: tuple[str, ...]
    on_update: str
    on_delete: str


@dataclass(frozen=True, slots=True)
class Trigger:
    name: str
    timing: str
    event: str  # INSERT | DELETE | UPDATE | UPDATE OF a, b
    when: str | None


@dataclass(frozen=True, slots=True)
class Table:
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    indexes: frozenset[Index]
    foreign_keys: frozenset[ForeignKey]
    triggers: frozenset[Trigger]


def normalise(expr: str | None) -> str | None:
    """An index predicate, trigger condition or default in one spelling for both: lower
    case (but not in string literals), no casts or parentheses, `= ANY (ARRAY[…])` as IN,
    `~~` as LIKE, and SQLite's GLOB pattern as the LIKE pattern it means."""
    if expr is None:
        return None
    text = "".join(part if part.startswith("'") else part.lower()
                   for part in re.split(r"('(?:[^']|'')*')", expr.strip()))
    text = re.sub(r"::(text|bigint|integer|smallint|bytea|boolean|double precision)(\[\])?",
                  "", text)
    text = re.sub(r"=\s*any\s*\(\s*array\[(.*?)\]\s*\)", r"in (\1)", text)
    text = text.replace("~~", "like")
    text = re.sub(r"glob\s+'([^']*)'",
                  lambda m: "like '" + m.group(1).replace("*", "%").replace("?", "_") + "'",
                  text)
    return re.sub(r"\s+", " ", text.replace("(", " ").replace(")", " ")).strip()


_SQLITE_TRIGGER = re.compile(
    r"CREATE\s+TRIGGER\s+(\w+)\s+(BEFORE|AFTER|INSTEAD\s+OF)\s+"
    r"(INSERT|DELETE|UPDATE(?:\s+OF\s+[\w\s,]+?)?)\s+ON\s+(\w+)"
    r"(?:\s+FOR\s+EACH\s+ROW)?(?:\s+WHEN\s+(.*?))?\s+BEGIN\b", re.I | re.S)
_PG_TRIGGER = re.compile(
    r"CREATE\s+TRIGGER\s+(\w+)\s+(BEFORE|AFTER|INSTEAD\s+OF)\s+"
    r"(INSERT|DELETE|UPDATE(?:\s+OF\s+[\w\s,]+?)?)\s+ON\s+(?:\w+\.)?(\w+)"
    r"\s+FOR\s+EACH\s+ROW(?:\s+WHEN\s+(.*?))?\s+EXECUTE\s+FUNCTION\b", re.I | re.S)


def _trigger(m: re.Match[str]) -> tuple[str, Trigger]:
    event = re.sub(r"\s+", " ", m.group(3).upper())
    event = re.sub(r"OF (.*)", lambda o: "OF " + ", ".join(
        c.strip().lower() for c in o.group(1).split(",")), event)
    return m.group(4), Trigger(m.group(1), m.group(2).upper(), event, normalise(m.group(5)))


def sqlite_schema(path: Path) -> dict[str, Table]:
    """Every table of the SQLite database (not the runner's schema_migrations)."""
    with sqlite3.connect(path) as db:
        master = db.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall()
        triggers: dict[str, set[Trigger]] = {}
        for kind, _, _, sql in master:
            if kind == "trigger":
                m = _SQLITE_TRIGGER.match(sql)
                assert m, f"cannot read the trigger {sql!r}"
                table, trigger = _trigger(m)
                triggers.setdefault(table, set()).add(trigger)
        sql_of = {name: sql for _, name, _, sql in master}
        found = {}
        for kind, name, _, sql in master:
            if kind != "table" or name == "schema_migrations" or name.startswith("sqlite_"):
                continue
            info = db.execute(f"PRAGMA table_info('{name}')").fetchall()
            pk = tuple(r[1] for r in sorted((r for r in info if r[5]), key=lambda r: r[5]))
            rowid_alias = (len(pk) == 1 and "WITHOUT ROWID" not in sql.upper()
                           and next(r[2] for r in info if r[1] == pk[0]).upper() == "INTEGER")
            columns = tuple(
                Column(r[1], TYPES[r[2].upper()], bool(r[3]) or r[1] in pk, normalise(r[4]),
                       rowid_alias and r[1] == pk[0] == "id")
                for r in info)
            indexes = set()
            for _, index, unique, origin, _ in db.execute(f"PRAGMA index_list('{name}')"):
                if origin == "pk":
                    continue
                cols = tuple(r[2] for r in db.execute(f"PRAGMA index_info('{index}')"))
                where = re.search(r"\bWHERE\b(.*)$", sql_of.get(index) or "", re.I | re.S)
                indexes.add(Index(index if origin == "c" else None, bool(unique), cols,
                                  normalise(where.group(1)) if where else None))
            fks: dict[int, list[Any]] = {}
            for fk_id, _, ref, frm, to, on_update, on_delete, _ in db.execute(
                    f"PRAGMA foreign_key_list('{name}')"):
                fks.setdefault(fk_id, []).append((ref, frm, to, on_update, on_delete))
            found[name] = Table(columns, pk, frozenset(indexes), frozenset(
                ForeignKey(tuple(r[1] for r in rows), rows[0][0], tuple(r[2] for r in rows),
                           rows[0][3], rows[0][4]) for rows in fks.values()),
                frozenset(triggers.get(name, set())))
    return found


def pg_schema(url: str) -> dict[str, Table]:
    """Every table of the PostgreSQL database's public schema."""
    with psycopg.connect(url) as c:
        tables = [r[0] for r in c.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        found = {}
        for name in tables:
            columns = tuple(
                Column(r[0], r[1], r[2], normalise(r[3]), r[4] != "")
                for r in c.execute(
                    "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,"
                    " pg_get_expr(d.adbin, d.adrelid), a.attidentity FROM pg_attribute a"
                    " LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
                    " WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped"
                    " ORDER BY a.attnum", (name,)))
            pk: tuple[str, ...] = ()
            indexes = set()
            for index, unique, primary, cols, where, constraint in c.execute(
                    "SELECT i.indexrelid::regclass::text, i.indisunique, i.indisprimary,"
                    " (SELECT array_agg(a.attname ORDER BY k.n) FROM unnest(i.indkey)"
                    "  WITH ORDINALITY k(attnum, n) JOIN pg_attribute a"
                    "  ON a.attrelid = i.indrelid AND a.attnum = k.attnum),"
                    " pg_get_expr(i.indpred, i.indrelid),"
                    " EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)"
                    " FROM pg_index i WHERE i.indrelid = %s::regclass", (name,)):
                if primary:
                    pk = tuple(cols)
                else:
                    indexes.add(Index(None if constraint else index, unique, tuple(cols),
                                      normalise(where)))
            fks = frozenset(
                ForeignKey(tuple(r[0]), r[1], tuple(r[2]), ACTIONS[r[3]], ACTIONS[r[4]])
                for r in c.execute(
                    "SELECT (SELECT array_agg(a.attname ORDER BY k.n) FROM unnest(f.conkey)"
                    "  WITH ORDINALITY k(attnum, n) JOIN pg_attribute a"
                    "  ON a.attrelid = f.conrelid AND a.attnum = k.attnum),"
                    " f.confrelid::regclass::text,"
                    " (SELECT array_agg(a.attname ORDER BY k.n) FROM unnest(f.confkey)"
                    "  WITH ORDINALITY k(attnum, n) JOIN pg_attribute a"
                    "  ON a.attrelid = f.confrelid AND a.attnum = k.attnum),"
                    " f.confupdtype, f.confdeltype"
                    " FROM pg_constraint f WHERE f.contype = 'f' AND f.conrelid = %s::regclass",
                    (name,)))
            triggers = set()
            for (definition,) in c.execute(
                    "SELECT pg_get_triggerdef(oid) FROM pg_trigger"
                    " WHERE tgrelid = %s::regclass AND NOT tgisinternal", (name,)):
                m = _PG_TRIGGER.match(definition)
                assert m, f"cannot read the trigger {definition!r}"
                triggers.add(_trigger(m)[1])
            found[name] = Table(columns, pk, frozenset(indexes), fks, frozenset(triggers))
    return found


def differences(sqlite: dict[str, Table], pg: dict[str, Table]) -> list[str]:
    """What differs, one line each, naming the table and column, index, key or trigger."""
    out = [f"table {t}: only in SQLite" for t in sorted(sqlite.keys() - pg.keys())]
    out += [f"table {t}: only in PostgreSQL" for t in sorted(pg.keys() - sqlite.keys())]
    for name in sorted(sqlite.keys() & pg.keys()):
        s, p = sqlite[name], pg[name]
        s_names, p_names = [c.name for c in s.columns], [c.name for c in p.columns]
        if s_names != p_names:
            out.append(f"{name}: columns {s_names} in SQLite, {p_names} in PostgreSQL")
        p_columns = {c.name: c for c in p.columns}
        for col in s.columns:
            other = p_columns.get(col.name)
            for field in ("type", "not_null", "default", "identity"):
                if other and getattr(col, field) != getattr(other, field):
                    out.append(f"{name}.{col.name}: {field} {getattr(col, field)!r} in SQLite,"
                               f" {getattr(other, field)!r} in PostgreSQL")
        if s.primary_key != p.primary_key:
            out.append(f"{name}: primary key {s.primary_key} in SQLite, {p.primary_key} in"
                       " PostgreSQL")
        for what, mine, theirs in (("index", s.indexes, p.indexes),
                                   ("foreign key", s.foreign_keys, p.foreign_keys),
                                   ("trigger", s.triggers, p.triggers)):
            out += [f"{name}: {what} {x} only in SQLite" for x in sorted(mine - theirs, key=str)]
            out += [f"{name}: {what} {x} only in PostgreSQL"
                    for x in sorted(theirs - mine, key=str)]
    return out


def sqlite_database(path: Path) -> Path:
    """A fresh SQLite file with every migration, applied by mailbot's own runner."""
    async def run() -> None:
        async with aiosqlite.connect(path, isolation_level=None) as db:
            await migrate(db)
    asyncio.run(run())
    return path


def test_schemas_are_the_same(tmp_path: Path, pg_url: str) -> None:
    """Tables, columns in order, types, NOT NULL, defaults, identity ids, primary keys,
    unique constraints, (partial) indexes, foreign keys and triggers match on both."""
    apply_migrations(pg_url)
    sqlite = sqlite_schema(sqlite_database(tmp_path / "m.db"))
    pg = pg_schema(pg_url)
    assert len(sqlite) > 20 and sum(len(t.indexes) for t in sqlite.values()) > 20
    assert differences(sqlite, pg) == []


def test_both_end_at_the_same_version() -> None:
    """The newest migration has the same number in both sets: a new migration comes in
    migrations/ and in migrations/postgresql/ together."""
    sqlite = discover(migrations_dir())
    pg = discover(MIGRATIONS)
    assert pg and max(m.version for m in pg) == max(m.version for m in sqlite), (
        f"migrations/ ends at {sqlite[-1].path.name}, migrations/postgresql/ at"
        f" {pg[-1].path.name}")
    assert not any("\n\\" in m.path.read_text() for m in pg), "no psql meta-commands"


@pytest.mark.parametrize(("old", "new", "named"), [
    ("    reporter           TEXT NOT NULL,", "    reporter           TEXT,",
     "cases.reporter: not_null"),
    ("DEFAULT 'none'", "DEFAULT 'None'", "messages.signature: default"),
    ("id           BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,\n    received_at",
     "id           BIGINT PRIMARY KEY,\n    received_at", "inbound.id: identity"),
    ("WHERE status = 'ignored'", "WHERE status = 'done'",
     "inbound: index Index(name='inbound_ignored'"),
    ("purpose LIKE 'ack:%'", "purpose LIKE 'ack%'", "outbox: index Index(name='outbox_acks'"),
    ("REFERENCES cases(id) ON DELETE CASCADE", "REFERENCES cases(id)",
     "held_notices: foreign key"),
    ("AFTER UPDATE OF keys ON", "AFTER UPDATE ON", "assessments: trigger"),
    ("    mode         TEXT,\n    warnings", "    warnings", "imap_folders: columns"),
])
def test_a_difference_is_named(tmp_path: Path, pg_url: str, old: str, new: str,
                               named: str) -> None:
    """A PostgreSQL schema that strays from SQLite's fails the comparison with a message
    naming the table and what differs."""
    script = (MIGRATIONS / "0024_schema.sql").read_text()
    assert old in script
    with psycopg.connect(pg_url) as c:
        c.execute(script.replace(old, new, 1).encode())
    found = differences(sqlite_schema(sqlite_database(tmp_path / "m.db")), pg_schema(pg_url))
    assert any(line.startswith(named) for line in found), found


# What the triggers are given, in the same statements on both databases (`?` placeholders;
# PostgreSQL's are `%s`). Each step is followed by a snapshot of the tables they keep.
CASE = ("INSERT INTO cases (id, ref, inbox, reporter, subject, language, created_at,"
        " updated_at) VALUES (?, ?, 'security', 'Reporter@Example.ORG', 's', 'en', 't', 't')")
MESSAGE = ("INSERT INTO messages (case_id, direction, kind, sender, recipients, message_id,"
           " subject, date, body, new_text) VALUES (?, ?, ?, ?, '[]', ?, 's', 'd', 'b', 'n')")
ASSESS = ("INSERT INTO assessments (case_id, inbox, assessed_at, assessment, features, keys)"
          " VALUES (?, ?, 'at', '{}', '{}', ?) ON CONFLICT (case_id) DO UPDATE SET"
          " assessed_at = excluded.assessed_at, keys = excluded.keys")
STEPS: list[tuple[str, tuple[object, ...]]] = [
    (CASE, (1, "SEC-2026-0001")),
    (CASE, (2, "SEC-2026-0002")),
    # Threads: ours (sender forgotten), the reporter's and staff's (lower-cased), not an
    # auto-reply's, not one without a Message-ID; the first case to claim an ID keeps it.
    (MESSAGE, (1, "out", "ack", "Bot@Example.COM", "<ack@x>")),
    (MESSAGE, (1, "in", "report", "Reporter@Example.ORG", "<report@x>")),
    (MESSAGE, (1, "in", "auto-reply", "Reporter@Example.ORG", "<auto@x>")),
    (MESSAGE, (1, "in", "follow-up", "Reporter@Example.ORG", None)),
    (MESSAGE, (2, "in", "staff", "Staff@Example.COM", "<report@x>")),
    (MESSAGE, (2, "in", "staff", "Staff@Example.COM", "<staff@x>")),
    (MESSAGE, (2, "out", "reply", "Bot@Example.COM", "<staff@x>")),
    # Keys: duplicates once, a JSON null skipped, a number as its text; the default '[]'.
    (ASSESS, (1, "security", '["host:a", "host:b", "host:a", null, 5]')),
    ("INSERT INTO assessments (case_id, inbox, assessed_at, assessment, features)"
     " VALUES (2, 'security', 'at', '{}', '{}')", ()),
    # New keys replace the old; an update that leaves `keys` out leaves them alone.
    (ASSESS, (1, "security", '["host:c", "path:/x"]')),
    ("UPDATE assessments SET inbox = 'support' WHERE case_id = 1", ()),
    ("UPDATE assessments SET keys = '[\"host:a\"]' WHERE case_id = 2", ()),
    ("UPDATE assessments SET keys = keys, inbox = 'other' WHERE case_id = 1", ()),
    ("UPDATE assessments SET keys = '[]' WHERE case_id = 2", ()),
]
SNAPSHOT = ("SELECT message_id, case_id, sender FROM message_ids ORDER BY message_id",
            "SELECT inbox, key, case_id FROM assessment_keys ORDER BY case_id, inbox, key")


def _replay(execute: Callable[[str, Sequence[object]], list[tuple[Any, ...]]]
            ) -> list[list[tuple[Any, ...]]]:
    snapshots = []
    for sql, params in STEPS:
        execute(sql, params)
        snapshots.append([row for query in SNAPSHOT for row in execute(query, ())])
    return snapshots


def test_triggers_do_the_same(tmp_path: Path, pg_url: str) -> None:
    """Each trigger leaves the same rows on both databases after each statement: the
    Message-IDs that thread later mail, and the assessment keys (inserted, replaced, kept)."""
    apply_migrations(pg_url)
    with sqlite3.connect(sqlite_database(tmp_path / "m.db"), isolation_level=None) as db:
        db.execute("PRAGMA foreign_keys = ON")
        on_sqlite = _replay(lambda sql, p: db.execute(sql, p).fetchall())
    with psycopg.connect(pg_url, autocommit=True) as c:
        def run(sql: str, params: Sequence[object]) -> list[tuple[Any, ...]]:
            cur = c.execute(sql.replace("?", "%s").encode(), params)
            return cur.fetchall() if cur.description else []
        on_pg = _replay(run)
    assert on_sqlite[-1] != on_sqlite[0]  # the steps did fire the triggers
    for (sql, params), mine, theirs in zip(STEPS, on_sqlite, on_pg, strict=True):
        assert mine == theirs, f"after {sql} {params}"
