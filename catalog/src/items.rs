//! Items as the API lists them, their versions and content, and the errors of items
//! that failed (with their retries).

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;
use sqlx::Row;

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

#[derive(Debug, Clone, PartialEq, Eq)]
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
            .fetch_one(&self.pool)
            .await?;
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT i.id, e.connector, e.path, i.size, i.mtime_ns, i.current_version, e.error, e.retry_count, e.at
                 FROM item_errors e LEFT JOIN items i ON i.connector = e.connector AND i.source_id = e.source_id
                 WHERE {WHERE} ORDER BY e.path LIMIT $4 OFFSET $5"
            )))
            .bind(&f.connector)
            .bind(&lo)
            .bind(&hi)
            .bind(per_page)
            .bind(offset)
            .fetch_all(&self.pool)
            .await?;
            let items = rows
                .into_iter()
                .map(|r| {
                    let path: Vec<u8> = r.get(2);
                    ItemRow {
                        id: r.get(0),
                        connector: r.get(1),
                        path: String::from_utf8_lossy(&path).into_owned(),
                        path_bytes: path,
                        status: "failed".into(),
                        size: r.get(3),
                        mtime_ns: r.get(4),
                        current_version: r.get(5),
                        last_error: r.get(6),
                        retry_count: r.get(7),
                        failed_at: r.get(8),
                    }
                })
                .collect();
            return Ok((items, total));
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
        .fetch_one(&self.pool)
        .await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT i.id, i.connector, i.path, i.deleted, i.size, i.mtime_ns, i.current_version, e.error, e.retry_count, e.at, i.held
             FROM items i LEFT JOIN item_errors e ON e.connector = i.connector AND e.source_id = i.source_id
             WHERE {WHERE} ORDER BY i.path LIMIT $5 OFFSET $6"
        )))
        .bind(&f.connector)
        .bind(&lo)
        .bind(&hi)
        .bind(status)
        .bind(per_page)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        Ok((rows.into_iter().map(item_row).collect(), total))
    }

    pub async fn item(&self, id: i64) -> Result<Option<(ItemRow, Vec<VersionRow>)>> {
        let row = sqlx::query(
            "SELECT i.id, i.connector, i.path, i.deleted, i.size, i.mtime_ns, i.current_version, e.error, e.retry_count, e.at, i.held
             FROM items i LEFT JOIN item_errors e ON e.connector = i.connector AND e.source_id = i.source_id
             WHERE i.id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let versions = sqlx::query(
            "SELECT v.id, v.deleted, v.size, v.mtime_ns, v.digest, v.committed_at, v.job_id,
                    (SELECT COUNT(*) FROM version_chunks vc WHERE vc.version_id = v.id), v.held
             FROM versions v WHERE v.item_id = $1 ORDER BY v.committed_at DESC, v.id DESC",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|r| {
            let digest: Option<Vec<u8>> = r.get(4);
            VersionRow {
                id: r.get(0),
                deleted: r.get::<i64, _>(1) != 0,
                size: r.get(2),
                mtime_ns: r.get(3),
                digest: digest.map(hex::encode),
                committed_at: r.get(5),
                job_id: r.get(6),
                chunks: r.get(7),
                held: r.get::<i64, _>(8) != 0,
            }
        })
        .collect();
        Ok(Some((item_row(row), versions)))
    }

    /// The current (visible, live) content of an item as a version to commit again,
    /// e.g. under another path; `None` when it has none.
    pub async fn current_content(
        &self,
        connector: &str,
        source_id: &[u8],
    ) -> Result<Option<NewVersion>> {
        let row = sqlx::query(
            "SELECT v.id, i.path, v.size, v.mtime_ns, v.inode, v.change_tag, v.digest
             FROM items i JOIN versions v ON v.id = i.current_version
             WHERE i.connector = $1 AND i.source_id = $2 AND i.deleted = 0 AND i.held = 0 AND v.deleted = 0",
        )
        .bind(connector)
        .bind(source_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let digest: Option<Vec<u8>> = r.get(6);
        Ok(Some(NewVersion {
            source_id: source_id.to_vec(),
            path: r.get(1),
            size: r.get::<i64, _>(2) as u64,
            mtime_ns: r.get(3),
            inode: r.get(4),
            change_tag: r.get(5),
            digest: digest.map(|d| to_hash(&d)).transpose()?,
            chunks: self.version_chunks(r.get(0)).await?,
            ..Default::default()
        }))
    }

    /// What it takes to stream a version's content.
    pub async fn version_content(&self, version_id: i64) -> Result<Option<RestoreEntry>> {
        let row = sqlx::query(
            "SELECT i.path, v.deleted, v.size, v.mtime_ns, v.digest FROM versions v JOIN items i ON i.id = v.item_id WHERE v.id = $1",
        )
        .bind(version_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        if r.get::<i64, _>(1) != 0 {
            return Ok(None);
        }
        let digest: Option<Vec<u8>> = r.get(4);
        Ok(Some(RestoreEntry {
            path: r.get(0),
            size: r.get::<i64, _>(2) as u64,
            mtime_ns: r.get(3),
            digest: digest.map(|d| to_hash(&d)).transpose()?,
            chunks: self.version_chunks(version_id).await?,
        }))
    }

    // ---- failed items: their errors and retries --------------------------------

    /// Failed items per connector whose next retry is due: fewer than `max_retries`
    /// retries so far and a last failure older than `backoff × 2^retries`.
    pub async fn due_retries(&self, max_retries: i64, backoff: Duration) -> Result<Vec<DueRetry>> {
        let rows = sqlx::query(
            "SELECT connector, retry_count, at FROM item_errors WHERE retry_count < $1",
        )
        .bind(max_retries)
        .fetch_all(&self.pool)
        .await?;
        let now = now_ns();
        let mut per: std::collections::BTreeMap<String, i64> = Default::default();
        for r in rows {
            if retry_is_due(r.get(1), r.get(2), now, max_retries, backoff) {
                *per.entry(r.get(0)).or_default() += 1;
            }
        }
        Ok(per
            .into_iter()
            .map(|(connector, count)| DueRetry { connector, count })
            .collect())
    }

    /// Failed items whose retries are exhausted, with the fingerprint they failed with:
    /// planning leaves them alone until the source changes them.
    pub async fn exhausted_failures(
        &self,
        connector: &str,
        max_retries: i64,
    ) -> Result<HashMap<Vec<u8>, Option<String>>> {
        let rows = sqlx::query("SELECT source_id, fingerprint FROM item_errors WHERE connector = $1 AND retry_count >= $2")
            .bind(connector)
            .bind(max_retries)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
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
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets the errors of these source ids (files that are gone or no longer wanted,
    /// folders that can be listed again). Returns how many there were.
    pub async fn forget_item_errors(&self, connector: &str, source_ids: &[Vec<u8>]) -> Result<u64> {
        let mut n = 0;
        let mut tx = self.pool.begin().await?;
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
    }

    /// Source ids of a connector's failed items.
    pub async fn failed_source_ids(&self, connector: &str) -> Result<Vec<Vec<u8>>> {
        Ok(
            sqlx::query_scalar("SELECT source_id FROM item_errors WHERE connector = $1")
                .bind(connector)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    pub async fn item_errors(&self, connector: &str) -> Result<Vec<ItemError>> {
        let rows = sqlx::query(
            "SELECT connector, path, error, retry_count FROM item_errors WHERE connector = $1 ORDER BY path",
        )
        .bind(connector)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| ItemError {
                connector: r.get(0),
                path: r.get(1),
                error: r.get(2),
                retry_count: r.get(3),
            })
            .collect())
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

fn item_row(r: sqlx::sqlite::SqliteRow) -> ItemRow {
    let path: Vec<u8> = r.get(2);
    let failed: Option<String> = r.get(7);
    let deleted = r.get::<i64, _>(3) != 0;
    let held = r.get::<i64, _>(10) != 0;
    ItemRow {
        id: r.get(0),
        connector: r.get(1),
        path: String::from_utf8_lossy(&path).into_owned(),
        path_bytes: path,
        status: if held {
            "conflict"
        } else if deleted {
            "deleted"
        } else {
            "completed"
        }
        .into(),
        size: r.get(4),
        mtime_ns: r.get(5),
        current_version: r.get(6),
        last_error: failed,
        retry_count: r.get(8),
        failed_at: r.get(9),
    }
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
