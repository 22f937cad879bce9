//! The commit batch on PostgreSQL, set-based: a fixed number of statements per batch
//! whatever its size — each table's rows bound as arrays and unpacked by `UNNEST` —
//! where the row-by-row path ([`crate::commit`]) would pay one network round trip per
//! row (a batch of 500 files of 4 chunks: about 6,000 round trips, here about 12).
//!
//! It is the row-by-row path's exact result when every version of the batch is of a
//! different item ([`set_based`]); a batch that touches an item twice (rare: a file
//! seen twice in one listing) takes the row-by-row path, where each version sees the
//! one before it.
//!
//! Rows are written in a fixed order (items by connector and source id, chunks by
//! hash), so that instances committing at the same time lock them in the same order
//! and never deadlock. A batch that writes change rows takes [`FEED_LOCK`] first (as
//! the row-by-row path does, so every committer takes its locks in one order) and
//! holds it to the commit: sequence numbers are allocated in commit order, and a feed
//! reader never sees one before a smaller one commits.

use std::collections::{BTreeMap, HashMap, HashSet};

use sqlx::{PgPool, Postgres, Transaction};

use crate::commit::{CommitBatch, NewVersion, acl_text};
use crate::{Result, conflicts};

/// The advisory lock under which change rows are numbered and committed
/// (`pg_advisory_xact_lock`): the feed's order is the commit order.
pub(crate) const FEED_LOCK: i64 = 0x7472_6962_6665_6564; // "tribfeed"

/// Whether the batch may be written set-based: no item appears twice in it.
pub(crate) fn set_based(batch: &CommitBatch<'_>) -> bool {
    let mut seen = HashSet::with_capacity(batch.versions.len());
    batch
        .versions
        .iter()
        .all(|v| seen.insert((connector_of(batch, v), v.source_id.as_slice())))
}

fn connector_of<'a>(batch: &'a CommitBatch<'_>, v: &'a NewVersion) -> &'a str {
    v.connector.as_deref().unwrap_or(batch.connector)
}

/// One chunk row of a batch: every reference the batch makes to a hash counted once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChunkRow {
    pub hash: Vec<u8>,
    pub size: i64,
    pub stored_size: i64,
    pub compression: String,
    pub refs: i64,
    pub created_at: i64,
    pub pack: Option<Vec<u8>>,
    pub pack_offset: Option<i64>,
}

/// The batch's chunk references, one row per hash, in hash order. A row takes its
/// first reference's place and creation time — what inserting the references one by
/// one leaves — and, for a chunk stored as an object of its own (format 1), the
/// stored form of its last such reference, which is the one a row-by-row commit keeps.
pub(crate) fn chunk_rows(versions: &[NewVersion]) -> Vec<ChunkRow> {
    let mut rows: BTreeMap<&[u8], ChunkRow> = BTreeMap::new();
    for v in versions {
        for c in &v.chunks {
            let pack = c.packed.map(|p| (p.pack.to_vec(), p.offset as i64));
            match rows.get_mut(c.hash.as_slice()) {
                Some(row) => {
                    row.refs += 1;
                    if row.pack.is_none() && pack.is_none() {
                        row.stored_size = c.stored_size as i64;
                        row.compression = c.compression.as_str().to_string();
                    }
                }
                None => {
                    let (pack, pack_offset) = pack.unzip();
                    rows.insert(
                        c.hash.as_slice(),
                        ChunkRow {
                            hash: c.hash.to_vec(),
                            size: c.size as i64,
                            stored_size: c.stored_size as i64,
                            compression: c.compression.as_str().to_string(),
                            refs: 1,
                            created_at: v.committed_at,
                            pack,
                            pack_offset,
                        },
                    );
                }
            }
        }
    }
    rows.into_values().collect()
}

