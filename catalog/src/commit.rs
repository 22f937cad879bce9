//! The one write path for versions: a commit batch (versions, chunk lists, reference
//! counts, change rows, the checkpoint) in one transaction, and the types it takes.

use serde::{Deserialize, Serialize};

use tributary_store::pack::Placed;

use crate::rows::{hex_bytes, hex_hash, opt_hex_hash};
use crate::{Catalog, Compression, Db, Hash, Result, Tx, commit_pg, conflicts, now_ns};

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
    /// Its pack and offset (format v2), `None`: an object of its own (format v1).
    /// Not in manifests: the packs' own indexes say where chunks are, and gc may move
    /// them.
    #[serde(skip)]
    pub packed: Option<Placed>,
}

impl ChunkRef {
    /// Where the chunk lies, as reading it back needs it.
    pub fn loc(&self) -> tributary_store::chunk::ChunkLoc {
        tributary_store::chunk::ChunkLoc {
            hash: self.hash,
            size: self.size,
            stored_size: self.stored_size,
            compression: self.compression,
            packed: self.packed,
        }
    }
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

impl Catalog {
    /// Commits a batch in one transaction. Returns the new version ids in order. A
    /// job's batch is refused ([`crate::CatalogError::LeaseLost`]) unless the job still holds
    /// its connector's lease ([`crate::queue::fence`], in the same transaction).
    /// On PostgreSQL a batch of distinct items is written set-based
    /// ([`crate::commit_pg`]): a fixed number of statements, not one per row.
    pub async fn commit_batch(&self, batch: &CommitBatch<'_>) -> Result<Vec<i64>> {
        if let Db::Postgres(pool) = &self.db
            && commit_pg::set_based(batch)
        {
            return commit_pg::commit(pool, batch, self.instance.as_deref()).await;
        }
        with_pool!(self, |pool| {
            let mut tx = crate::Tx::from(pool.begin().await?);
            if let Tx::Postgres(t) = &mut tx {
                // the feed's order is the commit order (see commit_pg::FEED_LOCK)
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(commit_pg::FEED_LOCK)
                    .execute(&mut **t)
                    .await?;
            }
            if let Some(job) = batch.job_id {
                crate::queue::fence(&mut tx, job, self.instance.as_deref()).await?;
            }
            let mut ids = Vec::with_capacity(batch.versions.len());
            for v in batch.versions {
                ids.push(insert_version(&mut tx, batch, v).await?);
            }
            conflicts::apply_ops(&mut tx, batch.conflicts).await?;
            record_checkpoint(&mut tx, batch).await?;
            tx.commit().await?;
            Ok(ids)
        })
    }
}

/// The batch's checkpoint (when it has one) and the connector's last update, in the
/// batch's transaction.
pub(crate) async fn record_checkpoint(tx: &mut Tx<'_>, batch: &CommitBatch<'_>) -> Result<()> {
    on_tx!(tx, |db| {
        sqlx::query(
            "INSERT INTO connectors (id, checkpoint, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (id) DO UPDATE SET checkpoint = COALESCE(excluded.checkpoint, connectors.checkpoint), updated_at = excluded.updated_at",
        )
        .bind(batch.connector)
        .bind(batch.checkpoint)
        .bind(now_ns())
        .execute(db)
        .await?;
    });
    Ok(())
}

async fn insert_version(tx: &mut Tx<'_>, batch: &CommitBatch<'_>, v: &NewVersion) -> Result<i64> {
    let connector = v.connector.as_deref().unwrap_or(batch.connector);
    let item_id: i64 = on_tx!(tx, |db| {
        sqlx::query_scalar(
        "INSERT INTO items (connector, source_id, path, path_key) VALUES ($1, $2, $3, $4)
         ON CONFLICT (connector, source_id) DO UPDATE SET path = excluded.path, path_key = excluded.path_key
         RETURNING id",
    )
    .bind(connector)
    .bind(&v.source_id)
    .bind(&v.path)
    .bind(conflicts::path_key(&v.path))
    .fetch_one(db)
    .await?
    });
    let version_id: i64 = on_tx!(tx, |db| {
        sqlx::query_scalar(
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
    .fetch_one(db)
    .await?
    });
    if let Some(principals) = &v.principals {
        let text = acl_text(principals);
        for p in text.lines().filter(|p| !p.is_empty()) {
            on_tx!(tx, |db| {
                sqlx::query(
                    "INSERT INTO version_principals (version_id, principal) VALUES ($1, $2)",
                )
                .bind(version_id)
                .bind(p)
                .execute(db)
                .await?;
            });
        }
        if !v.displaced {
            on_tx!(tx, |db| {
                sqlx::query("UPDATE items SET acl = $1 WHERE id = $2")
                    .bind(&text)
                    .bind(item_id)
                    .execute(db)
                    .await?;
            });
        }
    }
    for (idx, c) in v.chunks.iter().enumerate() {
        on_tx!(tx, |db| {
            sqlx::query(
            // A chunk that has a row keeps its place: it is there (gc forgets a row
            // before it deletes the object), and gc may have moved it since the
            // committer learned of it. Only an object of its own rewritten in place (v1)
            // takes the new stored form.
            "INSERT INTO chunks (hash, size, stored_size, compression, refcount, created_at, pack, pack_offset)
             VALUES ($1, $2, $3, $4, 1, $5, $6, $7)
             ON CONFLICT (hash) DO UPDATE SET refcount = chunks.refcount + 1, orphaned_at = NULL,
               stored_size = CASE WHEN chunks.pack IS NULL AND excluded.pack IS NULL THEN excluded.stored_size ELSE chunks.stored_size END,
               compression = CASE WHEN chunks.pack IS NULL AND excluded.pack IS NULL THEN excluded.compression ELSE chunks.compression END",
        )
        .bind(c.hash.as_slice())
        .bind(c.size as i64)
        .bind(c.stored_size as i64)
        .bind(c.compression.as_str())
        .bind(v.committed_at)
        .bind(c.packed.map(|p| p.pack.to_vec()))
        .bind(c.packed.map(|p| p.offset as i64))
        .execute(db)
        .await?;
        });
        on_tx!(tx, |db| {
            sqlx::query("INSERT INTO version_chunks (version_id, idx, hash) VALUES ($1, $2, $3)")
                .bind(version_id)
                .bind(idx as i64)
                .bind(c.hash.as_slice())
                .execute(db)
                .await?;
        });
    }
    if v.displaced {
        // the owner's content stops being visible; its source state stays mirrored
        on_tx!(tx, |db| {
            sqlx::query(
                "UPDATE items SET current_version = $1, deleted = 1, held = 1 WHERE id = $2",
            )
            .bind(version_id)
            .bind(item_id)
            .execute(db)
            .await?;
        });
    } else if v.held {
        // a claim kept aside: mirrored (so an unchanged source is not read again) but
        // not visible; a held tombstone simply ends the claim
        on_tx!(tx, |db| {
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
        .execute(db)
        .await?;
        });
    } else {
        on_tx!(tx, |db| {
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
        .execute(db)
        .await?;
        });
    }
    if !v.held {
        on_tx!(tx, |db| {
            sqlx::query(
            "INSERT INTO changes (connector, item_id, version_id, op, path, at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(connector)
        .bind(item_id)
        .bind(version_id)
        .bind(if v.deleted { "delete" } else { "upsert" })
        .bind(&v.path)
        .bind(v.committed_at)
        .execute(db)
        .await?;
        });
    }
    if !v.displaced {
        on_tx!(tx, |db| {
            sqlx::query("DELETE FROM item_errors WHERE connector = $1 AND source_id = $2")
                .bind(connector)
                .bind(&v.source_id)
                .execute(db)
                .await?;
        });
    }
    Ok(version_id)
}
