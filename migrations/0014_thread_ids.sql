-- Threading follows only Message-IDs that are the case's own: those the bot sent on it
-- (sender NULL) and those of mail its reporter or staff sent on it (sender: their address).
-- An ID a mail merely cites (In-Reply-To, References) is kept apart in cited_ids and
-- threads only later mail of the same sender (a reply that overtook what it answers):
-- anyone can cite a public Message-ID, so a citation must never make a case of it.
ALTER TABLE message_ids ADD COLUMN sender TEXT;

CREATE TABLE cited_ids (
    message_id TEXT NOT NULL,
    case_id    INTEGER NOT NULL REFERENCES cases(id),
    sender     TEXT NOT NULL,
    PRIMARY KEY (message_id, sender, case_id)
) WITHOUT ROWID;

-- What was filed before: neither a mail of the case nor one we sent is a citation. Who
-- cited it is not recorded; the reporter is the one whose later mail it may thread.
INSERT OR IGNORE INTO cited_ids (message_id, case_id, sender)
SELECT m.message_id, m.case_id, lower(c.reporter) FROM message_ids m
JOIN cases c ON c.id = m.case_id
WHERE NOT EXISTS (SELECT 1 FROM messages x
                  WHERE x.message_id = m.message_id AND x.case_id = m.case_id)
  AND m.message_id NOT IN (SELECT message_id FROM outbox);

DELETE FROM message_ids
WHERE NOT EXISTS (SELECT 1 FROM messages x
                  WHERE x.message_id = message_ids.message_id
                    AND x.case_id = message_ids.case_id
                    AND (x.direction = 'out' OR x.kind IN ('report', 'follow-up', 'staff')))
  AND message_id NOT IN (SELECT message_id FROM outbox);

UPDATE message_ids SET sender = (
    SELECT lower(x.sender) FROM messages x
    WHERE x.message_id = message_ids.message_id AND x.case_id = message_ids.case_id
      AND x.direction = 'in' AND x.kind IN ('report', 'follow-up', 'staff')
    ORDER BY x.id LIMIT 1)
WHERE message_id NOT IN (SELECT message_id FROM outbox)
  AND NOT EXISTS (SELECT 1 FROM messages x WHERE x.message_id = message_ids.message_id
                  AND x.case_id = message_ids.case_id AND x.direction = 'out');

DROP TRIGGER messages_thread;

-- Mail we sent, and mail of the case's reporter or authenticated staff, threads later mail.
CREATE TRIGGER messages_thread AFTER INSERT ON messages
WHEN NEW.message_id IS NOT NULL
 AND (NEW.direction = 'out' OR NEW.kind IN ('report', 'follow-up', 'staff'))
BEGIN
    INSERT INTO message_ids (message_id, case_id, sender)
    VALUES (NEW.message_id, NEW.case_id,
            CASE WHEN NEW.direction = 'out' THEN NULL ELSE lower(NEW.sender) END)
    ON CONFLICT DO NOTHING;
END;