/// [`crate::Catalog::commit_batch`] on PostgreSQL for a batch [`set_based`] accepts.
pub(crate) async fn commit(
    pool: &PgPool,
    batch: &CommitBatch<'_>,
    me: Option<&str>,
) -> Result<Vec<i64>> {
    let mut tx = crate::Tx::from(pool.begin().await?);
    let crate::Tx::Postgres(t) = &mut tx else {
        unreachable!("a PostgreSQL pool begins PostgreSQL transactions")
    };
    // first, as the row-by-row path does: one lock order for every committer
    if batch.versions.iter().any(|v| !v.held) {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(FEED_LOCK)
            .execute(&mut **t)
            .await?;
    }
    if let Some(job) = batch.job_id {
        crate::queue::fence(&mut tx, job, me).await?;
    }
    let crate::Tx::Postgres(t) = &mut tx else {
        unreachable!()
    };
    let (ids, item_ids) = write_versions(t, batch).await?;
    conflicts::apply_ops(&mut tx, batch.conflicts).await?;
    let crate::Tx::Postgres(t) = &mut tx else {
        unreachable!()
    };
    write_changes(t, batch, &ids, &item_ids).await?;
    crate::commit::record_checkpoint(&mut tx, batch).await?;
    tx.commit().await?;
    Ok(ids)
}

