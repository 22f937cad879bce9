-- Vectorization: the index state of each version, its passages with their embeddings,
-- and which embedder the stored vectors came from.

-- One row per version the vectorizer has looked at. No row = pending.
-- state: indexed | failed | skipped. `passages` counts the rows in `passages`.
CREATE TABLE index_state (
    version_id    BIGINT PRIMARY KEY,
    item_id       BIGINT NOT NULL,
    state         TEXT NOT NULL,
    reason        TEXT,
    format        TEXT,
    passages      BIGINT NOT NULL DEFAULT 0,
    attempts      BIGINT NOT NULL DEFAULT 0,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX index_state_item ON index_state (item_id);

-- A text span of a version and its embedding (little-endian f32). `location` says
-- where in the document it is (page, sheet, slide, heading path).
CREATE TABLE passages (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id     BIGINT NOT NULL,
    version_id  BIGINT NOT NULL,
    seq         BIGINT NOT NULL,
    location    TEXT,
    text        TEXT NOT NULL,
    embedding   BLOB NOT NULL,
    UNIQUE (version_id, seq)
);
CREATE INDEX passages_item ON passages (item_id);

-- Settings of the vector index: `embedder` (what produced every stored vector) and
-- `dim`.
CREATE TABLE vector_meta (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
