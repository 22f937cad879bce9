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

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Postgres, Sqlite, Transaction};

/// Runs `$body` with `$pool` bound to the catalog's pool: the body is compiled once per
/// backend, so one SQL text serves both where the dialects agree.
macro_rules! with_pool {
    ($self:expr, |$pool:ident| $body:expr) => {
        match &$self.db {
            $crate::Db::Sqlite($pool) => $body,
            $crate::Db::Postgres($pool) => $body,
        }
    };
}

/// [`with_pool!`] for a transaction ([`Tx`]): `$conn` is its connection.
macro_rules! on_tx {
    ($tx:expr, |$conn:ident| $body:expr) => {
        match $tx {
            $crate::Tx::Sqlite(t) => {
                let $conn = &mut **t;
                $body
            }
            $crate::Tx::Postgres(t) => {
                let $conn = &mut **t;
                $body
            }
        }
    };
}

pub mod api_connectors;
pub mod audit;
mod bulk;
mod commit;
mod commit_pg;
pub mod conflicts;
pub mod copy;
mod feed;
pub mod fleet_events;
mod gc;
mod instances;
mod items;
mod jobs;
mod packs;
pub mod pgvector;
mod planning;
mod postgres;
pub mod queue;
mod rechunk;
mod rows;
pub mod signals;
mod usage;
pub mod vectors;

pub use conflicts::{
    ConflictFilter, ConflictOp, ConflictRow, Namespace, Party, Policy, ResolveError,
};

pub use commit::{ChunkRef, CommitBatch, ItemState, NewVersion, acl_text};
pub use feed::Change;
pub use instances::{INSTANCE_DOWN_AFTER, InstanceRow, instance_state};
pub use items::{DueRetry, ItemError, ItemFilter, ItemRow, RestoreEntry, VersionRow};
pub use jobs::{JobFilter, JobRow, LogLine, Stats};
pub use packs::{PackChunk, PackUsage};
pub use postgres::PgSettings;
pub use rechunk::ContentVersion;
pub use usage::Usage;

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
    /// The catalog cannot be opened: where it is (never a password) and why.
    #[error("{0}")]
    Open(String),
    /// A catalog copy refused or found wrong ([`copy`]).
    #[error("catalog copy: {0}")]
    Copy(String),
    /// The connector already has a queued or running job (this one), on this instance
    /// or another.
    #[error("connector {connector} already has a job queued or running (job {job})")]
    JobActive { connector: String, job: i64 },
    /// A job was to be queued on the sight of the connector's latest job, and a later
    /// one (this one) exists by now ([`Catalog::create_queued_job_after`]).
    #[error("connector {connector} has a later job (job {job}); not queued")]
    JobSuperseded { connector: String, job: i64 },
    /// A job's commit found that its instance no longer holds the connector's lease
    /// (it expired and the job was interrupted, or the job ended): nothing of the
    /// batch was committed.
    #[error(
        "job {job} no longer holds its connector's lease ({why}); nothing more of it is committed"
    )]
    LeaseLost { job: i64, why: String },
}

pub type Result<T, E = CatalogError> = std::result::Result<T, E>;

/// The migrations of each backend, by version: the same versions and the same tables
/// in each dialect.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        include_str!("../../migrations/sqlite/0001_init.sql"),
        include_str!("../../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        include_str!("../../migrations/sqlite/0002_daemon.sql"),
        include_str!("../../migrations/postgres/0002_daemon.sql"),
    ),
    (
        3,
        include_str!("../../migrations/sqlite/0003_retention.sql"),
        include_str!("../../migrations/postgres/0003_retention.sql"),
    ),
    (
        4,
        include_str!("../../migrations/sqlite/0004_conflicts.sql"),
        include_str!("../../migrations/postgres/0004_conflicts.sql"),
    ),
    (
        5,
        include_str!("../../migrations/sqlite/0005_vectors.sql"),
        include_str!("../../migrations/postgres/0005_vectors.sql"),
    ),
    (
        6,
        include_str!("../../migrations/sqlite/0006_permissions.sql"),
        include_str!("../../migrations/postgres/0006_permissions.sql"),
    ),
    (
        7,
        include_str!("../../migrations/sqlite/0007_packs.sql"),
        include_str!("../../migrations/postgres/0007_packs.sql"),
    ),
    (
        8,
        include_str!("../../migrations/sqlite/0008_store_state.sql"),
        include_str!("../../migrations/postgres/0008_store_state.sql"),
    ),
    (
        9,
        include_str!("../../migrations/sqlite/0009_instances.sql"),
        include_str!("../../migrations/postgres/0009_instances.sql"),
    ),
    (
        10,
        include_str!("../../migrations/sqlite/0010_one_active_job.sql"),
        include_str!("../../migrations/postgres/0010_one_active_job.sql"),
    ),
    (
        11,
        include_str!("../../migrations/sqlite/0011_job_queue.sql"),
        include_str!("../../migrations/postgres/0011_job_queue.sql"),
    ),
    (
        12,
        include_str!("../../migrations/sqlite/0012_audit.sql"),
        include_str!("../../migrations/postgres/0012_audit.sql"),
    ),
    (
        13,
        include_str!("../../migrations/sqlite/0013_api_connectors.sql"),
        include_str!("../../migrations/postgres/0013_api_connectors.sql"),
    ),
    (
        14,
        include_str!("../../migrations/sqlite/0014_dry_run.sql"),
        include_str!("../../migrations/postgres/0014_dry_run.sql"),
    ),
    (
        15,
        include_str!("../../migrations/sqlite/0015_usage.sql"),
        include_str!("../../migrations/postgres/0015_usage.sql"),
    ),
    (
        16,
        include_str!("../../migrations/sqlite/0016_event_seq.sql"),
        include_str!("../../migrations/postgres/0016_event_seq.sql"),
    ),
    (
        17,
        include_str!("../../migrations/sqlite/0017_instance_down.sql"),
        include_str!("../../migrations/postgres/0017_instance_down.sql"),
    ),
];

