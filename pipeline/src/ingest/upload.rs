//! Uploading a chunk: once per job (a second file with the same chunk waits for the
//! first upload), compressed when that makes it smaller, into the job's open pack
//! (format v2) or as an object of its own (v1, retried), and counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::{OnceCell, oneshot};
use tributary_catalog::ChunkRef;
use tributary_store::StoreError;
use tributary_store::chunk::{encode, put_chunk};
use tributary_store::pack::PackEvents;

use super::Job;
use crate::chunking::Chunk;
use crate::fault;
use crate::progress::Progress;

fn retried(progress: &Progress, attempt: u32, e: &StoreError) {
    Progress::add(&progress.upload_retries, 1);
    tracing::warn!(attempt, error = %e, "upload failed; retrying");
}

/// A job's pack writer reports its fault points and retried uploads here.
pub(super) struct PackProgress(pub(super) Arc<Progress>);

impl PackEvents for PackProgress {
    fn point(&self, name: &'static str) {
        fault::point(name);
    }
    fn retry(&self, attempt: u32, error: &StoreError) {
        retried(&self.0, attempt, error);
    }
}

/// Permits of the job's byte budget (one per KiB) that a chunk of `len` bytes holds.
pub(super) fn permits_for(len: usize) -> u32 {
    (len.div_ceil(1024)).max(1) as u32
}

/// Where a chunk a file uploads goes in the job's packs: into the file's lane, after the
/// file's previous new chunk (`after` resolves, or is dropped, once that one is placed;
/// `done` does the same for the next). Chunks are encoded at the same time and placed
/// in order, so a file's chunks lie back to back.
pub(super) struct Placement {
    pub(super) lane: usize,
    pub(super) after: Option<oneshot::Receiver<()>>,
    pub(super) done: Option<oneshot::Sender<()>>,
}

/// Uploads a chunk once per job (concurrent callers with the same hash wait for the
/// first); compresses it when that makes it smaller.
pub(super) async fn upload_chunk(
    job: &Arc<Job>,
    cell: &OnceCell<ChunkRef>,
    chunk: Chunk,
    place: Placement,
) -> Result<ChunkRef, String> {
    let Placement { lane, after, done } = place;
    let fresh = AtomicBool::new(false);
    let len = chunk.data.len() as u64;
    let r = cell
        .get_or_try_init(|| async {
            fresh.store(true, Ordering::Relaxed);
            let slot = job
                .upload_slots
                .acquire()
                .await
                .map_err(|e| e.to_string())?;
            let (body, compression) = encode(
                job.p.settings.zstd_level,
                job.p.store.crypt().cloned(),
                chunk.hash,
                chunk.data,
            )
            .await?;
            // the slot bounds encoding; waiting for the file's previous chunk without it
            // never holds up that chunk's own encoding
            drop(slot);
            let stored = body.len() as u64;
            let mut packed = None;
            match &job.packer {
                // into the open pack; it is durable once the batch that names it flushes
                Some(packer) => {
                    if let Some(after) = after {
                        tokio::select! {
                            _ = after => {}
                            _ = job.operator_cancelled() => return Err("cancelled".to_string()),
                        }
                    }
                    let add = packer.add_in(lane, chunk.hash, body, len, compression);
                    let placed = tokio::select! {
                        r = add => r.map_err(|e| format!("object store {}: {e}", job.p.store.describe()))?,
                        _ = job.operator_cancelled() => return Err("cancelled".to_string()),
                    };
                    drop(done);
                    packed = Some(placed);
                }
                None => {
                    let put = put_chunk(
                        job.p.store.as_ref(),
                        &chunk.hash,
                        body,
                        job.p.settings.retry,
                        |attempt, e| retried(&job.progress, attempt, e),
                    );
                    tokio::select! {
                        r = put => r.map_err(|e| format!("object store {}: {e}", job.p.store.describe()))?,
                        _ = job.operator_cancelled() => return Err("cancelled".to_string()),
                    }
                    fault::point("upload.after_put");
                }
            }
            Ok::<_, String>(ChunkRef {
                hash: chunk.hash,
                size: len,
                stored_size: stored,
                compression,
                packed,
            })
        })
        .await?
        .clone();
    if fresh.load(Ordering::Relaxed) {
        Progress::add(&job.progress.chunks_new, 1);
        Progress::add(&job.progress.bytes_uploaded, r.stored_size);
    } else {
        Progress::add(&job.progress.chunks_reused, 1);
        Progress::add(&job.progress.bytes_deduplicated, len);
    }
    Ok(r)
}
