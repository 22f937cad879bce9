//! Conflicts: competing claims on one target path, torn reads and held mass deletes.
//!
//! A path of the target namespace has at most one visible owner. A claim on a path
//! that another item owns (same bytes, same name after Unicode normalization, or same
//! name after case folding where either side is case-insensitive) is decided in
//! [`Catalog::decide`] by the claiming connector's policy, under the claims lock and
//! just before the batch's manifest is written, so that concurrent jobs of connectors
//! sharing a target see each other's commits. A claim that does not win is still
//! committed — as a *held* version, stored and retrievable, never visible — so no claim
//! is lost and a resolution never goes back to the source.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use unicode_normalization::UnicodeNormalization;

mod policy;
mod resolve;

pub use resolve::{RESOLUTIONS, ResolutionPlan, ResolveError, resolutions_for};

use policy::{Known, Owner, Standing};

use crate::rows::in_list;
use crate::{Catalog, CatalogError, NewVersion, Result, Tx};

pub const PATH_CLAIM: &str = "path_claim";
pub const NAME_COLLISION: &str = "name_collision";
pub const DIVERGED: &str = "diverged";
pub const TORN_READ: &str = "torn_read";
pub const MASS_DELETE: &str = "mass_delete";
pub const KINDS: [&str; 5] = [PATH_CLAIM, NAME_COLLISION, DIVERGED, TORN_READ, MASS_DELETE];

/// How a connector's claims are decided when they meet another claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    /// Record an open conflict and keep the claim aside until an operator decides.
    #[default]
    Manual,
    /// The incoming claim wins.
    SourceWins,
    /// The claim with the newer source mtime wins; ties go to the connector listed first.
    NewestWins,
    /// The incoming claim is stored beside the owner under a conflict name.
    KeepBoth,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Manual => "manual",
            Policy::SourceWins => "source_wins",
            Policy::NewestWins => "newest_wins",
            Policy::KeepBoth => "keep_both",
        }
    }
}

/// What decisions need to know about one connector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Party {
    /// Position in the configuration (ties of `newest_wins` go to the lower).
    pub rank: usize,
    pub case_sensitive: bool,
    pub policy: Policy,
}

impl Default for Party {
    fn default() -> Self {
        Party {
            rank: usize::MAX,
            case_sensitive: true,
            policy: Policy::Manual,
        }
    }
}

/// Every configured connector's conflict settings.
#[derive(Debug, Clone, Default)]
pub struct Namespace {
    pub parties: HashMap<String, Party>,
}

impl Namespace {
    /// A connector no longer configured is treated as case-sensitive, manual and last.
    pub fn party(&self, connector: &str) -> Party {
        self.parties.get(connector).copied().unwrap_or_default()
    }
}

/// The collision key of a path: NFC-normalized, lower-cased (names that are not UTF-8:
/// ASCII lower-cased).
pub fn path_key(path: &[u8]) -> Vec<u8> {
    match std::str::from_utf8(path) {
        Ok(s) => s
            .nfc()
            .collect::<String>()
            .to_lowercase()
            .nfc()
            .collect::<String>()
            .into_bytes(),
        Err(_) => path.to_ascii_lowercase(),
    }
}

fn nfc(path: &[u8]) -> Vec<u8> {
    match std::str::from_utf8(path) {
        Ok(s) => s.nfc().collect::<String>().into_bytes(),
        Err(_) => path.to_vec(),
    }
}

/// `dir/name (conflict <connector> <YYYYMMDDTHHMMSSZ>).ext` for `dir/name.ext`.
pub fn conflict_name(path: &[u8], connector: &str, first_seen_ns: i64) -> Vec<u8> {
    let stamp = chrono::DateTime::from_timestamp_nanos(first_seen_ns)
        .format("%Y%m%dT%H%M%SZ")
        .to_string();
    let split = split_at(path);
    let mut out = path[..split].to_vec();
    out.extend_from_slice(format!(" (conflict {connector} {stamp})").as_bytes());
    out.extend_from_slice(&path[split..]);
    out
}

