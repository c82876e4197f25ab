-- The triage help of each case (issue 17): what mailbot read in the report against the
-- policy, as `show --json` prints it, and the features later reports are compared with
-- for likely duplicates. One row per case, replaced when the reporter adds text.
CREATE TABLE assessments (
    case_id     INTEGER PRIMARY KEY REFERENCES cases(id),
    inbox       TEXT NOT NULL,
    assessed_at TEXT NOT NULL,
    assessment  TEXT NOT NULL,             -- JSON: hosts, out_of_scope_classes, duplicates
    features    TEXT NOT NULL              -- JSON: hosts, paths, params, kinds, sketch
);
CREATE INDEX assessments_inbox ON assessments(inbox, case_id);