/// Items, versions, principals, chunks and the items' new state; the version ids and
/// item ids in the batch's order.
async fn write_versions(
    t: &mut Transaction<'static, Postgres>,
    batch: &CommitBatch<'_>,
) -> Result<(Vec<i64>, Vec<i64>)> {
    let vs = batch.versions;
    if vs.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }

    // items, in key order
    let mut order: Vec<usize> = (0..vs.len()).collect();
    order.sort_by(|&a, &b| {
        (connector_of(batch, &vs[a]), &vs[a].source_id)
            .cmp(&(connector_of(batch, &vs[b]), &vs[b].source_id))
    });
    let rows: Vec<(i64, String, Vec<u8>)> = sqlx::query_as(
        "INSERT INTO items (connector, source_id, path, path_key)
         SELECT * FROM UNNEST($1::text[], $2::bytea[], $3::bytea[], $4::bytea[])
         ON CONFLICT (connector, source_id) DO UPDATE SET path = excluded.path, path_key = excluded.path_key
         RETURNING id, connector, source_id",
    )
    .bind(order.iter().map(|&i| connector_of(batch, &vs[i])).collect::<Vec<_>>())
    .bind(order.iter().map(|&i| vs[i].source_id.as_slice()).collect::<Vec<_>>())
    .bind(order.iter().map(|&i| vs[i].path.as_slice()).collect::<Vec<_>>())
    .bind(
        order
            .iter()
            .map(|&i| conflicts::path_key(&vs[i].path))
            .collect::<Vec<_>>(),
    )
    .fetch_all(&mut **t)
    .await?;
    let by_key: HashMap<(String, Vec<u8>), i64> =
        rows.into_iter().map(|(id, c, s)| ((c, s), id)).collect();
    let item_ids: Vec<i64> = vs
        .iter()
        .map(|v| by_key[&(connector_of(batch, v).to_string(), v.source_id.clone())])
        .collect();

    // versions, numbered in the batch's order
    let rows: Vec<(i64, i64)> = sqlx::query_as(
        "INSERT INTO versions (item_id, job_id, deleted, size, mtime_ns, inode, change_tag, digest, committed_at, manifest, held)
         SELECT u.item_id, $1::bigint, u.deleted, u.size, u.mtime_ns, u.inode, u.change_tag, u.digest, u.committed_at, $2::text, u.held
         FROM UNNEST($3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[], $8::text[], $9::bytea[], $10::bigint[], $11::bigint[])
           WITH ORDINALITY AS u(item_id, deleted, size, mtime_ns, inode, change_tag, digest, committed_at, held, ord)
         ORDER BY u.ord
         RETURNING id, item_id",
    )
    .bind(batch.job_id)
    .bind(batch.manifest)
    .bind(&item_ids)
    .bind(vs.iter().map(|v| v.deleted as i64).collect::<Vec<_>>())
    .bind(vs.iter().map(|v| v.size as i64).collect::<Vec<_>>())
    .bind(vs.iter().map(|v| v.mtime_ns).collect::<Vec<_>>())
    .bind(vs.iter().map(|v| v.inode).collect::<Vec<_>>())
    .bind(vs.iter().map(|v| v.change_tag.as_deref()).collect::<Vec<_>>())
    .bind(vs.iter().map(|v| v.digest.map(|d| d.to_vec())).collect::<Vec<_>>())
    .bind(vs.iter().map(|v| v.committed_at).collect::<Vec<_>>())
    .bind(vs.iter().map(|v| v.held as i64).collect::<Vec<_>>())
    .fetch_all(&mut **t)
    .await?;
    let by_item: HashMap<i64, i64> = rows.into_iter().map(|(id, item)| (item, id)).collect();
    let ids: Vec<i64> = item_ids.iter().map(|i| by_item[i]).collect();

    // who may read each version, and the items' captured principals
    let (mut pv, mut pp) = (Vec::new(), Vec::new());
    let (mut acl_items, mut acls) = (Vec::new(), Vec::new());
    for (i, v) in vs.iter().enumerate() {
        let Some(principals) = &v.principals else {
            continue;
        };
        let text = acl_text(principals);
        for p in text.lines().filter(|p| !p.is_empty()) {
            pv.push(ids[i]);
            pp.push(p.to_string());
        }
        if !v.displaced {
            acl_items.push(item_ids[i]);
            acls.push(text);
        }
    }
    if !pv.is_empty() {
        sqlx::query(
            "INSERT INTO version_principals (version_id, principal)
             SELECT * FROM UNNEST($1::bigint[], $2::text[])",
        )
        .bind(&pv)
        .bind(&pp)
        .execute(&mut **t)
        .await?;
    }
    if !acl_items.is_empty() {
        sqlx::query(
            "UPDATE items SET acl = u.acl FROM UNNEST($1::bigint[], $2::text[]) AS u(id, acl)
             WHERE items.id = u.id",
        )
        .bind(&acl_items)
        .bind(&acls)
        .execute(&mut **t)
        .await?;
    }

    // chunks, one row per hash in hash order, then the versions' chunk lists
    let chunks = chunk_rows(vs);
    if !chunks.is_empty() {
        // A chunk that has a row keeps its place (see the row-by-row path).
        sqlx::query(
            "INSERT INTO chunks (hash, size, stored_size, compression, refcount, created_at, pack, pack_offset)
             SELECT * FROM UNNEST($1::bytea[], $2::bigint[], $3::bigint[], $4::text[], $5::bigint[], $6::bigint[], $7::bytea[], $8::bigint[])
             ON CONFLICT (hash) DO UPDATE SET refcount = chunks.refcount + excluded.refcount, orphaned_at = NULL,
               stored_size = CASE WHEN chunks.pack IS NULL AND excluded.pack IS NULL THEN excluded.stored_size ELSE chunks.stored_size END,
               compression = CASE WHEN chunks.pack IS NULL AND excluded.pack IS NULL THEN excluded.compression ELSE chunks.compression END",
        )
        .bind(chunks.iter().map(|c| c.hash.as_slice()).collect::<Vec<_>>())
        .bind(chunks.iter().map(|c| c.size).collect::<Vec<_>>())
        .bind(chunks.iter().map(|c| c.stored_size).collect::<Vec<_>>())
        .bind(chunks.iter().map(|c| c.compression.as_str()).collect::<Vec<_>>())
        .bind(chunks.iter().map(|c| c.refs).collect::<Vec<_>>())
        .bind(chunks.iter().map(|c| c.created_at).collect::<Vec<_>>())
        .bind(chunks.iter().map(|c| c.pack.as_deref()).collect::<Vec<_>>())
        .bind(chunks.iter().map(|c| c.pack_offset).collect::<Vec<_>>())
        .execute(&mut **t)
        .await?;
        let (mut cv, mut ci, mut ch) = (Vec::new(), Vec::new(), Vec::new());
        for (i, v) in vs.iter().enumerate() {
            for (idx, c) in v.chunks.iter().enumerate() {
                cv.push(ids[i]);
                ci.push(idx as i64);
                ch.push(c.hash.as_slice());
            }
        }
        sqlx::query(
            "INSERT INTO version_chunks (version_id, idx, hash)
             SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bytea[])",
        )
        .bind(&cv)
        .bind(&ci)
        .bind(&ch)
        .execute(&mut **t)
        .await?;
    }

    update_items(t, vs, &item_ids, &ids).await?;

    // a file stored is a file no longer failing
    let cleared: Vec<usize> = (0..vs.len()).filter(|&i| !vs[i].displaced).collect();
    if !cleared.is_empty() {
        sqlx::query(
            "DELETE FROM item_errors e USING UNNEST($1::text[], $2::bytea[]) AS u(connector, source_id)
             WHERE e.connector = u.connector AND e.source_id = u.source_id",
        )
        .bind(cleared.iter().map(|&i| connector_of(batch, &vs[i])).collect::<Vec<_>>())
        .bind(cleared.iter().map(|&i| vs[i].source_id.as_slice()).collect::<Vec<_>>())
        .execute(&mut **t)
        .await?;
    }
    Ok((ids, item_ids))
}