/// Whether `candidate` is `path` renamed by [`conflict_name`] for `connector`.
pub fn is_conflict_name_of(candidate: &[u8], path: &[u8], connector: &str) -> bool {
    let probe = conflict_name(path, connector, 0); // "… (conflict c 19700101T000000Z).ext"
    let stamp = b"19700101T000000Z".len();
    // the stamp sits before ")" and the extension
    let at = probe.len() - stamp - 1 - (path.len() - split_at(path));
    candidate.len() == probe.len()
        && candidate[..at] == probe[..at]
        && candidate[at + stamp..] == probe[at + stamp..]
}

fn split_at(path: &[u8]) -> usize {
    let base_at = path.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1);
    match path[base_at..].iter().rposition(|&b| b == b'.') {
        Some(i) if i > 0 => base_at + i,
        _ => path.len(),
    }
}

/// One side of a conflict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRef {
    /// `existing` (the owner when it was detected) or `incoming`.
    pub role: &'static str,
    pub connector: String,
    pub source_id: Vec<u8>,
    pub path: Vec<u8>,
    /// The source state of a claim that has no stored version (torn reads).
    pub fingerprint: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewConflict {
    pub kind: &'static str,
    /// The connector whose change raised it.
    pub connector: String,
    pub path: Vec<u8>,
    pub policy: &'static str,
    pub detail: Option<String>,
    pub at: i64,
    pub claims: Vec<ClaimRef>,
    /// Set when a policy decided it on the spot (`resolved_by` = `policy`).
    pub resolution: Option<&'static str>,
    pub resolved_by: Option<&'static str>,
    pub renamed_to: Option<Vec<u8>>,
}

impl NewConflict {
    /// A conflict that waits for an operator (`manual`).
    pub fn open(
        kind: &'static str,
        connector: &str,
        path: Vec<u8>,
        detail: String,
        claims: Vec<ClaimRef>,
    ) -> NewConflict {
        NewConflict {
            kind,
            connector: connector.to_string(),
            path,
            policy: Policy::Manual.as_str(),
            detail: Some(detail),
            at: crate::now_ns(),
            claims,
            resolution: None,
            resolved_by: None,
            renamed_to: None,
        }
    }
}

/// A change to the conflict records, applied in a commit's transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConflictOp {
    Insert(NewConflict),
    /// The open conflict saw another change of its claim.
    Touch {
        id: i64,
        at: i64,
    },
    Resolve {
        id: i64,
        resolution: &'static str,
        /// Who decided: `source`, `policy`, or the API principal's name.
        by: String,
        at: i64,
        renamed_to: Option<Vec<u8>>,
    },
}

/// A batch after its conflicts were decided.
#[derive(Debug, Default)]
pub struct Decided {
    pub versions: Vec<NewVersion>,
    pub ops: Vec<ConflictOp>,
    /// One line per conflict met, for the job log.
    pub notes: Vec<String>,
}

