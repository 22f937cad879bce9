//! The catalog: connectors' checkpoints, jobs, items, versions, chunks with reference
//! counts, the change feed and failed items. The only crate with SQL.
//!
//! SQL is kept portable (`$N` placeholders, `RETURNING`, `ON CONFLICT`, BIGINT/BLOB/TEXT)
//! so that a PostgreSQL backend is a second set of migrations and a pool type, not a
//! redesign. Timestamps are Unix nanoseconds (`i64`).
//!
//! Invariant: [`Catalog::commit_batch`] writes versions, their chunk lists, reference
//! counts, change rows and the connector checkpoint in one transaction; the caller has
//! uploaded every chunk it names before calling it.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};

mod bulk;
pub mod conflicts;
pub mod pgvector;
pub mod vectors;

pub use conflicts::{
    ConflictFilter, ConflictOp, ConflictRow, Namespace, Party, Policy, ResolveError,
};

pub type Hash = [u8; 32];
pub use tributary_store::chunk::Compression;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("catalog database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("catalog migration {version}: {source}")]
    Migration { version: i64, source: sqlx::Error },
    #[error("catalog data is inconsistent: {0}")]
    Corrupt(String),
    #[error("conflict {0} is already resolved")]
    AlreadyResolved(i64),
}

pub type Result<T, E = CatalogError> = std::result::Result<T, E>;

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/sqlite/0001_init.sql")),
    (2, include_str!("../../migrations/sqlite/0002_daemon.sql")),
    (
        3,
        include_str!("../../migrations/sqlite/0003_retention.sql"),
    ),
    (
        4,
        include_str!("../../migrations/sqlite/0004_conflicts.sql"),
    ),
    (5, include_str!("../../migrations/sqlite/0005_vectors.sql")),
    (
        6,
        include_str!("../../migrations/sqlite/0006_permissions.sql"),
    ),
];

/// Current time in Unix nanoseconds.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Text bound for storage, with every configured secret masked
/// ([`tributary_config::redact`]): upstream errors may echo one.
pub(crate) fn redact(text: &str) -> String {
    tributary_config::redact::redact(text).into_owned()
}

#[derive(Clone)]
pub struct Catalog {
    pool: SqlitePool,
    /// Serializes conflict decisions with the commits that apply them (see
    /// [`Catalog::claims_lock`]).
    claims: std::sync::Arc<tokio::sync::Mutex<()>>,
}

/// The catalog's view of one item, as planning needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemState {
    pub id: i64,
    pub source_id: Vec<u8>,
    pub path: Vec<u8>,
    pub deleted: bool,
    pub size: i64,
    pub mtime_ns: i64,
    pub inode: Option<i64>,
    pub change_tag: Option<String>,
    /// Its latest source state is stored but not visible (see [`NewVersion::held`]).
    pub held: bool,
    /// The principals last captured for it (see [`acl_text`]); `None`: never captured.
    pub acl: Option<String>,
}

/// The principals of a version as the catalog mirrors them: sorted, deduplicated,
/// one per line.
pub fn acl_text(principals: &[String]) -> String {
    let mut v: Vec<&str> = principals.iter().map(String::as_str).collect();
    v.sort_unstable();
    v.dedup();
    v.join("\n")
}

/// A chunk as stored: its hash, plain size, stored size and compression.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    #[serde(with = "hex_hash")]
    pub hash: Hash,
    pub size: u64,
    pub stored_size: u64,
    pub compression: Compression,
}

/// A version to commit (content or tombstone).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewVersion {
    /// The item's connector when it is not the batch's (a displaced owner).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector: Option<String>,
    #[serde(with = "hex_bytes")]
    pub source_id: Vec<u8>,
    #[serde(with = "hex_bytes")]
    pub path: Vec<u8>,
    pub deleted: bool,
    pub size: u64,
    pub mtime_ns: i64,
    pub inode: Option<i64>,
    pub change_tag: Option<String>,
    #[serde(with = "opt_hex_hash")]
    pub digest: Option<Hash>,
    pub chunks: Vec<ChunkRef>,
    /// When it was committed; set by the caller so that manifests and catalog agree.
    pub committed_at: i64,
    /// Kept aside: stored and retrievable but not the visible content of its path (a
    /// claim that lost or waits for an operator). Restore and the change feed skip it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub held: bool,
    /// The end of an owner's visibility because another claim won its path: a
    /// tombstone for readers, while the item keeps its source state (`deleted` is set).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub displaced: bool,
    /// Who may read it, where the source says (see migration 0006); `None`: not captured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principals: Option<Vec<String>>,
}

