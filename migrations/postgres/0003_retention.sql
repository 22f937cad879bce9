-- Version retention: chunks whose last reference was pruned keep their row with
-- refcount 0 and the time it happened, so gc waits a grace period before deleting them.
ALTER TABLE chunks ADD COLUMN orphaned_at BIGINT;
CREATE INDEX versions_committed ON versions (committed_at);
