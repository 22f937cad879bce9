//! `rebuild-catalog`: an empty catalog filled from the bucket alone — manifests for the
//! versions, the packs' own indexes (and chunks that are objects of their own, format
//! v1) for where each chunk is.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use anyhow::bail;
use futures::StreamExt;
use serde::Serialize;
use tributary_catalog::{Catalog, CommitBatch, Compression, Hash, NewVersion};
use tributary_store::chunk::chunk_key;
use tributary_store::pack::{self, Placed};
use tributary_store::{ErrorClass, ObjectStore};

use crate::manifest::{self, Manifest};

#[derive(Debug, Default, Serialize)]
pub struct RebuildReport {
    pub manifests: u64,
    pub versions: u64,
    pub duplicates_skipped: u64,
    /// Versions left out because their chunks are gone (pruned by retention).
    pub missing_data_skipped: u64,
    pub packs: u64,
    /// Packs whose index could not be read (named, with the reason); their chunks count
    /// as gone.
    pub unreadable_packs: Vec<String>,
}

/// Rebuilds an empty catalog from the manifests in the object store.
///
/// Manifests are applied in commit order. A manifest whose catalog transaction never
/// happened (a crash between the two) is applied too: its data was uploaded first, so
/// it is valid; a version identical to the item's previous one is skipped, so a batch
/// redone after such a crash does not appear twice.
pub async fn rebuild_catalog(
    catalog: &Catalog,
    store: Arc<dyn ObjectStore>,
) -> anyhow::Result<RebuildReport> {
    if !catalog.is_empty().await? {
        bail!(
            "the catalog is not empty; rebuild-catalog only fills an empty catalog (move the old one away first)"
        );
    }
    let mut keys = store.list(manifest::PREFIX).await?;
    let mut loaded: Vec<(String, Manifest)> = Vec::new();
    for m in keys.drain(..) {
        let body = store.get(&m.key).await?;
        let parsed: Manifest = manifest::decode(&m.key, &body).map_err(anyhow::Error::msg)?;
        loaded.push((m.key, parsed));
    }
    loaded.sort_by(|a, b| (a.1.committed_at, &a.0).cmp(&(b.1.committed_at, &b.0)));
    let mut report = RebuildReport::default();
    // where each chunk is: the packs' own indexes, and chunks of their own (format v1);
    // versions whose data is no longer in the store (pruned by retention and gc) are
    // left out rather than rebuilt as dangling
    let places = pack_places(&*store, &mut report).await?;
    let loose: HashSet<String> = store
        .list("chunks/")
        .await?
        .into_iter()
        .map(|m| m.key)
        .collect();
    let mut last: HashMap<(String, Vec<u8>), NewVersion> = HashMap::new();
    for (key, m) in loaded {
        report.manifests += 1;
        let mut fresh = Vec::new();
        for mut v in m.versions {
            let connector = v.connector.clone().unwrap_or_else(|| m.connector.clone());
            let id = (connector, v.source_id.clone());
            let same = last.get(&id).is_some_and(|p| {
                p.deleted == v.deleted
                    && p.digest == v.digest
                    && p.size == v.size
                    && p.mtime_ns == v.mtime_ns
                    && p.path == v.path
                    && p.held == v.held
                    && p.displaced == v.displaced
            });
            let dead_tombstone = v.deleted && last.get(&id).is_none_or(|p| p.deleted);
            if same || dead_tombstone {
                report.duplicates_skipped += 1;
                continue;
            }
            if !locate(&mut v, &places, &loose) {
                report.missing_data_skipped += 1;
                continue;
            }
            last.insert(id, v.clone());
            fresh.push(v);
        }
        report.versions += fresh.len() as u64;
        catalog
            .commit_batch(&CommitBatch {
                connector: &m.connector,
                job_id: None,
                versions: &fresh,
                checkpoint: m.checkpoint.as_deref(),
                manifest: Some(&key),
                conflicts: &[],
            })
            .await?;
    }
    Ok(report)
}

/// A chunk's place in a pack, as the pack's index says.
struct PackPlace {
    placed: Placed,
    stored_size: u64,
    compression: Compression,
}

/// Every chunk listed by a pack index in the store.
async fn pack_places(
    store: &dyn ObjectStore,
    report: &mut RebuildReport,
) -> anyhow::Result<HashMap<Hash, PackPlace>> {
    let listed: Vec<_> = store
        .list(pack::PREFIX)
        .await?
        .into_iter()
        .filter_map(|m| Some((pack::parse_pack_key(&m.key)?, m)))
        .collect();
    let mut indexes = futures::stream::iter(listed)
        .map(|(id, m)| async move {
            let r = pack::read_index(store, &m.key, m.size).await;
            (id, m.key, r)
        })
        .buffer_unordered(8);
    let mut places = HashMap::new();
    while let Some((id, key, r)) = indexes.next().await {
        report.packs += 1;
        match r {
            Ok(entries) => {
                for e in entries {
                    places.entry(e.id).or_insert(PackPlace {
                        placed: Placed {
                            pack: id,
                            offset: e.offset,
                        },
                        stored_size: e.length,
                        compression: e.compression,
                    });
                }
            }
            Err(e) if e.class == ErrorClass::Permanent => {
                report.unreadable_packs.push(format!("{key}: {e}"))
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(places)
}

/// Gives each chunk of `v` its place in the store; false if one is nowhere.
fn locate(v: &mut NewVersion, places: &HashMap<Hash, PackPlace>, loose: &HashSet<String>) -> bool {
    for c in &mut v.chunks {
        if let Some(p) = places.get(&c.hash) {
            c.packed = Some(p.placed);
            c.stored_size = p.stored_size;
            c.compression = p.compression;
        } else if loose.contains(&chunk_key(&c.hash)) {
            c.packed = None;
        } else {
            return false;
        }
    }
    true
}
