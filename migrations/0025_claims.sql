-- Several instances on one database (PostgreSQL) take work by claiming rows: an inbound
-- row for the pipeline, an outbox row for the sender, each held by `claimed_by` (host:pid:
-- random, new at each start) until `claimed_until` (ISO 8601 UTC, compared as text). A
-- crashed instance's claims lapse and another takes the rows. Finishing a row ends its claim.
ALTER TABLE inbound ADD COLUMN claimed_by TEXT;
ALTER TABLE inbound ADD COLUMN claimed_until TEXT;
ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
ALTER TABLE outbox ADD COLUMN claimed_until TEXT;
-- The order rule (triage/order.py) looks up pending mail by Message-ID.
CREATE INDEX inbound_pending_message_id ON inbound(message_id) WHERE status = 'pending';

-- Named leases: one holder at a time (the scheduler's leader, each watched IMAP folder),
-- taken when free, expired or already the taker's, renewed while held.
CREATE TABLE leases (
    name   TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until  TEXT NOT NULL
);
