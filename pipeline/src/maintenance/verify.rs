//! `verify`: every chunk the catalog references is read back and checked against its
//! hash — each pack in one read, each chunk of its own (format v1) alone — and each
//! pack's own index is checked too (opened, in bounds, listing the pack's chunks where
//! the catalog has them), since `rebuild-catalog` depends on it.

use std::sync::Arc;

use futures::StreamExt;
use serde::Serialize;
use tributary_catalog::{Catalog, Hash};
use tributary_store::chunk::{ChunkLoc, decode, get_chunk, stored_in};
use tributary_store::pack::{PackId, index_in, pack_key};
use tributary_store::retry::{RetryPolicy, with_retry};
use tributary_store::{ErrorClass, ObjectStore, StoreError};

#[derive(Debug, Default, Serialize)]
pub struct VerifyReport {
    pub chunks_checked: u64,
    pub bytes_checked: u64,
    pub packs_checked: u64,
    /// Objects that are not there (a pack, or a chunk's own object).
    pub missing: Vec<String>,
    /// Chunks whose bytes do not decode to their hash, and packs whose index is damaged
    /// or disagrees with the catalog, each with its object's name.
    pub corrupt: Vec<String>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.missing.is_empty() && self.corrupt.is_empty()
    }

    fn record(&mut self, loc: &ChunkLoc, r: Result<(), StoreError>) {
        self.chunks_checked += 1;
        self.bytes_checked += loc.size;
        match r {
            Ok(()) => {}
            Err(e) if e.class == ErrorClass::NotFound => {
                let key = loc.object_key();
                if !self.missing.contains(&key) {
                    self.missing.push(key);
                }
            }
            Err(e) => self.corrupt.push(e.to_string()),
        }
    }
}

/// Reads back every referenced chunk and checks it.
pub async fn verify(
    catalog: &Catalog,
    store: Arc<dyn ObjectStore>,
) -> anyhow::Result<VerifyReport> {
    let mut report = VerifyReport::default();
    // chunks of their own (format v1)
    let mut after: Option<Hash> = None;
    loop {
        let page = catalog.loose_chunks_page(after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.hash);
        let live = page.into_iter();
        let results: Vec<_> = futures::stream::iter(live)
            .map(|c| {
                let store = store.clone();
                async move {
                    let loc = c.loc();
                    let r = get_chunk(&*store, &loc).await.map(drop);
                    (loc, r)
                }
            })
            .buffer_unordered(8)
            .collect()
            .await;
        for (loc, r) in results {
            report.record(&loc, r);
        }
    }
    // packs, each read once
    let packs: Vec<PackId> = catalog
        .pack_usage()
        .await?
        .into_iter()
        .filter(|(_, u)| u.live_chunks > 0)
        .map(|(p, _)| p)
        .collect();
    let mut checked = futures::stream::iter(packs)
        .map(|pack| {
            let store = store.clone();
            async move {
                let chunks: Vec<ChunkLoc> = catalog
                    .pack_chunks(&pack)
                    .await?
                    .into_iter()
                    .filter(|c| c.refcount > 0)
                    .map(|c| c.chunk.loc())
                    .collect();
                anyhow::Ok(check_pack(&*store, &pack, chunks).await)
            }
        })
        .buffer_unordered(4);
    while let Some(checked) = checked.next().await {
        let (results, index) = checked?;
        report.packs_checked += 1;
        for (loc, r) in results {
            report.record(&loc, r);
        }
        report.corrupt.extend(index);
    }
    Ok(report)
}

/// What checking one pack found: each chunk's result, and what is wrong with the
/// pack's index.
type PackCheck = (Vec<(ChunkLoc, Result<(), StoreError>)>, Option<String>);

/// Reads `pack` whole and checks each of `chunks` in it, and its index.
async fn check_pack(store: &dyn ObjectStore, pack: &PackId, chunks: Vec<ChunkLoc>) -> PackCheck {
    let key = pack_key(pack);
    let body = with_retry(RetryPolicy::default(), |_, _| {}, || store.get(&key)).await;
    let index = match &body {
        Ok(body) => index_problem(store, &key, body, &chunks),
        Err(_) => None,
    };
    let mut out = Vec::with_capacity(chunks.len());
    for loc in chunks {
        let r = match &body {
            Err(e) => Err(StoreError::new(e.class, format!("{key}: {e}"))),
            Ok(body) => match stored_in(body, &loc) {
                Ok(raw) => decode(store, &loc, raw).await.map(drop),
                Err(e) => Err(e),
            },
        };
        out.push((loc, r));
    }
    (out, index)
}

/// What is wrong with the index of pack `key` (whole `body`), which must list each of
/// `chunks` where the catalog has it.
fn index_problem(
    store: &dyn ObjectStore,
    key: &str,
    body: &[u8],
    chunks: &[ChunkLoc],
) -> Option<String> {
    let index = match index_in(store, key, body) {
        Ok(i) => i,
        Err(e) => return Some(e.to_string()),
    };
    let listed: std::collections::HashSet<_> =
        index.iter().map(|e| (e.id, e.offset, e.length)).collect();
    let unlisted = chunks.iter().find(|c| {
        let offset = c.packed.map_or(0, |p| p.offset);
        !listed.contains(&(c.hash, offset, c.stored_size))
    })?;
    Some(format!(
        "pack {key}: its index does not list chunk {} at {} (the catalog does)",
        hex::encode(unlisted.hash),
        unlisted.packed.map_or(0, |p| p.offset)
    ))
}
