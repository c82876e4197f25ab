-- The core tables. Times are ISO 8601 text in UTC with offset; raw mail is kept as received.

CREATE TABLE inbound (
    id           INTEGER PRIMARY KEY,
    received_at  TEXT NOT NULL,
    source       TEXT NOT NULL,            -- smtp | lmtp | imap | import
    source_ref   TEXT UNIQUE,              -- e.g. imap:<mailbox>:<uidvalidity>:<uid>
    peer         TEXT,
    mail_from    TEXT,                     -- envelope sender; '' is the null return path
    rcpt_to      TEXT NOT NULL,            -- JSON list of envelope recipients
    inbox        TEXT NOT NULL,
    message_id   TEXT,
    digest       TEXT NOT NULL UNIQUE,     -- sha256 of the raw bytes: a redelivery is stored once
    raw          BLOB NOT NULL,
    status       TEXT NOT NULL DEFAULT 'pending',  -- pending | done | ignored | quarantined
    reason       TEXT,
    case_id      INTEGER REFERENCES cases(id),
    processed_at TEXT
);
CREATE INDEX inbound_pending ON inbound(id) WHERE status = 'pending';
CREATE INDEX inbound_status ON inbound(status);

CREATE TABLE ref_counters (
    inbox TEXT NOT NULL,
    year  INTEGER NOT NULL,
    last  INTEGER NOT NULL,
    PRIMARY KEY (inbox, year)
);

CREATE TABLE cases (
    id                 INTEGER PRIMARY KEY,
    ref                TEXT NOT NULL UNIQUE,
    inbox              TEXT NOT NULL,
    state              TEXT NOT NULL DEFAULT 'new',
    severity           TEXT,
    cvss_vector        TEXT,
    reporter           TEXT NOT NULL,
    reporter_name      TEXT,
    subject            TEXT NOT NULL,
    language           TEXT NOT NULL,
    assignee           TEXT,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL,
    first_response_due TEXT,
    first_responded_at TEXT,
    resolution_due     TEXT,
    resolved_at        TEXT,
    cve                TEXT,
    bounty             TEXT,
    disclose_on        TEXT,
    credit             TEXT,
    duplicate_of       TEXT
);
CREATE INDEX cases_inbox_state ON cases(inbox, state);
CREATE INDEX cases_reporter ON cases(reporter);

CREATE TABLE messages (
    id          INTEGER PRIMARY KEY,
    case_id     INTEGER NOT NULL REFERENCES cases(id),
    direction   TEXT NOT NULL,             -- in | out
    kind        TEXT NOT NULL,             -- report | follow-up | auto-reply | ack | ...
    inbound_id  INTEGER REFERENCES inbound(id),
    outbox_id   INTEGER REFERENCES outbox(id),
    sender      TEXT NOT NULL,
    recipients  TEXT NOT NULL,             -- JSON list
    message_id  TEXT,
    subject     TEXT NOT NULL,
    date        TEXT NOT NULL,
    encrypted   INTEGER NOT NULL DEFAULT 0,
    signature   TEXT NOT NULL DEFAULT 'none',
    body        TEXT NOT NULL,
    new_text    TEXT NOT NULL,
    trusted     INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX messages_case ON messages(case_id, id);
CREATE INDEX messages_message_id ON messages(message_id);
CREATE UNIQUE INDEX messages_inbound ON messages(inbound_id) WHERE inbound_id IS NOT NULL;

CREATE TABLE message_ids (
    message_id TEXT PRIMARY KEY,
    case_id    INTEGER NOT NULL REFERENCES cases(id)
) WITHOUT ROWID;

-- Every Message-ID of a case's mail, in or out, threads later mail to it.
CREATE TRIGGER messages_thread AFTER INSERT ON messages
WHEN NEW.message_id IS NOT NULL
BEGIN
    INSERT INTO message_ids (message_id, case_id) VALUES (NEW.message_id, NEW.case_id)
    ON CONFLICT DO NOTHING;
END;

CREATE TABLE events (
    id      INTEGER PRIMARY KEY,
    case_id INTEGER NOT NULL REFERENCES cases(id),
    at      TEXT NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    old     TEXT,
    new     TEXT,
    detail  TEXT
);
CREATE INDEX events_case ON events(case_id, id);

CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    purpose         TEXT NOT NULL UNIQUE,  -- e.g. ack:SEC-2026-0001: a second one cannot exist
    case_id         INTEGER REFERENCES cases(id),
    created_at      TEXT NOT NULL,
    mail_from       TEXT NOT NULL,
    rcpt_to         TEXT NOT NULL,         -- JSON list
    message_id      TEXT NOT NULL,
    raw             BLOB NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending',  -- pending | sent | failed
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error      TEXT,
    sent_at         TEXT
);
CREATE INDEX outbox_due ON outbox(next_attempt_at) WHERE status = 'pending';
