//! The vector side of the catalog: which versions wait to be indexed, their index
//! state, their passages and embeddings, and the embedder the index was built with.
//!
//! A version needs indexing when it is the current, visible, live content of an item
//! of a vectorized connector and has no `index_state` row (or a failed one whose retry
//! is due). Passages of a version stop counting the moment it stops being current;
//! [`Catalog::stale_indexed`] finds them and [`Catalog::drop_passages`] removes them.

use crate::rows::{in_list, to_hash};
use crate::{Catalog, Hash, Result, now_ns};

/// A version to index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexTask {
    pub item_id: i64,
    pub version_id: i64,
    pub connector: String,
    pub path: Vec<u8>,
    pub size: u64,
    pub digest: Option<Hash>,
    pub attempts: i64,
}

/// A passage to store.
#[derive(Debug, Clone)]
pub struct NewPassage {
    pub location: Option<String>,
    pub text: String,
    pub embedding: Vec<f32>,
}

/// A stored passage's vector, as the in-memory index loads it.
#[derive(Debug, Clone)]
pub struct PassageVector {
    pub id: i64,
    pub item_id: i64,
    pub version_id: i64,
    pub connector: String,
    pub embedding: Vec<f32>,
}

/// A passage as a search hit shows it.
#[derive(Debug, Clone)]
pub struct PassageHit {
    pub id: i64,
    pub item_id: i64,
    pub version_id: i64,
    pub seq: i64,
    pub connector: String,
    pub path: Vec<u8>,
    pub location: Option<String>,
    pub text: String,
    /// Whether the version is still the item's current, visible content.
    pub current: bool,
}

/// Index state of a version, for the item API.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct IndexStateRow {
    pub version_id: i64,
    pub state: String,
    pub reason: Option<String>,
    pub format: Option<String>,
    pub passages: i64,
    pub attempts: i64,
    pub updated_at: i64,
}

/// Counts for `/metrics` and `/api/v1/queue`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexCounts {
    pub pending: i64,
    pub indexed: i64,
    pub failed: i64,
    pub skipped: i64,
    pub passages: i64,
}

