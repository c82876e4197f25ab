-- One delivery addressed to several inboxes (one SMTP or LMTP transaction) is stored once:
-- the row of the first inbox holds the raw bytes, and each other inbox gets a row of its own
-- (its own status and case) whose `raw_of` names that row and whose `raw` is empty.
ALTER TABLE inbound ADD COLUMN raw_of INTEGER REFERENCES inbound(id);
CREATE INDEX inbound_raw_of ON inbound(raw_of) WHERE raw_of IS NOT NULL;
