//! `gc`: deletes what no committed version references — manifests, chunks of their own
//! (format v1), packs with nothing referenced — and repacks packs whose unreferenced
//! share passes `max_unused` (format v2), all older than a grace period (fresh objects
//! may belong to an ingest that has not committed yet).
//!
//! Repacking is crash-safe: live chunks are copied into new packs, which are uploaded
//! before the catalog moves the chunks to them in one transaction; only then is the old
//! pack deleted. A crash leaves either unreferenced new packs or an unreferenced old
//! one, both collected by the next gc.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tributary_catalog::{Catalog, Hash, now_ns};
use tributary_store::chunk::{decode, stored_in};
use tributary_store::pack::{self, NoEvents, PackId, PackWriter, Placed, parse_pack_key};
use tributary_store::retry::RetryPolicy;
use tributary_store::{ObjectMeta, ObjectStore};

use super::lease::Lease;
use crate::manifest;

/// What a gc may do.
#[derive(Debug, Clone, Copy)]
pub struct GcOptions {
    /// Objects (and chunks orphaned) more recently than this are kept.
    pub grace: Duration,
    pub dry_run: bool,
    /// A pack whose unreferenced share of bytes passes this fraction is repacked.
    pub max_unused: f64,
    /// At most this many bytes of packs are repacked in one gc (`None`: no bound).
    pub max_repack_size: Option<u64>,
    /// Target size of the packs repacking writes.
    pub pack_size: u64,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            grace: Duration::from_secs(24 * 3600),
            dry_run: false,
            max_unused: 0.05,
            max_repack_size: None,
            pack_size: 4 << 20,
        }
    }
}

#[derive(Debug, Default, Serialize)]
pub struct GcReport {
    /// Chunks that are objects of their own (format v1) listed.
    pub chunks_listed: u64,
    /// Chunks whose data is gone: their own objects deleted, or dropped from packs.
    pub chunks_deleted: u64,
    /// Bytes the bucket no longer holds.
    pub bytes_deleted: u64,
    pub manifests_deleted: u64,
    pub packs_listed: u64,
    pub packs_deleted: u64,
    pub packs_repacked: u64,
    /// Bytes of live chunks copied into new packs.
    pub bytes_repacked: u64,
    pub kept_in_grace: u64,
    /// Packs left as they are because reading them failed (named, with the reason).
    pub errors: Vec<String>,
}

/// Runs a gc. One at a time, through a catalog lease.
pub async fn gc(
    catalog: &Catalog,
    store: Arc<dyn ObjectStore>,
    opts: GcOptions,
) -> anyhow::Result<GcReport> {
    // one lease for gc and migrations: neither deletes what the other moves
    let lease = Lease::take(catalog, "gc").await?;
    let result = gc_locked(catalog, &store, opts).await;
    lease.release().await?;
    result
}

async fn gc_locked(
    catalog: &Catalog,
    store: &Arc<dyn ObjectStore>,
    opts: GcOptions,
) -> anyhow::Result<GcReport> {
    let mut report = GcReport::default();
    let cutoff = now_ns() - opts.grace.as_nanos() as i64;
    manifests(catalog, &**store, cutoff, opts.dry_run, &mut report).await?;
    loose_chunks(catalog, &**store, cutoff, opts.dry_run, &mut report).await?;
    packs(catalog, store, cutoff, &opts, &mut report).await?;
    Ok(report)
}

/// Orphan manifests first: a manifest names chunks, so it must not outlive them.
async fn manifests(
    catalog: &Catalog,
    store: &dyn ObjectStore,
    cutoff: i64,
    dry_run: bool,
    report: &mut GcReport,
) -> anyhow::Result<()> {
    let manifests = store.list(manifest::PREFIX).await?;
    for batch in manifests.chunks(500) {
        let keys: Vec<String> = batch.iter().map(|m| m.key.clone()).collect();
        let known = catalog.known_manifests(&keys).await?;
        for m in batch {
            if known.contains(&m.key) {
                continue;
            }
            if m.modified_ns > cutoff {
                report.kept_in_grace += 1;
                continue;
            }
            if !dry_run {
                store.delete(&m.key).await?;
            }
            report.manifests_deleted += 1;
        }
    }
    Ok(())
}

