-- Cases opened past a flood limit: not announced one by one, but each listed in exactly one
-- summary (written in the transaction that queues the summary mails).
CREATE TABLE notice_summaries (
    id INTEGER PRIMARY KEY,
    created_at TEXT NOT NULL,
    cases INTEGER NOT NULL
);
CREATE TABLE held_notices (
    case_id INTEGER PRIMARY KEY REFERENCES cases(id) ON DELETE CASCADE,
    held_at TEXT NOT NULL,
    reason TEXT NOT NULL,
    summary_id INTEGER REFERENCES notice_summaries(id)
);
CREATE INDEX held_notices_waiting ON held_notices(case_id) WHERE summary_id IS NULL;
