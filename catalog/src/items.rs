//! Items as the API lists them, their versions and content, and the errors of items
//! that failed (with their retries).

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;

use crate::rows::{prefix_range, to_hash};
use crate::{Catalog, ChunkRef, Hash, NewVersion, Result, now_ns, redact};

/// What restoring one file needs.
#[derive(Debug, Clone)]
pub struct RestoreEntry {
    pub path: Vec<u8>,
    pub size: u64,
    pub mtime_ns: i64,
    pub digest: Option<Hash>,
    pub chunks: Vec<ChunkRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ItemError {
    pub connector: String,
    pub path: Vec<u8>,
    pub error: String,
    pub retry_count: i64,
}

/// An item as listed: committed (live or deleted) or failed before its first commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ItemRow {
    pub id: Option<i64>,
    pub connector: String,
    #[serde(skip)]
    pub path_bytes: Vec<u8>,
    pub path: String,
    /// `completed`, `deleted`, `failed` or `conflict` (its latest state is held by a
    /// conflict, see [`NewVersion::held`]).
    pub status: String,
    pub size: Option<i64>,
    pub mtime_ns: Option<i64>,
    pub current_version: Option<i64>,
    pub last_error: Option<String>,
    pub retry_count: Option<i64>,
    pub failed_at: Option<i64>,
}

#[derive(Debug, Clone, Default)]
pub struct ItemFilter {
    pub connector: Option<String>,
    pub prefix: Option<Vec<u8>>,
    /// `completed`, `deleted`, `failed` or `conflict`.
    pub status: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionRow {
    pub id: i64,
    pub deleted: bool,
    pub size: i64,
    pub mtime_ns: i64,
    pub digest: Option<String>,
    pub committed_at: i64,
    pub job_id: Option<i64>,
    pub chunks: i64,
    /// A claim kept aside by a conflict: stored, never visible.
    pub held: bool,
}

/// A row of an item listing; `status` is computed in SQL.
#[derive(sqlx::FromRow)]
struct ItemRecord {
    id: Option<i64>,
    connector: String,
    path: Vec<u8>,
    status: String,
    size: Option<i64>,
    mtime_ns: Option<i64>,
    current_version: Option<i64>,
    last_error: Option<String>,
    retry_count: Option<i64>,
    failed_at: Option<i64>,
}

impl From<ItemRecord> for ItemRow {
    fn from(r: ItemRecord) -> ItemRow {
        ItemRow {
            id: r.id,
            connector: r.connector,
            path: String::from_utf8_lossy(&r.path).into_owned(),
            path_bytes: r.path,
            status: r.status,
            size: r.size,
            mtime_ns: r.mtime_ns,
            current_version: r.current_version,
            last_error: r.last_error,
            retry_count: r.retry_count,
            failed_at: r.failed_at,
        }
    }
}

/// The columns of an [`ItemRecord`] of a committed item (`items i` left-joined with
/// its error `e`).
const ITEM_COLUMNS: &str = "i.id, i.connector, i.path,
    CASE WHEN i.held = 1 THEN 'conflict' WHEN i.deleted = 1 THEN 'deleted' ELSE 'completed' END AS status,
    i.size, i.mtime_ns, i.current_version, e.error AS last_error, e.retry_count, e.at AS failed_at";

#[derive(sqlx::FromRow)]
struct VersionRecord {
    id: i64,
    deleted: i64,
    size: i64,
    mtime_ns: i64,
    digest: Option<Vec<u8>>,
    committed_at: i64,
    job_id: Option<i64>,
    chunks: i64,
    held: i64,
}

impl From<VersionRecord> for VersionRow {
    fn from(r: VersionRecord) -> VersionRow {
        VersionRow {
            id: r.id,
            deleted: r.deleted != 0,
            size: r.size,
            mtime_ns: r.mtime_ns,
            digest: r.digest.map(hex::encode),
            committed_at: r.committed_at,
            job_id: r.job_id,
            chunks: r.chunks,
            held: r.held != 0,
        }
    }
}

/// A version's content as committed: `v.id, i.path, v.size, v.mtime_ns, v.inode,
/// v.change_tag, v.digest`.
#[derive(sqlx::FromRow)]
pub(crate) struct ContentRecord {
    pub(crate) id: i64,
    path: Vec<u8>,
    size: i64,
    mtime_ns: i64,
    inode: Option<i64>,
    change_tag: Option<String>,
    digest: Option<Vec<u8>>,
}

/// A stored version with its item's path: `i.path, v.id, v.deleted, v.size,
/// v.mtime_ns, v.digest`.
#[derive(sqlx::FromRow)]
pub(crate) struct StoredVersion {
    pub(crate) path: Vec<u8>,
    pub(crate) id: i64,
    pub(crate) deleted: i64,
    pub(crate) size: i64,
    pub(crate) mtime_ns: i64,
    pub(crate) digest: Option<Vec<u8>>,
}

/// A failed item whose retry is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueRetry {
    pub connector: String,
    pub count: i64,
}

