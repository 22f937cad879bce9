//! Reads over what is stored and its forgetting: restore sets, chunk pages for verify,
//! reference states for gc, version retention, and the leases that keep two gcs apart.

use std::collections::HashMap;
use std::time::Duration;

use crate::items::StoredVersion;
use crate::rows::{ChunkRecord, in_list, prefix_range, release_chunks_sql, to_hash};
use crate::{Catalog, ChunkRef, Hash, RestoreEntry, Result, now_ns};

impl Catalog {
    /// The files under `prefix` (a path prefix in the target namespace, raw bytes) as
    /// they were at `at` (Unix ns; `None` = now). Tombstoned items are left out.
    pub async fn restore_set(&self, prefix: &[u8], at: Option<i64>) -> Result<Vec<RestoreEntry>> {
        with_pool!(self, |pool| {
            let at = at.unwrap_or(i64::MAX);
            let (lo, hi) = prefix_range(prefix);
            let rows: Vec<StoredVersion> = sqlx::query_as(
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
            .fetch_all(pool)
            .await?;
            let mut out = Vec::new();
            for v in rows.into_iter().filter(|v| v.deleted == 0) {
                out.push(self.restore_entry(v).await?);
            }
            Ok(out)
        })
    }

    pub(crate) async fn version_chunks(&self, version_id: i64) -> Result<Vec<ChunkRef>> {
        with_pool!(self, |pool| {
            let rows: Vec<ChunkRecord> = sqlx::query_as(
                "SELECT c.hash, c.size, c.stored_size, c.compression, c.pack, c.pack_offset FROM version_chunks vc JOIN chunks c ON c.hash = vc.hash
                 WHERE vc.version_id = $1 ORDER BY vc.idx",
            )
            .bind(version_id)
            .fetch_all(pool)
            .await?;
            rows.into_iter().map(ChunkRef::try_from).collect()
        })
    }

    /// Reference count and orphaning time (Unix ns, when the count fell to 0) of the
    /// chunks among `hashes` whose row places them in objects of their own (format v1;
    /// a chunk moved into a pack leaves its old object unreferenced).
    pub async fn chunk_states(&self, hashes: &[Hash]) -> Result<HashMap<Hash, (i64, Option<i64>)>> {
        with_pool!(self, |pool| {
            let mut found = HashMap::new();
            for batch in hashes.chunks(500) {
                let sql = format!(
                    "SELECT hash, refcount, orphaned_at FROM chunks WHERE pack IS NULL AND hash IN {}",
                    in_list(1, batch.len())
                );
                let mut q =
                    sqlx::query_as::<_, (Vec<u8>, i64, Option<i64>)>(sqlx::AssertSqlSafe(sql));
                for h in batch {
                    q = q.bind(h.as_slice());
                }
                for (hash, refcount, orphaned_at) in q.fetch_all(pool).await? {
                    found.insert(to_hash(&hash)?, (refcount, orphaned_at));
                }
            }
            Ok(found)
        })
    }

    /// Drops the row of a chunk whose own object gc deleted, if it is still unreferenced.
    pub async fn forget_chunk(&self, hash: &Hash) -> Result<()> {
        with_pool!(self, |pool| {
            sqlx::query("DELETE FROM chunks WHERE hash = $1 AND refcount = 0 AND pack IS NULL")
                .bind(hash.as_slice())
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// Version retention: removes versions committed before `before` (Unix ns), except
    /// each item's current version and the one that was current at `before` (so any
    /// restore as of `before` or later stays exact); an item whose tombstone is older
    /// than `before` goes entirely. A held item keeps its latest held claim, and a claim
    /// of an open conflict keeps all of them, whatever their age. Chunk reference counts
    /// follow; a chunk that loses its last reference is marked orphaned for gc. Returns
    /// (versions, items) removed.
    pub async fn prune_versions(&self, before: i64) -> Result<(u64, u64)> {
        with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
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
                let mut q = sqlx::query(sqlx::AssertSqlSafe(release_chunks_sql(&in_list(
                    2,
                    batch.len(),
                ))))
                .bind(now);
                for id in batch {
                    q = q.bind(id);
                }
                q.execute(&mut *tx).await?;
                let list = in_list(1, batch.len());
                for table in [
                    "version_chunks WHERE version_id",
                    "version_principals WHERE version_id",
                    "versions WHERE id",
                ] {
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DELETE FROM {table} IN {list}"
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
        })
    }

    /// Whether a chunk is committed with a positive reference count, as an object of
    /// its own (format v1).
    pub async fn chunk_referenced(&self, hash: &Hash) -> Result<bool> {
        with_pool!(self, |pool| {
            let n: Option<i64> =
                sqlx::query_scalar("SELECT refcount FROM chunks WHERE hash = $1 AND pack IS NULL")
                    .bind(hash.as_slice())
                    .fetch_optional(pool)
                    .await?;
            Ok(n.unwrap_or(0) > 0)
        })
    }

    /// Counts for status output.
    pub async fn counts(&self) -> Result<(i64, i64, i64)> {
        with_pool!(self, |pool| {
            Ok(sqlx::query_as(
                "SELECT (SELECT COUNT(*) FROM items WHERE deleted = 0), (SELECT COUNT(*) FROM versions), (SELECT COUNT(*) FROM chunks)",
            )
            .fetch_one(pool)
            .await?)
        })
    }

    // ---- leases -----------------------------------------------------------------

    /// Takes the named lease for `ttl` unless someone else holds an unexpired one.
    pub async fn try_lock(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool> {
        with_pool!(self, |pool| {
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
            .execute(pool)
            .await?;
            Ok(r.rows_affected() == 1)
        })
    }

    /// Who holds the named lease, if anyone (expired or not).
    pub async fn lock_holder(&self, name: &str) -> Result<Option<String>> {
        with_pool!(self, |pool| {
            Ok(
                sqlx::query_scalar("SELECT holder FROM locks WHERE name = $1")
                    .bind(name)
                    .fetch_optional(pool)
                    .await?,
            )
        })
    }

    /// Takes the named lease from `old` (a holder known to be gone); false if someone
    /// else took or released it meanwhile.
    pub async fn take_lock_from(
        &self,
        name: &str,
        old: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool> {
        with_pool!(self, |pool| {
            let r = sqlx::query(
                "UPDATE locks SET holder = $1, expires_at = $2 WHERE name = $3 AND holder = $4",
            )
            .bind(holder)
            .bind(now_ns() + ttl.as_nanos() as i64)
            .bind(name)
            .bind(old)
            .execute(pool)
            .await?;
            Ok(r.rows_affected() == 1)
        })
    }

    pub async fn unlock(&self, name: &str, holder: &str) -> Result<()> {
        with_pool!(self, |pool| {
            sqlx::query("DELETE FROM locks WHERE name = $1 AND holder = $2")
                .bind(name)
                .bind(holder)
                .execute(pool)
                .await?;
            Ok(())
        })
    }
}
