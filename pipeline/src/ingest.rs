//! One job: list → plan → read/chunk/hash → dedup → upload → commit → reconcile.
//!
//! Stages are tasks joined by bounded channels, so a slow store slows the reader
//! instead of filling memory; a byte semaphore bounds chunk bytes read but not yet
//! stored. Files are read on blocking threads. Chunks are uploaded before the batch that
//! names them is committed, and each batch's manifest is written before its catalog
//! transaction (invariant 3). A file that changes while it is read is read again (up to
//! `torn_read_retries` times) and never committed half-changed.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::sync::{OnceCell, Semaphore, mpsc};
use tributary_catalog::conflicts::{self, ClaimRef, NewConflict};
use tributary_catalog::{ChunkRef, CommitBatch, ItemState, Namespace, NewVersion, now_ns};
use tributary_connectors::{Change, Connector, Entry, Fingerprint, ListMode};
use tributary_store::PutMode;
use tributary_store::chunk::{encode, put_chunk};
use tributary_store::retry::with_retry;

use crate::chunking::{self, Chunk};
use crate::manifest::{self, Manifest};
use crate::progress::Progress;
use crate::{Hash, Pipeline, fault, target_path};
use tributary_catalog::Stats;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// Walk everything and reconcile deletes.
    Full,
    /// Only what changed, where the source can tell (a local walk is always complete,
    /// so deletes are still reconciled from it).
    Incremental,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Full => "full",
            JobKind::Incremental => "incremental",
        }
    }
}

#[derive(Debug, Clone)]
pub struct JobSpec {
    /// A job row already created (queued) by the caller; `None` creates one.
    pub job_id: Option<i64>,
    pub connector_id: String,
    /// Target prefix in the catalog namespace (`/docs`).
    pub target: String,
    pub kind: JobKind,
    pub trigger: String,
    pub max_delete_percent: f64,
    /// Let this job delete more than `max_delete_percent`.
    pub allow_mass_delete: bool,
    /// Files that failed this many times and have not changed since are left alone
    /// (`None`: always try again).
    pub max_retries: Option<i64>,
    /// Conflict settings of every connector sharing the target namespace.
    pub namespace: Arc<Namespace>,
}

/// Why a job was stopped from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// An operator cancelled it.
    Cancelled,
    /// The daemon is shutting down.
    Shutdown,
}

/// Stops a running job: it takes no new file, lets the files in flight finish, commits
/// what is done and ends `cancelled` or `interrupted`.
#[derive(Debug, Clone, Default)]
pub struct JobControl {
    token: tokio_util::sync::CancellationToken,
    reason: Arc<Mutex<Option<StopReason>>>,
}

impl JobControl {
    pub fn stop(&self, reason: StopReason) {
        self.reason.lock().unwrap().get_or_insert(reason);
        self.token.cancel();
    }
    pub fn is_stopped(&self) -> bool {
        self.token.is_cancelled()
    }
    pub fn reason(&self) -> Option<StopReason> {
        *self.reason.lock().unwrap()
    }
    pub async fn stopped(&self) {
        self.token.cancelled().await
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    Succeeded,
    Failed,
    Cancelled,
    Interrupted,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
            JobStatus::Interrupted => "interrupted",
        }
    }
}

#[derive(Debug, Clone)]
pub struct JobReport {
    pub job_id: i64,
    pub status: JobStatus,
    pub stats: Stats,
    /// Why the job failed, when it did.
    pub error: Option<String>,
    /// Per-item errors (the first ones).
    pub item_errors: Vec<String>,
    /// The conflicts the job met, as logged.
    pub conflicts: Vec<String>,
    pub elapsed: std::time::Duration,
}

enum CommitMsg {
    Version(NewVersion),
    Checkpoint(String),
}

/// State shared by the tasks of one job.
struct Job {
    p: Pipeline,
    connector: Arc<dyn Connector>,
    spec: JobSpec,
    job_id: i64,
    progress: Arc<Progress>,
    /// Chunks uploaded (or being uploaded) by this job and not yet known to be
    /// committed: a second file with the same chunk waits for the first upload.
    uploaded: Mutex<HashMap<Hash, Arc<OnceCell<ChunkRef>>>>,
    bytes_budget: Arc<Semaphore>,
    upload_slots: Semaphore,
    fatal: Mutex<Option<String>>,
    failed: AtomicBool,
    control: JobControl,
}

