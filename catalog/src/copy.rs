//! `tributary catalog copy`: every row of one catalog into another, empty one — an
//! installation moves from SQLite to PostgreSQL (or between servers) without
//! re-ingesting a byte.
//!
//! The source is read in one transaction, so a live installation (a daemon still
//! writing) is copied as of one moment; the destination is written in one transaction,
//! so a copy that fails leaves it empty. Row ids are kept (change-feed cursors, job and
//! conflict ids stay valid) and PostgreSQL's id sequences continue after them. Every
//! table is counted on both sides at the end: a copy whose counts differ is an error.
//! Leases (`locks`, `vector_claims`), the instance registry (`instances`) and the
//! record of schedule firings (`schedule_fires`) are not copied: they belong to the processes of the
//! source (jobs keep the name of the instance that ran them). Nor is the usage each
//! connector's content makes (`connector_usage`): it is derived, and recalculated; nor the
//! fleet's event counter (`event_seq`): event ids belong to the running fleet.

use std::collections::BTreeSet;

use futures::TryStreamExt;
use serde::Serialize;
use sqlx::Row;

use crate::{Catalog, CatalogError, Db, Result};

/// The tables copied, parents before the tables that reference them.
pub const TABLES: &[&str] = &[
    "connectors",
    "jobs",
    "job_logs",
    "items",
    "versions",
    "chunks",
    "version_chunks",
    "version_principals",
    "changes",
    "feed_state",
    "item_errors",
    "conflicts",
    "conflict_claims",
    "index_state",
    "passages",
    "vector_meta",
    "store_state",
    "audit",
    "api_connectors",
];

/// Tables a new catalog is created with rows in (the feed's state): the copy replaces
/// those rows.
const REPLACED: &[&str] = &["feed_state"];

/// Tables of a catalog that are not copied (see the module docs).
pub const NOT_COPIED: &[&str] = &[
    "locks",
    "instances",
    "schedule_fires",
    "vector_claims",
    "connector_usage",
    "event_seq",
];

/// Columns whose values PostgreSQL numbers itself (identity columns), by table.
const IDENTITIES: &[(&str, &str)] = &[
    ("jobs", "id"),
    ("items", "id"),
    ("versions", "id"),
    ("changes", "seq"),
    ("conflicts", "id"),
    ("passages", "id"),
    ("audit", "id"),
];

/// Rows written per statement.
const BATCH_ROWS: usize = 2000;

/// One table copied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableCopy {
    pub table: String,
    /// Rows in the source (as of the copy's snapshot) and in the destination after it.
    pub source_rows: u64,
    pub copied_rows: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    Text,
    Bytes,
}

/// A column of a batch of rows.
enum Column {
    Int(Vec<Option<i64>>),
    Text(Vec<Option<String>>),
    Bytes(Vec<Option<Vec<u8>>>),
}

impl Column {
    fn new(kind: Kind) -> Column {
        match kind {
            Kind::Int => Column::Int(Vec::new()),
            Kind::Text => Column::Text(Vec::new()),
            Kind::Bytes => Column::Bytes(Vec::new()),
        }
    }
}

/// The kind of a column from its declared type (SQLite) or data type (PostgreSQL).
fn kind_of(declared: &str) -> Option<Kind> {
    let t = declared.to_ascii_lowercase();
    if t.contains("int") {
        Some(Kind::Int)
    } else if t.contains("text") || t.contains("char") {
        Some(Kind::Text)
    } else if t.contains("blob") || t == "bytea" {
        Some(Kind::Bytes)
    } else {
        None
    }
}

fn schema_error(msg: String) -> CatalogError {
    CatalogError::Copy(msg)
}

impl Catalog {
    /// The catalog's tables (its migration bookkeeping aside: each catalog has its own).
    async fn tables(&self) -> Result<BTreeSet<String>> {
        let names: Vec<String> = match &self.db {
            Db::Sqlite(pool) => {
                sqlx::query_scalar(
                    "SELECT name FROM sqlite_master WHERE type = 'table'
                     AND name NOT LIKE 'sqlite_%' AND name <> 'schema_migrations'",
                )
                .fetch_all(pool)
                .await?
            }
            Db::Postgres(pool) => {
                sqlx::query_scalar(
                    "SELECT table_name::text FROM information_schema.tables
                     WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'
                       AND table_name <> 'schema_migrations'",
                )
                .fetch_all(pool)
                .await?
            }
        };
        Ok(names.into_iter().collect())
    }

