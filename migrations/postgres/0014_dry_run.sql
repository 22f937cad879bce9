-- A dry run (`POST /connectors/{id}/runs {"dry_run": true}`, `tributary once
-- --dry-run`) is a job like any other, queued, claimed and leased, that lists and
-- plans and stores nothing: its counters say what a real run would do. An instance of
-- an earlier release knows no dry run and would run such a job for real: upgrade
-- every instance of a fleet before asking for one.
ALTER TABLE jobs ADD COLUMN dry_run BIGINT NOT NULL DEFAULT 0;
