-- Which instance processed each mail (its claimant when `finish` recorded the outcome):
-- the audit of several instances on one database, and where to look in whose log.
ALTER TABLE inbound ADD COLUMN processed_by TEXT;
