-- What each connector's current content uses (`GET /api/v1/usage`, the quota's
-- metrics): live files, their logical bytes, and the stored bytes of the distinct
-- chunks they reference (after dedup and compression; a chunk two connectors share
-- counts for both). Derived from the catalog, so never copied: recalculated after a
-- job that committed something, and on request (`?recalculate=true`).
CREATE TABLE connector_usage (
    connector     TEXT PRIMARY KEY,
    files         BIGINT NOT NULL,
    bytes         BIGINT NOT NULL,
    stored_bytes  BIGINT NOT NULL,
    calculated_at BIGINT NOT NULL
);
