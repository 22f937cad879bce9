-- Progress of long store rewrites that resume after a crash (migrate-store --encrypt:
-- the last version whose content was rewritten).
CREATE TABLE store_state (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
