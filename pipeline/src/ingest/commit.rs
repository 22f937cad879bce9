//! Committing: versions are batched into catalog transactions; each batch has its
//! conflicts decided, then its manifest written to the store, then its catalog
//! transaction (design invariant 3).

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;
use tributary_catalog::{CommitBatch, NewVersion, now_ns};
use tributary_store::PutMode;
use tributary_store::retry::with_retry;

use super::{CommitMsg, Job, StopReason};
use crate::fault;
use crate::manifest::{self, Manifest};
use crate::progress::{Notice, Progress};

/// Batches versions into catalog transactions, each preceded by its manifest.
pub(super) async fn commit_loop(job: Arc<Job>, mut rx: mpsc::Receiver<CommitMsg>) {
    let s = &job.p.settings;
    let mut batch: Vec<NewVersion> = Vec::new();
    let mut checkpoint: Option<String> = None;
    let mut batch_no = 0u64;
    let mut deadline = tokio::time::Instant::now();
    loop {
        let msg = if batch.is_empty() {
            rx.recv().await
        } else {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(m) => m,
                Err(_) => {
                    flush(&job, &mut batch, &mut checkpoint, &mut batch_no).await;
                    continue;
                }
            }
        };
        match msg {
            None => break,
            Some(CommitMsg::Version(v)) => {
                if batch.is_empty() {
                    deadline = tokio::time::Instant::now() + s.commit_interval;
                }
                batch.push(v);
                if batch.len() >= s.commit_batch_size {
                    flush(&job, &mut batch, &mut checkpoint, &mut batch_no).await;
                }
            }
            Some(CommitMsg::Checkpoint(c)) => checkpoint = Some(c),
        }
    }
    if !batch.is_empty() || checkpoint.is_some() {
        flush(&job, &mut batch, &mut checkpoint, &mut batch_no).await;
    }
}

/// A dry run's committer: decides each batch's conflicts against the catalog as it is
/// (read-only) and counts what a real commit would delete, keep aside and which
/// conflicts it would meet; it writes nothing. Versions carry no content digest (no
/// file was read), so a claim whose content equals its rival's counts as the conflict
/// a real run would close as `identical`: counted alike, as the real run counts it.
pub(super) async fn dry_commit_loop(job: Arc<Job>, mut rx: mpsc::Receiver<CommitMsg>) {
    let size = job.p.settings.commit_batch_size.max(1);
    let mut batch: Vec<NewVersion> = Vec::with_capacity(size);
    loop {
        let msg = rx.recv().await;
        let done = msg.is_none();
        if let Some(CommitMsg::Version(v)) = msg {
            batch.push(v);
        }
        if (done && !batch.is_empty()) || batch.len() >= size {
            dry_decide(&job, std::mem::take(&mut batch)).await;
        }
        if done {
            break;
        }
    }
}

async fn dry_decide(job: &Job, batch: Vec<NewVersion>) {
    if job.stopped() {
        return;
    }
    let decided = match job
        .p
        .catalog
        .decide(&job.spec.namespace, &job.spec.connector_id, batch, now_ns())
        .await
    {
        Ok(d) => d,
        Err(e) => return job.fail(format!("decide conflicts: {e}")),
    };
    let own = decided.versions.iter().filter(|v| !v.displaced);
    let deleted = own.clone().filter(|v| v.deleted).count() as u64;
    let held = own.filter(|v| v.held && !v.deleted).count() as u64;
    Progress::add(&job.progress.files_deleted, deleted);
    Progress::add(&job.progress.files_held, held);
    Progress::add(&job.progress.conflicts, decided.notes.len() as u64);
    for note in decided.notes {
        job.progress
            .log("info", format!("conflict: {note} (dry run: not recorded)"));
    }
}

/// An operator cancelled the job while a batch waited for the store: says so in the
/// job's log (the job's summary counts only what was committed).
fn not_committed(job: &Job, versions: usize) {
    job.progress.log(
        "warn",
        format!(
            "job stopped (cancelled) while {versions} version(s) waited for the object store; not committed, the next run stores them"
        ),
    );
}

