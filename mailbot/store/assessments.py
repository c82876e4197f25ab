"""Queries on the triage help of cases: the stored assessment, and the earlier cases a new
report is compared with for likely duplicates."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from mailbot.store.db import Db, one

# Cases compared with a new report, at most: the most recent of those sharing a key (a
# duplicate is most often of a recent case; a bound keeps a popular path cheap).
CANDIDATES = 50
PER_KEY = 10  # the most recent cases read per key


async def save(db: Db, case_id: int, *, inbox: str, at: str, assessment: dict[str, Any],
               features: dict[str, Any], keys: Iterable[str]) -> None:
    """Store (or replace) a case's assessment; the migration's triggers keep its keys."""
    await db.execute(
        "INSERT INTO assessments (case_id, inbox, assessed_at, assessment, features, keys)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (case_id) DO UPDATE SET"
        " assessed_at = excluded.assessed_at, assessment = excluded.assessment,"
        " features = excluded.features, keys = excluded.keys",
        (case_id, inbox, at, json.dumps(assessment, ensure_ascii=False),
         json.dumps(features), json.dumps(sorted(keys))))


async def get(db: Db, case_id: int) -> dict[str, Any] | None:
    """The assessment as `show --json` prints it, or None for a case never assessed."""
    row = await one(db, "SELECT assessment FROM assessments WHERE case_id = ?", (case_id,))
    return json.loads(row[0]) if row else None


async def candidates(db: Db, inbox: str, case_id: int, keys: Sequence[str],
                     closed_since: str) -> list[tuple[str, dict[str, Any]]]:
    """(ref, features) of the inbox's other cases sharing a key with this report, open or
    closed since the date, the most recent first."""
    if not keys:
        return []
    # The latest few cases of each key, each an index range read backwards: a key that
    # hundreds of cases share (a popular path) costs as little as a rare one.
    latest = " UNION ".join(
        "SELECT * FROM (SELECT case_id FROM assessment_keys WHERE inbox = ? AND key = ?"
        " AND case_id != ? ORDER BY case_id DESC LIMIT ?) AS latest" for _ in keys)
    params: list[Any] = []
    for key in keys:
        params += [inbox, key, case_id, PER_KEY]
    rows = await db.execute_fetchall(
        "SELECT c.ref, a.features FROM assessments a JOIN cases c ON c.id = a.case_id"
        f" WHERE a.case_id IN ({latest}) AND (c.resolved_at IS NULL OR c.resolved_at >= ?)"
        " ORDER BY a.case_id DESC LIMIT ?", (*params, closed_since, CANDIDATES))
    found = []
    for ref, features in rows:
        try:
            found.append((str(ref), dict(json.loads(features))))
        except (ValueError, TypeError):
            continue  # one damaged row costs its own comparison, not the others'
    return found


async def reporter_texts(db: Db, case_id: int) -> list[str]:
    """The subject and text of every trusted mail from the case's reporter, oldest first."""
    rows = await db.execute_fetchall(
        "SELECT m.subject, m.body FROM messages m JOIN cases c ON c.id = m.case_id"
        " WHERE m.case_id = ? AND m.direction = 'in' AND m.trusted = 1"
        " AND lower(m.sender) = lower(c.reporter) ORDER BY m.id",
        (case_id,))
    return [f"{r[0] or ''}\n{r[1] or ''}" for r in rows]