impl Catalog {
    /// Items by connector, path prefix and status, ordered by path, with the total.
    pub async fn list_items(
        &self,
        f: &ItemFilter,
        page: i64,
        per_page: i64,
    ) -> Result<(Vec<ItemRow>, i64)> {
        with_pool!(self, |pool| {
            let (lo, hi) = match &f.prefix {
                Some(p) => {
                    let (lo, hi) = prefix_range(p);
                    (Some(lo), hi)
                }
                None => (None, None),
            };
            let offset = (page - 1).max(0) * per_page;
            if f.status.as_deref() == Some("failed") {
                const WHERE: &str = "($1 IS NULL OR e.connector = $1) AND ($2 IS NULL OR e.path >= $2) AND ($3 IS NULL OR e.path < $3)";
                let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT COUNT(*) FROM item_errors e WHERE {WHERE}"
                )))
                .bind(&f.connector)
                .bind(&lo)
                .bind(&hi)
                .fetch_one(pool)
                .await?;
                let rows: Vec<ItemRecord> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT i.id, e.connector, e.path, 'failed' AS status, i.size, i.mtime_ns, i.current_version,
                            e.error AS last_error, e.retry_count, e.at AS failed_at
                     FROM item_errors e LEFT JOIN items i ON i.connector = e.connector AND i.source_id = e.source_id
                     WHERE {WHERE} ORDER BY e.path LIMIT $4 OFFSET $5"
                )))
                .bind(&f.connector)
                .bind(&lo)
                .bind(&hi)
                .bind(per_page)
                .bind(offset)
                .fetch_all(pool)
                .await?;
                return Ok((rows.into_iter().map(ItemRow::from).collect(), total));
            }
            let status = f.status.as_deref();
            const WHERE: &str = "($1 IS NULL OR i.connector = $1) AND ($2 IS NULL OR i.path >= $2) AND ($3 IS NULL OR i.path < $3)
                AND ($4 IS NULL OR (CASE WHEN i.held = 1 THEN 'conflict' WHEN i.deleted = 1 THEN 'deleted' ELSE 'completed' END) = $4)";
            let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT COUNT(*) FROM items i WHERE {WHERE}"
            )))
            .bind(&f.connector)
            .bind(&lo)
            .bind(&hi)
            .bind(status)
            .fetch_one(pool)
            .await?;
            let rows: Vec<ItemRecord> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {ITEM_COLUMNS}
                 FROM items i LEFT JOIN item_errors e ON e.connector = i.connector AND e.source_id = i.source_id
                 WHERE {WHERE} ORDER BY i.path LIMIT $5 OFFSET $6"
            )))
            .bind(&f.connector)
            .bind(&lo)
            .bind(&hi)
            .bind(status)
            .bind(per_page)
            .bind(offset)
            .fetch_all(pool)
            .await?;
            Ok((rows.into_iter().map(ItemRow::from).collect(), total))
        })
    }

    pub async fn item(&self, id: i64) -> Result<Option<(ItemRow, Vec<VersionRow>)>> {
        with_pool!(self, |pool| {
            let row: Option<ItemRecord> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {ITEM_COLUMNS}
                 FROM items i LEFT JOIN item_errors e ON e.connector = i.connector AND e.source_id = i.source_id
                 WHERE i.id = $1"
            )))
            .bind(id)
            .fetch_optional(pool)
            .await?;
            let Some(row) = row else { return Ok(None) };
            let versions = sqlx::query_as::<_, VersionRecord>(
                "SELECT v.id, v.deleted, v.size, v.mtime_ns, v.digest, v.committed_at, v.job_id,
                        (SELECT COUNT(*) FROM version_chunks vc WHERE vc.version_id = v.id) AS chunks, v.held
                 FROM versions v WHERE v.item_id = $1 ORDER BY v.committed_at DESC, v.id DESC",
            )
            .bind(id)
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(VersionRow::from)
            .collect();
            Ok(Some((row.into(), versions)))
        })
    }

    /// The current (visible, live) content of an item as a version to commit again,
    /// e.g. under another path; `None` when it has none.
    pub async fn current_content(
        &self,
        connector: &str,
        source_id: &[u8],
    ) -> Result<Option<NewVersion>> {
        with_pool!(self, |pool| {
            let row: Option<ContentRecord> = sqlx::query_as(
                "SELECT v.id, i.path, v.size, v.mtime_ns, v.inode, v.change_tag, v.digest
                 FROM items i JOIN versions v ON v.id = i.current_version
                 WHERE i.connector = $1 AND i.source_id = $2 AND i.deleted = 0 AND i.held = 0 AND v.deleted = 0",
            )
            .bind(connector)
            .bind(source_id)
            .fetch_optional(pool)
            .await?;
            let Some(r) = row else { return Ok(None) };
            Ok(Some(self.content_version(source_id, r).await?))
        })
    }

    /// A committed version's content (`r`), with its chunks, as a version of
    /// `source_id` to commit again.
    pub(crate) async fn content_version(
        &self,
        source_id: &[u8],
        r: ContentRecord,
    ) -> Result<NewVersion> {
        Ok(NewVersion {
            source_id: source_id.to_vec(),
            path: r.path,
            size: r.size as u64,
            mtime_ns: r.mtime_ns,
            inode: r.inode,
            change_tag: r.change_tag,
            digest: r.digest.map(|d| to_hash(&d)).transpose()?,
            chunks: self.version_chunks(r.id).await?,
            ..Default::default()
        })
    }

    /// What it takes to stream a version's content.
    pub async fn version_content(&self, version_id: i64) -> Result<Option<RestoreEntry>> {
        with_pool!(self, |pool| {
            let row: Option<StoredVersion> = sqlx::query_as(
                "SELECT i.path, v.id, v.deleted, v.size, v.mtime_ns, v.digest
                 FROM versions v JOIN items i ON i.id = v.item_id WHERE v.id = $1",
            )
            .bind(version_id)
            .fetch_optional(pool)
            .await?;
            match row {
                Some(v) if v.deleted == 0 => Ok(Some(self.restore_entry(v).await?)),
                _ => Ok(None),
            }
        })
    }

    /// A stored version as what it takes to restore or stream it.
    pub(crate) async fn restore_entry(&self, v: StoredVersion) -> Result<RestoreEntry> {
        Ok(RestoreEntry {
            path: v.path,
            size: v.size as u64,
            mtime_ns: v.mtime_ns,
            digest: v.digest.map(|d| to_hash(&d)).transpose()?,
            chunks: self.version_chunks(v.id).await?,
        })
    }

    // ---- failed items: their errors and retries --------------------------------

    /// Failed items per connector whose next retry is due: fewer than `max_retries`
    /// retries so far and a last failure older than `backoff × 2^retries`.
    pub async fn due_retries(&self, max_retries: i64, backoff: Duration) -> Result<Vec<DueRetry>> {
        with_pool!(self, |pool| {
            let rows: Vec<(String, i64, i64)> = sqlx::query_as(
                "SELECT connector, retry_count, at FROM item_errors WHERE retry_count < $1",
            )
            .bind(max_retries)
            .fetch_all(pool)
            .await?;
            let now = now_ns();
            let mut per: std::collections::BTreeMap<String, i64> = Default::default();
            for (connector, retries, failed_at) in rows {
                if retry_is_due(retries, failed_at, now, max_retries, backoff) {
                    *per.entry(connector).or_default() += 1;
                }
            }
            Ok(per
                .into_iter()
                .map(|(connector, count)| DueRetry { connector, count })
                .collect())
        })
    }

    /// Failed items whose retries are exhausted, with the fingerprint they failed with:
    /// planning leaves them alone until the source changes them.
    pub async fn exhausted_failures(
        &self,
        connector: &str,
        max_retries: i64,
    ) -> Result<HashMap<Vec<u8>, Option<String>>> {
        with_pool!(self, |pool| {
            let rows: Vec<(Vec<u8>, Option<String>)> = sqlx::query_as("SELECT source_id, fingerprint FROM item_errors WHERE connector = $1 AND retry_count >= $2")
                .bind(connector)
                .bind(max_retries)
                .fetch_all(pool)
                .await?;
            Ok(rows.into_iter().collect())
        })
    }

    /// Records a failed attempt; a repeated failure counts one more retry.
    /// `fingerprint` is the source state the attempt saw, if known.
    pub async fn record_item_error(
        &self,
        connector: &str,
        source_id: &[u8],
        path: &[u8],
        job_id: Option<i64>,
        error: &str,
        fingerprint: Option<&str>,
    ) -> Result<()> {
        with_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO item_errors (connector, source_id, path, job_id, error, retry_count, at, fingerprint) VALUES ($1, $2, $3, $4, $5, 0, $6, $7)
                 ON CONFLICT (connector, source_id) DO UPDATE SET path = excluded.path, job_id = excluded.job_id, error = excluded.error,
                   retry_count = item_errors.retry_count + 1, at = excluded.at, fingerprint = excluded.fingerprint",
            )
            .bind(connector)
            .bind(source_id)
            .bind(path)
            .bind(job_id)
            .bind(redact(error))
            .bind(now_ns())
            .bind(fingerprint)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// Forgets the errors of these source ids (files that are gone or no longer wanted,
    /// folders that can be listed again). Returns how many there were.
    pub async fn forget_item_errors(&self, connector: &str, source_ids: &[Vec<u8>]) -> Result<u64> {
        with_pool!(self, |pool| {
            let mut n = 0;
            let mut tx = pool.begin().await?;
            for sid in source_ids {
                n += sqlx::query("DELETE FROM item_errors WHERE connector = $1 AND source_id = $2")
                    .bind(connector)
                    .bind(sid)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
            tx.commit().await?;
            Ok(n)
        })
    }

    /// Source ids of a connector's failed items.
    pub async fn failed_source_ids(&self, connector: &str) -> Result<Vec<Vec<u8>>> {
        with_pool!(self, |pool| {
            Ok(
                sqlx::query_scalar("SELECT source_id FROM item_errors WHERE connector = $1")
                    .bind(connector)
                    .fetch_all(pool)
                    .await?,
            )
        })
    }

    pub async fn item_errors(&self, connector: &str) -> Result<Vec<ItemError>> {
        with_pool!(self, |pool| {
            Ok(sqlx::query_as(
                "SELECT connector, path, error, retry_count FROM item_errors WHERE connector = $1 ORDER BY path",
            )
            .bind(connector)
            .fetch_all(pool)
            .await?)
        })
    }
}