impl Job {
    /// Fails the job (the first reason wins); the reason is kept with every configured
    /// secret masked, as it goes to the job row, the log and the user's terminal.
    fn fail(&self, msg: String) {
        let msg = tributary_config::redact::redact(&msg).into_owned();
        let mut f = self.fatal.lock().unwrap();
        if f.is_none() {
            tracing::error!(connector = %self.spec.connector_id, job_id = self.job_id, error = %msg, "job failed");
            *f = Some(msg);
        }
        self.failed.store(true, Ordering::SeqCst);
    }

    fn stopped(&self) -> bool {
        self.failed.load(Ordering::SeqCst)
    }

    /// Resolves when an operator cancels the job (not on shutdown, which lets uploads
    /// in flight finish within the daemon's deadline).
    async fn operator_cancelled(&self) {
        self.control.stopped().await;
        if self.control.reason() != Some(StopReason::Cancelled) {
            std::future::pending::<()>().await;
        }
    }

    /// No new work: the job failed or was stopped from outside.
    fn winding_down(&self) -> bool {
        self.stopped() || self.control.is_stopped()
    }

    async fn item_error(&self, source_id: &[u8], rel: &[u8], msg: &str, fp: Option<&Fingerprint>) {
        let path = target_path(&self.spec.target, rel);
        let shown = String::from_utf8_lossy(&path).into_owned();
        tracing::warn!(connector = %self.spec.connector_id, job_id = self.job_id, item = %shown, error = %msg, "item failed");
        Progress::add(&self.progress.files_failed, 1);
        self.progress.error(format!("{shown}: {msg}"));
        if let Err(e) = self
            .p
            .catalog
            .record_item_error(
                &self.spec.connector_id,
                source_id,
                &path,
                Some(self.job_id),
                msg,
                fp.map(fingerprint_text).as_deref(),
            )
            .await
        {
            self.fail(format!("record item error: {e}"));
        }
    }
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

    /// Deletes beyond `max_delete_percent`: nothing is deleted and a `mass_delete`
    /// conflict (one open per connector) waits for an operator to allow or reject it.
    async fn mass_delete_conflict(&self, doomed: &[&ItemState], live: usize, pct: f64) {
        let sample: Vec<String> = doomed
            .iter()
            .take(10)
            .map(|k| String::from_utf8_lossy(&k.path).into_owned())
            .collect();
        let detail = format!(
            "mass delete held: this job would delete {} of {live} live items ({pct:.1}%), more than max_delete_percent ({}%); nothing was deleted. \
             Allow or reject it through the API (POST /api/v1/conflicts/{{id}}/resolve), or run `tributary once --allow-mass-delete`. First: {}",
            doomed.len(),
            self.spec.max_delete_percent,
            sample.join(", ")
        );
        let c = NewConflict::open(
            conflicts::MASS_DELETE,
            &self.spec.connector_id,
            self.spec.target.as_bytes().to_vec(),
            detail.clone(),
            Vec::new(),
        );
        match self.p.catalog.raise(c).await {
            Ok((id, _)) => {
                Progress::add(&self.progress.conflicts, 1);
                tracing::warn!(connector = %self.spec.connector_id, job_id = self.job_id, conflict = id, "mass delete held");
                self.progress
                    .log("warn", format!("conflict: mass_delete #{id}: {detail}"));
            }
            Err(e) => self.fail(format!("record conflict: {e}")),
        }
    }
}

/// Whether a known item still sits where the source entry maps (or under the conflict
/// name a `keep_both` decision gave it).
fn same_place(spec: &JobSpec, k: &ItemState, rel: &[u8]) -> bool {
    let (p, t) = (k.path.as_slice(), spec.target.as_bytes());
    let at_target = p.len() == t.len() + 1 + rel.len()
        && p.starts_with(t)
        && p[t.len()] == b'/'
        && p.ends_with(rel);
    at_target || {
        let path = target_path(&spec.target, rel);
        conflicts::is_conflict_name_of(p, &path, &spec.connector_id)
    }
}

