-- Publication by mutual consent (issue 17): the date staff proposed, the consent of the
-- reporter (their agreement line) or staff's `#disclose DATE agreed`, a case staff made
-- public at once, and the reminders sent before an agreed date (each once).
CREATE TABLE disclosures (
    case_id     INTEGER PRIMARY KEY REFERENCES cases(id),
    proposed_on TEXT,                      -- YYYY-MM-DD
    proposed_at TEXT,
    proposed_by TEXT,
    agreed_at   TEXT,                      -- consent to proposed_on; NULL until given
    agreed_by   TEXT,                      -- the reporter's address, or the staff member's
    public_at   TEXT,                      -- `#disclose public`
    public_by   TEXT,
    reminded    TEXT NOT NULL DEFAULT ''   -- reminders sent: '', '7', '7,1' (days before)
);
CREATE INDEX disclosures_agreed ON disclosures(proposed_on) WHERE agreed_at IS NOT NULL;