/// The newest schema version this binary knows.
pub const SCHEMA_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].0;

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

/// The database behind a catalog.
#[derive(Clone)]
pub(crate) enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A catalog transaction on either backend (see [`on_tx!`]).
pub(crate) enum Tx<'c> {
    Sqlite(Transaction<'c, Sqlite>),
    Postgres(Transaction<'c, Postgres>),
}

impl Tx<'_> {
    pub(crate) async fn commit(self) -> Result<()> {
        match self {
            Tx::Sqlite(t) => t.commit().await?,
            Tx::Postgres(t) => t.commit().await?,
        }
        Ok(())
    }
}

impl<'c> From<Transaction<'c, Sqlite>> for Tx<'c> {
    fn from(t: Transaction<'c, Sqlite>) -> Self {
        Tx::Sqlite(t)
    }
}

impl<'c> From<Transaction<'c, Postgres>> for Tx<'c> {
    fn from(t: Transaction<'c, Postgres>) -> Self {
        Tx::Postgres(t)
    }
}

/// Which backend a catalog runs on, and where.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CatalogInfo {
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    /// The server's version (`SELECT version()` on PostgreSQL, the library's on SQLite).
    pub server_version: String,
    /// The schema version the catalog is at.
    pub schema_version: i64,
    /// The newest schema version this binary knows.
    pub binary_schema_version: i64,
}

#[derive(Clone)]
pub struct Catalog {
    db: Db,
    /// Serializes conflict decisions with the commits that apply them (see
    /// [`Catalog::claims_lock`]).
    claims: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// The daemon instance acting through this handle ([`Catalog::for_instance`]): the
    /// jobs it creates record it.
    instance: Option<std::sync::Arc<str>>,
}

impl Catalog {
    /// Opens (creating if needed) the SQLite catalog at `path` in WAL mode and applies
    /// pending migrations.
    pub async fn open_sqlite(path: &Path) -> Result<Catalog> {
        let cat = Catalog::connect_sqlite(path).await?;
        cat.migrate().await?;
        cat.backfill_path_keys().await?;
        Ok(cat)
    }

    /// The SQLite catalog at `path`, without applying migrations.
    pub async fn connect_sqlite(path: &Path) -> Result<Catalog> {
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
        Ok(Catalog {
            db: Db::Sqlite(pool),
            claims: Default::default(),
            instance: None,
        })
    }

    /// Opens the PostgreSQL catalog `settings` name and applies pending migrations
    /// (under an advisory lock: instances starting together do not race).
    pub async fn open_postgres(settings: &PgSettings) -> Result<Catalog> {
        let cat = Catalog::connect_postgres(settings).await?;
        cat.migrate().await.map_err(|e| settings.explain(e))?;
        cat.backfill_path_keys().await?;
        Ok(cat)
    }

