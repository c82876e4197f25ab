-- When the reporter last heard from us (the ack, a reply, a status update): the policy's
-- update cadence runs from there.
ALTER TABLE cases ADD COLUMN last_reporter_update_at TEXT;
UPDATE cases SET last_reporter_update_at = COALESCE(first_responded_at, created_at);
