//! Chunks in pack objects (store format v2), as gc, rebuild-catalog and migrate-store
//! need them: how much of each pack is still referenced, what a pack holds, and moving
//! chunks from one place to another.

use std::collections::HashMap;

use tributary_store::pack::{PackId, Placed};

use crate::rows::{CHUNK_COLUMNS, ChunkRecord, to_hash};
use crate::{Catalog, ChunkRef, Hash, Result};

/// How much of a pack the catalog still references.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PackUsage {
    /// Stored bytes of its chunks with references.
    pub live_bytes: u64,
    pub live_chunks: u64,
    /// Rows of chunks without references (orphaned), waiting for gc.
    pub dead_chunks: u64,
    /// The latest moment one of its chunks lost its last reference (Unix ns, 0: never).
    pub last_orphaned: i64,
}

/// A chunk row of a pack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackChunk {
    pub chunk: ChunkRef,
    pub refcount: i64,
    pub orphaned_at: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct PackChunkRow {
    #[sqlx(flatten)]
    chunk: ChunkRecord,
    refcount: i64,
    orphaned_at: Option<i64>,
}

impl Catalog {
    /// Every pack the catalog has a chunk row in, with how much of it is referenced.
    pub async fn pack_usage(&self) -> Result<HashMap<PackId, PackUsage>> {
        with_pool!(self, |pool| {
            let rows: Vec<(Vec<u8>, i64, i64, i64, i64)> = sqlx::query_as(
                "SELECT pack,
                        CAST(COALESCE(SUM(CASE WHEN refcount > 0 THEN stored_size ELSE 0 END), 0) AS BIGINT),
                        CAST(COALESCE(SUM(CASE WHEN refcount > 0 THEN 1 ELSE 0 END), 0) AS BIGINT),
                        CAST(COALESCE(SUM(CASE WHEN refcount > 0 THEN 0 ELSE 1 END), 0) AS BIGINT),
                        CAST(COALESCE(MAX(orphaned_at), 0) AS BIGINT)
                 FROM chunks WHERE pack IS NOT NULL GROUP BY pack",
            )
            .fetch_all(pool)
            .await?;
            let mut out = HashMap::new();
            for (pack, live_bytes, live_chunks, dead_chunks, last_orphaned) in rows {
                out.insert(
                    to_hash(&pack)?,
                    PackUsage {
                        live_bytes: live_bytes.max(0) as u64,
                        live_chunks: live_chunks.max(0) as u64,
                        dead_chunks: dead_chunks.max(0) as u64,
                        last_orphaned,
                    },
                );
            }
            Ok(out)
        })
    }

    /// The chunk rows that place chunks in `pack`, in pack order.
    pub async fn pack_chunks(&self, pack: &PackId) -> Result<Vec<PackChunk>> {
        with_pool!(self, |pool| {
            let rows: Vec<PackChunkRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {CHUNK_COLUMNS}, refcount, orphaned_at FROM chunks WHERE pack = $1 ORDER BY pack_offset"
            )))
            .bind(pack.as_slice())
            .fetch_all(pool)
            .await?;
            rows.into_iter()
                .map(|r| {
                    Ok(PackChunk {
                        chunk: ChunkRef::try_from(r.chunk)?,
                        refcount: r.refcount,
                        orphaned_at: r.orphaned_at,
                    })
                })
                .collect()
        })
    }

    /// Moves chunks to new places, in one transaction: each `(hash, from, to)` moves
    /// only if the chunk is still at `from` (`None`: an object of its own), so a
    /// concurrent move or forgetting is never undone. Returns how many moved.
    pub async fn move_chunks(&self, moves: &[(Hash, Option<PackId>, Placed)]) -> Result<u64> {
        with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let mut moved = 0;
            for (hash, from, to) in moves {
                let r = sqlx::query(
                    "UPDATE chunks SET pack = $1, pack_offset = $2
                     WHERE hash = $3 AND pack IS NOT DISTINCT FROM $4",
                )
                .bind(to.pack.as_slice())
                .bind(to.offset as i64)
                .bind(hash.as_slice())
                .bind(from.map(|p| p.to_vec()))
                .execute(&mut *tx)
                .await?;
                moved += r.rows_affected();
            }
            tx.commit().await?;
            Ok(moved)
        })
    }

    /// Drops the unreferenced chunk rows of `pack` (before gc deletes or rewrites it);
    /// returns how many.
    pub async fn forget_pack(&self, pack: &PackId) -> Result<u64> {
        with_pool!(self, |pool| {
            Ok(
                sqlx::query("DELETE FROM chunks WHERE pack = $1 AND refcount = 0")
                    .bind(pack.as_slice())
                    .execute(pool)
                    .await?
                    .rows_affected(),
            )
        })
    }

    /// Referenced chunks that are objects of their own (format v1), ordered by hash, in
    /// pages after `after`.
    pub async fn loose_chunks_page(
        &self,
        after: Option<Hash>,
        limit: i64,
    ) -> Result<Vec<ChunkRef>> {
        with_pool!(self, |pool| {
            let after = after.map(|h| h.to_vec()).unwrap_or_default();
            let rows: Vec<ChunkRecord> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {CHUNK_COLUMNS} FROM chunks WHERE hash > $1 AND pack IS NULL AND refcount > 0 ORDER BY hash LIMIT $2"
            )))
            .bind(after)
            .bind(limit)
            .fetch_all(pool)
            .await?;
            rows.into_iter().map(ChunkRef::try_from).collect()
        })
    }

    /// How many referenced chunks are objects of their own (format v1), and their bytes.
    pub async fn loose_chunk_count(&self) -> Result<(u64, u64)> {
        with_pool!(self, |pool| {
            let (n, bytes): (i64, i64) = sqlx::query_as(
                "SELECT COUNT(*), CAST(COALESCE(SUM(stored_size), 0) AS BIGINT) FROM chunks WHERE pack IS NULL AND refcount > 0",
            )
            .fetch_one(pool)
            .await?;
            Ok((n.max(0) as u64, bytes.max(0) as u64))
        })
    }
}
