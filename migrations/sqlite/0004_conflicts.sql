-- Conflicts: competing claims on one target path, torn reads, held mass deletes.

-- The collision key of a path: NFC-normalized and lower-cased (filled in by the
-- catalog for existing rows when it opens). Case-sensitive pairs compare raw paths.
ALTER TABLE items ADD COLUMN path_key BLOB;
-- 1 when the item's latest source state is stored but not visible: a claim that lost
-- or waits for an operator, or an owner another claim displaced. Such an item owns
-- no path; its size/mtime/inode/tag mirror the held state.
ALTER TABLE items ADD COLUMN held INTEGER NOT NULL DEFAULT 0;
CREATE INDEX items_path_key ON items (path_key);

-- 1 for a version kept aside: its bytes are stored and retrievable, but it never
-- was the visible content of its path (restore and the change feed skip it).
ALTER TABLE versions ADD COLUMN held INTEGER NOT NULL DEFAULT 0;

CREATE TABLE conflicts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    kind         TEXT NOT NULL,
    status       TEXT NOT NULL,
    connector    TEXT NOT NULL,
    path         BLOB NOT NULL,
    policy       TEXT NOT NULL,
    detail       TEXT,
    first_seen   BIGINT NOT NULL,
    last_seen    BIGINT NOT NULL,
    resolution   TEXT,
    resolved_by  TEXT,
    resolved_at  BIGINT,
    renamed_to   BLOB
);
CREATE INDEX conflicts_status ON conflicts (status, id);

-- The claims of a conflict: `existing` (the path's owner when it was detected) and
-- `incoming` (the claim that raised it).
CREATE TABLE conflict_claims (
    conflict_id  BIGINT NOT NULL REFERENCES conflicts (id),
    role         TEXT NOT NULL,
    connector    TEXT NOT NULL,
    source_id    BLOB NOT NULL,
    path         BLOB NOT NULL,
    fingerprint  TEXT,
    PRIMARY KEY (conflict_id, role)
);
CREATE INDEX conflict_claims_source ON conflict_claims (connector, source_id);