    /// A table's columns in order, with their kinds.
    async fn columns(&self, table: &str) -> Result<Vec<(String, Kind)>> {
        let cols: Vec<(String, String)> = match &self.db {
            Db::Sqlite(pool) => {
                sqlx::query_as("SELECT name, type FROM pragma_table_info($1) ORDER BY cid")
                    .bind(table)
                    .fetch_all(pool)
                    .await?
            }
            Db::Postgres(pool) => {
                sqlx::query_as(
                    "SELECT column_name::text, data_type::text FROM information_schema.columns
                     WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
                )
                .bind(table)
                .fetch_all(pool)
                .await?
            }
        };
        cols.into_iter()
            .map(|(name, declared)| {
                let kind = kind_of(&declared).ok_or_else(|| {
                    schema_error(format!(
                        "{table}.{name} has type {declared}, which catalog copy does not know"
                    ))
                })?;
                Ok((name, kind))
            })
            .collect()
    }

    async fn count(&self, table: &str) -> Result<u64> {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        let n: i64 = with_pool!(self, |pool| {
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_one(pool)
                .await?
        });
        Ok(n as u64)
    }

    /// Copies every row of this catalog into `to`, which must hold none, and checks the
    /// counts; `progress` hears of each table as it is done. Both catalogs are at this
    /// binary's schema (opened by it). See the module docs.
    pub async fn copy_to(
        &self,
        to: &Catalog,
        mut progress: impl FnMut(&TableCopy),
    ) -> Result<Vec<TableCopy>> {
        let known: BTreeSet<String> = TABLES
            .iter()
            .chain(NOT_COPIED)
            .map(|t| t.to_string())
            .collect();
        for (side, cat) in [("source", self), ("destination", to)] {
            let tables = cat.tables().await?;
            if let Some(t) = tables.symmetric_difference(&known).next() {
                return Err(schema_error(format!(
                    "the {side} catalog's tables differ from this binary's (table {t}): are both at its schema?"
                )));
            }
        }
        let mut layouts = Vec::new();
        for table in TABLES {
            let cols = self.columns(table).await?;
            if cols != to.columns(table).await? {
                return Err(schema_error(format!(
                    "table {table} has other columns in the destination catalog than in the source: are both at this binary's schema?"
                )));
            }
            if !REPLACED.contains(table) && to.count(table).await? > 0 {
                return Err(CatalogError::Copy(format!(
                    "the destination catalog already holds data (table {table}): copy into an empty database"
                )));
            }
            layouts.push((*table, cols));
        }

        let mut counts = Vec::new();
        let mut dest = match &to.db {
            Db::Sqlite(p) => crate::Tx::from(p.begin().await?),
            Db::Postgres(p) => crate::Tx::from(p.begin().await?),
        };
        with_pool!(self, |pool| {
            let mut src = pool.begin().await?;
            if matches!(self.db, Db::Postgres(_)) {
                // one snapshot for every table, as of the copy's first read
                sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .execute(&mut *src)
                    .await?;
            }
            for (table, cols) in &layouts {
                if REPLACED.contains(table) {
                    let sql = format!("DELETE FROM {table}");
                    on_tx!(&mut dest, |db| {
                        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(db).await?;
                    });
                }
                let sql = format!("SELECT COUNT(*) FROM {table}");
                let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                    .fetch_one(&mut *src)
                    .await?;
                let names: Vec<&str> = cols.iter().map(|(n, _)| n.as_str()).collect();
                let sql = format!("SELECT {} FROM {table}", names.join(", "));
                let mut rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch(&mut *src);
                let mut batch: Vec<Column> = cols.iter().map(|(_, k)| Column::new(*k)).collect();
                let mut pending = 0;
                while let Some(row) = rows.try_next().await? {
                    for (i, col) in batch.iter_mut().enumerate() {
                        match col {
                            Column::Int(v) => v.push(row.try_get(i)?),
                            Column::Text(v) => v.push(row.try_get(i)?),
                            Column::Bytes(v) => v.push(row.try_get(i)?),
                        }
                    }
                    pending += 1;
                    if pending == BATCH_ROWS {
                        write(&mut dest, table, &names, &mut batch, pending).await?;
                        pending = 0;
                    }
                }
                drop(rows);
                write(&mut dest, table, &names, &mut batch, pending).await?;
                counts.push((*table, n as u64));
            }
            src.rollback().await?;
        });
        if let crate::Tx::Postgres(t) = &mut dest {
            for (table, column) in IDENTITIES {
                let sql = format!(
                    "SELECT setval(pg_get_serial_sequence('{table}', '{column}'),
                       COALESCE((SELECT MAX({column}) FROM {table}), 0) + 1, false)"
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&mut **t)
                    .await?;
            }
        }
        dest.commit().await?;

