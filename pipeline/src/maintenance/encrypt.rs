//! `migrate-store --encrypt`: a clear store (format 1 or 2) rewritten sealed, resumable
//! after a crash at any point.
//!
//! The store is marked `encrypting` first ([`tributary_store::keyring::begin_encryption`]),
//! so no daemon uses it meanwhile. Then, a page of versions at a time (in id order):
//! each version's content is read back from the clear objects (every chunk checked),
//! cut again with the store's keyed chunker, sealed into new packs (a chunk the rewrite
//! already wrote is written once), the packs uploaded, and the catalog replaces the
//! page's chunks and records the last version done in one transaction. Then every
//! manifest is rewritten sealed with the versions' new chunks, a gc without grace
//! deletes the clear objects nothing references any more, and the mark is lifted. A
//! crash leaves new packs nothing names yet (collected by that gc) or pages done; a
//! rerun carries on after the last page done.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use futures::StreamExt;
use serde::Serialize;
use tokio::sync::mpsc;
use tributary_catalog::{Catalog, ChunkRef, ContentVersion, Hash};
use tributary_store::chunk::{ChunkLoc, encode, read_range};
use tributary_store::crypt::Crypt;
use tributary_store::pack::{PackEvents, PackWriter};
use tributary_store::retry::RetryPolicy;
use tributary_store::{ObjectStore, PutMode};

use super::gc::{GcOptions, GcReport, gc};
use super::lease::Lease;
use crate::chunking::{self, Chunk};
use crate::{Settings, manifest};

/// Where the rewrite records the last version done.
const CURSOR: &str = "encrypt.after_version";

/// Versions rewritten per page (one catalog transaction).
const PAGE: i64 = 64;

#[derive(Debug, Default, Serialize)]
pub struct EncryptReport {
    pub versions_rewritten: u64,
    /// Chunks written sealed, and their plain bytes.
    pub chunks_written: u64,
    pub bytes_written: u64,
    pub manifests_rewritten: u64,
    /// The clear objects deleted once nothing referenced them.
    pub cleanup: GcReport,
    /// Manifests that could not be rewritten (the store stays marked `encrypting`).
    pub errors: Vec<String>,
}

/// Rewrites the clear objects of `raw` sealed into `sealed` (the same bucket, opened
/// with its new keys); `progress` hears (versions done, versions in all) after each
/// page.
pub async fn encrypt_store(
    catalog: &Catalog,
    raw: Arc<dyn ObjectStore>,
    sealed: Arc<dyn ObjectStore>,
    settings: &Settings,
    events: Arc<dyn PackEvents>,
    mut progress: impl FnMut(u64, u64),
) -> anyhow::Result<EncryptReport> {
    // one lease for gc and migrations: neither deletes what the other moves
    let lease = Lease::take(catalog, "gc").await?;
    let result = rewrite(catalog, &raw, &sealed, settings, events, &mut progress).await;
    lease.release().await?;
    let mut report = result?;
    if report.errors.is_empty() {
        report.cleanup = gc(
            catalog,
            sealed,
            GcOptions {
                grace: Duration::ZERO,
                pack_size: settings.pack_size,
                ..GcOptions::default()
            },
        )
        .await?;
    }
    Ok(report)
}

async fn rewrite(
    catalog: &Catalog,
    raw: &Arc<dyn ObjectStore>,
    sealed: &Arc<dyn ObjectStore>,
    settings: &Settings,
    events: Arc<dyn PackEvents>,
    progress: &mut impl FnMut(u64, u64),
) -> anyhow::Result<EncryptReport> {
    let crypt = sealed
        .crypt()
        .cloned()
        .context("the store to write into is not sealed")?;
    let mut report = EncryptReport::default();
    let mut after: i64 = catalog
        .store_state(CURSOR)
        .await?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let total = catalog.content_versions_after(after).await?;
    let writer = PackWriter::new(
        sealed.clone(),
        settings.pack_size,
        2,
        RetryPolicy::default(),
        events.clone(),
    );
    loop {
        let page = catalog.content_versions_page(after, PAGE).await?;
        let Some(last) = page.last().map(|v| v.id) else {
            break;
        };
        // chunks this page wrote, not yet in the catalog
        let mut fresh: HashMap<Hash, ChunkRef> = HashMap::new();
        let mut rewritten = Vec::with_capacity(page.len());
        for v in &page {
            let chunks = rechunk(
                catalog,
                raw,
                &crypt,
                &writer,
                settings,
                &mut fresh,
                &mut report,
                v,
            )
            .await?;
            rewritten.push((v.id, chunks));
        }
        writer.finish().await.map_err(anyhow::Error::msg)?;
        events.point("encrypt.before_commit");
        catalog
            .replace_version_chunks(&rewritten, CURSOR, last)
            .await?;
        events.point("encrypt.after_commit");
        after = last;
        report.versions_rewritten += rewritten.len() as u64;
        progress(report.versions_rewritten, total);
    }
    rewrite_manifests(catalog, raw, sealed, &mut report).await?;
    Ok(report)
}

