-- At most one queued or running job per connector, for every instance that shares the
-- catalog: a second trigger (another instance's schedule or first start, `tributary
-- once` while the daemon runs the connector) finds the first instead of running the
-- connector twice at once. Older duplicates, if any, are interrupted first.
UPDATE jobs SET status = 'interrupted'
WHERE status IN ('queued', 'running')
  AND id NOT IN (SELECT MAX(id) FROM jobs WHERE status IN ('queued', 'running') GROUP BY connector);
CREATE UNIQUE INDEX jobs_one_active ON jobs (connector) WHERE status IN ('queued', 'running');