/// The items' mirrored state, as the row-by-row path sets it for each kind of version.
async fn update_items(
    t: &mut Transaction<'static, Postgres>,
    vs: &[NewVersion],
    item_ids: &[i64],
    ids: &[i64],
) -> Result<()> {
    let displaced: Vec<usize> = (0..vs.len()).filter(|&i| vs[i].displaced).collect();
    let held: Vec<usize> = (0..vs.len())
        .filter(|&i| !vs[i].displaced && vs[i].held)
        .collect();
    let visible: Vec<usize> = (0..vs.len())
        .filter(|&i| !vs[i].displaced && !vs[i].held)
        .collect();
    if !displaced.is_empty() {
        // the owner's content stops being visible; its source state stays mirrored
        sqlx::query(
            "UPDATE items SET current_version = u.version, deleted = 1, held = 1
             FROM UNNEST($1::bigint[], $2::bigint[]) AS u(id, version) WHERE items.id = u.id",
        )
        .bind(displaced.iter().map(|&i| item_ids[i]).collect::<Vec<_>>())
        .bind(displaced.iter().map(|&i| ids[i]).collect::<Vec<_>>())
        .execute(&mut **t)
        .await?;
    }
    let state = |sel: &[usize]| {
        (
            sel.iter().map(|&i| item_ids[i]).collect::<Vec<_>>(),
            sel.iter().map(|&i| vs[i].size as i64).collect::<Vec<_>>(),
            sel.iter().map(|&i| vs[i].mtime_ns).collect::<Vec<_>>(),
            sel.iter().map(|&i| vs[i].inode).collect::<Vec<_>>(),
            sel.iter()
                .map(|&i| vs[i].change_tag.as_deref())
                .collect::<Vec<_>>(),
        )
    };
    if !held.is_empty() {
        // mirrored (an unchanged source is not read again) but not visible; a held
        // tombstone simply ends the claim
        let (items, size, mtime, inode, tag) = state(&held);
        sqlx::query(
            "UPDATE items SET deleted = CASE WHEN items.current_version IS NULL THEN 1 ELSE items.deleted END,
               held = u.held, size = u.size, mtime_ns = u.mtime_ns, inode = u.inode, change_tag = u.change_tag
             FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::text[])
               AS u(id, held, size, mtime_ns, inode, change_tag)
             WHERE items.id = u.id",
        )
        .bind(&items)
        .bind(held.iter().map(|&i| !vs[i].deleted as i64).collect::<Vec<_>>())
        .bind(&size)
        .bind(&mtime)
        .bind(&inode)
        .bind(&tag)
        .execute(&mut **t)
        .await?;
    }
    if !visible.is_empty() {
        let (items, size, mtime, inode, tag) = state(&visible);
        sqlx::query(
            "UPDATE items SET current_version = u.version, deleted = u.deleted, held = 0, size = u.size,
               mtime_ns = u.mtime_ns, inode = u.inode, change_tag = u.change_tag
             FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::text[])
               AS u(id, version, deleted, size, mtime_ns, inode, change_tag)
             WHERE items.id = u.id",
        )
        .bind(&items)
        .bind(visible.iter().map(|&i| ids[i]).collect::<Vec<_>>())
        .bind(visible.iter().map(|&i| vs[i].deleted as i64).collect::<Vec<_>>())
        .bind(&size)
        .bind(&mtime)
        .bind(&inode)
        .bind(&tag)
        .execute(&mut **t)
        .await?;
    }
    Ok(())
}

