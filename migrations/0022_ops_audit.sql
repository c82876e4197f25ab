-- What an operator did to the service itself (dropped or retried outgoing mail), for mail
-- with no case too. Holds no personal data: a purpose, an outbox id, a count.
CREATE TABLE ops_audit (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    outbox_id INTEGER,
    detail TEXT
);
CREATE INDEX outbox_waiting ON outbox(created_at) WHERE status IN ('pending', 'failed');
