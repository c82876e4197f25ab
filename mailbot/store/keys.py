"""Reporters' PGP keys: address → fingerprint (the keys themselves live in the GnuPG home)."""

from __future__ import annotations

from mailbot.store.db import Db, one


async def key_of(db: Db, address: str) -> str | None:
    row = await one(db, "SELECT fingerprint FROM pgp_keys WHERE address = ?", (address.lower(),))
    return str(row[0]) if row else None


async def remember(db: Db, address: str, fingerprint: str, *, at: str,
                   inbound_id: int | None) -> None:
    await db.execute(
        "INSERT INTO pgp_keys (address, fingerprint, learned_at, inbound_id) VALUES (?,?,?,?)"
        " ON CONFLICT (address) DO UPDATE SET fingerprint = excluded.fingerprint,"
        " learned_at = excluded.learned_at, inbound_id = excluded.inbound_id",
        (address.lower(), fingerprint, at, inbound_id),
    )


async def signature_seen_elsewhere(db: Db, sig_id: str, inbound_id: int) -> bool:
    """This signature came before, in another mail (a replay)."""
    row = await one(db, "SELECT 1 FROM signatures WHERE sig_id = ? AND inbound_id != ?",
                    (sig_id, inbound_id))
    return row is not None


async def remember_signature(db: Db, sig_id: str, inbound_id: int) -> None:
    await db.execute("INSERT INTO signatures (sig_id, inbound_id) VALUES (?, ?)"
                     " ON CONFLICT DO NOTHING", (sig_id, inbound_id))
