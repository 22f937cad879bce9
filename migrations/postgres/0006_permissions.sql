-- Who may read a version, where the source says (SharePoint permissions): one row per
-- principal (`user:<id>`, `group:<id>`, `siteGroup:<id>`, `siteUser:<id>`, `app:<id>`,
-- `anyone` for anonymous links, `organization` for organization-wide links). A version
-- without rows had no permissions captured.
CREATE TABLE version_principals (
    version_id  BIGINT NOT NULL,
    principal   TEXT NOT NULL,
    PRIMARY KEY (version_id, principal)
);
CREATE INDEX version_principals_principal ON version_principals (principal);

-- The item's latest captured principals (sorted, newline-separated), mirrored like its
-- size and change tag, so that a sharing change alone is noticed without a read.
ALTER TABLE items ADD COLUMN acl TEXT;
