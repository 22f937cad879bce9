-- Tributary catalog, SQLite. Types are kept portable (TEXT, BLOB, INTEGER/BIGINT);
-- the PostgreSQL twin of this file differs only in id columns and BLOB → BYTEA.

CREATE TABLE connectors (
    id          TEXT PRIMARY KEY,
    checkpoint  TEXT,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE jobs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    connector    TEXT NOT NULL,
    kind         TEXT NOT NULL,
    trigger      TEXT NOT NULL,
    status       TEXT NOT NULL,
    started_at   BIGINT,
    finished_at  BIGINT,
    stats        TEXT NOT NULL DEFAULT '{}',
    error_count  BIGINT NOT NULL DEFAULT 0,
    last_error   TEXT
);
CREATE INDEX jobs_connector ON jobs (connector, id);

-- A logical file. `path` is the full path in the target namespace, as raw bytes
-- (names that are not UTF-8 are kept exactly). The size/mtime/inode/tag columns
-- mirror the current version so that planning needs one read per connector.
CREATE TABLE items (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    connector        TEXT NOT NULL,
    source_id        BLOB NOT NULL,
    path             BLOB NOT NULL,
    current_version  BIGINT,
    deleted          INTEGER NOT NULL DEFAULT 0,
    size             BIGINT,
    mtime_ns         BIGINT,
    inode            BIGINT,
    change_tag       TEXT,
    UNIQUE (connector, source_id)
);
CREATE INDEX items_path ON items (path);

-- One content state of an item; deletes are tombstones (deleted = 1).
CREATE TABLE versions (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id       BIGINT NOT NULL REFERENCES items (id),
    job_id        BIGINT,
    deleted       INTEGER NOT NULL,
    size          BIGINT NOT NULL,
    mtime_ns      BIGINT NOT NULL,
    inode         BIGINT,
    change_tag    TEXT,
    digest        BLOB,
    committed_at  BIGINT NOT NULL,
    manifest      TEXT
);
CREATE INDEX versions_item ON versions (item_id, committed_at);

CREATE TABLE chunks (
    hash         BLOB PRIMARY KEY,
    size         BIGINT NOT NULL,
    stored_size  BIGINT NOT NULL,
    compression  TEXT NOT NULL,
    refcount     BIGINT NOT NULL,
    created_at   BIGINT NOT NULL
);

CREATE TABLE version_chunks (
    version_id  BIGINT NOT NULL REFERENCES versions (id),
    idx         INTEGER NOT NULL,
    hash        BLOB NOT NULL REFERENCES chunks (hash),
    PRIMARY KEY (version_id, idx)
);

-- The change feed: append-only, read with a cursor (seq).
CREATE TABLE changes (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    connector   TEXT NOT NULL,
    item_id     BIGINT NOT NULL,
    version_id  BIGINT NOT NULL,
    op          TEXT NOT NULL,
    path        BLOB NOT NULL,
    at          BIGINT NOT NULL
);

-- Files that failed in their latest attempt, with the error (cleared on success).
CREATE TABLE item_errors (
    connector    TEXT NOT NULL,
    source_id    BLOB NOT NULL,
    path         BLOB NOT NULL,
    job_id       BIGINT,
    error        TEXT NOT NULL,
    retry_count  INTEGER NOT NULL DEFAULT 0,
    at           BIGINT NOT NULL,
    PRIMARY KEY (connector, source_id)
);

-- Advisory leases (one gc at a time).
CREATE TABLE locks (
    name        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    expires_at  BIGINT NOT NULL
);