/// Chunks that are objects of their own (format v1).
async fn loose_chunks(
    catalog: &Catalog,
    store: &dyn ObjectStore,
    cutoff: i64,
    dry_run: bool,
    report: &mut GcReport,
) -> anyhow::Result<()> {
    let objects = store.list("chunks/").await?;
    report.chunks_listed = objects.len() as u64;
    for batch in objects.chunks(500) {
        let parsed: Vec<(Hash, &ObjectMeta)> = batch
            .iter()
            .filter_map(|m| {
                let name = m.key.rsplit('/').next()?;
                let bytes = hex::decode(name).ok()?;
                Some((bytes.try_into().ok()?, m))
            })
            .collect();
        let hashes: Vec<Hash> = parsed.iter().map(|(h, _)| *h).collect();
        let states = catalog.chunk_states(&hashes).await?;
        for (h, m) in parsed {
            // the grace period runs from the upload (no row: an ingest may not have
            // committed yet) or from the moment the last reference was pruned
            let since = match states.get(&h) {
                Some((refs, _)) if *refs > 0 => continue,
                Some((_, orphaned)) => orphaned.unwrap_or(0).max(m.modified_ns),
                None => m.modified_ns,
            };
            if since > cutoff {
                report.kept_in_grace += 1;
                continue;
            }
            // re-check just before deleting: an ingest may have committed it meanwhile
            if catalog.chunk_referenced(&h).await? {
                continue;
            }
            if !dry_run {
                store.delete(&m.key).await?;
                catalog.forget_chunk(&h).await?;
            }
            report.chunks_deleted += 1;
            report.bytes_deleted += m.size;
        }
    }
    Ok(())
}

/// What gc does with one pack, decided from its size, age and use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackFate {
    Keep,
    /// Unreferenced or wasteful, but too recent to touch.
    Grace,
    Delete,
    /// Copy its live chunks into new packs, then delete it; frees this many bytes.
    Repack {
        unused: u64,
    },
}

/// The pure decision for a pack of `size` bytes modified at `modified_ns`, used as `u`
/// says, against the grace `cutoff` and the `max_unused` fraction.
pub fn pack_fate(
    size: u64,
    modified_ns: i64,
    u: &tributary_catalog::PackUsage,
    cutoff: i64,
    max_unused: f64,
) -> PackFate {
    let recent = modified_ns > cutoff || u.last_orphaned > cutoff;
    if u.live_chunks == 0 {
        return if recent {
            PackFate::Grace
        } else {
            PackFate::Delete
        };
    }
    // its index and trailer are not waste (an over-estimate of them, so that a pack
    // just rewritten is never rewritten again)
    let tail = pack::TRAILER_LEN + 128 * (u.live_chunks + u.dead_chunks);
    let unused = size.saturating_sub(u.live_bytes).saturating_sub(tail);
    if unused as f64 <= max_unused * size as f64 {
        PackFate::Keep
    } else if recent {
        PackFate::Grace
    } else {
        PackFate::Repack { unused }
    }
}

async fn packs(
    catalog: &Catalog,
    store: &Arc<dyn ObjectStore>,
    cutoff: i64,
    opts: &GcOptions,
    report: &mut GcReport,
) -> anyhow::Result<()> {
    let listed = store.list(pack::PREFIX).await?;
    let usage = catalog.pack_usage().await?;
    let mut candidates = Vec::new();
    for m in listed {
        // anything else under packs/ is not ours to delete
        let Some(id) = parse_pack_key(&m.key) else {
            continue;
        };
        report.packs_listed += 1;
        let u = usage.get(&id).copied().unwrap_or_default();
        match pack_fate(m.size, m.modified_ns, &u, cutoff, opts.max_unused) {
            PackFate::Keep => {}
            PackFate::Grace => report.kept_in_grace += 1,
            PackFate::Delete => {
                if !opts.dry_run {
                    catalog.forget_pack(&id).await?;
                    // a chunk of it committed again meanwhile: it stays
                    if !catalog.pack_chunks(&id).await?.is_empty() {
                        continue;
                    }
                    store.delete(&m.key).await?;
                }
                report.packs_deleted += 1;
                report.chunks_deleted += u.dead_chunks;
                report.bytes_deleted += m.size;
            }
            PackFate::Repack { unused } => candidates.push((id, m, u, unused)),
        }
    }
    // the most wasteful first, within the bound on bytes read
    candidates.sort_by_key(|c| std::cmp::Reverse(c.3));
    let mut budget = opts.max_repack_size.unwrap_or(u64::MAX);
    let mut chosen = Vec::new();
    for c in candidates {
        if c.1.size > budget {
            continue;
        }
        budget -= c.1.size;
        chosen.push(c);
    }
    if opts.dry_run {
        for (_, _, u, unused) in chosen {
            report.packs_repacked += 1;
            report.chunks_deleted += u.dead_chunks;
            report.bytes_repacked += u.live_bytes;
            report.bytes_deleted += unused;
        }
        return Ok(());
    }
    let writer = PackWriter::new(
        store.clone(),
        opts.pack_size,
        2,
        RetryPolicy::default(),
        Arc::new(NoEvents),
    );
    // packs are rewritten in groups of about one new pack's worth of live bytes
    let mut group: Vec<Rewritten> = Vec::new();
    let mut group_bytes = 0u64;
    let last = chosen.len();
    for (n, (id, m, _, _)) in chosen.into_iter().enumerate() {
        match copy_live(catalog, &**store, &writer, &id).await {
            Ok(copied) => {
                group_bytes += copied.1;
                group.push((id, m, copied));
            }
            Err(e) => report
                .errors
                .push(format!("{}: {e:#}", pack::pack_key(&id))),
        }
        if group_bytes >= opts.pack_size || n + 1 == last {
            commit_group(
                catalog,
                &**store,
                &writer,
                std::mem::take(&mut group),
                report,
            )
            .await?;
            group_bytes = 0;
        }
    }
    Ok(())
}