async fn flush(
    job: &Arc<Job>,
    batch: &mut Vec<NewVersion>,
    checkpoint: &mut Option<String>,
    batch_no: &mut u64,
) {
    if job.stopped() {
        // A failed job commits nothing more; what it uploaded is collected by gc.
        batch.clear();
        return;
    }
    // Conflicts are decided against the catalog as it is now, and the decision is
    // committed before another batch (of any job) may decide on the same paths.
    let _claims = job.p.catalog.claims_lock().await;
    let committed_at = now_ns();
    let decided = match job
        .p
        .catalog
        .decide(
            &job.spec.namespace,
            &job.spec.connector_id,
            std::mem::take(batch),
            committed_at,
        )
        .await
    {
        Ok(d) => d,
        Err(e) => return job.fail(format!("decide conflicts: {e}")),
    };
    let mut versions = decided.versions;
    for v in versions.iter_mut() {
        v.committed_at = committed_at;
    }
    *batch_no += 1;
    let key = manifest::key(&job.spec.connector_id, committed_at, job.job_id, *batch_no);
    let m = Manifest {
        format: 1,
        connector: job.spec.connector_id.clone(),
        job_id: Some(job.job_id),
        committed_at,
        checkpoint: checkpoint.clone(),
        versions,
    };
    let body = match manifest::encode(&m) {
        Ok(b) => Bytes::from(b),
        Err(e) => return job.fail(e),
    };
    // data before metadata: the packs this batch names are in the store first
    if let Some(packer) = &job.packer {
        let packs: std::collections::HashSet<_> = m
            .versions
            .iter()
            .flat_map(|v| v.chunks.iter().filter_map(|c| c.packed.map(|p| p.pack)))
            .collect();
        let flush = packer.flush(packs);
        let flushed = tokio::select! {
            r = flush => r,
            _ = job.operator_cancelled() => return not_committed(job, m.versions.len()),
        };
        if let Err(e) = flushed {
            return job.fail(e);
        }
    }
    fault::point("commit.before_manifest");
    let store = job.p.store.clone();
    let put = with_retry(
        job.p.settings.retry,
        |_, _| Progress::add(&job.progress.upload_retries, 1),
        || store.put(&key, body.clone(), PutMode::IfAbsent),
    );
    let put = tokio::select! {
        r = put => r,
        // cancelled: this batch is not committed (its data is collected by gc)
        _ = job.operator_cancelled() => return not_committed(job, m.versions.len()),
    };
    match put {
        Ok(()) => {}
        // a retried put whose first attempt landed
        Err(e) if e.class == tributary_store::ErrorClass::AlreadyExists => {}
        Err(e) => return job.fail(format!("write manifest to {}: {e}", job.p.store.describe())),
    }
    fault::point("commit.after_manifest");
    let commit = CommitBatch {
        connector: &job.spec.connector_id,
        job_id: Some(job.job_id),
        versions: &m.versions,
        checkpoint: m.checkpoint.as_deref(),
        manifest: Some(&key),
        conflicts: &decided.ops,
    };
    match job.p.catalog.commit_batch(&commit).await {
        Ok(_) => {}
        Err(e @ tributary_catalog::CatalogError::LeaseLost { .. }) => {
            // another instance continues the connector; this one must not write. Found
            // here before the daemon's lease renewal found it: say so as it would.
            if job.control.reason() != Some(StopReason::LeaseLost) {
                tracing::error!(
                    connector = %job.spec.connector_id,
                    job_id = job.job_id,
                    "lost the connector's lease: this instance did not renew it within daemon.lease_ttl (frozen, or cut off from the catalog); the job stops and commits nothing more, another instance continues the connector"
                );
                job.progress.log(
                    "error",
                    "lost the connector's lease (not renewed within daemon.lease_ttl); stopped, another instance continues the connector".to_string(),
                );
                job.control.stop(StopReason::LeaseLost);
            }
            return job.fail(format!(
                "{e}: this instance lost the connector's lease (not renewed within daemon.lease_ttl: frozen, or cut off from the catalog); another instance continues the connector"
            ));
        }
        Err(e) => return job.fail(format!("catalog commit: {e}")),
    }
    fault::point("commit.after_catalog");
    let own = m.versions.iter().filter(|v| !v.displaced);
    let deleted = own.clone().filter(|v| v.deleted).count() as u64;
    let held = own.clone().filter(|v| v.held && !v.deleted).count() as u64;
    let own = own.count() as u64;
    Progress::add(&job.progress.versions_committed, m.versions.len() as u64);
    Progress::add(&job.progress.files_deleted, deleted);
    Progress::add(&job.progress.files_held, held);
    Progress::add(&job.progress.files_done, own - deleted);
    Progress::add(&job.progress.conflicts, decided.notes.len() as u64);
    for v in &m.versions {
        if !v.displaced && !v.deleted && job.failed_before.contains(&v.source_id) {
            job.progress.notice(Notice::ItemRecovered {
                path: String::from_utf8_lossy(&v.path).into_owned(),
            });
        }
    }
    for op in &decided.ops {
        // a conflict left for an operator (one a policy decided on the spot is logged)
        if let tributary_catalog::ConflictOp::Insert(c) = op
            && c.resolution.is_none()
        {
            job.progress.notice(Notice::ConflictOpened {
                kind: c.kind.to_string(),
                path: String::from_utf8_lossy(&c.path).into_owned(),
                note: c
                    .detail
                    .as_deref()
                    .map(|d| tributary_config::redact::redact(d).into_owned())
                    .unwrap_or_default(),
            });
        }
    }
    for note in decided.notes {
        tracing::warn!(connector = %job.spec.connector_id, job_id = job.job_id, "conflict: {note}");
        job.progress.log("warn", format!("conflict: {note}"));
    }
    *checkpoint = None;
    // Committed chunks are now in the catalog; the job map need not keep them.
    let mut up = job.uploaded.lock().unwrap();
    for v in &m.versions {
        for c in &v.chunks {
            if up.get(&c.hash).is_some_and(|cell| cell.initialized()) {
                up.remove(&c.hash);
            }
        }
    }
}
