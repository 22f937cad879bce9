//! Reading one file: open, chunk and hash on a blocking thread, dedup against the
//! catalog and the job's uploads, upload what is new; a file that changes while it is
//! read is read again and never committed half-changed.

use std::collections::hash_map::Entry as Slot;
use std::sync::Arc;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::sync::{mpsc, oneshot};
use tributary_catalog::conflicts::{self, ClaimRef, NewConflict};
use tributary_catalog::{ChunkRef, NewVersion, now_ns};
use tributary_connectors::{Entry, Fingerprint};

use super::plan::fingerprint_text;
use super::upload::{Placement, permits_for, upload_chunk};
use super::{CommitMsg, Job, StopReason};
use crate::chunking::{self, Chunk};
use crate::progress::Progress;
use crate::{Hash, target_path};

/// One of the job's file workers: reads the files the planner sends until the
/// channel closes, and hands each version to the committer; `lane` is its own open pack
/// ([`Placement`]).
pub(super) async fn file_worker(
    job: Arc<Job>,
    rx: Arc<tokio::sync::Mutex<mpsc::Receiver<Entry>>>,
    tx: mpsc::Sender<CommitMsg>,
    lane: usize,
) {
    loop {
        let next = rx.lock().await.recv().await;
        let Some(entry) = next else { break };
        if job.winding_down() {
            continue;
        }
        match process_file(&job, entry.clone(), lane).await {
            Ok(v) => {
                if tx.send(CommitMsg::Version(v)).await.is_err() {
                    break;
                }
            }
            Err(Failure::Item(msg)) => {
                job.item_error(
                    &entry.source_id,
                    &entry.rel_path,
                    &msg,
                    Some(&entry.fingerprint()),
                )
                .await
            }
            Err(Failure::Fatal(msg)) => job.fail(msg),
            Err(Failure::Torn(msg, fp)) => job.torn_conflict(&entry, &msg, &fp).await,
            Err(Failure::Stopped) => {}
            Err(Failure::Deleted) => {
                // what the catalog has of it is deleted; a new file is dropped
                let rel = String::from_utf8_lossy(&entry.rel_path).into_owned();
                let current = job
                    .p
                    .catalog
                    .current_content(&job.spec.connector_id, &entry.source_id)
                    .await;
                match current {
                    Ok(Some(v)) => {
                        job.progress.log(
                            "info",
                            format!(
                                "{rel}: deleted at the source before it could be read: deleting"
                            ),
                        );
                        let v = NewVersion {
                            source_id: v.source_id,
                            path: v.path,
                            deleted: true,
                            mtime_ns: v.mtime_ns,
                            ..Default::default()
                        };
                        if tx.send(CommitMsg::Version(v)).await.is_err() {
                            break;
                        }
                    }
                    Ok(None) => job.progress.log(
                        "info",
                        format!("{rel}: deleted at the source before it could be read"),
                    ),
                    Err(e) => job.fail(format!("catalog: {e}")),
                }
            }
        }
    }
}

pub(super) enum Failure {
    Item(String),
    Fatal(String),
    /// Changed while being read, every time: the message and the last source state.
    Torn(String, Fingerprint),
    /// An operator cancelled the job while this file was in flight.
    Stopped,
    /// Deleted at the source between the listing and the read.
    Deleted,
}