    /// The PostgreSQL catalog `settings` name, without applying migrations.
    pub async fn connect_postgres(settings: &PgSettings) -> Result<Catalog> {
        let opts: PgConnectOptions = settings.connect_options()?;
        // one connection first, for its own error: the pool retries a refused or
        // unreachable server until its timeout and then says only that it timed out
        use sqlx::Connection as _;
        let explain = |e| settings.explain(CatalogError::Db(e));
        match tokio::time::timeout(
            settings.connect_timeout,
            sqlx::PgConnection::connect_with(&opts),
        )
        .await
        {
            Ok(Ok(first)) => {
                let _ = first.close().await;
            }
            Ok(Err(e)) => return Err(explain(e)),
            Err(_) => return Err(explain(sqlx::Error::PoolTimedOut)),
        }
        let pool = PgPoolOptions::new()
            .max_connections(settings.pool_size)
            .acquire_timeout(settings.connect_timeout)
            .connect_with(opts)
            .await
            .map_err(explain)?;
        Ok(Catalog {
            db: Db::Postgres(pool),
            claims: Default::default(),
            instance: None,
        })
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self.db {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    /// The schema version the catalog is at (0: empty), and the versions this binary
    /// would apply to it.
    pub async fn migration_state(&self) -> Result<(i64, Vec<i64>)> {
        let exists: bool = with_pool!(self, |pool| {
            let sql = match self.db {
                Db::Sqlite(_) => {
                    "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
                }
                Db::Postgres(_) => "SELECT to_regclass('schema_migrations') IS NOT NULL",
            };
            sqlx::query_scalar(sql).fetch_one(pool).await?
        });
        let applied: Vec<i64> = if exists {
            with_pool!(self, |pool| {
                sqlx::query_scalar("SELECT version FROM schema_migrations ORDER BY version")
                    .fetch_all(pool)
                    .await?
            })
        } else {
            Vec::new()
        };
        let at = applied.iter().copied().max().unwrap_or(0);
        let pending = MIGRATIONS
            .iter()
            .map(|m| m.0)
            .filter(|v| !applied.contains(v))
            .collect();
        Ok((at, pending))
    }

    /// Which backend, server and schema version.
    pub async fn info(&self) -> Result<CatalogInfo> {
        let server_version: String = with_pool!(self, |pool| {
            let sql = match self.db {
                Db::Sqlite(_) => "SELECT 'SQLite ' || sqlite_version()",
                Db::Postgres(_) => "SELECT version()",
            };
            sqlx::query_scalar(sql).fetch_one(pool).await?
        });
        let (schema_version, _) = self.migration_state().await?;
        Ok(CatalogInfo {
            backend: self.backend(),
            server_version,
            schema_version,
            binary_schema_version: SCHEMA_VERSION,
        })
    }

    /// Applies the pending migrations; refuses a catalog at a newer schema than this
    /// binary knows (it was written by a newer version).
    pub async fn migrate(&self) -> Result<Vec<i64>> {
        let (at, _) = self.migration_state().await?;
        if at > SCHEMA_VERSION {
            return Err(CatalogError::Open(format!(
                "the catalog is at schema version {at}, newer than this binary's {SCHEMA_VERSION}: it was written by a newer Tributary; run that version (or a newer one)"
            )));
        }
        let mut applied = Vec::new();
        for (version, sqlite_sql, pg_sql) in MIGRATIONS {
            let done = with_pool!(self, |pool| {
                let mut tx = pool.begin().await?;
                let sql = match self.db {
                    Db::Sqlite(_) => *sqlite_sql,
                    Db::Postgres(_) => {
                        // one instance migrates at a time; the others wait, then see it done
                        sqlx::query("SELECT pg_advisory_xact_lock($1)")
                            .bind(postgres::MIGRATION_LOCK)
                            .execute(&mut *tx)
                            .await?;
                        *pg_sql
                    }
                };
                sqlx::raw_sql(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
                )
                .execute(&mut *tx)
                .await?;
                let done: Option<i64> =
                    sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = $1")
                        .bind(version)
                        .fetch_optional(&mut *tx)
                        .await?;
                if done.is_none() {
                    sqlx::raw_sql(sql)
                        .execute(&mut *tx)
                        .await
                        .map_err(|source| CatalogError::Migration {
                            version: *version,
                            source,
                        })?;
                    sqlx::query(
                        "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
                    )
                    .bind(version)
                    .bind(now_ns())
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                done.is_none()
            });
            if done {
                applied.push(*version);
            }
        }
        Ok(applied)
    }

    /// True when the catalog holds no item at all.
    pub async fn is_empty(&self) -> Result<bool> {
        let n: i64 = with_pool!(self, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM items")
                .fetch_one(pool)
                .await?
        });
        Ok(n == 0)
    }

    pub async fn ping(&self) -> Result<()> {
        with_pool!(self, |pool| {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    pub async fn close(&self) {
        with_pool!(self, |pool| pool.close().await)
    }

    #[cfg(test)]
    fn sqlite_pool(&self) -> &SqlitePool {
        match &self.db {
            Db::Sqlite(p) => p,
            Db::Postgres(_) => panic!("a SQLite catalog"),
        }
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
            .execute(cat.sqlite_pool())
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
            .fetch_all(cat.sqlite_pool())
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
