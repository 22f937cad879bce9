-- When another instance announced this one down (no heartbeat for 30 s, no clean
-- stop): the announcement is made once, by whichever instance sets this first; a
-- heartbeat or a new start clears it.
ALTER TABLE instances ADD COLUMN down_announced_at INTEGER;
