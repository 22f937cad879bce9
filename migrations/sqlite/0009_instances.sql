-- The daemon instances that use this catalog: one row per instance id, its heartbeat
-- renewed while it runs, `stopped_at` set when it stops cleanly. A job records the
-- instance that ran it.
CREATE TABLE instances (
    id            TEXT PRIMARY KEY,
    hostname      TEXT NOT NULL,
    version       TEXT NOT NULL,
    started_at    BIGINT NOT NULL,
    heartbeat_at  BIGINT NOT NULL,
    stopped_at    BIGINT
);
ALTER TABLE jobs ADD COLUMN instance TEXT;
CREATE INDEX jobs_instance ON jobs (instance, status);
