-- The fleet's job queue. A trigger inserts a `queued` job that names no instance; an
-- instance with a free job slot claims it (instance set, status `running`) and holds
-- the connector's lease until `lease_until` (catalog clock, Unix ns), renewing it
-- while the job runs. A job whose lease expired is interrupted by any instance and its
-- connector queued again; every commit of a job checks its lease in the same
-- transaction (fencing). `cancel_requested` carries a cancel from any instance to the
-- one running the job; a `draining` instance claims no new job.
-- Additive only: the previous release keeps running beside this one (its jobs take
-- no lease and are not fenced).
ALTER TABLE jobs ADD COLUMN lease_until BIGINT;
ALTER TABLE jobs ADD COLUMN cancel_requested BIGINT NOT NULL DEFAULT 0;
ALTER TABLE instances ADD COLUMN draining BIGINT NOT NULL DEFAULT 0;
CREATE INDEX jobs_queued ON jobs (id) WHERE status = 'queued';
-- A cron firing, claimed by the first instance whose scheduler reaches it, so that a
-- schedule fires once for the fleet whatever the instances' clocks say.
CREATE TABLE schedule_fires (
    connector  TEXT NOT NULL,
    fire_at    BIGINT NOT NULL,
    PRIMARY KEY (connector, fire_at)
);
-- The vectorizer's claims: an instance indexes an item's version only while it holds
-- the item's claim, so that no version is embedded twice by two instances. A claim
-- outlives a dead instance by `claimed_until` (local clock, Unix ns) at most.
CREATE TABLE vector_claims (
    item_id   BIGINT PRIMARY KEY,
    instance  TEXT NOT NULL,
    claimed_until BIGINT NOT NULL
);