/// The batch's change rows (every version but the held ones), in its order, numbered
/// under [`FEED_LOCK`] (taken at the start of the transaction).
async fn write_changes(
    t: &mut Transaction<'static, Postgres>,
    batch: &CommitBatch<'_>,
    ids: &[i64],
    item_ids: &[i64],
) -> Result<()> {
    let vs = batch.versions;
    let feed: Vec<usize> = (0..vs.len()).filter(|&i| !vs[i].held).collect();
    if feed.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO changes (connector, item_id, version_id, op, path, at)
         SELECT u.connector, u.item_id, u.version_id, u.op, u.path, u.at
         FROM UNNEST($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::bytea[], $6::bigint[])
           WITH ORDINALITY AS u(connector, item_id, version_id, op, path, at, ord)
         ORDER BY u.ord",
    )
    .bind(
        feed.iter()
            .map(|&i| connector_of(batch, &vs[i]))
            .collect::<Vec<_>>(),
    )
    .bind(feed.iter().map(|&i| item_ids[i]).collect::<Vec<_>>())
    .bind(feed.iter().map(|&i| ids[i]).collect::<Vec<_>>())
    .bind(
        feed.iter()
            .map(|&i| if vs[i].deleted { "delete" } else { "upsert" })
            .collect::<Vec<_>>(),
    )
    .bind(
        feed.iter()
            .map(|&i| vs[i].path.as_slice())
            .collect::<Vec<_>>(),
    )
    .bind(feed.iter().map(|&i| vs[i].committed_at).collect::<Vec<_>>())
    .execute(&mut **t)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ChunkRef, Compression};
    use tributary_store::pack::Placed;

    fn version(source: &str, chunks: Vec<ChunkRef>, at: i64) -> NewVersion {
        NewVersion {
            source_id: source.as_bytes().to_vec(),
            path: source.as_bytes().to_vec(),
            chunks,
            committed_at: at,
            ..NewVersion::default()
        }
    }

    fn chunk(n: u8, stored: u64, packed: Option<(u8, u64)>) -> ChunkRef {
        ChunkRef {
            hash: [n; 32],
            size: 100,
            stored_size: stored,
            compression: Compression::Zstd,
            packed: packed.map(|(p, offset)| Placed {
                pack: [p; 32],
                offset,
            }),
        }
    }

    fn batch(versions: &[NewVersion]) -> CommitBatch<'_> {
        CommitBatch {
            connector: "c",
            job_id: None,
            versions,
            checkpoint: None,
            manifest: None,
            conflicts: &[],
        }
    }

    #[test]
    fn a_batch_touching_an_item_twice_goes_row_by_row() {
        let distinct = [version("a", vec![], 1), version("b", vec![], 1)];
        assert!(set_based(&batch(&distinct)));
        let twice = [version("a", vec![], 1), version("a", vec![], 2)];
        assert!(!set_based(&batch(&twice)));
        // the same source id under another connector (a displaced owner) is another item
        let mut other = version("a", vec![], 1);
        other.connector = Some("d".into());
        assert!(set_based(&batch(&[version("a", vec![], 1), other])));
    }

    #[test]
    fn chunk_references_are_counted_once_per_hash_in_hash_order() {
        let vs = [
            version(
                "a",
                vec![chunk(9, 50, Some((1, 0))), chunk(3, 40, None)],
                10,
            ),
            version(
                "b",
                vec![
                    chunk(3, 45, None),
                    chunk(9, 70, Some((2, 8))),
                    chunk(9, 70, None),
                ],
                20,
            ),
        ];
        let rows = chunk_rows(&vs);
        assert_eq!(rows.len(), 2);
        let (three, nine) = (&rows[0], &rows[1]);
        assert_eq!(three.hash, vec![3; 32]);
        // an object of its own: the last reference's stored form, the first's time
        assert_eq!(
            (three.refs, three.stored_size, three.created_at),
            (2, 45, 10)
        );
        assert_eq!((three.pack.clone(), three.pack_offset), (None, None));
        // a packed chunk keeps its first place
        assert_eq!(nine.hash, vec![9; 32]);
        assert_eq!((nine.refs, nine.stored_size), (3, 50));
        assert_eq!(
            (nine.pack.clone(), nine.pack_offset),
            (Some(vec![1; 32]), Some(0))
        );
        assert!(chunk_rows(&[version("e", vec![], 1)]).is_empty());
    }
}
