-- The schedule, kept in the database: when a case's next escalation step falls due.
-- NULL: not computed yet (a new case, or a deadline that changed); the sweep computes it.
ALTER TABLE cases ADD COLUMN next_escalation_at TEXT;
CREATE INDEX cases_next_escalation ON cases(next_escalation_at);
