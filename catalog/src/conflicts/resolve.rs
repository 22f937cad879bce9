//! Operators' decisions: which resolutions apply to a kind of conflict, and what a
//! resolution commits (its [`ResolutionPlan`]).

use super::policy::displacement;
use super::{ConflictOp, ConflictRow, MASS_DELETE, TORN_READ, conflict_name, path_key};
use crate::items::ContentRecord;
use crate::{Catalog, CatalogError, NewVersion, Result};

/// What applying an operator's decision takes.
#[derive(Debug, Clone)]
pub struct ResolutionPlan {
    pub conflict: ConflictRow,
    /// Versions to commit (through the normal commit path, manifest first).
    pub versions: Vec<NewVersion>,
    pub op: ConflictOp,
}

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("no conflict {0}")]
    NotFound(i64),
    #[error("conflict {0} is already resolved")]
    AlreadyResolved(i64),
    #[error("`{resolution}` does not apply to a {kind} conflict; use one of: {allowed}")]
    NotApplicable {
        resolution: String,
        kind: String,
        allowed: String,
    },
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

/// Every resolution of any kind of conflict.
pub const RESOLUTIONS: [&str; 5] = [
    "keep_source",
    "keep_existing",
    "keep_both",
    "allow",
    "reject",
];

/// The resolutions an operator may choose for a kind.
pub fn resolutions_for(kind: &str) -> &'static [&'static str] {
    match kind {
        MASS_DELETE => &["allow", "reject"],
        TORN_READ => &["keep_source", "keep_existing"],
        _ => &["keep_source", "keep_existing", "keep_both"],
    }
}

impl Catalog {
    /// What an operator's `resolution` of conflict `id` commits. Claims conflicts
    /// (`path_claim`, `name_collision`, `diverged`) yield versions: `keep_source` makes
    /// the incoming claim's latest stored state visible and displaces the owner,
    /// `keep_both` makes it visible under its conflict name, `keep_existing` commits
    /// nothing. The other kinds only close the record (the caller acts on them).
    pub async fn resolution_plan(
        &self,
        id: i64,
        resolution: &str,
        by: &str,
        at: i64,
    ) -> Result<ResolutionPlan, ResolveError> {
        let c = self.conflict(id).await?.ok_or(ResolveError::NotFound(id))?;
        if c.status != "open" {
            return Err(ResolveError::AlreadyResolved(id));
        }
        let allowed = resolutions_for(&c.kind);
        let Some(resolution) = allowed.iter().copied().find(|r| *r == resolution) else {
            return Err(ResolveError::NotApplicable {
                resolution: resolution.into(),
                kind: c.kind.clone(),
                allowed: allowed.join(", "),
            });
        };
        let mut versions = Vec::new();
        let mut renamed_to = None;
        let claims_kind = ![MASS_DELETE, TORN_READ].contains(&c.kind.as_str());
        if claims_kind && resolution != "keep_existing" {
            let inc = c
                .claims
                .iter()
                .find(|k| k.role == "incoming")
                .ok_or_else(|| {
                    CatalogError::Corrupt(format!("conflict {id} has no incoming claim"))
                })?;
            let latest = self.latest_held(&inc.connector, &inc.source_id).await?;
            if let Some(mut v) = latest {
                v.connector = Some(inc.connector.clone());
                v.committed_at = at;
                if resolution == "keep_both" {
                    let to = conflict_name(&c.path_bytes, &inc.connector, c.first_seen);
                    v.path = to.clone();
                    renamed_to = Some(to);
                } else {
                    v.path = c.path_bytes.clone();
                    let key = path_key(&v.path);
                    for o in self
                        .owners(std::slice::from_ref(&key))
                        .await?
                        .remove(&key)
                        .unwrap_or_default()
                    {
                        if !(o.connector == inc.connector && o.source_id == inc.source_id) {
                            let mut d = displacement(&o);
                            d.committed_at = at;
                            versions.push(d);
                        }
                    }
                }
                versions.push(v);
            }
        }
        Ok(ResolutionPlan {
            conflict: c,
            versions,
            op: ConflictOp::Resolve {
                id,
                resolution,
                by: by.into(),
                at,
                renamed_to,
            },
        })
    }

    /// The latest held content version of an item, as a version to commit visibly.
    async fn latest_held(&self, connector: &str, source_id: &[u8]) -> Result<Option<NewVersion>> {
        with_pool!(self, |pool| {
            #[derive(sqlx::FromRow)]
            struct Held {
                #[sqlx(flatten)]
                content: ContentRecord,
                held: i64,
            }
            let row: Option<Held> = sqlx::query_as(
                "SELECT v.id, i.path, v.size, v.mtime_ns, v.inode, v.change_tag, v.digest, i.held
                 FROM items i JOIN versions v ON v.item_id = i.id
                 WHERE i.connector = $1 AND i.source_id = $2 AND v.deleted = 0
                 ORDER BY v.committed_at DESC, v.id DESC LIMIT 1",
            )
            .bind(connector)
            .bind(source_id)
            .fetch_optional(pool)
            .await?;
            let Some(Held { content, held }) = row else {
                return Ok(None);
            };
            if held == 0 {
                // the claim is visible already (or deleted since): nothing to apply
                return Ok(None);
            }
            let id = content.id;
            let mut v = self.content_version(source_id, content).await?;
            let p = self.version_principals(id).await?;
            v.principals = (!p.is_empty()).then_some(p);
            Ok(Some(v))
        })
    }
}
