-- Each escalation step, once: per case, deadline, the deadline's moment, and level.
-- A deadline that moves (#due) has a new moment, so its future steps go again.
CREATE TABLE escalations (
    case_id  INTEGER NOT NULL REFERENCES cases(id),
    deadline TEXT NOT NULL,            -- first-response | resolution
    due_at   TEXT NOT NULL,
    level    TEXT NOT NULL,            -- warning | deadline | breach
    sent_at  TEXT NOT NULL,
    PRIMARY KEY (case_id, deadline, due_at, level)
) WITHOUT ROWID;

CREATE INDEX cases_open_first_due ON cases(first_response_due) WHERE first_responded_at IS NULL;
CREATE INDEX cases_resolution_due ON cases(resolution_due);