/// One catalog transaction's worth of work.
#[derive(Debug, Clone)]
pub struct CommitBatch<'a> {
    pub connector: &'a str,
    pub job_id: Option<i64>,
    pub versions: &'a [NewVersion],
    pub checkpoint: Option<&'a str>,
    pub manifest: Option<&'a str>,
    /// Conflict records written in the same transaction.
    pub conflicts: &'a [conflicts::ConflictOp],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub seq: i64,
    pub connector: String,
    pub item_id: i64,
    pub version_id: i64,
    pub op: String,
    pub path: Vec<u8>,
    pub at: i64,
}

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

/// A job's counters (a point-in-time copy of the pipeline's `Progress`); stored as
/// JSON in [`JobRow::stats`].
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Stats {
    pub files_seen: u64,
    pub files_unchanged: u64,
    pub files_planned: u64,
    pub bytes_planned: u64,
    pub files_done: u64,
    pub files_failed: u64,
    pub files_skipped: u64,
    pub files_deleted: u64,
    pub bytes_read: u64,
    pub bytes_uploaded: u64,
    pub bytes_deduplicated: u64,
    pub chunks_new: u64,
    pub chunks_reused: u64,
    pub upload_retries: u64,
    pub torn_reads: u64,
    pub conflicts: u64,
    pub files_held: u64,
    pub files_relocated: u64,
    pub versions_committed: u64,
    pub listing_done: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobRow {
    pub id: i64,
    pub connector: String,
    pub kind: String,
    pub trigger: String,
    pub status: String,
    pub queued_at: Option<i64>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub error_count: i64,
    pub last_error: Option<String>,
    pub stats: String,
}

const JOB_COLUMNS: &str = "id, connector, kind, trigger, status, queued_at, started_at, finished_at, error_count, last_error, stats";

fn job_row(r: sqlx::sqlite::SqliteRow) -> JobRow {
    JobRow {
        id: r.get(0),
        connector: r.get(1),
        kind: r.get(2),
        trigger: r.get(3),
        status: r.get(4),
        queued_at: r.get(5),
        started_at: r.get(6),
        finished_at: r.get(7),
        error_count: r.get(8),
        last_error: r.get(9),
        stats: r.get(10),
    }
}

/// Filters of a job listing.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub connector: Option<String>,
    pub status: Option<String>,
    /// Jobs queued or started at or after this time (Unix ns).
    pub since: Option<i64>,
}

