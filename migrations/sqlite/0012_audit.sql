-- The audit trail: every mutating API request, every failed authentication or
-- authorization, and every operator command run from the CLI; who (principal, role,
-- client address), what (method, route template, action, resource), how it ended
-- (outcome, status) and when. No request body, query string or credential is kept.
-- A job records who asked for it (the principal's name, for runs asked over the API).
CREATE TABLE audit (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    at           BIGINT NOT NULL,
    source       TEXT NOT NULL,
    instance     TEXT,
    principal    TEXT,
    role         TEXT,
    client       TEXT NOT NULL,
    method       TEXT NOT NULL,
    route        TEXT NOT NULL,
    action       TEXT NOT NULL,
    resource     TEXT,
    outcome      TEXT NOT NULL,
    status       BIGINT NOT NULL,
    request_id   TEXT NOT NULL,
    duration_us  BIGINT NOT NULL
);
CREATE INDEX audit_at ON audit (at);
CREATE INDEX audit_principal ON audit (principal, id);
ALTER TABLE jobs ADD COLUMN requested_by TEXT;
