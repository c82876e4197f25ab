-- The mailing lists a case's mail came through (triage/lists.py): the case is shown
-- "via list <id>", and mail for its reporter never goes to a list's own address.
CREATE TABLE case_lists (
    case_id INTEGER NOT NULL REFERENCES cases(id),
    list_id TEXT NOT NULL,                 -- List-Id, without <>
    address TEXT,                          -- the list's own (posting) address, lower-cased
    ours    INTEGER NOT NULL,              -- 1: one of the inbox's list_ids
    PRIMARY KEY (case_id, list_id)
) WITHOUT ROWID;
