-- IMAP watchers: what each watched folder has given us, and where each watcher stands.

-- One row per watched folder. `mailbox` is username@host/folder (as in inbound.source_ref).
CREATE TABLE imap_folders (
    mailbox      TEXT PRIMARY KEY,
    inbox        TEXT NOT NULL,
    uidvalidity  INTEGER,                   -- the generation whose UIDs imap_messages counts
    resync_below INTEGER NOT NULL DEFAULT 0, -- after a UIDVALIDITY change, UIDs under this were
                                             -- already in the folder: dedup them by Message-ID
    state        TEXT NOT NULL,             -- connecting | syncing | idle | polling | backing off | stopped
    last_error   TEXT,                      -- the latest failure, kept after recovery
    failures     INTEGER NOT NULL DEFAULT 0, -- consecutive failed attempts (0: healthy)
    state_at     TEXT NOT NULL
);

-- Every message taken from a folder, committed with its inbound row: a UID is stored once,
-- and `marked` = 0 rows are the ones to flag or move on the server (after a crash too).
CREATE TABLE imap_messages (
    mailbox     TEXT NOT NULL,
    uidvalidity INTEGER NOT NULL,
    uid         INTEGER NOT NULL,
    message_id  TEXT,
    inbound_id  INTEGER NOT NULL REFERENCES inbound(id),
    marked      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (mailbox, uidvalidity, uid)
) WITHOUT ROWID;
CREATE INDEX imap_messages_unmarked ON imap_messages(mailbox, uidvalidity) WHERE marked = 0;
CREATE INDEX imap_messages_message_id ON imap_messages(mailbox, message_id);
