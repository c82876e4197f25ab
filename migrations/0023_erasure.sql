-- When a case's personal data was erased (retention or an erasure request): its raw mail,
-- texts and the reporter's address are gone; the row, its dates and severity stay.
ALTER TABLE cases ADD COLUMN erased_at TEXT;
CREATE INDEX cases_closed_kept ON cases(inbox, resolved_at) WHERE erased_at IS NULL;
