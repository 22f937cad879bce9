-- Connectors created over the admin API (`source: api`). `spec` is the connector as
-- it would be written in YAML, as JSON, without its inline secrets; those are sealed
-- together in `secrets` with the key of `secrets.key_file` (named by `key_id`),
-- bound to the connector's id. `revision` grows by one with every change (the ETag).
CREATE TABLE api_connectors (
    id          TEXT PRIMARY KEY,
    revision    BIGINT NOT NULL,
    spec        TEXT NOT NULL,
    secrets     BYTEA,
    key_id      TEXT,
    created_at  BIGINT NOT NULL,
    created_by  TEXT,
    updated_at  BIGINT NOT NULL,
    updated_by  TEXT
);
