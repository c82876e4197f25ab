"""Reporters' PGP keys (the keys themselves live in the GnuPG home) and the signatures seen.

Two bindings, so that nobody plants a key for someone else's address (triage/crypto.py):
- `case_keys`: a key offered in a mail, bound to the case that mail opened or answered;
- `pgp_keys`: the address's key, used on every case, set only after a round trip.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from mailbot.store.db import Db, one


@dataclass(frozen=True, slots=True)
class PinnedKey:
    fingerprint: str
    how: str | None


async def both_keys(db: Db, case_id: int, address: str
                    ) -> tuple[PinnedKey | None, str | None]:
    """The address's confirmed key and the key bound to this case for it, in one trip
    (every mail to or from a reporter asks for both)."""
    row = await one(db, "SELECT (SELECT fingerprint FROM pgp_keys WHERE address = ?1),"
                        " (SELECT how FROM pgp_keys WHERE address = ?1),"
                        " (SELECT fingerprint FROM case_keys WHERE case_id = ?2"
                        " AND address = ?1)", (address.lower(), case_id))
    if row is None:
        return None, None
    pinned = PinnedKey(str(row[0]), row[1]) if row[0] is not None else None
    return pinned, None if row[2] is None else str(row[2])


async def remember(db: Db, address: str, fingerprint: str, *, at: str,
                   inbound_id: int | None, how: str | None = None) -> None:
    """Pin `fingerprint` as the address's key (only after a round trip, see crypto.py)."""
    await db.execute(
        "INSERT INTO pgp_keys (address, fingerprint, learned_at, inbound_id, how)"
        " VALUES (?,?,?,?,?) ON CONFLICT (address) DO UPDATE SET"
        " fingerprint = excluded.fingerprint, learned_at = excluded.learned_at,"
        " inbound_id = excluded.inbound_id, how = excluded.how",
        (address.lower(), fingerprint, at, inbound_id, how),
    )


async def case_key_since(db: Db, case_id: int, address: str) -> tuple[str, int | None] | None:
    """(fingerprint, the inbound mail that bound it) of the case's key for `address`."""
    row = await one(db, "SELECT fingerprint, inbound_id FROM case_keys WHERE case_id = ?"
                        " AND address = ?", (case_id, address.lower()))
    return (str(row[0]), row[1]) if row else None


async def set_case_key(db: Db, case_id: int, address: str, fingerprint: str, *, at: str,
                       inbound_id: int | None) -> None:
    await db.execute(
        "INSERT INTO case_keys (case_id, address, fingerprint, offered_at, inbound_id)"
        " VALUES (?,?,?,?,?) ON CONFLICT (case_id, address) DO UPDATE SET"
        " fingerprint = excluded.fingerprint, offered_at = excluded.offered_at,"
        " inbound_id = excluded.inbound_id",
        (case_id, address.lower(), fingerprint, at, inbound_id),
    )


async def answers_our_mail(db: Db, case_id: int, address: str,
                           message_ids: Sequence[str], *,
                           encrypted_after: int | None = None) -> bool:
    """One of `message_ids` is a mail we sent to `address` on this case: whoever wrote the
    mail citing it received it at that address (our Message-IDs carry 64 random bits).
    With `encrypted_after` (an inbound id), only a mail we sent encrypted after recording
    that inbound mail counts."""
    ids = list(dict.fromkeys(message_ids))[:100]
    if not ids:
        return False
    marks = ",".join("?" * len(ids))
    since = (" AND encrypted = 1 AND id > (SELECT max(id) FROM messages WHERE inbound_id = ?)",
             (encrypted_after,)) if encrypted_after is not None else ("", ())
    rows = await db.execute_fetchall(
        f"SELECT recipients FROM messages WHERE case_id = ? AND direction = 'out'"
        f" AND message_id IN ({marks}){since[0]}", (case_id, *ids, *since[1]))
    return any(address.lower() in (r.lower() for r in json.loads(row[0])) for row in rows)


async def signature_seen_elsewhere(db: Db, sig_id: str, inbound_id: int) -> bool:
    """This signature came before, in another mail (a replay)."""
    row = await one(db, "SELECT 1 FROM signatures WHERE sig_id = ? AND inbound_id != ?",
                    (sig_id, inbound_id))
    return row is not None


async def remember_signature(db: Db, sig_id: str, inbound_id: int) -> None:
    await db.execute("INSERT INTO signatures (sig_id, inbound_id) VALUES (?, ?)"
                     " ON CONFLICT DO NOTHING", (sig_id, inbound_id))
