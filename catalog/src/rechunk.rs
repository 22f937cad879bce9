//! Versions whose content is rewritten in other chunks (`migrate-store --encrypt`: the
//! same bytes cut and named with the store's keys): the versions to rewrite, their
//! chunks replaced in one transaction with the progress cursor, and what a manifest's
//! versions are made of now.

use std::collections::HashMap;

use crate::rows::{ChunkRecord, release_chunks_sql, to_hash};
use crate::{Catalog, ChunkRef, Hash, Result};

/// A version with content, as rewriting it needs it.
#[derive(Debug, Clone)]
pub struct ContentVersion {
    pub id: i64,
    pub size: u64,
    pub digest: Option<Hash>,
    pub chunks: Vec<ChunkRef>,
}

impl Catalog {
    /// Versions with content (not tombstones, not empty) whose id is above `after`, in
    /// id order, at most `limit`.
    pub async fn content_versions_page(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<ContentVersion>> {
        with_pool!(self, |pool| {
            let rows: Vec<(i64, i64, Option<Vec<u8>>)> = sqlx::query_as(
                "SELECT id, size, digest FROM versions
                 WHERE id > $1 AND deleted = 0 AND EXISTS (SELECT 1 FROM version_chunks vc WHERE vc.version_id = versions.id)
                 ORDER BY id LIMIT $2",
            )
            .bind(after)
            .bind(limit)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for (id, size, digest) in rows {
                out.push(ContentVersion {
                    id,
                    size: size.max(0) as u64,
                    digest: digest.as_deref().map(to_hash).transpose()?,
                    chunks: self.version_chunks(id).await?,
                });
            }
            Ok(out)
        })
    }

    /// How many versions with content have an id above `after`.
    pub async fn content_versions_after(&self, after: i64) -> Result<u64> {
        with_pool!(self, |pool| {
            let n: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM versions
                 WHERE id > $1 AND deleted = 0 AND EXISTS (SELECT 1 FROM version_chunks vc WHERE vc.version_id = versions.id)",
            )
            .bind(after)
            .fetch_one(pool)
            .await?;
            Ok(n.max(0) as u64)
        })
    }

    /// Replaces the chunks of each `(version, chunks)` in one transaction, and records
    /// `cursor` under `key` (the rewrite's progress) in it: the old chunks lose a
    /// reference each (orphaned at 0, for gc), the new ones gain one (a row that exists
    /// keeps its place, as in a commit).
    pub async fn replace_version_chunks(
        &self,
        versions: &[(i64, Vec<ChunkRef>)],
        key: &str,
        cursor: i64,
    ) -> Result<()> {
        with_pool!(self, |pool| {
            let now = crate::now_ns();
            let mut tx = pool.begin().await?;
            for (version, chunks) in versions {
                sqlx::query(sqlx::AssertSqlSafe(release_chunks_sql("($2)")))
                    .bind(now)
                    .bind(version)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM version_chunks WHERE version_id = $1")
                    .bind(version)
                    .execute(&mut *tx)
                    .await?;
                for (idx, c) in chunks.iter().enumerate() {
                    sqlx::query(
                        "INSERT INTO chunks (hash, size, stored_size, compression, refcount, created_at, pack, pack_offset)
                         VALUES ($1, $2, $3, $4, 1, $5, $6, $7)
                         ON CONFLICT (hash) DO UPDATE SET refcount = chunks.refcount + 1, orphaned_at = NULL",
                    )
                    .bind(c.hash.as_slice())
                    .bind(c.size as i64)
                    .bind(c.stored_size as i64)
                    .bind(c.compression.as_str())
                    .bind(now)
                    .bind(c.packed.map(|p| p.pack.to_vec()))
                    .bind(c.packed.map(|p| p.offset as i64))
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query(
                        "INSERT INTO version_chunks (version_id, idx, hash) VALUES ($1, $2, $3)",
                    )
                    .bind(version)
                    .bind(idx as i64)
                    .bind(c.hash.as_slice())
                    .execute(&mut *tx)
                    .await?;
                }
            }
            sqlx::query(
                "INSERT INTO store_state (key, value) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )
            .bind(key)
            .bind(cursor.to_string())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// A rewrite's progress recorded under `key`.
    pub async fn store_state(&self, key: &str) -> Result<Option<String>> {
        with_pool!(self, |pool| {
            Ok(
                sqlx::query_scalar("SELECT value FROM store_state WHERE key = $1")
                    .bind(key)
                    .fetch_optional(pool)
                    .await?,
            )
        })
    }

    /// Forgets a rewrite's progress (once it is done).
    pub async fn clear_store_state(&self, key: &str) -> Result<()> {
        with_pool!(self, |pool| {
            sqlx::query("DELETE FROM store_state WHERE key = $1")
                .bind(key)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// The chunks, as the catalog has them now, of the versions committed by manifest
    /// `key`, by (source id, committed at).
    pub async fn manifest_versions(
        &self,
        key: &str,
    ) -> Result<HashMap<(Vec<u8>, i64), Vec<ChunkRef>>> {
        with_pool!(self, |pool| {
            let rows: Vec<(i64, Vec<u8>, i64)> = sqlx::query_as(
                "SELECT v.id, i.source_id, v.committed_at FROM versions v JOIN items i ON i.id = v.item_id
                 WHERE v.manifest = $1",
            )
            .bind(key)
            .fetch_all(pool)
            .await?;
            let mut out = HashMap::new();
            for (id, source_id, at) in rows {
                out.insert((source_id, at), self.version_chunks(id).await?);
            }
            Ok(out)
        })
    }

    /// Whether a committed chunk row exists for `hash`, and where.
    pub async fn chunk_row(&self, hash: &Hash) -> Result<Option<ChunkRef>> {
        with_pool!(self, |pool| {
            let row: Option<ChunkRecord> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {} FROM chunks WHERE hash = $1",
                crate::rows::CHUNK_COLUMNS
            )))
            .bind(hash.as_slice())
            .fetch_optional(pool)
            .await?;
            row.map(ChunkRef::try_from).transpose()
        })
    }
}
