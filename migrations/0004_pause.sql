-- needs-info pauses the clocks: when the pause began, and the state to return to.
ALTER TABLE cases ADD COLUMN paused_at TEXT;
ALTER TABLE cases ADD COLUMN paused_from TEXT;