/// Batches the listing may get ahead of the planner by. It starts before the catalog's
/// item states are loaded and should not stall while they are (100k items from a cold
/// catalog: a few tenths of a second, 20-30k listed entries): typically a folder per
/// batch, at most 256 × MAX_BATCH = 65,536 entries (~10 MB) when the planner waits
/// for file workers.
const LIST_BUFFER: usize = 256;

/// An item the catalog knows, looked up by source id, marked when the listing names it.
struct Known {
    state: ItemState,
    seen: AtomicBool,
}

impl Known {
    fn new(state: ItemState) -> Known {
        Known {
            state,
            seen: AtomicBool::new(false),
        }
    }
}

impl std::hash::Hash for Known {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.state.source_id.as_slice().hash(h)
    }
}

impl PartialEq for Known {
    fn eq(&self, o: &Known) -> bool {
        self.state.source_id == o.state.source_id
    }
}

impl Eq for Known {}

impl std::borrow::Borrow<[u8]> for Known {
    fn borrow(&self) -> &[u8] {
        &self.state.source_id
    }
}

/// Seeded per process: source names cannot be chosen to collide.
type KnownSet = HashSet<Known, foldhash::fast::RandomState>;

/// The form in which a failed attempt's source state is remembered.
fn fingerprint_text(f: &Fingerprint) -> String {
    format!(
        "{}:{}:{}:{}",
        f.size,
        f.mtime_ns,
        f.inode.map(|i| i.to_string()).unwrap_or_default(),
        f.change_tag.as_deref().unwrap_or("")
    )
}

fn permits_for(len: usize) -> u32 {
    (len.div_ceil(1024)).max(1) as u32
}

pub(crate) async fn run(
    p: &Pipeline,
    connector: Arc<dyn Connector>,
    spec: &JobSpec,
    progress: Arc<Progress>,
    control: JobControl,
) -> anyhow::Result<JobReport> {
    let started = Instant::now();
    let job_id = match spec.job_id {
        Some(id) => {
            p.catalog.start_job(id).await?;
            id
        }
        None => {
            p.catalog
                .create_job(&spec.connector_id, spec.kind.as_str(), &spec.trigger)
                .await?
        }
    };
    let budget_permits = (p.settings.max_bytes_in_flight / 1024).max(1) as usize;
    let job = Arc::new(Job {
        p: p.clone(),
        connector,
        spec: spec.clone(),
        job_id,
        progress: progress.clone(),
        uploaded: Mutex::new(HashMap::new()),
        bytes_budget: Arc::new(Semaphore::new(budget_permits)),
        upload_slots: Semaphore::new(p.settings.upload_concurrency),
        fatal: Mutex::new(None),
        failed: AtomicBool::new(false),
        control: control.clone(),
    });
    tracing::info!(connector = %spec.connector_id, job_id, kind = spec.kind.as_str(), "job started");
    progress.log(
        "info",
        format!("{} job started ({})", spec.kind.as_str(), spec.trigger),
    );
    let result = drive(job.clone()).await;
    for note in job.connector.take_notes() {
        progress.log("warn", note);
    }
    let stats = progress.snapshot();
    let error = match result {
        Ok(()) => job.fatal.lock().unwrap().clone(),
        Err(e) => {
            job.fail(format!("{e:#}"));
            job.fatal.lock().unwrap().clone()
        }
    };
    let status = match (&error, control.reason()) {
        (Some(_), _) => JobStatus::Failed,
        (None, Some(StopReason::Cancelled)) => JobStatus::Cancelled,
        (None, Some(StopReason::Shutdown)) => JobStatus::Interrupted,
        (None, None) => JobStatus::Succeeded,
    };
    let item_errors = progress.errors();
    let last_error = error.clone().or_else(|| item_errors.last().cloned());
    match &error {
        Some(e) => progress.log("error", format!("job failed: {e}")),
        None => progress.log(
            "info",
            format!(
                "job {}: {} stored, {} unchanged, {} deleted, {} failed",
                status.as_str(),
                stats.files_done,
                stats.files_unchanged,
                stats.files_deleted,
                stats.files_failed
            ),
        ),
    }
    p.catalog
        .write_job_log(job_id, &progress.log_lines())
        .await?;
    p.catalog
        .finish_job(
            job_id,
            status.as_str(),
            &serde_json::to_string(&stats)?,
            stats.files_failed as i64,
            last_error.as_deref(),
        )
        .await?;
    tracing::info!(connector = %spec.connector_id, job_id, status = ?status, "job finished");
    Ok(JobReport {
        job_id,
        status,
        stats,
        error,
        item_errors,
        conflicts: progress
            .log_lines()
            .into_iter()
            .filter_map(|l| l.message.strip_prefix("conflict: ").map(str::to_string))
            .collect(),
        elapsed: started.elapsed(),
    })
}

