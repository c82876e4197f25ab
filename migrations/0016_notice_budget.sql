-- Attachment bytes carried by staff notifications, one row per notification that carried
-- any: the hourly budget per staff member is the sum over the last hour.
CREATE TABLE notice_bytes (
    id INTEGER PRIMARY KEY,
    address TEXT NOT NULL,
    at TEXT NOT NULL,
    bytes INTEGER NOT NULL
);
CREATE INDEX notice_bytes_address ON notice_bytes(address, at);