/// Chunk moves out of a pack and the bytes they copy.
type Moves = (Vec<(Hash, Option<PackId>, Placed)>, u64);

/// A pack being rewritten: its id, its object, its moves.
type Rewritten = (PackId, ObjectMeta, Moves);

/// Appends the live chunks of pack `id` to `writer`, each checked against its hash
/// first (a damaged pack is left as it is, never copied); returns the moves to make.
async fn copy_live(
    catalog: &Catalog,
    store: &dyn ObjectStore,
    writer: &PackWriter,
    id: &PackId,
) -> anyhow::Result<Moves> {
    let key = pack::pack_key(id);
    let body = store.get(&key).await?;
    let (mut moves, mut bytes) = (Vec::new(), 0);
    for row in catalog.pack_chunks(id).await? {
        if row.refcount <= 0 {
            continue;
        }
        let loc = row.chunk.loc();
        let blob = stored_in(&body, &loc)?;
        decode(store, &loc, blob.clone()).await?;
        let placed = writer
            .add(loc.hash, blob, loc.size, loc.compression)
            .await?;
        moves.push((loc.hash, Some(*id), placed));
        bytes += loc.stored_size;
    }
    Ok((moves, bytes))
}

/// Makes the new packs durable, moves the chunks to them, then deletes the old packs.
async fn commit_group(
    catalog: &Catalog,
    store: &dyn ObjectStore,
    writer: &PackWriter,
    group: Vec<Rewritten>,
    report: &mut GcReport,
) -> anyhow::Result<()> {
    writer.finish().await.map_err(anyhow::Error::msg)?;
    crate::fault::point("gc.before_move");
    for (id, m, (moves, live_bytes)) in group {
        catalog.move_chunks(&moves).await?;
        crate::fault::point("gc.after_move");
        let dropped = catalog.forget_pack(&id).await?;
        // a chunk of it committed again meanwhile: it stays for the next gc
        if !catalog.pack_chunks(&id).await?.is_empty() {
            continue;
        }
        store.delete(&m.key).await?;
        report.packs_repacked += 1;
        report.chunks_deleted += dropped;
        report.bytes_repacked += live_bytes;
        report.bytes_deleted += m.size.saturating_sub(live_bytes);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_catalog::PackUsage;

    #[test]
    fn packs_are_kept_deleted_or_repacked_by_their_waste_and_age() {
        let old = 100;
        let cutoff = 1_000;
        let usage = |live_bytes, live_chunks, dead_chunks, last_orphaned| PackUsage {
            live_bytes,
            live_chunks,
            dead_chunks,
            last_orphaned,
        };
        let fate = |size, modified, u: PackUsage| pack_fate(size, modified, &u, cutoff, 0.05);
        // nothing referenced: deleted once old enough, orphaned long enough
        assert_eq!(fate(1 << 20, old, usage(0, 0, 3, 500)), PackFate::Delete);
        assert_eq!(
            fate(1 << 20, old, usage(0, 0, 0, 0)),
            PackFate::Delete,
            "no rows: a crash's leftover"
        );
        assert_eq!(
            fate(1 << 20, 2_000, usage(0, 0, 0, 0)),
            PackFate::Grace,
            "maybe an ingest's, not committed yet"
        );
        assert_eq!(
            fate(1 << 20, old, usage(0, 0, 3, 2_000)),
            PackFate::Grace,
            "orphaned just now"
        );
        // fully used, its index aside: kept
        assert_eq!(
            fate(1_000_000 + 16 + 128 * 10, old, usage(1_000_000, 10, 0, 0)),
            PackFate::Keep
        );
        // a small pack of many small chunks is not waste because of its index
        assert_eq!(
            fate(10_000 + 16 + 128 * 100, old, usage(10_000, 100, 0, 0)),
            PackFate::Keep
        );
        // 4% unused: kept; 40% unused: repacked, freeing that much
        assert_eq!(
            fate(1_000_000, old, usage(960_000, 10, 1, 500)),
            PackFate::Keep
        );
        assert_eq!(
            fate(1_000_000, old, usage(600_000, 10, 5, 500)),
            PackFate::Repack {
                unused: 1_000_000 - 600_000 - 16 - 128 * 15
            }
        );
        assert_eq!(
            fate(1_000_000, old, usage(600_000, 10, 5, 5_000)),
            PackFate::Grace
        );
    }
}