/// One line of a job's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogLine {
    pub at: i64,
    pub level: String,
    pub message: String,
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
    /// Opens (creating if needed) the SQLite catalog at `path` in WAL mode and applies
    /// pending migrations.
    pub async fn open_sqlite(path: &Path) -> Result<Catalog> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| {
                CatalogError::Db(sqlx::Error::Configuration(
                    format!("create catalog directory {}: {e}", dir.display()).into(),
                ))
            })?;
        }
        let opts = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true)
            // rows cross from sqlx's worker thread in batches: large listings load 5x faster
            .row_buffer_size(4096);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await?;
        let cat = Catalog {
            pool,
            claims: Default::default(),
        };
        cat.migrate().await?;
        cat.backfill_path_keys().await?;
        Ok(cat)
    }

    async fn migrate(&self) -> Result<()> {
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
        )
        .execute(&self.pool)
        .await?;
        for (version, sql) in MIGRATIONS {
            let mut tx = self.pool.begin().await?;
            let done: Option<i64> =
                sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = $1")
                    .bind(version)
                    .fetch_optional(&mut *tx)
                    .await?;
            if done.is_some() {
                continue;
            }
            sqlx::raw_sql(*sql)
                .execute(&mut *tx)
                .await
                .map_err(|source| CatalogError::Migration {
                    version: *version,
                    source,
                })?;
            sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
                .bind(version)
                .bind(now_ns())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// True when the catalog holds no item at all.
    pub async fn is_empty(&self) -> Result<bool> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM items")
            .fetch_one(&self.pool)
            .await?;
        Ok(n == 0)
    }

    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    // ---- jobs -------------------------------------------------------------------

    pub async fn create_job(&self, connector: &str, kind: &str, trigger: &str) -> Result<i64> {
        let id = sqlx::query_scalar(
            "INSERT INTO jobs (connector, kind, trigger, status, started_at) VALUES ($1, $2, $3, 'running', $4) RETURNING id",
        )
        .bind(connector)
        .bind(kind)
        .bind(trigger)
        .bind(now_ns())
        .fetch_one(&self.pool)
        .await?;
        Ok(id)
    }

    pub async fn finish_job(
        &self,
        id: i64,
        status: &str,
        stats_json: &str,
        error_count: i64,
        last_error: Option<&str>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE jobs SET status = $1, finished_at = $2, stats = $3, error_count = $4, last_error = $5 WHERE id = $6",
        )
        .bind(status)
        .bind(now_ns())
        .bind(stats_json)
        .bind(error_count)
        .bind(last_error.map(redact))
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Marks jobs left `running` or `queued` (by a crash or a stop) as `interrupted`;
    /// returns the connectors they belonged to.
    pub async fn interrupt_unfinished_jobs(&self) -> Result<Vec<String>> {
        let connectors: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT connector FROM jobs WHERE status IN ('running', 'queued') ORDER BY connector",
        )
        .fetch_all(&self.pool)
        .await?;
        sqlx::query("UPDATE jobs SET status = 'interrupted', finished_at = $1 WHERE status IN ('running', 'queued')")
            .bind(now_ns())
            .execute(&self.pool)
            .await?;
        Ok(connectors)
    }

    pub async fn job(&self, id: i64) -> Result<Option<JobRow>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(job_row))
    }

    /// A job row in state `queued`, for the daemon's job queue.
    pub async fn create_queued_job(
        &self,
        connector: &str,
        kind: &str,
        trigger: &str,
    ) -> Result<i64> {
        let id = sqlx::query_scalar(
            "INSERT INTO jobs (connector, kind, trigger, status, queued_at) VALUES ($1, $2, $3, 'queued', $4) RETURNING id",
        )
        .bind(connector)
        .bind(kind)
        .bind(trigger)
        .bind(now_ns())
        .fetch_one(&self.pool)
        .await?;
        Ok(id)
    }

    pub async fn start_job(&self, id: i64) -> Result<()> {
        sqlx::query("UPDATE jobs SET status = 'running', started_at = $1 WHERE id = $2")
            .bind(now_ns())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Jobs, newest first, with the total count for pagination.
    pub async fn list_jobs(
        &self,
        f: &JobFilter,
        page: i64,
        per_page: i64,
    ) -> Result<(Vec<JobRow>, i64)> {
        const WHERE: &str = "($1 IS NULL OR connector = $1) AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR COALESCE(started_at, queued_at) >= $3)";
        let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM jobs WHERE {WHERE}"
        )))
        .bind(&f.connector)
        .bind(&f.status)
        .bind(f.since)
        .fetch_one(&self.pool)
        .await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE {WHERE} ORDER BY id DESC LIMIT $4 OFFSET $5"
        )))
        .bind(&f.connector)
        .bind(&f.status)
        .bind(f.since)
        .bind(per_page)
        .bind((page - 1).max(0) * per_page)
        .fetch_all(&self.pool)
        .await?;
        Ok((rows.into_iter().map(job_row).collect(), total))
    }

    /// The latest job of a connector.
    pub async fn last_job(&self, connector: &str) -> Result<Option<JobRow>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE connector = $1 ORDER BY id DESC LIMIT 1"
        )))
        .bind(connector)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(job_row))
    }

    /// When the connector's last successful job finished (Unix ns).
    pub async fn last_success(&self, connector: &str) -> Result<Option<i64>> {
        let v: Option<Option<i64>> = sqlx::query_scalar(
            "SELECT MAX(finished_at) FROM jobs WHERE connector = $1 AND status = 'succeeded'",
        )
        .bind(connector)
        .fetch_optional(&self.pool)
        .await?;
        Ok(v.flatten())
    }

    /// Counts of jobs per status.
    pub async fn job_status_counts(&self) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query("SELECT status, COUNT(*) FROM jobs GROUP BY status ORDER BY status")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Replaces a job's log with `lines`.
    pub async fn write_job_log(&self, job_id: i64, lines: &[LogLine]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM job_logs WHERE job_id = $1")
            .bind(job_id)
            .execute(&mut *tx)
            .await?;
        for (i, l) in lines.iter().enumerate() {
            sqlx::query("INSERT INTO job_logs (job_id, seq, at, level, message) VALUES ($1, $2, $3, $4, $5)")
                .bind(job_id)
                .bind(i as i64)
                .bind(l.at)
                .bind(&l.level)
                .bind(redact(&l.message))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn job_log(&self, job_id: i64) -> Result<Vec<LogLine>> {
        let rows =
            sqlx::query("SELECT at, level, message FROM job_logs WHERE job_id = $1 ORDER BY seq")
                .bind(job_id)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .map(|r| LogLine {
                at: r.get(0),
                level: r.get(1),
                message: r.get(2),
            })
            .collect())
    }

    // ---- connectors -------------------------------------------------------------

    pub async fn set_paused(&self, connector: &str, paused: bool) -> Result<()> {
        sqlx::query(
            "INSERT INTO connectors (id, updated_at, paused) VALUES ($1, $2, $3)
             ON CONFLICT (id) DO UPDATE SET paused = excluded.paused, updated_at = excluded.updated_at",
        )
        .bind(connector)
        .bind(now_ns())
        .bind(paused as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn paused_connectors(&self) -> Result<HashSet<String>> {
        let v: Vec<String> = sqlx::query_scalar("SELECT id FROM connectors WHERE paused = 1")
            .fetch_all(&self.pool)
            .await?;
        Ok(v.into_iter().collect())
    }

    // ---- items ------------------------------------------------------------------

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

    // ---- retries and retention ----------------------------------------------------

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
            let retries: i64 = r.get(1);
            let at: i64 = r.get(2);
            let wait = backoff.as_nanos() as i64 * (1i64 << retries.clamp(0, 20));
            if at.saturating_add(wait) <= now {
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

    /// Cursors below this sequence number point into pruned history.
    pub async fn pruned_through(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT pruned_through FROM feed_state WHERE id = 1")
                .fetch_optional(&self.pool)
                .await?
                .unwrap_or(0),
        )
    }

    pub async fn latest_change(&self) -> Result<i64> {
        let v: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM changes")
            .fetch_one(&self.pool)
            .await?;
        Ok(v.unwrap_or(0))
    }

    /// Drops change-feed rows older than `before` (Unix ns), always keeping the newest
    /// one, and moves the retention watermark. Returns how many were removed.
    pub async fn prune_changes(&self, before: i64) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let through: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(seq) FROM changes WHERE at < $1 AND seq < (SELECT MAX(seq) FROM changes)",
        )
        .bind(before)
        .fetch_one(&mut *tx)
        .await?;
        let Some(through) = through else { return Ok(0) };
        let r = sqlx::query("DELETE FROM changes WHERE seq <= $1")
            .bind(through)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE feed_state SET pruned_through = $1 WHERE id = 1 AND pruned_through < $1",
        )
        .bind(through)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(r.rows_affected())
    }

    // ---- planning ---------------------------------------------------------------

    /// Every item of a connector (live and deleted). Read through the raw connection
    /// ([`bulk`]): at the start of every job, for every file the connector has.
    pub async fn items(&self, connector: &str) -> Result<Vec<ItemState>> {
        let mut conn = self.pool.acquire().await?;
        let mut handle = conn.lock_handle().await?;
        let db = handle.as_raw_handle();
        let read = || {
            // SAFETY: sqlx lends the connection exclusively while `handle` lives
            #[allow(unsafe_code)]
            unsafe {
                bulk::items(db, connector)
            }
        };
        // a long read: keep the other tasks of this runtime thread moving
        match tokio::runtime::Handle::current().runtime_flavor() {
            tokio::runtime::RuntimeFlavor::CurrentThread => read(),
            _ => tokio::task::block_in_place(read),
        }
    }

    pub async fn checkpoint(&self, connector: &str) -> Result<Option<String>> {
        let v: Option<Option<String>> =
            sqlx::query_scalar("SELECT checkpoint FROM connectors WHERE id = $1")
                .bind(connector)
                .fetch_optional(&self.pool)
                .await?;
        Ok(v.flatten())
    }

    /// The chunks among `hashes` that the catalog already holds (committed).
    pub async fn known_chunks(&self, hashes: &[Hash]) -> Result<HashMap<Hash, ChunkRef>> {
        let mut found = HashMap::new();
        for batch in hashes.chunks(500) {
            let sql = format!(
                "SELECT hash, size, stored_size, compression FROM chunks WHERE refcount > 0 AND hash IN ({})",
                placeholders(batch.len())
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for h in batch {
                q = q.bind(h.as_slice());
            }
            for row in q.fetch_all(&self.pool).await? {
                let c = chunk_ref(row)?;
                found.insert(c.hash, c);
            }
        }
        Ok(found)
    }

    /// The manifest keys among `keys` that committed versions name.
    pub async fn known_manifests(&self, keys: &[String]) -> Result<HashSet<String>> {
        let mut found = HashSet::new();
        for batch in keys.chunks(500) {
            let sql = format!(
                "SELECT DISTINCT manifest FROM versions WHERE manifest IN ({})",
                placeholders(batch.len())
            );
            let mut q = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql));
            for k in batch {
                q = q.bind(k);
            }
            found.extend(q.fetch_all(&self.pool).await?);
        }
        Ok(found)
    }

    // ---- commit -----------------------------------------------------------------

    /// Commits a batch in one transaction. Returns the new version ids in order.
    pub async fn commit_batch(&self, batch: &CommitBatch<'_>) -> Result<Vec<i64>> {
        let mut tx = self.pool.begin().await?;
        let mut ids = Vec::with_capacity(batch.versions.len());
        for v in batch.versions {
            ids.push(insert_version(&mut tx, batch, v).await?);
        }
        conflicts::apply_ops(&mut tx, batch.conflicts).await?;
        sqlx::query(
            "INSERT INTO connectors (id, checkpoint, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (id) DO UPDATE SET checkpoint = COALESCE(excluded.checkpoint, connectors.checkpoint), updated_at = excluded.updated_at",
        )
        .bind(batch.connector)
        .bind(batch.checkpoint)
        .bind(now_ns())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(ids)
    }

    // ---- item errors ------------------------------------------------------------

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

    // ---- change feed --------------------------------------------------------------

    pub async fn changes(&self, after: i64, limit: i64) -> Result<Vec<Change>> {
        let rows = sqlx::query(
            "SELECT seq, connector, item_id, version_id, op, path, at FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| Change {
                seq: r.get(0),
                connector: r.get(1),
                item_id: r.get(2),
                version_id: r.get(3),
                op: r.get(4),
                path: r.get(5),
                at: r.get(6),
            })
            .collect())
    }

    // ---- restore / verify / gc ----------------------------------------------------

    /// The files under `prefix` (a path prefix in the target namespace, raw bytes) as
    /// they were at `at` (Unix ns; `None` = now). Tombstoned items are left out.
    pub async fn restore_set(&self, prefix: &[u8], at: Option<i64>) -> Result<Vec<RestoreEntry>> {
        let at = at.unwrap_or(i64::MAX);
        let (lo, hi) = prefix_range(prefix);
        let rows = sqlx::query(
            "SELECT i.path, v.id, v.deleted, v.size, v.mtime_ns, v.digest
             FROM items i JOIN versions v ON v.item_id = i.id
             WHERE i.path >= $1 AND ($2 IS NULL OR i.path < $2)
               AND v.id = (SELECT v2.id FROM versions v2 WHERE v2.item_id = i.id AND v2.committed_at <= $3 AND v2.held = 0
                           ORDER BY v2.committed_at DESC, v2.id DESC LIMIT 1)
             ORDER BY i.path",
        )
        .bind(lo)
        .bind(hi)
        .bind(at)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::new();
        for r in rows {
            if r.get::<i64, _>(2) != 0 {
                continue;
            }
            let vid: i64 = r.get(1);
            let digest: Option<Vec<u8>> = r.get(5);
            out.push(RestoreEntry {
                path: r.get(0),
                size: r.get::<i64, _>(3) as u64,
                mtime_ns: r.get(4),
                digest: digest.map(|d| to_hash(&d)).transpose()?,
                chunks: self.version_chunks(vid).await?,
            });
        }
        Ok(out)
    }

    async fn version_chunks(&self, version_id: i64) -> Result<Vec<ChunkRef>> {
        let rows = sqlx::query(
            "SELECT c.hash, c.size, c.stored_size, c.compression FROM version_chunks vc JOIN chunks c ON c.hash = vc.hash
             WHERE vc.version_id = $1 ORDER BY vc.idx",
        )
        .bind(version_id)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(chunk_ref).collect()
    }

    /// Every chunk the catalog holds, ordered by hash, in pages after `after`.
    pub async fn chunks_page(&self, after: Option<Hash>, limit: i64) -> Result<Vec<ChunkRef>> {
        let after = after.map(|h| h.to_vec()).unwrap_or_default();
        let rows = sqlx::query(
            "SELECT hash, size, stored_size, compression FROM chunks WHERE hash > $1 AND refcount > 0 ORDER BY hash LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(chunk_ref).collect()
    }

    /// Reference count and orphaning time (Unix ns, when the count fell to 0) of the
    /// chunks among `hashes` that have a row.
    pub async fn chunk_states(&self, hashes: &[Hash]) -> Result<HashMap<Hash, (i64, Option<i64>)>> {
        let mut found = HashMap::new();
        for batch in hashes.chunks(500) {
            let sql = format!(
                "SELECT hash, refcount, orphaned_at FROM chunks WHERE hash IN ({})",
                placeholders(batch.len())
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for h in batch {
                q = q.bind(h.as_slice());
            }
            for row in q.fetch_all(&self.pool).await? {
                found.insert(
                    to_hash(&row.get::<Vec<u8>, _>(0))?,
                    (row.get(1), row.get(2)),
                );
            }
        }
        Ok(found)
    }

    /// Drops the row of a chunk whose object gc deleted, if it is still unreferenced.
    pub async fn forget_chunk(&self, hash: &Hash) -> Result<()> {
        sqlx::query("DELETE FROM chunks WHERE hash = $1 AND refcount = 0")
            .bind(hash.as_slice())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Version retention: removes versions committed before `before` (Unix ns), except
    /// each item's current version and the one that was current at `before` (so any
    /// restore as of `before` or later stays exact); an item whose tombstone is older
    /// than `before` goes entirely. A held item keeps its latest held claim, and a claim
    /// of an open conflict keeps all of them, whatever their age. Chunk reference counts
    /// follow; a chunk that loses its last reference is marked orphaned for gc. Returns
    /// (versions, items) removed.
    pub async fn prune_versions(&self, before: i64) -> Result<(u64, u64)> {
        let mut tx = self.pool.begin().await?;
        let doomed: Vec<i64> = sqlx::query_scalar(
            "SELECT v.id FROM versions v JOIN items i ON i.id = v.item_id
             WHERE v.committed_at < $1
               AND NOT (v.held = 1 AND EXISTS (SELECT 1 FROM conflict_claims k JOIN conflicts c ON c.id = k.conflict_id
                                               WHERE c.status = 'open' AND k.connector = i.connector AND k.source_id = i.source_id))
               AND ((i.deleted = 1 AND i.held = 0 AND (SELECT c.committed_at FROM versions c WHERE c.id = i.current_version) < $1)
                    OR (v.id <> i.current_version
                        AND v.id <> (SELECT k.id FROM versions k WHERE k.item_id = v.item_id AND k.committed_at < $1 AND k.held = 0
                                     ORDER BY k.committed_at DESC, k.id DESC LIMIT 1)
                        AND NOT (i.held = 1 AND v.id = (SELECT h.id FROM versions h WHERE h.item_id = v.item_id AND h.held = 1
                                                        ORDER BY h.committed_at DESC, h.id DESC LIMIT 1))))",
        )
        .bind(before)
        .fetch_all(&mut *tx)
        .await?;
        let now = now_ns();
        for batch in doomed.chunks(500) {
            let list = placeholders(batch.len());
            let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT hash, COUNT(*) FROM version_chunks WHERE version_id IN ({list}) GROUP BY hash"
            )));
            for id in batch {
                q = q.bind(id);
            }
            let counts: Vec<(Vec<u8>, i64)> = q
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
            for (hash, n) in counts {
                sqlx::query(
                    "UPDATE chunks SET refcount = refcount - $1,
                       orphaned_at = CASE WHEN refcount - $1 <= 0 THEN $2 ELSE orphaned_at END
                     WHERE hash = $3",
                )
                .bind(n)
                .bind(now)
                .bind(&hash)
                .execute(&mut *tx)
                .await?;
            }
            for table in [
                "version_chunks WHERE version_id",
                "version_principals WHERE version_id",
                "versions WHERE id",
            ] {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DELETE FROM {table} IN ({list})"
                )));
                for id in batch {
                    q = q.bind(id);
                }
                q.execute(&mut *tx).await?;
            }
        }
        let items = sqlx::query("DELETE FROM items WHERE NOT EXISTS (SELECT 1 FROM versions v WHERE v.item_id = items.id)")
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok((doomed.len() as u64, items))
    }

    /// Whether a chunk is committed with a positive reference count.
    pub async fn chunk_referenced(&self, hash: &Hash) -> Result<bool> {
        let n: Option<i64> = sqlx::query_scalar("SELECT refcount FROM chunks WHERE hash = $1")
            .bind(hash.as_slice())
            .fetch_optional(&self.pool)
            .await?;
        Ok(n.unwrap_or(0) > 0)
    }

    /// Counts for status output.
    pub async fn counts(&self) -> Result<(i64, i64, i64)> {
        let r = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM items WHERE deleted = 0), (SELECT COUNT(*) FROM versions), (SELECT COUNT(*) FROM chunks)",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok((r.get(0), r.get(1), r.get(2)))
    }

    // ---- leases -----------------------------------------------------------------

    /// Takes the named lease for `ttl` unless someone else holds an unexpired one.
    pub async fn try_lock(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool> {
        let now = now_ns();
        let r = sqlx::query(
            "INSERT INTO locks (name, holder, expires_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
             WHERE locks.expires_at < $4 OR locks.holder = excluded.holder",
        )
        .bind(name)
        .bind(holder)
        .bind(now + ttl.as_nanos() as i64)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    pub async fn unlock(&self, name: &str, holder: &str) -> Result<()> {
        sqlx::query("DELETE FROM locks WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

async fn insert_version(
    tx: &mut Transaction<'_, Sqlite>,
    batch: &CommitBatch<'_>,
    v: &NewVersion,
) -> Result<i64> {
    let connector = v.connector.as_deref().unwrap_or(batch.connector);
    let item_id: i64 = sqlx::query_scalar(
        "INSERT INTO items (connector, source_id, path, path_key) VALUES ($1, $2, $3, $4)
         ON CONFLICT (connector, source_id) DO UPDATE SET path = excluded.path, path_key = excluded.path_key
         RETURNING id",
    )
    .bind(connector)
    .bind(&v.source_id)
    .bind(&v.path)
    .bind(conflicts::path_key(&v.path))
    .fetch_one(&mut **tx)
    .await?;
    let version_id: i64 = sqlx::query_scalar(
        "INSERT INTO versions (item_id, job_id, deleted, size, mtime_ns, inode, change_tag, digest, committed_at, manifest, held)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
    )
    .bind(item_id)
    .bind(batch.job_id)
    .bind(v.deleted as i64)
    .bind(v.size as i64)
    .bind(v.mtime_ns)
    .bind(v.inode)
    .bind(&v.change_tag)
    .bind(v.digest.map(|d| d.to_vec()))
    .bind(v.committed_at)
    .bind(batch.manifest)
    .bind(v.held as i64)
    .fetch_one(&mut **tx)
    .await?;
    if let Some(principals) = &v.principals {
        let text = acl_text(principals);
        for p in text.lines().filter(|p| !p.is_empty()) {
            sqlx::query("INSERT INTO version_principals (version_id, principal) VALUES ($1, $2)")
                .bind(version_id)
                .bind(p)
                .execute(&mut **tx)
                .await?;
        }
        if !v.displaced {
            sqlx::query("UPDATE items SET acl = $1 WHERE id = $2")
                .bind(&text)
                .bind(item_id)
                .execute(&mut **tx)
                .await?;
        }
    }
    for (idx, c) in v.chunks.iter().enumerate() {
        sqlx::query(
            "INSERT INTO chunks (hash, size, stored_size, compression, refcount, created_at) VALUES ($1, $2, $3, $4, 1, $5)
             ON CONFLICT (hash) DO UPDATE SET refcount = chunks.refcount + 1, orphaned_at = NULL,
               stored_size = excluded.stored_size, compression = excluded.compression",
        )
        .bind(c.hash.as_slice())
        .bind(c.size as i64)
        .bind(c.stored_size as i64)
        .bind(c.compression.as_str())
        .bind(v.committed_at)
        .execute(&mut **tx)
        .await?;
        sqlx::query("INSERT INTO version_chunks (version_id, idx, hash) VALUES ($1, $2, $3)")
            .bind(version_id)
            .bind(idx as i64)
            .bind(c.hash.as_slice())
            .execute(&mut **tx)
            .await?;
    }
    if v.displaced {
        // the owner's content stops being visible; its source state stays mirrored
        sqlx::query("UPDATE items SET current_version = $1, deleted = 1, held = 1 WHERE id = $2")
            .bind(version_id)
            .bind(item_id)
            .execute(&mut **tx)
            .await?;
    } else if v.held {
        // a claim kept aside: mirrored (so an unchanged source is not read again) but
        // not visible; a held tombstone simply ends the claim
        sqlx::query(
            "UPDATE items SET deleted = CASE WHEN current_version IS NULL THEN 1 ELSE deleted END,
               held = $1, size = $2, mtime_ns = $3, inode = $4, change_tag = $5 WHERE id = $6",
        )
        .bind(!v.deleted as i64)
        .bind(v.size as i64)
        .bind(v.mtime_ns)
        .bind(v.inode)
        .bind(&v.change_tag)
        .bind(item_id)
        .execute(&mut **tx)
        .await?;
    } else {
        sqlx::query(
            "UPDATE items SET current_version = $1, deleted = $2, held = 0, size = $3, mtime_ns = $4, inode = $5, change_tag = $6 WHERE id = $7",
        )
        .bind(version_id)
        .bind(v.deleted as i64)
        .bind(v.size as i64)
        .bind(v.mtime_ns)
        .bind(v.inode)
        .bind(&v.change_tag)
        .bind(item_id)
        .execute(&mut **tx)
        .await?;
    }
    if !v.held {
        sqlx::query(
            "INSERT INTO changes (connector, item_id, version_id, op, path, at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(connector)
        .bind(item_id)
        .bind(version_id)
        .bind(if v.deleted { "delete" } else { "upsert" })
        .bind(&v.path)
        .bind(v.committed_at)
        .execute(&mut **tx)
        .await?;
    }
    if !v.displaced {
        sqlx::query("DELETE FROM item_errors WHERE connector = $1 AND source_id = $2")
            .bind(connector)
            .bind(&v.source_id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(version_id)
}

/// `$1, $2, …, $n` for an `IN (…)` list of `n` bound values.
fn placeholders(n: usize) -> String {
    (1..=n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
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

fn chunk_ref(r: sqlx::sqlite::SqliteRow) -> Result<ChunkRef> {
    Ok(ChunkRef {
        hash: to_hash(&r.get::<Vec<u8>, _>(0))?,
        size: r.get::<i64, _>(1) as u64,
        stored_size: r.get::<i64, _>(2) as u64,
        compression: r.get::<&str, _>(3).parse().map_err(CatalogError::Corrupt)?,
    })
}

fn to_hash(b: &[u8]) -> Result<Hash> {
    b.try_into()
        .map_err(|_| CatalogError::Corrupt(format!("hash of {} bytes, expected 32", b.len())))
}

/// `[lo, hi)` bounds of all byte strings starting with `prefix`; `hi` is `None` when
/// there is no upper bound (prefix all 0xff or empty).
fn prefix_range(prefix: &[u8]) -> (Vec<u8>, Option<Vec<u8>>) {
    let mut hi = prefix.to_vec();
    while let Some(last) = hi.pop() {
        if last < 0xff {
            hi.push(last + 1);
            return (prefix.to_vec(), Some(hi));
        }
    }
    (prefix.to_vec(), None)
}

mod hex_hash {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(h: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(h))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        hex::FromHex::from_hex(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

mod opt_hex_hash {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(h: &Option<[u8; 32]>, s: S) -> Result<S::Ok, S::Error> {
        match h {
            Some(h) => super::hex_hash::serialize(h, s),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<[u8; 32]>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| hex::FromHex::from_hex(s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(b))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        hex::decode(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ranges() {
        assert_eq!(prefix_range(b"/a"), (b"/a".to_vec(), Some(b"/b".to_vec())));
        assert_eq!(
            prefix_range(&[0x61, 0xff]),
            (vec![0x61, 0xff], Some(vec![0x62]))
        );
        assert_eq!(prefix_range(b""), (vec![], None));
    }

    /// The item read takes the row-order path when a connector's rows fill most of
    /// their id range and the index otherwise; both give every item exactly once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn item_states_whether_rows_are_contiguous_or_interleaved() {
        type Row = (i64, Vec<u8>, Vec<u8>, bool, i64, i64);
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open_sqlite(&dir.path().join("c.db"))
            .await
            .unwrap();
        // `dense` owns ids 1..=300; then `sparse` gets every tenth of the next 300 rows
        for i in 0..600 {
            let connector = match i {
                0..300 => "dense",
                _ if i % 10 == 0 => "sparse",
                _ => "other",
            };
            sqlx::query(
                "INSERT INTO items (connector, source_id, path, deleted, size, mtime_ns) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(connector)
            .bind(format!("f{:04}", 600 - i).into_bytes())
            .bind(format!("/{connector}/f{i}").into_bytes())
            .bind(i64::from(i % 7 == 0))
            .bind(i64::from(i) * 3)
            .bind(i64::from(i) * 1_000)
            .execute(&cat.pool)
            .await
            .unwrap();
        }
        for (connector, n) in [("dense", 300), ("sparse", 30), ("other", 270), ("none", 0)] {
            let mut got = cat.items(connector).await.unwrap();
            got.sort_by_key(|s| s.id);
            let want: Vec<Row> = sqlx::query_as(
                "SELECT id, source_id, path, deleted, size, mtime_ns FROM items WHERE connector = $1 ORDER BY id",
            )
            .bind(connector)
            .fetch_all(&cat.pool)
            .await
            .unwrap();
            assert_eq!(got.len(), n, "{connector}");
            let got: Vec<_> = got
                .into_iter()
                .map(|s| (s.id, s.source_id, s.path, s.deleted, s.size, s.mtime_ns))
                .collect();
            assert_eq!(got, want, "{connector}");
        }
    }
}
