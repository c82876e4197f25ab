-- What a watcher learnt about its server, for `mailbot status`: how it waits for new mail
-- and why (IDLE checked every idle_check seconds, or polling because the server's IDLE is
-- missing or silent), and what it does differently from its config (a processed folder the
-- server refused, a keyword it will not keep).
ALTER TABLE imap_folders ADD COLUMN mode TEXT;
ALTER TABLE imap_folders ADD COLUMN warnings TEXT;
