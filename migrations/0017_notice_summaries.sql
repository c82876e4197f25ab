-- Mails not announced one by one because a limit was reached (a new case past an
-- acknowledgement limit, any mail past the notification limit): each is listed in exactly
-- one summary, marked in the transaction that queues the summary mails.
CREATE TABLE notice_summaries (
    id INTEGER PRIMARY KEY,
    created_at TEXT NOT NULL,
    mails INTEGER NOT NULL
);
CREATE TABLE held_notices (
    inbound_id INTEGER PRIMARY KEY,
    case_id INTEGER NOT NULL REFERENCES cases(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    sender TEXT NOT NULL,
    subject TEXT NOT NULL,
    held_at TEXT NOT NULL,
    reason TEXT NOT NULL,
    summary_id INTEGER REFERENCES notice_summaries(id)
);
CREATE INDEX held_notices_waiting ON held_notices(inbound_id) WHERE summary_id IS NULL;