/// Reads, chunks, dedups and uploads one file (its new chunks into pack lane `lane`, in
/// order); returns the version to commit.
async fn process_file(
    job: &Arc<Job>,
    mut entry: Entry,
    lane: usize,
) -> Result<NewVersion, Failure> {
    let retries = job.p.settings.torn_read_retries;
    for _attempt in 0..=retries {
        let expected = entry.fingerprint();
        let read_started = now_ns();
        let file = job.connector.open(&entry).await.map_err(|e| match e {
            tributary_connectors::ItemError::SourceUnavailable(m) => {
                Failure::Fatal(format!("source {}: {m}", job.spec.connector_id))
            }
            tributary_connectors::ItemError::Deleted => Failure::Deleted,
            e => Failure::Item(e.to_string()),
        })?;
        let (chunk_tx, mut chunk_rx) =
            mpsc::channel::<(Chunk, tokio::sync::OwnedSemaphorePermit)>(2);
        let budget = job.bytes_budget.clone();
        let params = job.p.settings.chunk;
        let handle = tokio::runtime::Handle::current();
        let progress = job.progress.clone();
        let size_hint = entry.size;
        let crypt = job.p.store.crypt().cloned();
        let reader = tokio::task::spawn_blocking(move || {
            let mut file = file;
            let fp_open = file.fingerprint();
            let digest =
                chunking::chunk_stream(&mut *file, params, size_hint, crypt.as_deref(), |c| {
                    Progress::add(&progress.bytes_read, c.data.len() as u64);
                    let Ok(permit) = handle
                        .block_on(budget.clone().acquire_many_owned(permits_for(c.data.len())))
                    else {
                        return false;
                    };
                    chunk_tx.blocking_send((c, permit)).is_ok()
                });
            let fp_end = file.fingerprint();
            (fp_open, digest, fp_end)
        });

        // dedup + upload, in chunk order: the chunks this file uploads first are encoded
        // at the same time but added to its pack lane one after another
        let mut refs: Vec<Option<ChunkRef>> = Vec::new();
        let mut previous_add: Option<oneshot::Receiver<()>> = None;
        let mut uploads = FuturesUnordered::new();
        let mut fatal = None;
        while let Some(first) = chunk_rx.recv().await {
            let mut batch = vec![first];
            while batch.len() < 64 {
                match chunk_rx.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
            let unknown: Vec<Hash> = {
                let up = job.uploaded.lock().unwrap();
                batch
                    .iter()
                    .map(|(c, _)| c.hash)
                    .filter(|h| !up.contains_key(h))
                    .collect()
            };
            let known = match job.p.catalog.known_chunks(&unknown).await {
                Ok(k) => k,
                Err(e) => {
                    fatal = Some(format!("catalog lookup: {e}"));
                    break;
                }
            };
            for (chunk, permit) in batch {
                let idx = refs.len();
                refs.push(None);
                if let Some(r) = known.get(&chunk.hash) {
                    Progress::add(&job.progress.chunks_reused, 1);
                    Progress::add(&job.progress.bytes_deduplicated, chunk.data.len() as u64);
                    refs[idx] = Some(r.clone());
                    continue;
                }
                let (cell, first) = match job.uploaded.lock().unwrap().entry(chunk.hash) {
                    Slot::Occupied(e) => (e.get().clone(), false),
                    Slot::Vacant(e) => (e.insert(Default::default()).clone(), true),
                };
                // only the file that uploads a chunk first is ordered by it: a chunk
                // another file uploads is waited for, never waited on in turn
                let (after, done) = if first {
                    let (done, next) = oneshot::channel();
                    (previous_add.replace(next), Some(done))
                } else {
                    (None, None)
                };
                let place = Placement { lane, after, done };
                let job = job.clone();
                uploads.push(tokio::spawn(async move {
                    let r = upload_chunk(&job, &cell, chunk, place).await;
                    drop(permit);
                    (idx, r)
                }));
            }
        }
        while let Some(done) = uploads.next().await {
            match done {
                Ok((idx, Ok(r))) => refs[idx] = Some(r),
                Ok((_, Err(e))) => fatal = fatal.or(Some(e)),
                Err(e) => fatal = fatal.or(Some(format!("upload task: {e}"))),
            }
        }
        drop(chunk_rx);
        let (fp_open, digest, fp_end) = reader
            .await
            .map_err(|e| Failure::Item(format!("reader task: {e}")))?;
        if let Some(f) = fatal {
            if job.control.reason().is_some_and(StopReason::aborts) {
                return Err(Failure::Stopped);
            }
            return Err(Failure::Fatal(f));
        }
        let digest = match digest {
            Ok(Some(d)) => d,
            Ok(None) => return Err(Failure::Fatal("job stopped".into())),
            Err(e) => return Err(Failure::Item(format!("read failed: {e}"))),
        };
        let torn = match (&fp_open, &fp_end) {
            (Ok(a), Ok(b)) => *a != expected || *b != expected || digest.len != expected.size,
            _ => true,
        };
        // "Racily clean": modified within a timestamp tick of the read, so a rewrite
        // of the same size in that tick would leave size and mtime as they were. Read
        // again once the tick is over (what git does for its index).
        let window = job.connector.mtime_granularity().as_nanos() as i64;
        let racy =
            !torn && entry.mtime_ns > read_started - window && entry.mtime_ns <= now_ns() + window;
        if racy {
            // until a rewrite would get a later mtime
            let wait = (entry.mtime_ns + window - now_ns()).clamp(0, window) + 10_000_000;
            tokio::time::sleep(std::time::Duration::from_nanos(wait as u64)).await;
        }
        if torn || racy {
            Progress::add(&job.progress.torn_reads, 1);
            job.progress.log(
                "info",
                format!(
                    "{}: changed while being read; reading again",
                    String::from_utf8_lossy(&entry.rel_path)
                ),
            );
            tracing::debug!(item = %String::from_utf8_lossy(&entry.rel_path), "changed while being read; reading again");
            match job.connector.stat(&entry.source_id).await {
                Ok(Some(e)) => {
                    // the bytes read again are planned too (progress never passes 100 %)
                    Progress::add(&job.progress.bytes_planned, e.size);
                    entry = e;
                }
                Ok(None) => return Err(Failure::Item("vanished while being read".into())),
                Err(e) => return Err(Failure::Item(e.to_string())),
            }
            continue;
        }
        return Ok(NewVersion {
            path: target_path(&job.spec.target, &entry.rel_path),
            source_id: entry.source_id,
            deleted: false,
            size: digest.len,
            mtime_ns: entry.mtime_ns,
            inode: entry.inode,
            change_tag: entry.change_tag,
            principals: entry.principals,
            digest: Some(digest.digest),
            chunks: refs
                .into_iter()
                .map(|r| r.expect("every chunk resolved"))
                .collect(),
            ..Default::default()
        });
    }
    Err(Failure::Torn(
        format!(
            "changed while being read, {} times in a row; never committed half-changed",
            retries + 1
        ),
        entry.fingerprint(),
    ))
}

impl Job {
    /// A file that never stayed still long enough to be read whole: an open
    /// `torn_read` conflict; later jobs leave it alone until an operator decides.
    async fn torn_conflict(&self, entry: &Entry, msg: &str, fp: &Fingerprint) {
        let path = target_path(&self.spec.target, &entry.rel_path);
        let shown = String::from_utf8_lossy(&path).into_owned();
        let claim = ClaimRef {
            role: "incoming",
            connector: self.spec.connector_id.clone(),
            source_id: entry.source_id.clone(),
            path: path.clone(),
            fingerprint: Some(fingerprint_text(fp)),
        };
        let c = NewConflict::open(
            conflicts::TORN_READ,
            &self.spec.connector_id,
            path,
            msg.to_string(),
            vec![claim],
        );
        match self.p.catalog.raise(c).await {
            Ok((id, _)) => {
                Progress::add(&self.progress.conflicts, 1);
                Progress::add(&self.progress.files_failed, 1);
                tracing::warn!(connector = %self.spec.connector_id, job_id = self.job_id, item = %shown, conflict = id, "torn read");
                self.progress.error(format!("{shown}: {msg}"));
                self.progress.log(
                    "warn",
                    format!(
                        "conflict: {shown}: torn_read #{id}; later jobs leave the file alone until an operator resolves it"
                    ),
                );
            }
            Err(e) => self.fail(format!("record conflict: {e}")),
        }
    }
}