pub fn encode_vector(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn decode_vector(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

impl Catalog {
    /// How many passages there are and the highest id (a vector store's sync check).
    pub async fn passage_span(&self) -> Result<(i64, Option<i64>)> {
        with_pool!(self, |pool| {
            Ok(sqlx::query_as("SELECT COUNT(*), MAX(id) FROM passages")
                .fetch_one(pool)
                .await?)
        })
    }

    pub async fn vector_meta(&self, key: &str) -> Result<Option<String>> {
        with_pool!(self, |pool| {
            Ok(
                sqlx::query_scalar("SELECT value FROM vector_meta WHERE key = $1")
                    .bind(key)
                    .fetch_optional(pool)
                    .await?,
            )
        })
    }

    /// Drops every passage and index state (a reindex with another embedder) and records
    /// the new embedder.
    pub async fn reset_vectors(&self, embedder: &str, dim: usize) -> Result<u64> {
        with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let n = sqlx::query("DELETE FROM passages")
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query("DELETE FROM index_state")
                .execute(&mut *tx)
                .await?;
            for (k, v) in [("embedder", embedder.to_string()), ("dim", dim.to_string())] {
                sqlx::query(
                    "INSERT INTO vector_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                )
                .bind(k)
                .bind(v)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(n)
        })
    }

    /// Up to `limit` versions of `connectors` that wait to be indexed, of items with an
    /// id above `after_item`, in id order: current, visible and live, with no index
    /// state, or failed fewer than `max_attempts` times and last tried before
    /// `retry_before` (Unix ns).
    pub async fn index_queue(
        &self,
        connectors: &[String],
        max_attempts: i64,
        retry_before: i64,
        after_item: i64,
        limit: i64,
    ) -> Result<Vec<IndexTask>> {
        with_pool!(self, |pool| {
            if connectors.is_empty() {
                return Ok(Vec::new());
            }
            let sql = format!(
                "SELECT i.id AS item_id, v.id AS version_id, i.connector, i.path, v.size, v.digest,
                        COALESCE(s.attempts, 0) AS attempts
                 FROM items i JOIN versions v ON v.id = i.current_version
                 LEFT JOIN index_state s ON s.version_id = v.id
                 WHERE i.deleted = 0 AND i.held = 0 AND v.deleted = 0
                   AND (s.version_id IS NULL OR (s.state = 'failed' AND s.attempts < $1 AND s.updated_at < $2))
                   AND i.id > $4
                   AND NOT EXISTS (SELECT 1 FROM vector_claims c WHERE c.item_id = i.id
                                   AND c.instance <> $5 AND c.claimed_until > $6)
                   AND i.connector IN {}
                 ORDER BY i.id LIMIT $3",
                in_list(7, connectors.len())
            );
            #[derive(sqlx::FromRow)]
            struct Task {
                item_id: i64,
                version_id: i64,
                connector: String,
                path: Vec<u8>,
                size: i64,
                digest: Option<Vec<u8>>,
                attempts: i64,
            }
            let mut q = sqlx::query_as::<_, Task>(sqlx::AssertSqlSafe(sql))
                .bind(max_attempts)
                .bind(retry_before)
                .bind(limit)
                .bind(after_item)
                .bind(self.instance.as_deref().unwrap_or(""))
                .bind(now_ns());
            for c in connectors {
                q = q.bind(c);
            }
            let rows = q.fetch_all(pool).await?;
            rows.into_iter()
                .map(|r| {
                    Ok(IndexTask {
                        item_id: r.item_id,
                        version_id: r.version_id,
                        connector: r.connector,
                        path: r.path,
                        size: r.size as u64,
                        digest: r.digest.map(|d| to_hash(&d)).transpose()?,
                        attempts: r.attempts,
                    })
                })
                .collect()
        })
    }

    /// Of `tasks`, those whose items this instance now holds the vectorizer's claim on
    /// (for `ttl`): a claim of another instance that has not run out is respected, so no
    /// version is embedded by two instances. A handle without an instance claims
    /// nothing and keeps every task (one process).
    pub async fn claim_index_tasks(
        &self,
        tasks: Vec<IndexTask>,
        ttl: std::time::Duration,
    ) -> Result<Vec<IndexTask>> {
        let Some(me) = self.instance.as_deref() else {
            return Ok(tasks);
        };
        let now = now_ns();
        let until = now + ttl.as_nanos().min(i64::MAX as u128 / 2) as i64;
        let mut held = Vec::with_capacity(tasks.len());
        with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            for t in tasks {
                let got: Option<i64> = sqlx::query_scalar(
                    "INSERT INTO vector_claims (item_id, instance, claimed_until) VALUES ($1, $2, $3)
                     ON CONFLICT (item_id) DO UPDATE SET instance = excluded.instance, claimed_until = excluded.claimed_until
                     WHERE vector_claims.instance = excluded.instance OR vector_claims.claimed_until <= $4
                     RETURNING item_id",
                )
                .bind(t.item_id)
                .bind(me)
                .bind(until)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                if got.is_some() {
                    held.push(t);
                }
            }
            tx.commit().await?;
        });
        Ok(held)
    }

    /// Gives back this instance's vectorizer claims on `items`.
    pub async fn release_index_claims(&self, items: &[i64]) -> Result<()> {
        let Some(me) = self.instance.as_deref() else {
            return Ok(());
        };
        if items.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "DELETE FROM vector_claims WHERE instance = $1 AND item_id IN {}",
            in_list(2, items.len())
        );
        with_pool!(self, |pool| {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(me);
            for i in items {
                q = q.bind(i);
            }
            q.execute(pool).await?;
        });
        Ok(())
    }

    /// Records a version's state without passages (`failed` or `skipped`).
    pub async fn set_index_state(
        &self,
        task: &IndexTask,
        state: &str,
        reason: Option<&str>,
        format: Option<&str>,
    ) -> Result<()> {
        with_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO index_state (version_id, item_id, state, reason, format, passages, attempts, updated_at)
                 VALUES ($1, $2, $3, $4, $5, 0, $6, $7)
                 ON CONFLICT (version_id) DO UPDATE SET state = excluded.state, reason = excluded.reason,
                   format = excluded.format, passages = 0, attempts = excluded.attempts, updated_at = excluded.updated_at",
            )
            .bind(task.version_id)
            .bind(task.item_id)
            .bind(state)
            .bind(reason.map(crate::redact))
            .bind(format)
            .bind(task.attempts + i64::from(state == "failed"))
            .bind(now_ns())
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// Stores the passages of a version as `indexed`, replacing every passage the item
    /// had, in one transaction. Returns the new passage ids in order and the versions
    /// whose passages were removed, or `None` (and stores nothing) when the version is
    /// no longer the item's current, visible content.
    pub async fn store_passages(
        &self,
        task: &IndexTask,
        format: &str,
        passages: &[NewPassage],
        note: Option<&str>,
    ) -> Result<Option<(Vec<i64>, Vec<i64>)>> {
        with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let current: Option<i64> = sqlx::query_scalar(
                "SELECT id FROM items WHERE id = $1 AND current_version = $2 AND deleted = 0 AND held = 0",
            )
            .bind(task.item_id)
            .bind(task.version_id)
            .fetch_optional(&mut *tx)
            .await?;
            if current.is_none() {
                return Ok(None);
            }
            let replaced: Vec<i64> = sqlx::query_scalar(
                "SELECT DISTINCT version_id FROM passages WHERE item_id = $1 AND version_id <> $2",
            )
            .bind(task.item_id)
            .bind(task.version_id)
            .fetch_all(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM passages WHERE item_id = $1")
                .bind(task.item_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM index_state WHERE item_id = $1 AND version_id <> $2")
                .bind(task.item_id)
                .bind(task.version_id)
                .execute(&mut *tx)
                .await?;
            let mut ids = Vec::with_capacity(passages.len());
            for (seq, p) in passages.iter().enumerate() {
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO passages (item_id, version_id, seq, location, text, embedding)
                     VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                )
                .bind(task.item_id)
                .bind(task.version_id)
                .bind(seq as i64)
                .bind(&p.location)
                .bind(&p.text)
                .bind(encode_vector(&p.embedding))
                .fetch_one(&mut *tx)
                .await?;
                ids.push(id);
            }
            sqlx::query(
                "INSERT INTO index_state (version_id, item_id, state, reason, format, passages, attempts, updated_at)
                 VALUES ($1, $2, 'indexed', $3, $4, $5, $6, $7)
                 ON CONFLICT (version_id) DO UPDATE SET state = 'indexed', reason = excluded.reason,
                   format = excluded.format, passages = excluded.passages, attempts = excluded.attempts,
                   updated_at = excluded.updated_at",
            )
            .bind(task.version_id)
            .bind(task.item_id)
            .bind(note.map(crate::redact))
            .bind(format)
            .bind(passages.len() as i64)
            .bind(task.attempts)
            .bind(now_ns())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(Some((ids, replaced)))
        })
    }

    /// The passages of an already indexed version with the same content digest (a copy,
    /// a rename, a relocation): they can be stored again without extracting or embedding.
    pub async fn passages_by_digest(
        &self,
        digest: &Hash,
        except_version: i64,
    ) -> Result<Option<(String, Vec<NewPassage>)>> {
        with_pool!(self, |pool| {
            let src: Option<(i64, Option<String>)> = sqlx::query_as(
                "SELECT s.version_id, s.format FROM index_state s JOIN versions v ON v.id = s.version_id
                 WHERE v.digest = $1 AND s.state = 'indexed' AND s.passages > 0 AND s.version_id <> $2
                 LIMIT 1",
            )
            .bind(&digest[..])
            .bind(except_version)
            .fetch_optional(pool)
            .await?;
            let Some((vid, format)) = src else {
                return Ok(None);
            };
            let rows: Vec<(Option<String>, String, Vec<u8>)> = sqlx::query_as(
                "SELECT location, text, embedding FROM passages WHERE version_id = $1 ORDER BY seq",
            )
            .bind(vid)
            .fetch_all(pool)
            .await?;
            if rows.is_empty() {
                return Ok(None);
            }
            Ok(Some((
                format.unwrap_or_default(),
                rows.into_iter()
                    .map(|(location, text, embedding)| NewPassage {
                        location,
                        text,
                        embedding: decode_vector(&embedding),
                    })
                    .collect(),
            )))
        })
    }

    /// Versions with passages or an index state that are no longer the current,
    /// visible, live content of their item, or whose connector is no longer vectorized.
    pub async fn stale_indexed(&self, connectors: &[String]) -> Result<Vec<i64>> {
        with_pool!(self, |pool| {
            let sql = format!(
                "SELECT s.version_id FROM index_state s LEFT JOIN items i ON i.id = s.item_id
                 WHERE i.id IS NULL OR i.deleted = 1 OR i.held = 1 OR i.current_version IS NULL
                    OR i.current_version <> s.version_id OR i.connector NOT IN {}",
                if connectors.is_empty() {
                    "('')".to_string()
                } else {
                    in_list(1, connectors.len())
                }
            );
            let mut q = sqlx::query_scalar(sqlx::AssertSqlSafe(sql));
            for c in connectors {
                q = q.bind(c);
            }
            Ok(q.fetch_all(pool).await?)
        })
    }

    /// Removes the passages and index state of `versions`.
    pub async fn drop_passages(&self, versions: &[i64]) -> Result<u64> {
        with_pool!(self, |pool| {
            let mut n = 0;
            let mut tx = pool.begin().await?;
            for v in versions {
                n += sqlx::query("DELETE FROM passages WHERE version_id = $1")
                    .bind(v)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                sqlx::query("DELETE FROM index_state WHERE version_id = $1")
                    .bind(v)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(n)
        })
    }

    /// Every stored vector with its item, version and connector, in id order, a page at
    /// a time (`after` = last id seen).
    pub async fn passage_vectors(&self, after: i64, limit: i64) -> Result<Vec<PassageVector>> {
        with_pool!(self, |pool| {
            let rows: Vec<(i64, i64, i64, String, Vec<u8>)> = sqlx::query_as(
                "SELECT p.id, p.item_id, p.version_id, i.connector, p.embedding
                 FROM passages p JOIN items i ON i.id = p.item_id
                 WHERE p.id > $1 ORDER BY p.id LIMIT $2",
            )
            .bind(after)
            .bind(limit)
            .fetch_all(pool)
            .await?;
            Ok(rows
                .into_iter()
                .map(
                    |(id, item_id, version_id, connector, embedding)| PassageVector {
                        id,
                        item_id,
                        version_id,
                        connector,
                        embedding: decode_vector(&embedding),
                    },
                )
                .collect())
        })
    }

    /// Full-precision vectors of some passages (the re-ranking step of a search).
    pub async fn passage_embeddings(&self, ids: &[i64]) -> Result<Vec<(i64, Vec<f32>)>> {
        with_pool!(self, |pool| {
            let mut out = Vec::with_capacity(ids.len());
            for chunk in ids.chunks(500) {
                let sql = format!(
                    "SELECT id, embedding FROM passages WHERE id IN {}",
                    in_list(1, chunk.len())
                );
                let mut q = sqlx::query_as::<_, (i64, Vec<u8>)>(sqlx::AssertSqlSafe(sql));
                for id in chunk {
                    q = q.bind(id);
                }
                for (id, embedding) in q.fetch_all(pool).await? {
                    out.push((id, decode_vector(&embedding)));
                }
            }
            Ok(out)
        })
    }

    /// The passages `ids` as search hits (in no particular order).
    pub async fn passage_hits(&self, ids: &[i64]) -> Result<Vec<PassageHit>> {
        with_pool!(self, |pool| {
            let mut out = Vec::with_capacity(ids.len());
            for chunk in ids.chunks(500) {
                let sql = format!(
                    "SELECT p.id, p.item_id, p.version_id, p.seq, i.connector, i.path, p.location, p.text,
                            CAST(CASE WHEN i.current_version = p.version_id AND i.deleted = 0 AND i.held = 0 THEN 1 ELSE 0 END AS BIGINT) AS current
                     FROM passages p JOIN items i ON i.id = p.item_id WHERE p.id IN {}",
                    in_list(1, chunk.len())
                );
                #[derive(sqlx::FromRow)]
                struct Hit {
                    id: i64,
                    item_id: i64,
                    version_id: i64,
                    seq: i64,
                    connector: String,
                    path: Vec<u8>,
                    location: Option<String>,
                    text: String,
                    current: i64,
                }
                let mut q = sqlx::query_as::<_, Hit>(sqlx::AssertSqlSafe(sql));
                for id in chunk {
                    q = q.bind(id);
                }
                for r in q.fetch_all(pool).await? {
                    out.push(PassageHit {
                        id: r.id,
                        item_id: r.item_id,
                        version_id: r.version_id,
                        seq: r.seq,
                        connector: r.connector,
                        path: r.path,
                        location: r.location,
                        text: r.text,
                        current: r.current != 0,
                    });
                }
            }
            Ok(out)
        })
    }

    /// Index states of the given versions.
    pub async fn index_states(&self, versions: &[i64]) -> Result<Vec<IndexStateRow>> {
        with_pool!(self, |pool| {
            let mut out = Vec::new();
            for chunk in versions.chunks(500) {
                let sql = format!(
                    "SELECT version_id, state, reason, format, passages, attempts, updated_at
                     FROM index_state WHERE version_id IN {}",
                    in_list(1, chunk.len())
                );
                let mut q = sqlx::query_as::<_, IndexStateRow>(sqlx::AssertSqlSafe(sql));
                for v in chunk {
                    q = q.bind(v);
                }
                out.extend(q.fetch_all(pool).await?);
            }
            Ok(out)
        })
    }

    /// Counts by state over the current versions of `connectors` (pending = no state
    /// yet), and the number of stored passages.
    pub async fn index_counts(&self, connectors: &[String]) -> Result<IndexCounts> {
        with_pool!(self, |pool| {
            let mut c = IndexCounts::default();
            if !connectors.is_empty() {
                let sql = format!(
                    "SELECT COALESCE(s.state, 'pending'), COUNT(*)
                     FROM items i JOIN versions v ON v.id = i.current_version
                     LEFT JOIN index_state s ON s.version_id = v.id
                     WHERE i.deleted = 0 AND i.held = 0 AND v.deleted = 0 AND i.connector IN {}
                     GROUP BY 1",
                    in_list(1, connectors.len())
                );
                let mut q = sqlx::query_as::<_, (String, i64)>(sqlx::AssertSqlSafe(sql));
                for x in connectors {
                    q = q.bind(x);
                }
                for (state, n) in q.fetch_all(pool).await? {
                    match state.as_str() {
                        "pending" => c.pending = n,
                        "indexed" => c.indexed = n,
                        "failed" => c.failed = n,
                        "skipped" => c.skipped = n,
                        _ => {}
                    }
                }
            }
            c.passages = sqlx::query_scalar("SELECT COUNT(*) FROM passages")
                .fetch_one(pool)
                .await?;
            Ok(c)
        })
    }

    /// Ids of the live, visible items under a path prefix (a search filter).
    pub async fn item_ids_under(&self, prefix: &[u8]) -> Result<Vec<i64>> {
        with_pool!(self, |pool| {
            let (lo, hi) = crate::rows::prefix_range(prefix);
            Ok(sqlx::query_scalar(
                "SELECT id FROM items WHERE deleted = 0 AND held = 0 AND path >= $1 AND ($2 IS NULL OR path < $2)",
            )
            .bind(lo)
            .bind(hi)
            .fetch_all(pool)
            .await?)
        })
    }
}

impl Catalog {
    /// Live, visible items whose current version may be read by any of `principals`.
    pub async fn item_ids_for_principals(&self, principals: &[String]) -> Result<Vec<i64>> {
        with_pool!(self, |pool| {
            if principals.is_empty() {
                return Ok(Vec::new());
            }
            let list: Vec<String> = (2..principals.len() + 2).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT DISTINCT i.id FROM items i JOIN version_principals p ON p.version_id = i.current_version
                 WHERE i.deleted = $1 AND i.held = 0 AND p.principal IN ({})",
                list.join(", ")
            );
            let mut q = sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).bind(0i64);
            for p in principals {
                q = q.bind(p);
            }
            Ok(q.fetch_all(pool).await?)
        })
    }

    /// The principals of a version (empty: none captured).
    pub async fn version_principals(&self, version_id: i64) -> Result<Vec<String>> {
        with_pool!(self, |pool| {
            Ok(sqlx::query_scalar(
                "SELECT principal FROM version_principals WHERE version_id = $1 ORDER BY principal",
            )
            .bind(version_id)
            .fetch_all(pool)
            .await?)
        })
    }
}
