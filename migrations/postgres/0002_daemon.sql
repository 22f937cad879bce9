-- The daemon: queued jobs, job logs, paused connectors, exhausted item retries.

ALTER TABLE jobs ADD COLUMN queued_at BIGINT;
ALTER TABLE connectors ADD COLUMN paused BIGINT NOT NULL DEFAULT 0;
ALTER TABLE item_errors ADD COLUMN fingerprint TEXT;

-- A bounded log per job: the errors and notable events, like a job's stderr.
CREATE TABLE job_logs (
    job_id   BIGINT NOT NULL,
    seq      BIGINT NOT NULL,
    at       BIGINT NOT NULL,
    level    TEXT NOT NULL,
    message  TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
);

CREATE INDEX jobs_status ON jobs (status, id);
CREATE INDEX changes_at ON changes (at);

-- The change feed's retention watermark: cursors below it are no longer valid.
CREATE TABLE feed_state (
    id               BIGINT PRIMARY KEY CHECK (id = 1),
    pruned_through   BIGINT NOT NULL
);
INSERT INTO feed_state (id, pruned_through) VALUES (1, 0);
