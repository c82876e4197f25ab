-- Every good signature seen, by gpg's SIG_ID: a signed staff command counts once, so a
-- captured signed mail sent again (under a new Message-ID) proves nothing.
CREATE TABLE signatures (
    sig_id     TEXT PRIMARY KEY,
    inbound_id INTEGER NOT NULL REFERENCES inbound(id)
) WITHOUT ROWID;