        let mut report = Vec::new();
        for (table, source_rows) in counts {
            let copied = TableCopy {
                table: table.to_string(),
                source_rows,
                copied_rows: to.count(table).await?,
            };
            progress(&copied);
            report.push(copied);
        }
        if let Some(t) = report.iter().find(|t| t.source_rows != t.copied_rows) {
            return Err(CatalogError::Copy(format!(
                "table {} holds {} rows in the destination catalog, {} in the source",
                t.table, t.copied_rows, t.source_rows
            )));
        }
        Ok(report)
    }
}

/// Writes the `n` rows of `batch` into `table`, and empties it.
async fn write(
    dest: &mut crate::Tx<'static>,
    table: &str,
    names: &[&str],
    batch: &mut [Column],
    n: usize,
) -> Result<()> {
    if n == 0 {
        return Ok(());
    }
    match dest {
        crate::Tx::Postgres(t) => {
            let types: Vec<String> = batch
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let t = match c {
                        Column::Int(_) => "bigint",
                        Column::Text(_) => "text",
                        Column::Bytes(_) => "bytea",
                    };
                    format!("${}::{t}[]", i + 1)
                })
                .collect();
            let sql = format!(
                "INSERT INTO {table} ({}) SELECT * FROM UNNEST({})",
                names.join(", "),
                types.join(", ")
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for c in batch.iter_mut() {
                q = match c {
                    Column::Int(v) => q.bind(std::mem::take(v)),
                    Column::Text(v) => q.bind(std::mem::take(v)),
                    Column::Bytes(v) => q.bind(std::mem::take(v)),
                };
            }
            q.execute(&mut **t).await?;
        }
        crate::Tx::Sqlite(t) => {
            // rows of parameters, well under SQLite's 32,766
            let per = (30_000 / names.len()).clamp(1, 500);
            let mut start = 0;
            while start < n {
                let rows = per.min(n - start);
                let row = format!("({})", vec!["?"; names.len()].join(", "));
                let sql = format!(
                    "INSERT INTO {table} ({}) VALUES {}",
                    names.join(", "),
                    vec![row; rows].join(", ")
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for r in start..start + rows {
                    for c in batch.iter() {
                        q = match c {
                            Column::Int(v) => q.bind(v[r]),
                            Column::Text(v) => q.bind(v[r].clone()),
                            Column::Bytes(v) => q.bind(v[r].clone()),
                        };
                    }
                }
                q.execute(&mut **t).await?;
                start += rows;
            }
            for c in batch.iter_mut() {
                match c {
                    Column::Int(v) => v.clear(),
                    Column::Text(v) => v.clear(),
                    Column::Bytes(v) => v.clear(),
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_kinds_are_read_from_either_backends_types() {
        for (t, k) in [
            ("INTEGER", Kind::Int),
            ("BIGINT", Kind::Int),
            ("bigint", Kind::Int),
            ("TEXT", Kind::Text),
            ("text", Kind::Text),
            ("BLOB", Kind::Bytes),
            ("bytea", Kind::Bytes),
        ] {
            assert_eq!(kind_of(t), Some(k), "{t}");
        }
        assert_eq!(kind_of("REAL"), None);
    }

    #[test]
    fn every_identity_is_of_a_copied_table() {
        for (t, _) in IDENTITIES {
            assert!(TABLES.contains(t), "{t}");
        }
    }
}