pub(crate) async fn apply_ops(tx: &mut Tx<'_>, ops: &[ConflictOp]) -> Result<()> {
    for op in ops {
        match op {
            ConflictOp::Insert(c) => {
                let status = if c.resolution.is_some() {
                    "resolved"
                } else {
                    "open"
                };
                let id: i64 = on_tx!(tx, |db| {
                    sqlx::query_scalar(
                    "INSERT INTO conflicts (kind, status, connector, path, policy, detail, first_seen, last_seen, resolution, resolved_by, resolved_at, renamed_to)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9, $10, $11) RETURNING id",
                )
                .bind(c.kind)
                .bind(status)
                .bind(&c.connector)
                .bind(&c.path)
                .bind(c.policy)
                .bind(&c.detail)
                .bind(c.at)
                .bind(c.resolution)
                .bind(c.resolved_by)
                .bind(c.resolution.map(|_| c.at))
                .bind(&c.renamed_to)
                .fetch_one(db)
                .await?
                });
                for k in &c.claims {
                    on_tx!(tx, |db| {
                        sqlx::query(
                        "INSERT INTO conflict_claims (conflict_id, role, connector, source_id, path, fingerprint) VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(id)
                    .bind(k.role)
                    .bind(&k.connector)
                    .bind(&k.source_id)
                    .bind(&k.path)
                    .bind(&k.fingerprint)
                    .execute(db)
                    .await?;
                    });
                }
            }
            ConflictOp::Touch { id, at } => {
                on_tx!(tx, |db| {
                    sqlx::query("UPDATE conflicts SET last_seen = $1 WHERE id = $2")
                        .bind(at)
                        .bind(id)
                        .execute(db)
                        .await?;
                });
            }
            ConflictOp::Resolve {
                id,
                resolution,
                by,
                at,
                renamed_to,
            } => {
                let n = on_tx!(tx, |db| {
                    sqlx::query(
                    "UPDATE conflicts SET status = 'resolved', resolution = $1, resolved_by = $2, resolved_at = $3, last_seen = $3,
                       renamed_to = COALESCE($4, renamed_to)
                     WHERE id = $5 AND status = 'open'",
                )
                .bind(resolution)
                .bind(by)
                .bind(at)
                .bind(renamed_to)
                .bind(id)
                .execute(db)
                .await?
                .rows_affected()
                });
                if n == 0 {
                    return Err(CatalogError::AlreadyResolved(*id));
                }
            }
        }
    }
    Ok(())
}

/// A conflict as listed.
#[derive(Debug, Clone, Serialize)]
pub struct ConflictRow {
    pub id: i64,
    pub kind: String,
    pub status: String,
    pub connector: String,
    #[serde(skip)]
    pub path_bytes: Vec<u8>,
    pub path: String,
    pub policy: String,
    pub detail: Option<String>,
    pub first_seen: i64,
    pub last_seen: i64,
    pub resolution: Option<String>,
    pub resolved_by: Option<String>,
    pub resolved_at: Option<i64>,
    pub renamed_to: Option<String>,
    pub claims: Vec<ClaimRow>,
}

/// One side of a conflict with the claim's latest stored state.
#[derive(Debug, Clone, Serialize)]
pub struct ClaimRow {
    pub role: String,
    pub connector: String,
    #[serde(skip)]
    pub source_id: Vec<u8>,
    pub path: String,
    pub item_id: Option<i64>,
    /// `visible` (the path's content), `held` (stored aside), `deleted` or `unread`.
    pub state: String,
    pub version_id: Option<i64>,
    pub size: Option<i64>,
    pub mtime_ns: Option<i64>,
    pub digest: Option<String>,
    pub fingerprint: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ConflictFilter {
    pub connector: Option<String>,
    pub kind: Option<String>,
    pub include_resolved: bool,
}

impl Catalog {
    /// Held while a batch's conflicts are decided, its manifest written and its
    /// transaction committed, so that two jobs never both win one path.
    pub async fn claims_lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.claims.lock().await
    }

    pub(crate) async fn backfill_path_keys(&self) -> Result<()> {
        with_pool!(self, |pool| {
            let rows: Vec<(i64, Vec<u8>)> =
                sqlx::query_as("SELECT id, path FROM items WHERE path_key IS NULL")
                    .fetch_all(pool)
                    .await?;
            if rows.is_empty() {
                return Ok(());
            }
            let mut tx = pool.begin().await?;
            for (id, path) in rows {
                sqlx::query("UPDATE items SET path_key = $1 WHERE id = $2")
                    .bind(path_key(&path))
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// Decides the claims of a batch of `connector` (content and tombstones) against the
    /// path owners: reads what the catalog holds about them and applies the pure policy
    /// ([`policy::decide`]). Call it under [`Catalog::claims_lock`] and commit its result before releasing it.
    pub async fn decide(
        &self,
        ns: &Namespace,
        connector: &str,
        versions: Vec<NewVersion>,
        at: i64,
    ) -> Result<Decided> {
        with_pool!(self, |pool| {
            let ids: Vec<&[u8]> = versions.iter().map(|v| v.source_id.as_slice()).collect();
            let known = self.known_claims(connector, &ids).await?;
            // open conflicts whose incoming claim is one of this connector's items
            let mut open: HashMap<Vec<u8>, (i64, String)> = HashMap::new();
            // standing keep_both renames: (source id, original path) → renamed path
            let mut renames: HashMap<(Vec<u8>, Vec<u8>), Vec<u8>> = HashMap::new();
            #[derive(sqlx::FromRow)]
            struct Claimed {
                id: i64,
                kind: String,
                status: String,
                path: Vec<u8>,
                renamed_to: Option<Vec<u8>>,
                source_id: Vec<u8>,
            }
            for r in sqlx::query_as::<_, Claimed>(
                "SELECT c.id, c.kind, c.status, c.path, c.renamed_to, k.source_id
                 FROM conflicts c JOIN conflict_claims k ON k.conflict_id = c.id
                 WHERE k.connector = $1 AND k.role = 'incoming'
                   AND (c.status = 'open' OR (c.resolution = 'keep_both' AND c.renamed_to IS NOT NULL))
                 ORDER BY c.id",
            )
            .bind(connector)
            .fetch_all(pool)
            .await?
            {
                if r.status == "open" {
                    open.insert(r.source_id, (r.id, r.kind));
                } else if let Some(to) = r.renamed_to {
                    renames.insert((r.source_id, r.path), to);
                }
            }
            let mut versions = versions;
            policy::apply_renames(&mut versions, &renames);
            let paths: Vec<Vec<u8>> = versions.iter().map(|v| path_key(&v.path)).collect();
            let owners = self.owners(&paths).await?;
            Ok(policy::decide(
                ns,
                connector,
                versions,
                at,
                &Standing {
                    known,
                    open,
                    owners,
                },
            ))
        })
    }

    async fn known_claims(
        &self,
        connector: &str,
        ids: &[&[u8]],
    ) -> Result<HashMap<Vec<u8>, Known>> {
        with_pool!(self, |pool| {
            let mut out = HashMap::new();
            for batch in ids.chunks(500) {
                let sql = format!(
                    "SELECT source_id, held, current_version IS NOT NULL FROM items WHERE connector = $1 AND source_id IN {}",
                    in_list(2, batch.len())
                );
                let mut q = sqlx::query_as::<_, (Vec<u8>, i64, bool)>(sqlx::AssertSqlSafe(sql))
                    .bind(connector);
                for id in batch {
                    q = q.bind(*id);
                }
                for (source_id, held, was_visible) in q.fetch_all(pool).await? {
                    out.insert(
                        source_id,
                        Known {
                            held: held != 0,
                            was_visible,
                        },
                    );
                }
            }
            Ok(out)
        })
    }

    /// The visible owners of these path keys.
    async fn owners(&self, keys: &[Vec<u8>]) -> Result<HashMap<Vec<u8>, Vec<Owner>>> {
        with_pool!(self, |pool| {
            let mut out: HashMap<Vec<u8>, Vec<Owner>> = HashMap::new();
            for batch in keys.chunks(500) {
                let sql = format!(
                    "SELECT i.path_key, i.connector, i.source_id, i.path, COALESCE(i.mtime_ns, 0) AS mtime_ns, v.digest
                     FROM items i LEFT JOIN versions v ON v.id = i.current_version
                     WHERE i.deleted = 0 AND i.held = 0 AND i.path_key IN {} ORDER BY i.id",
                    in_list(1, batch.len())
                );
                #[derive(sqlx::FromRow)]
                struct Owned {
                    path_key: Vec<u8>,
                    #[sqlx(flatten)]
                    owner: Owner,
                }
                let mut q = sqlx::query_as::<_, Owned>(sqlx::AssertSqlSafe(sql));
                for k in batch {
                    q = q.bind(k.as_slice());
                }
                for r in q.fetch_all(pool).await? {
                    out.entry(r.path_key).or_default().push(r.owner);
                }
            }
            Ok(out)
        })
    }

    /// Records a conflict that has no version of its own (a torn read, a held mass
    /// delete), or updates the open one of the same kind for the same claim. Returns its
    /// id and whether it is new.
    pub async fn raise(&self, c: NewConflict) -> Result<(i64, bool)> {
        with_pool!(self, |pool| {
            let incoming = c.claims.iter().find(|k| k.role == "incoming");
            let existing: Option<i64> = match incoming {
                Some(k) => sqlx::query_scalar(
                    "SELECT c.id FROM conflicts c JOIN conflict_claims k ON k.conflict_id = c.id
                     WHERE c.status = 'open' AND c.kind = $1 AND k.role = 'incoming' AND k.connector = $2 AND k.source_id = $3",
                )
                .bind(c.kind)
                .bind(&k.connector)
                .bind(&k.source_id)
                .fetch_optional(pool)
                .await?,
                None => sqlx::query_scalar(
                    "SELECT id FROM conflicts WHERE status = 'open' AND kind = $1 AND connector = $2",
                )
                .bind(c.kind)
                .bind(&c.connector)
                .fetch_optional(pool)
                .await?,
            };
            let mut tx = crate::Tx::from(pool.begin().await?);
            if let Some(id) = existing {
                on_tx!(&mut tx, |db| {
                    sqlx::query(
                    "UPDATE conflicts SET last_seen = $1, detail = COALESCE($2, detail) WHERE id = $3",
                )
                .bind(c.at)
                .bind(&c.detail)
                .bind(id)
                .execute(db)
                .await?;
                });
                if let Some(k) = incoming {
                    on_tx!(&mut tx, |db| {
                        sqlx::query("UPDATE conflict_claims SET fingerprint = $1 WHERE conflict_id = $2 AND role = 'incoming'")
                        .bind(&k.fingerprint)
                        .bind(id)
                        .execute(db)
                        .await?;
                    });
                }
                tx.commit().await?;
                return Ok((id, false));
            }
            apply_ops(&mut tx, &[ConflictOp::Insert(c)]).await?;
            let id: i64 = on_tx!(&mut tx, |db| sqlx::query_scalar(
                "SELECT MAX(id) FROM conflicts"
            )
            .fetch_one(db)
            .await?);
            tx.commit().await?;
            Ok((id, true))
        })
    }

    /// Closes `connector`'s open `mass_delete` conflict, if any: a job was allowed to
    /// delete (`allow`), or the deletes are back within the limit (`withdrawn`).
    pub async fn close_mass_delete(
        &self,
        connector: &str,
        resolution: &'static str,
        by: &'static str,
    ) -> Result<Option<i64>> {
        with_pool!(self, |pool| {
            let id: Option<i64> = sqlx::query_scalar(
                "SELECT id FROM conflicts WHERE status = 'open' AND kind = 'mass_delete' AND connector = $1",
            )
            .bind(connector)
            .fetch_optional(pool)
            .await?;
            let Some(id) = id else { return Ok(None) };
            let mut tx = crate::Tx::from(pool.begin().await?);
            apply_ops(
                &mut tx,
                &[ConflictOp::Resolve {
                    id,
                    resolution,
                    by: by.into(),
                    at: crate::now_ns(),
                    renamed_to: None,
                }],
            )
            .await?;
            tx.commit().await?;
            Ok(Some(id))
        })
    }

    /// Source ids of `connector` with an open conflict of `kind`.
    pub async fn open_claims(&self, connector: &str, kind: &str) -> Result<HashSet<Vec<u8>>> {
        with_pool!(self, |pool| {
            let rows: Vec<Vec<u8>> = sqlx::query_scalar(
                "SELECT k.source_id FROM conflicts c JOIN conflict_claims k ON k.conflict_id = c.id
                 WHERE c.status = 'open' AND c.kind = $1 AND k.role = 'incoming' AND k.connector = $2",
            )
            .bind(kind)
            .bind(connector)
            .fetch_all(pool)
            .await?;
            Ok(rows.into_iter().collect())
        })
    }

    /// Torn-read conflicts an operator closed with `keep_existing`: (source id →
    /// fingerprint); planning leaves those files alone until they change again.
    pub async fn dismissed_torn_reads(&self, connector: &str) -> Result<HashMap<Vec<u8>, String>> {
        with_pool!(self, |pool| {
            let rows: Vec<(Vec<u8>, String)> = sqlx::query_as(
                "SELECT k.source_id, k.fingerprint FROM conflicts c JOIN conflict_claims k ON k.conflict_id = c.id
                 WHERE c.kind = 'torn_read' AND c.resolution = 'keep_existing' AND k.connector = $1 AND k.fingerprint IS NOT NULL
                 ORDER BY c.id",
            )
            .bind(connector)
            .fetch_all(pool)
            .await?;
            Ok(rows.into_iter().collect())
        })
    }

    /// Open conflicts by kind.
    pub async fn open_conflict_counts(&self) -> Result<Vec<(String, i64)>> {
        with_pool!(self, |pool| {
            Ok(sqlx::query_as(
                "SELECT kind, COUNT(*) FROM conflicts WHERE status = 'open' GROUP BY kind ORDER BY kind",
            )
            .fetch_all(pool)
            .await?)
        })
    }

    pub async fn list_conflicts(
        &self,
        f: &ConflictFilter,
        page: i64,
        per_page: i64,
    ) -> Result<(Vec<ConflictRow>, i64)> {
        with_pool!(self, |pool| {
            const WHERE: &str = "($1 IS NULL OR connector = $1 OR id IN (SELECT conflict_id FROM conflict_claims WHERE connector = $1))
                AND ($2 IS NULL OR kind = $2) AND ($3 = 1 OR status = 'open')";
            let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT COUNT(*) FROM conflicts WHERE {WHERE}"
            )))
            .bind(&f.connector)
            .bind(&f.kind)
            .bind(f.include_resolved as i64)
            .fetch_one(pool)
            .await?;
            let ids: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT id FROM conflicts WHERE {WHERE} ORDER BY id LIMIT $4 OFFSET $5"
            )))
            .bind(&f.connector)
            .bind(&f.kind)
            .bind(f.include_resolved as i64)
            .bind(per_page)
            .bind((page - 1).max(0) * per_page)
            .fetch_all(pool)
            .await?;
            let mut rows = Vec::with_capacity(ids.len());
            for id in ids {
                if let Some(c) = self.conflict(id).await? {
                    rows.push(c);
                }
            }
            Ok((rows, total))
        })
    }

    pub async fn conflict(&self, id: i64) -> Result<Option<ConflictRow>> {
        with_pool!(self, |pool| {
            #[derive(sqlx::FromRow)]
            struct Record {
                id: i64,
                kind: String,
                status: String,
                connector: String,
                path: Vec<u8>,
                policy: String,
                detail: Option<String>,
                first_seen: i64,
                last_seen: i64,
                resolution: Option<String>,
                resolved_by: Option<String>,
                resolved_at: Option<i64>,
                renamed_to: Option<Vec<u8>>,
            }
            #[derive(sqlx::FromRow)]
            struct Claim {
                role: String,
                connector: String,
                source_id: Vec<u8>,
                path: Vec<u8>,
                fingerprint: Option<String>,
                item_id: Option<i64>,
                item_deleted: Option<i64>,
                item_held: Option<i64>,
                version_id: Option<i64>,
                size: Option<i64>,
                mtime_ns: Option<i64>,
                digest: Option<Vec<u8>>,
            }
            let Some(r) = sqlx::query_as::<_, Record>(
                "SELECT id, kind, status, connector, path, policy, detail, first_seen, last_seen, resolution, resolved_by, resolved_at, renamed_to
                 FROM conflicts WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?
            else {
                return Ok(None);
            };
            let claims = sqlx::query_as::<_, Claim>(
                "SELECT k.role, k.connector, k.source_id, k.path, k.fingerprint,
                        i.id AS item_id, i.deleted AS item_deleted, i.held AS item_held,
                        v.id AS version_id, v.size, v.mtime_ns, v.digest
                 FROM conflict_claims k
                 LEFT JOIN items i ON i.connector = k.connector AND i.source_id = k.source_id
                 LEFT JOIN versions v ON v.id = (SELECT l.id FROM versions l WHERE l.item_id = i.id AND l.deleted = 0
                                                 ORDER BY l.committed_at DESC, l.id DESC LIMIT 1)
                 WHERE k.conflict_id = $1 ORDER BY k.role",
            )
            .bind(id)
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(|k| {
                let state = match k.item_id {
                    None => "unread",
                    Some(_) if k.item_held == Some(1) => "held",
                    Some(_) if k.item_deleted == Some(1) => "deleted",
                    Some(_) => "visible",
                };
                ClaimRow {
                    role: k.role,
                    connector: k.connector,
                    source_id: k.source_id,
                    path: String::from_utf8_lossy(&k.path).into_owned(),
                    item_id: k.item_id,
                    state: state.into(),
                    version_id: k.version_id,
                    size: k.size,
                    mtime_ns: k.mtime_ns,
                    digest: k.digest.map(hex::encode),
                    fingerprint: k.fingerprint,
                }
            })
            .collect();
            Ok(Some(ConflictRow {
                id: r.id,
                kind: r.kind,
                status: r.status,
                connector: r.connector,
                path: String::from_utf8_lossy(&r.path).into_owned(),
                path_bytes: r.path,
                policy: r.policy,
                detail: r.detail,
                first_seen: r.first_seen,
                last_seen: r.last_seen,
                resolution: r.resolution,
                resolved_by: r.resolved_by,
                resolved_at: r.resolved_at,
                renamed_to: r
                    .renamed_to
                    .map(|p| String::from_utf8_lossy(&p).into_owned()),
                claims,
            }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_fold_case_and_normalization() {
        assert_eq!(
            path_key("/a/Café.docx".as_bytes()),
            path_key("/a/cafe\u{301}.DOCX".as_bytes())
        );
        assert_ne!(path_key(b"/a/x"), path_key(b"/a/y"));
        assert_eq!(path_key(b"/A/\xff"), b"/a/\xff".to_vec());
        assert_eq!(nfc("Cafe\u{301}".as_bytes()), "Café".as_bytes());
    }

    #[test]
    fn conflict_names_keep_the_extension_and_folder() {
        let t = 1_700_000_000_000_000_000; // 2023-11-14T22:13:20Z
        assert_eq!(
            conflict_name(b"/t/docs/report.final.docx", "share-b", t),
            b"/t/docs/report.final (conflict share-b 20231114T221320Z).docx".to_vec()
        );
        assert_eq!(
            conflict_name(b"/t/.profile", "b", t),
            b"/t/.profile (conflict b 20231114T221320Z)".to_vec()
        );
        assert_eq!(
            conflict_name(b"/t/dir.d/Makefile", "b", t),
            b"/t/dir.d/Makefile (conflict b 20231114T221320Z)".to_vec()
        );
        for p in [
            &b"/t/docs/report.final.docx"[..],
            b"/t/.profile",
            b"/t/Makefile",
        ] {
            assert!(is_conflict_name_of(&conflict_name(p, "kb", t), p, "kb"));
            assert!(!is_conflict_name_of(&conflict_name(p, "kb", t), p, "other"));
            assert!(!is_conflict_name_of(p, p, "kb"));
        }
    }
}