/// The content of version `v` read back from the clear store and cut, named and
/// sealed with the store's keys; returns its new chunks.
#[allow(clippy::too_many_arguments)]
async fn rechunk(
    catalog: &Catalog,
    raw: &Arc<dyn ObjectStore>,
    crypt: &Arc<Crypt>,
    writer: &PackWriter,
    settings: &Settings,
    fresh: &mut HashMap<Hash, ChunkRef>,
    report: &mut EncryptReport,
    v: &ContentVersion,
) -> anyhow::Result<Vec<ChunkRef>> {
    let locs: Vec<ChunkLoc> = v.chunks.iter().map(ChunkRef::loc).collect();
    let mut content = read_range(raw.clone(), locs, 0, v.size, 3);
    let (bytes_tx, bytes_rx) = mpsc::channel::<std::io::Result<Bytes>>(4);
    let (chunk_tx, mut chunk_rx) = mpsc::channel::<Chunk>(2);
    let (params, size, key) = (settings.chunk, v.size, crypt.clone());
    let cutter = tokio::task::spawn_blocking(move || {
        let mut reader = ChannelReader {
            rx: bytes_rx,
            current: Bytes::new(),
        };
        chunking::chunk_stream(&mut reader, params, size, Some(&key), |c| {
            chunk_tx.blocking_send(c).is_ok()
        })
    });
    let feed = async move {
        while let Some(piece) = content.next().await {
            let piece = piece.map_err(|e| std::io::Error::other(e.to_string()));
            let stop = piece.is_err();
            if bytes_tx.send(piece).await.is_err() || stop {
                break;
            }
        }
    };
    let store = async {
        let mut out = Vec::new();
        while let Some(c) = chunk_rx.recv().await {
            if let Some(r) = fresh.get(&c.hash) {
                out.push(r.clone());
                continue;
            }
            if let Some(r) = catalog.chunk_row(&c.hash).await? {
                out.push(r);
                continue;
            }
            let size = c.data.len() as u64;
            let (body, compression) =
                encode(settings.zstd_level, Some(crypt.clone()), c.hash, c.data)
                    .await
                    .map_err(anyhow::Error::msg)?;
            let stored_size = body.len() as u64;
            let placed = writer.add(c.hash, body, size, compression).await?;
            let r = ChunkRef {
                hash: c.hash,
                size,
                stored_size,
                compression,
                packed: Some(placed),
            };
            report.chunks_written += 1;
            report.bytes_written += size;
            fresh.insert(c.hash, r.clone());
            out.push(r);
        }
        anyhow::Ok(out)
    };
    let ((), stored) = tokio::join!(feed, store);
    let digest = cutter
        .await
        .context("chunking task")?
        .with_context(|| format!("read back version {} from the clear store", v.id))?;
    let chunks = stored?;
    let Some(d) = digest else {
        bail!("version {}: chunking stopped early", v.id);
    };
    if d.len != v.size || v.digest.is_some_and(|want| want != d.digest) {
        bail!(
            "version {}: its content read back ({} bytes) does not match the catalog's digest",
            v.id,
            d.len
        );
    }
    Ok(chunks)
}

/// Bytes from a channel as a [`Read`] (on a blocking thread).
struct ChannelReader {
    rx: mpsc::Receiver<std::io::Result<Bytes>>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(piece) => self.current = piece?,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = self.current.slice(n..);
        Ok(n)
    }
}

/// Every manifest rewritten sealed, its versions naming their new chunks (versions the
/// catalog no longer has keep none of their old chunk ids: they are left out).
async fn rewrite_manifests(
    catalog: &Catalog,
    raw: &Arc<dyn ObjectStore>,
    sealed: &Arc<dyn ObjectStore>,
    report: &mut EncryptReport,
) -> anyhow::Result<()> {
    for m in raw.list(manifest::PREFIX).await? {
        let body = raw.get(&m.key).await?;
        let mut man = match manifest::decode(&m.key, &body) {
            Ok(man) => man,
            // sealed by an earlier run, or damaged
            Err(clear) => {
                if let Err(e) = sealed.get(&m.key).await {
                    report.errors.push(format!(
                        "{}: neither clear ({clear}) nor sealed ({e})",
                        m.key
                    ));
                }
                continue;
            }
        };
        let now = catalog.manifest_versions(&m.key).await?;
        man.versions.retain_mut(|v| {
            if v.chunks.is_empty() {
                return true;
            }
            match now.get(&(v.source_id.clone(), v.committed_at)) {
                Some(chunks) => {
                    v.chunks = chunks.clone();
                    true
                }
                None => false,
            }
        });
        let body = manifest::encode(&man).map_err(anyhow::Error::msg)?;
        sealed
            .put(&m.key, body.into(), PutMode::Overwrite)
            .await
            .with_context(|| format!("rewrite {}", m.key))?;
        report.manifests_rewritten += 1;
    }
    Ok(())
}
