//! `migrate-store`: a format v1 store (one object per chunk) rewritten as format v2
//! (packs), resumable after a crash at any point.
//!
//! The marker says v2 first, so every writer started from then on writes packs. Then,
//! a page at a time: the chunks of their own are read back (checked against their
//! hash), appended to packs, the packs uploaded, the catalog moves the chunks into them
//! in one transaction, and only then are the old objects deleted. A crash leaves new
//! packs nothing names yet, or old objects nothing references any more — both are
//! collected by `gc` — and a rerun carries on with the chunks still of their own.

use std::sync::Arc;

use futures::StreamExt;
use serde::Serialize;
use tributary_catalog::{Catalog, Hash};
use tributary_store::ObjectStore;
use tributary_store::chunk::{ChunkLoc, decode, get_stored};
use tributary_store::format::{self, StoreFormat};
use tributary_store::pack::{PackEvents, PackWriter, Placed};
use tributary_store::retry::RetryPolicy;

use super::lease::Lease;

#[derive(Debug, Default, Serialize)]
pub struct MigrateReport {
    /// The format the store was in before.
    pub from_format: u32,
    pub chunks_moved: u64,
    pub bytes_moved: u64,
    /// Chunks of their own already gone or damaged: named, left for `verify` to report.
    pub errors: Vec<String>,
}

/// Rewrites the store as format v2; `progress` hears (chunks done, chunks in all) after
/// each page.
pub async fn migrate_store(
    catalog: &Catalog,
    store: Arc<dyn ObjectStore>,
    pack_size: u64,
    events: Arc<dyn PackEvents>,
    mut progress: impl FnMut(u64, u64),
) -> anyhow::Result<MigrateReport> {
    // one lease for gc and migrations: neither deletes what the other moves
    let lease = Lease::take(catalog, "gc").await?;
    let result = migrate_locked(catalog, store, pack_size, events, &mut progress).await;
    lease.release().await?;
    result
}

async fn migrate_locked(
    catalog: &Catalog,
    store: Arc<dyn ObjectStore>,
    pack_size: u64,
    events: Arc<dyn PackEvents>,
    progress: &mut impl FnMut(u64, u64),
) -> anyhow::Result<MigrateReport> {
    let mut report = MigrateReport {
        from_format: format::open(&*store, StoreFormat::current()).await?.format,
        ..MigrateReport::default()
    };
    if report.from_format < format::CURRENT {
        format::set(&*store, &StoreFormat::current()).await?;
    }
    let (total, _) = catalog.loose_chunk_count().await?;
    let writer = PackWriter::new(
        store.clone(),
        pack_size,
        2,
        RetryPolicy::default(),
        events.clone(),
    );
    let mut after: Option<Hash> = None;
    loop {
        let page = catalog.loose_chunks_page(after, 256).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.hash);
        let read: Vec<_> = futures::stream::iter(page)
            .map(|c| {
                let store = store.clone();
                async move {
                    let loc = c.loc();
                    // checked against its hash, then moved as it is stored
                    let r = match get_stored(&*store, &loc).await {
                        Ok(raw) => decode(&*store, &loc, raw.clone()).await.map(|_| raw),
                        Err(e) => Err(e),
                    };
                    (loc, r)
                }
            })
            .buffered(8)
            .collect()
            .await;
        let mut moves: Vec<(Hash, Option<[u8; 32]>, Placed)> = Vec::new();
        let mut moved: Vec<ChunkLoc> = Vec::new();
        for (loc, r) in read {
            let raw = match r {
                Ok(raw) => raw,
                Err(e) => {
                    report.errors.push(e.to_string());
                    continue;
                }
            };
            let placed = writer.add(loc.hash, raw, loc.size, loc.compression).await?;
            moves.push((loc.hash, None, placed));
            moved.push(loc);
        }
        writer.finish().await.map_err(anyhow::Error::msg)?;
        events.point("migrate.before_move");
        catalog.move_chunks(&moves).await?;
        events.point("migrate.after_move");
        for loc in &moved {
            store.delete(&loc.object_key()).await?;
            report.chunks_moved += 1;
            report.bytes_moved += loc.stored_size;
        }
        progress(report.chunks_moved, total);
    }
    Ok(report)
}
