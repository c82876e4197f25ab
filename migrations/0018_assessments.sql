-- The triage help of each case (issue 17): what mailbot read in the report against the
-- policy, as `show --json` prints it, and the features later reports are compared with
-- for likely duplicates. One row per case, replaced when the reporter adds text.
CREATE TABLE assessments (
    case_id     INTEGER PRIMARY KEY REFERENCES cases(id),
    inbox       TEXT NOT NULL,
    assessed_at TEXT NOT NULL,
    assessment  TEXT NOT NULL,             -- JSON: hosts, out_of_scope_classes, duplicates
    features    TEXT NOT NULL,             -- JSON: hosts, paths, params, kinds, sketch
    keys        TEXT NOT NULL DEFAULT '[]' -- JSON list: what a likely duplicate must share
);

-- The keys, one row each (duplicates.keys: a host/path, one of the smallest text hashes,
-- a place on a sister site): a new report reads only the cases sharing one, so its cost
-- does not grow with the inbox. Kept by the triggers below, in the statement that writes
-- the assessment (one trip to the database, not three).
CREATE TABLE assessment_keys (
    inbox   TEXT NOT NULL,
    key     TEXT NOT NULL,
    case_id INTEGER NOT NULL REFERENCES cases(id),
    PRIMARY KEY (inbox, key, case_id)
) WITHOUT ROWID;
CREATE INDEX assessment_keys_case ON assessment_keys(case_id);

CREATE TRIGGER assessment_keys_insert AFTER INSERT ON assessments BEGIN
    INSERT OR IGNORE INTO assessment_keys (inbox, key, case_id)
        SELECT NEW.inbox, value, NEW.case_id FROM json_each(NEW.keys);
END;

CREATE TRIGGER assessment_keys_update AFTER UPDATE OF keys ON assessments BEGIN
    DELETE FROM assessment_keys WHERE case_id = NEW.case_id;
    INSERT OR IGNORE INTO assessment_keys (inbox, key, case_id)
        SELECT NEW.inbox, value, NEW.case_id FROM json_each(NEW.keys);
END;
