//! The `pgvector` vector store: the passages' vectors in a PostgreSQL table with an
//! HNSW index (cosine), for indexes too large for the daemon's memory or shared by
//! several daemons. The catalog stays the source of truth (passage text, location and
//! the f32 vector); this table is derived from it and can be rebuilt from it at any
//! time ([`PgVectors::sync`]).

use std::collections::HashSet;
use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::{Catalog, CatalogError, Result};

/// One vector as the store keeps it.
#[derive(Debug, Clone)]
pub struct StoredVector {
    pub id: i64,
    pub item_id: i64,
    pub version_id: i64,
    pub connector: String,
    pub embedding: Vec<f32>,
}

pub struct PgVectors {
    pool: PgPool,
    table: String,
    /// The table's dimension once known (it exists): saves a catalog lookup on every
    /// search.
    known_dim: std::sync::Mutex<Option<usize>>,
    /// Where the store is, without credentials (for messages).
    location: String,
}

fn literal(v: &[f32]) -> String {
    let mut s = String::with_capacity(v.len() * 10 + 2);
    s.push('[');
    for (i, x) in v.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&x.to_string());
    }
    s.push(']');
    s
}

impl PgVectors {
    /// Connects to `url` (`postgres://…`) and makes sure the `vector` extension exists.
    /// `table` must be a plain identifier.
    pub async fn connect(url: &str, table: &str) -> Result<PgVectors> {
        let opts = PgConnectOptions::from_str(url)?;
        let location = format!(
            "postgres://{}:{}/{}",
            opts.get_host(),
            opts.get_port(),
            opts.get_database().unwrap_or("")
        );
        if table.is_empty()
            || !table
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(CatalogError::Corrupt(format!(
                "pgvector table name `{table}` must be lower-case letters, digits and _"
            )));
        }
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect_with(opts)
            .await
            .map_err(|e| {
                CatalogError::Db(sqlx::Error::Configuration(
                    format!("pgvector store {location}: {e}").into(),
                ))
            })?;
        sqlx::query("CREATE EXTENSION IF NOT EXISTS vector")
            .execute(&pool)
            .await?;
        Ok(PgVectors {
            pool,
            table: table.to_string(),
            known_dim: Default::default(),
            location,
        })
    }

    pub fn describe(&self) -> String {
        format!("pgvector {} table {}", self.location, self.table)
    }

    /// The dimension of the existing table, if there is one.
    pub async fn dim(&self) -> Result<Option<usize>> {
        if let Some(d) = *self.known_dim.lock().expect("lock") {
            return Ok(Some(d));
        }
        let row: Option<(i32,)> = sqlx::query_as(
            "SELECT a.atttypmod FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
             WHERE c.relname = $1 AND a.attname = 'embedding' AND c.relkind = 'r'",
        )
        .bind(&self.table)
        .fetch_optional(&self.pool)
        .await?;
        let dim = row.map(|(d,)| d.max(0) as usize);
        *self.known_dim.lock().expect("lock") = dim;
        Ok(dim)
    }

    /// Creates the table and its indexes for vectors of `dim` dimensions.
    pub async fn create(&self, dim: usize) -> Result<()> {
        let t = &self.table;
        for sql in [
            format!(
                "CREATE TABLE IF NOT EXISTS {t} (id BIGINT PRIMARY KEY, item_id BIGINT NOT NULL, version_id BIGINT NOT NULL, connector TEXT NOT NULL, embedding vector({dim}) NOT NULL)"
            ),
            format!("CREATE INDEX IF NOT EXISTS {t}_version ON {t} (version_id)"),
            format!(
                "CREATE INDEX IF NOT EXISTS {t}_hnsw ON {t} USING hnsw (embedding vector_cosine_ops)"
            ),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&self.pool)
                .await?;
        }
        // an existing table keeps its own dimension: read it back
        *self.known_dim.lock().expect("lock") = None;
        self.dim().await?;
        Ok(())
    }

    /// Drops the table (a reindex with another embedder).
    pub async fn drop_table(&self) -> Result<()> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP TABLE IF EXISTS {}",
            self.table
        )))
        .execute(&self.pool)
        .await?;
        *self.known_dim.lock().expect("lock") = None;
        Ok(())
    }

    pub async fn count(&self) -> Result<i64> {
        if self.dim().await?.is_none() {
            return Ok(0);
        }
        Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM {}",
            self.table
        )))
        .fetch_one(&self.pool)
        .await?)
    }

    pub async fn add(&self, rows: &[StoredVector]) -> Result<()> {
        let sql = format!(
            "INSERT INTO {} (id, item_id, version_id, connector, embedding) VALUES ($1, $2, $3, $4, $5::vector)
             ON CONFLICT (id) DO UPDATE SET item_id = excluded.item_id, version_id = excluded.version_id,
               connector = excluded.connector, embedding = excluded.embedding",
            self.table
        );
        let mut tx = self.pool.begin().await?;
        for r in rows {
            sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .bind(r.id)
                .bind(r.item_id)
                .bind(r.version_id)
                .bind(&r.connector)
                .bind(literal(&r.embedding))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn remove_versions(&self, versions: &[i64]) -> Result<()> {
        if versions.is_empty() || self.dim().await?.is_none() {
            return Ok(());
        }
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {} WHERE version_id = ANY($1)",
            self.table
        )))
        .bind(versions)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The `n` nearest vectors by cosine (HNSW), best first, with their similarity.
    pub async fn candidates(
        &self,
        query: &[f32],
        n: usize,
        connector: Option<&str>,
        items: Option<&HashSet<i64>>,
    ) -> Result<Vec<(i64, f32)>> {
        if self.dim().await?.is_none() {
            return Ok(Vec::new());
        }
        let items: Option<Vec<i64>> = items.map(|s| s.iter().copied().collect());
        let mut conn = self.pool.acquire().await?;
        // Settings on the connection that runs the query.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SET hnsw.ef_search = {}",
            n.clamp(40, 1000)
        )))
        .execute(&mut *conn)
        .await?;
        // pgvector 0.8+: keep scanning the index until enough rows pass the filters.
        // Older versions (0.5 to 0.7) do not know it and answer from one scan.
        if let Err(e) = sqlx::query("SET hnsw.iterative_scan = relaxed_order")
            .execute(&mut *conn)
            .await
        {
            tracing::debug!(error = %e, "pgvector without iterative index scans");
        }
        let rows: Vec<(i64, f64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT id, 1 - (embedding <=> $1::vector) FROM {}
             WHERE ($2::text IS NULL OR connector = $2) AND ($3::bigint[] IS NULL OR item_id = ANY($3))
             ORDER BY embedding <=> $1::vector LIMIT $4",
            self.table
        )))
        .bind(literal(query))
        .bind(connector)
        .bind(items)
        .bind(n as i64)
        .fetch_all(&mut *conn)
        .await?;
        let mut out: Vec<(i64, f32)> = rows
            .into_iter()
            .map(|(id, score)| (id, score as f32))
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1));
        Ok(out)
    }

    /// Makes the table hold exactly the catalog's passages: when the counts or the
    /// highest ids differ, it is emptied and loaded again from the catalog. Returns the
    /// number of vectors.
    pub async fn sync(&self, catalog: &Catalog, dim: usize) -> Result<i64> {
        if let Some(d) = self.dim().await?
            && d != dim
        {
            return Err(CatalogError::Corrupt(format!(
                "{} holds {d}-dimensional vectors, the embedder makes {dim}: run `tributary reindex`",
                self.describe()
            )));
        }
        self.create(dim).await?;
        let (n, max) = catalog.passage_span().await?;
        let (m, mmax): (i64, Option<i64>) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*), MAX(id) FROM {}",
            self.table
        )))
        .fetch_one(&self.pool)
        .await?;
        if (n, max) == (m, mmax) {
            return Ok(n);
        }
        tracing::info!(
            catalog = n,
            store = m,
            "pgvector store out of step with the catalog: reloading it"
        );
        sqlx::query(sqlx::AssertSqlSafe(format!("TRUNCATE {}", self.table)))
            .execute(&self.pool)
            .await?;
        let mut after = 0;
        loop {
            let page = catalog.passage_vectors(after, 2000).await?;
            let Some(last) = page.last() else { break };
            after = last.id;
            let rows: Vec<StoredVector> = page
                .into_iter()
                .map(|p| StoredVector {
                    id: p.id,
                    item_id: p.item_id,
                    version_id: p.version_id,
                    connector: p.connector,
                    embedding: p.embedding,
                })
                .collect();
            self.add(&rows).await?;
        }
        Ok(n)
    }

    /// Whether a query of this store is answered by the HNSW index (for tests and
    /// `check`).
    pub async fn uses_index(&self, dim: usize) -> Result<bool> {
        let q = literal(&vec![0.1; dim]);
        let mut conn = self.pool.acquire().await?;
        sqlx::query("SET enable_seqscan = off")
            .execute(&mut *conn)
            .await?;
        let plan: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "EXPLAIN SELECT id FROM {} ORDER BY embedding <=> '{q}'::vector LIMIT 10",
            self.table
        )))
        .fetch_all(&mut *conn)
        .await?;
        Ok(plan.iter().any(|(l,)| l.contains("_hnsw")))
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}