/// Whether a failed item is retried now: fewer than `max_retries` retries so far, and
/// its last failure (`failed_at`, Unix ns) older than `backoff × 2^retries` at `now`.
/// An exhausted item is never due, however long it waits.
pub(crate) fn retry_is_due(
    retries: i64,
    failed_at: i64,
    now: i64,
    max_retries: i64,
    backoff: Duration,
) -> bool {
    let backoff = i64::try_from(backoff.as_nanos()).unwrap_or(i64::MAX);
    let wait = backoff.saturating_mul(1i64 << retries.clamp(0, 20));
    retries < max_retries && failed_at.saturating_add(wait) <= now
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_doubling_and_stop_at_the_maximum() {
        const S: i64 = 1_000_000_000;
        let b = Duration::from_secs(1);
        for (retries, waited_s, due) in [
            (0, 0, false),
            (0, 1, true),
            (1, 1, false),
            (1, 2, true),
            (2, 3, false),
            (2, 4, true),
            (3, 1_000_000, false), // exhausted (max 3): never
            (9, 1_000_000, false),
        ] {
            assert_eq!(
                retry_is_due(retries, 0, waited_s * S, 3, b),
                due,
                "{retries} retries, {waited_s}s after the failure"
            );
        }
        // far-future counts and backoffs do not overflow into "due"
        let now = 1i64 << 62;
        assert!(!retry_is_due(
            60,
            1_000,
            now,
            100,
            Duration::from_secs(u64::MAX / 4)
        ));
        assert!(!retry_is_due(
            60,
            1_000,
            now,
            100,
            Duration::from_secs(1 << 40)
        ));
    }
}
