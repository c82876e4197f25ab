-- Each staff notification queued, with the attachment bytes it carried: the hourly budgets
-- per staff member (notifications, attachment bytes) are counted over the last hour.
CREATE TABLE notices (
    id INTEGER PRIMARY KEY,
    address TEXT NOT NULL,
    at TEXT NOT NULL,
    attachment_bytes INTEGER NOT NULL
);
CREATE INDEX notices_address ON notices(address, at);
CREATE INDEX notices_attachments ON notices(address, at) WHERE attachment_bytes > 0;
