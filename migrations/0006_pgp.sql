-- PGP: who signed each message, whether it could be read, and the keys reporters gave us.
ALTER TABLE messages ADD COLUMN signer TEXT;               -- the signing key's fingerprint
ALTER TABLE messages ADD COLUMN readable INTEGER NOT NULL DEFAULT 1;  -- 0: undecryptable

-- A reporter's key, learned from an attachment or an Autocrypt header of their mail; only
-- for an address the key's user IDs name (mail/pgp.py), replaced only by mail it signed.
CREATE TABLE pgp_keys (
    address     TEXT PRIMARY KEY,  -- lower-cased
    fingerprint TEXT NOT NULL,
    learned_at  TEXT NOT NULL,
    inbound_id  INTEGER REFERENCES inbound(id)
) WITHOUT ROWID;
