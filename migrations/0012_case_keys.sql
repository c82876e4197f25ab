-- Reporters' keys without key planting (issue 12, item 5). A key offered in a mail binds
-- only to the case that mail opened (or to a case whose own mail it answers): `case_keys`.
-- It becomes the address's key (`pgp_keys`, used on every case) only after a round trip:
-- the reporter answers our mail on that case from the same address, signed by that key.
CREATE TABLE case_keys (
    case_id     INTEGER NOT NULL REFERENCES cases(id),
    address     TEXT NOT NULL,     -- lower-cased
    fingerprint TEXT NOT NULL,
    offered_at  TEXT NOT NULL,
    inbound_id  INTEGER REFERENCES inbound(id),
    PRIMARY KEY (case_id, address)
) WITHOUT ROWID;

-- How an address's key was confirmed, in words for staff.
ALTER TABLE pgp_keys ADD COLUMN how TEXT;

-- Keys pinned before this were taken from a From: line alone, which anyone can forge: each
-- stays the key of the case its mail opened and is pinned again only by a round trip.
INSERT OR IGNORE INTO case_keys (case_id, address, fingerprint, offered_at, inbound_id)
    SELECT i.case_id, k.address, k.fingerprint, k.learned_at, k.inbound_id
    FROM pgp_keys k JOIN inbound i ON i.id = k.inbound_id
    WHERE i.case_id IS NOT NULL;
DELETE FROM pgp_keys;
