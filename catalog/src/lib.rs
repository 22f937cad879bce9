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

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

mod bulk;
mod commit;
pub mod conflicts;
mod feed;
mod gc;
mod items;
mod jobs;
mod packs;
pub mod pgvector;
mod planning;
mod rechunk;
mod rows;
pub mod vectors;

pub use conflicts::{
    ConflictFilter, ConflictOp, ConflictRow, Namespace, Party, Policy, ResolveError,
};

pub use commit::{ChunkRef, CommitBatch, ItemState, NewVersion, acl_text};
pub use feed::Change;
pub use items::{DueRetry, ItemError, ItemFilter, ItemRow, RestoreEntry, VersionRow};
pub use jobs::{JobFilter, JobRow, LogLine, Stats};
pub use packs::{PackChunk, PackUsage};
pub use rechunk::ContentVersion;

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
    (7, include_str!("../../migrations/sqlite/0007_packs.sql")),
    (
        8,
        include_str!("../../migrations/sqlite/0008_store_state.sql"),
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

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