async fn drive(job: Arc<Job>) -> anyhow::Result<()> {
    // The listing starts first: the source's connections and first folders overlap
    // the catalog reads below (its channel holds what arrives meanwhile).
    let (list_tx, mut list_rx) = mpsc::channel::<Vec<Change>>(LIST_BUFFER);
    let mode = match job.spec.kind {
        JobKind::Full => ListMode::Full,
        JobKind::Incremental => ListMode::Incremental,
    };
    let checkpoint = job.p.catalog.checkpoint(&job.spec.connector_id).await?;
    let lister = {
        let c = job.connector.clone();
        tokio::spawn(async move { c.list(mode, checkpoint, list_tx).await })
    };
    let items = job.p.catalog.items(&job.spec.connector_id).await?;
    // hashed and compared by source id only; the seen mark does not move them
    #[allow(clippy::mutable_key_type)]
    let mut known: KnownSet = HashSet::with_capacity_and_hasher(items.len(), Default::default());
    known.extend(items.into_iter().map(Known::new));
    let torn_open = job
        .p
        .catalog
        .open_claims(&job.spec.connector_id, conflicts::TORN_READ)
        .await?;
    let torn_dismissed = job
        .p
        .catalog
        .dismissed_torn_reads(&job.spec.connector_id)
        .await?;
    let exhausted = match job.spec.max_retries {
        Some(n) => {
            job.p
                .catalog
                .exhausted_failures(&job.spec.connector_id, n)
                .await?
        }
        None => HashMap::new(),
    };

    // committer
    let (commit_tx, commit_rx) = mpsc::channel::<CommitMsg>(job.p.settings.commit_batch_size * 2);
    let committer = tokio::spawn(commit_loop(job.clone(), commit_rx));

    // workers
    let (work_tx, work_rx) = mpsc::channel::<Entry>(job.p.settings.file_concurrency * 4);
    let work_rx = Arc::new(tokio::sync::Mutex::new(work_rx));
    let mut workers = Vec::new();
    for _ in 0..job.p.settings.file_concurrency {
        let (job, rx, tx) = (job.clone(), work_rx.clone(), commit_tx.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let next = rx.lock().await.recv().await;
                let Some(entry) = next else { break };
                if job.winding_down() {
                    continue;
                }
                match process_file(&job, entry.clone()).await {
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
                                    format!("{rel}: deleted at the source before it could be read: deleting"),
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
        }));
    }

    // plan: what the listing names, against the catalog. Known items are marked seen
    // in place; `seen_new` holds the rest.
    let mut seen_new: HashSet<Vec<u8>, foldhash::fast::RandomState> = HashSet::default();
    let mut protected: Vec<Vec<u8>> = Vec::new();
    let mut explicit_deletes: Vec<Vec<u8>> = Vec::new();
    let mut checkpoint = None;
    let pr = &job.progress;
    'plan: loop {
        let batch = tokio::select! {
            b = list_rx.recv() => b,
            _ = job.control.stopped() => None,
        };
        let Some(batch) = batch else { break };
        for change in batch {
            if job.winding_down() {
                break 'plan;
            }
            match change {
                Change::Upsert(e) => {
                    Progress::add(&pr.files_seen, 1);
                    let k = known.get(e.source_id.as_slice()).map(|k| {
                        k.seen.store(true, Ordering::Relaxed);
                        &k.state
                    });
                    if k.is_none() {
                        seen_new.insert(e.source_id.clone());
                    }
                    // a held claim is unchanged too: its state is already kept aside
                    let unchanged = k.is_some_and(|k| {
                        (!k.deleted || k.held)
                            && k.size == e.size as i64
                            && k.mtime_ns == e.mtime_ns
                            && (k.inode.is_none() || e.inode.is_none() || k.inode == e.inode)
                            && k.change_tag == e.change_tag
                            && (k.held || same_place(&job.spec, k, &e.rel_path))
                            && same_principals(k, &e)
                    });
                    // The same content (by the source's content hash) under another path or
                    // with other metadata: a move or a rename, committed without a read.
                    let relocated = !unchanged
                        && k.is_some_and(|k| {
                            !k.deleted
                                && !k.held
                                && k.size == e.size as i64
                                && k.change_tag.is_some()
                                && k.change_tag == e.change_tag
                        });
                    if relocated {
                        // (when its data is gone to retention, it is read again)
                        if let Some(mut v) = job
                            .p
                            .catalog
                            .current_content(&job.spec.connector_id, &e.source_id)
                            .await?
                        {
                            v.path = target_path(&job.spec.target, &e.rel_path);
                            v.mtime_ns = e.mtime_ns;
                            v.change_tag = e.change_tag.clone();
                            v.principals = e.principals.clone();
                            Progress::add(&pr.files_relocated, 1);
                            if commit_tx.send(CommitMsg::Version(v)).await.is_err() {
                                break 'plan;
                            }
                            continue;
                        }
                    }
                    let given_up = exhausted.get(&e.source_id).is_some_and(|fp| {
                        fp.as_deref() == Some(fingerprint_text(&e.fingerprint()).as_str())
                    });
                    let torn_blocked = torn_open.contains(&e.source_id)
                        || torn_dismissed
                            .get(&e.source_id)
                            .is_some_and(|fp| *fp == fingerprint_text(&e.fingerprint()));
                    if unchanged {
                        Progress::add(&pr.files_unchanged, 1);
                    } else if torn_blocked {
                        Progress::add(&pr.files_skipped, 1);
                        tracing::debug!(item = %String::from_utf8_lossy(&e.rel_path), "torn-read conflict; skipped");
                    } else if given_up {
                        Progress::add(&pr.files_skipped, 1);
                        tracing::debug!(item = %String::from_utf8_lossy(&e.rel_path), "retries exhausted and unchanged; skipped");
                    } else {
                        Progress::add(&pr.files_planned, 1);
                        Progress::add(&pr.bytes_planned, e.size);
                        if work_tx.send(e).await.is_err() {
                            break 'plan;
                        }
                    }
                }
                Change::Delete { source_id } => explicit_deletes.push(source_id),
                Change::Error {
                    rel_path,
                    subtree,
                    message,
                } => {
                    job.item_error(&rel_path, &rel_path, &message, None).await;
                    if subtree {
                        protected.push(rel_path);
                    } else {
                        match known.get(rel_path.as_slice()) {
                            Some(k) => k.seen.store(true, Ordering::Relaxed),
                            None => {
                                seen_new.insert(rel_path);
                            }
                        }
                    }
                }
                Change::Skipped { rel_path, reason } => {
                    Progress::add(&pr.files_skipped, 1);
                    tracing::debug!(item = %String::from_utf8_lossy(&rel_path), reason = reason.as_str(), "skipped");
                }
                Change::Checkpoint(c) => checkpoint = Some(c),
            }
        }
    }
    drop(list_rx);
    let outcome = lister.await?;
    // whether this job's listing named a source id (planning is over)
    let named = |sid: &[u8]| {
        known.get(sid).map_or_else(
            || seen_new.contains(sid),
            |k| k.seen.load(Ordering::Relaxed),
        )
    };
    // Files that failed before and that a partial listing did not name (a delta source
    // names only what changed): looked up again, so that their retries happen. A
    // complete listing named every file still there (and wanted by the filters).
    let partial = matches!(&outcome, Ok(o) if !o.complete);
    if partial && !job.winding_down() {
        for sid in job
            .p
            .catalog
            .failed_source_ids(&job.spec.connector_id)
            .await?
        {
            if named(&sid) || exhausted.contains_key(&sid) || torn_open.contains(&sid) {
                continue;
            }
            match job.connector.stat(&sid).await {
                Ok(Some(e)) => {
                    Progress::add(&pr.files_planned, 1);
                    Progress::add(&pr.bytes_planned, e.size);
                    if work_tx.send(e).await.is_err() {
                        break;
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::debug!(error = %e, "a failed item could not be looked up again"),
            }
        }
    }
    drop(work_tx);
    Progress::add(&pr.listing_done, 1);
    for w in workers {
        w.await?;
    }

    let listing = match outcome {
        Ok(o) => Some(o),
        Err(e) => {
            job.fail(format!("listing {}: {e}", job.spec.connector_id));
            None
        }
    };

    if let Some(reason) = job.control.reason() {
        pr.log(
            "warn",
            format!("job stopped ({reason:?}); files in flight were finished and committed"),
        );
    }

    // reconcile deletes
    if !job.winding_down() {
        // a listing that covers the whole source may be reconciled, whatever the kind
        let reconcile = listing.as_ref().is_some_and(|o| o.complete);
        // held claims end too when their source file goes
        let live: Vec<&Known> = known
            .iter()
            .filter(|k| !k.state.deleted || k.state.held)
            .collect();
        let under = |id: &[u8], p: &[u8]| {
            p.is_empty() || (id.starts_with(p) && (id.len() == p.len() || id[p.len()] == b'/'))
        };
        let mut doomed: Vec<&ItemState> = Vec::new();
        if reconcile {
            doomed.extend(
                live.iter()
                    .filter(|k| {
                        !k.seen.load(Ordering::Relaxed)
                            && !protected.iter().any(|p| under(&k.state.source_id, p))
                    })
                    .map(|k| &k.state),
            );
        }
        for id in &explicit_deletes {
            if let Some(k) = known
                .get(id.as_slice())
                .map(|k| &k.state)
                .filter(|k| !k.deleted)
                && !doomed.iter().any(|d| d.id == k.id)
            {
                doomed.push(k);
            }
        }
        let pct = if live.is_empty() {
            0.0
        } else {
            doomed.len() as f64 * 100.0 / live.len() as f64
        };
        let over = !doomed.is_empty() && pct > job.spec.max_delete_percent;
        let held = over && !job.spec.allow_mass_delete;
        if held {
            job.mass_delete_conflict(&doomed, live.len(), pct).await;
        } else if reconcile || over {
            // allowed, or back within the limit: a held mass delete is over
            let (resolution, by) = if over {
                ("allow", "operator")
            } else {
                ("withdrawn", "source")
            };
            match job
                .p
                .catalog
                .close_mass_delete(&job.spec.connector_id, resolution, by)
                .await
            {
                Ok(Some(id)) => pr.log(
                    "info",
                    format!("conflict: mass_delete #{id} closed ({resolution})"),
                ),
                Ok(None) => {}
                Err(e) => job.fail(format!("close mass delete conflict: {e}")),
            }
        }
        if reconcile && !held {
            // errors of what this complete listing did not name (outside folders that
            // failed again) are over: a folder that lists again, a file that is gone
            // or no longer wanted, before it was ever stored
            match job
                .p
                .catalog
                .failed_source_ids(&job.spec.connector_id)
                .await
            {
                Ok(ids) => {
                    let stale: Vec<Vec<u8>> = ids
                        .into_iter()
                        .filter(|sid| !named(sid) && !protected.iter().any(|p| under(sid, p)))
                        .collect();
                    if !stale.is_empty() {
                        match job
                            .p
                            .catalog
                            .forget_item_errors(&job.spec.connector_id, &stale)
                            .await
                        {
                            Ok(n) => pr.log(
                                "info",
                                format!("{n} earlier item error(s) are over: no longer in the source or listed again"),
                            ),
                            Err(e) => job.fail(format!("forget item errors: {e}")),
                        }
                    }
                }
                Err(e) => job.fail(format!("read item errors: {e}")),
            }
        }
        if !doomed.is_empty() && !held {
            pr.log(
                "info",
                format!("{} item(s) no longer in the source: deleting", doomed.len()),
            );
            fault::point("reconcile.before_commit");
            for k in doomed {
                let v = NewVersion {
                    source_id: k.source_id.clone(),
                    path: k.path.clone(),
                    deleted: true,
                    mtime_ns: k.mtime_ns,
                    ..Default::default()
                };
                if commit_tx.send(CommitMsg::Version(v)).await.is_err() {
                    break;
                }
            }
        }
        if let Some(c) = checkpoint.filter(|_| !job.stopped()) {
            let _ = commit_tx.send(CommitMsg::Checkpoint(c)).await;
        }
    }
    drop(commit_tx);
    committer.await?;
    Ok(())
}

enum Failure {
    Item(String),
    Fatal(String),
    /// Changed while being read, every time: the message and the last source state.
    Torn(String, Fingerprint),
    /// An operator cancelled the job while this file was in flight.
    Stopped,
    /// Deleted at the source between the listing and the read.
    Deleted,
}

/// Reads, chunks, dedups and uploads one file; returns the version to commit.
async fn process_file(job: &Arc<Job>, mut entry: Entry) -> Result<NewVersion, Failure> {
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
        let reader = tokio::task::spawn_blocking(move || {
            let mut file = file;
            let fp_open = file.fingerprint();
            let digest = chunking::chunk_stream(&mut *file, params, size_hint, |c| {
                Progress::add(&progress.bytes_read, c.data.len() as u64);
                let Ok(permit) =
                    handle.block_on(budget.clone().acquire_many_owned(permits_for(c.data.len())))
                else {
                    return false;
                };
                chunk_tx.blocking_send((c, permit)).is_ok()
            });
            let fp_end = file.fingerprint();
            (fp_open, digest, fp_end)
        });

        // dedup + upload, in chunk order
        let mut refs: Vec<Option<ChunkRef>> = Vec::new();
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
                let cell = job
                    .uploaded
                    .lock()
                    .unwrap()
                    .entry(chunk.hash)
                    .or_default()
                    .clone();
                let job = job.clone();
                uploads.push(tokio::spawn(async move {
                    let r = upload_chunk(&job, &cell, chunk).await;
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
            if job.control.reason() == Some(StopReason::Cancelled) {
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

/// Uploads a chunk once per job (concurrent callers with the same hash wait for the
/// first); compresses it when that makes it smaller.
async fn upload_chunk(
    job: &Arc<Job>,
    cell: &OnceCell<ChunkRef>,
    chunk: Chunk,
) -> Result<ChunkRef, String> {
    let fresh = AtomicBool::new(false);
    let len = chunk.data.len() as u64;
    let r = cell
        .get_or_try_init(|| async {
            fresh.store(true, Ordering::Relaxed);
            let _slot = job
                .upload_slots
                .acquire()
                .await
                .map_err(|e| e.to_string())?;
            let (body, compression) = encode(job.p.settings.zstd_level, chunk.data).await?;
            let stored = body.len() as u64;
            let put = put_chunk(
                job.p.store.as_ref(),
                &chunk.hash,
                body,
                job.p.settings.retry,
                |attempt, e| {
                    Progress::add(&job.progress.upload_retries, 1);
                    tracing::warn!(attempt, error = %e, "upload failed; retrying");
                },
            );
            tokio::select! {
                r = put => r.map_err(|e| format!("object store {}: {e}", job.p.store.describe()))?,
                _ = job.operator_cancelled() => return Err("cancelled".to_string()),
            }
            fault::point("upload.after_put");
            Ok::<_, String>(ChunkRef {
                hash: chunk.hash,
                size: len,
                stored_size: stored,
                compression,
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

/// Batches versions into catalog transactions, each preceded by its manifest.
async fn commit_loop(job: Arc<Job>, mut rx: mpsc::Receiver<CommitMsg>) {
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
        _ = job.operator_cancelled() => return,
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
    if let Err(e) = job.p.catalog.commit_batch(&commit).await {
        return job.fail(format!("catalog commit: {e}"));
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

/// Whether the source's permissions are those last stored (true when the connector
/// does not capture permissions): a sharing change alone is then committed as a new
/// version of the same content, without reading it.
fn same_principals(k: &tributary_catalog::ItemState, e: &Entry) -> bool {
    match &e.principals {
        None => true,
        Some(p) => k.acl.as_deref() == Some(tributary_catalog::acl_text(p).as_str()),
    }
}
