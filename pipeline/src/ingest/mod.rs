//! One job: list → plan → read/chunk/hash → dedup → upload → commit → reconcile,
//! one module a stage: [`plan`] (pure decisions), [`read`], [`upload`], [`commit`],
//! [`reconcile`]; this module holds the job's types and drives the stages.
//!
//! Stages are tasks joined by bounded channels, so a slow store slows the reader
//! instead of filling memory; a byte semaphore bounds chunk bytes read but not yet
//! stored. Files are read on blocking threads. Chunks are uploaded before the batch that
//! names them is committed, and each batch's manifest is written before its catalog
//! transaction (invariant 3). A file that changes while it is read is read again (up to
//! `torn_read_retries` times) and never committed half-changed.

mod commit;
mod plan;
mod quota;
mod read;
mod reconcile;
mod upload;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{OnceCell, Semaphore, mpsc};
use tributary_catalog::conflicts;
use tributary_catalog::{ChunkRef, Namespace, NewVersion, Stats};
use tributary_connectors::{Change, Connector, Entry, Fingerprint, ListMode};
use tributary_store::pack::PackWriter;

use crate::progress::Progress;
use crate::{Hash, Pipeline, target_path};
use plan::{Decision, Holds, Known, KnownSet, Place, fingerprint_text};

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
    /// List and plan only: count what a real run would read, delete, relocate and
    /// which conflicts it would meet, and store nothing (no chunk, no version, no
    /// checkpoint, no item error, no conflict).
    pub dry_run: bool,
    /// Limits on the connector's current content.
    pub quota: tributary_config::Quota,
}

/// Why a job was stopped from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// An operator cancelled it.
    Cancelled,
    /// The daemon is shutting down.
    Shutdown,
    /// The job's instance lost the connector's lease (it was frozen or cut off from the
    /// catalog past `lease_ttl`, and the job was interrupted): it commits nothing more.
    LeaseLost,
}

impl StopReason {
    /// Whether the job stops at once, without finishing the files in flight.
    pub fn aborts(self) -> bool {
        matches!(self, StopReason::Cancelled | StopReason::LeaseLost)
    }
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
    /// It was a dry run: the stats say what a real run would do.
    pub dry_run: bool,
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
    /// Where new chunks go in a format v2 store (`None`: objects of their own, v1).
    packer: Option<PackWriter>,
    fatal: Mutex<Option<String>>,
    failed: AtomicBool,
    control: JobControl,
    /// Source ids of the connector's failed items when the job started: one stored by
    /// this job is an `item.recovered` notice.
    failed_before: std::collections::HashSet<Vec<u8>>,
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

    /// Resolves when an operator cancels the job or its lease is lost (not on
    /// shutdown, which lets uploads in flight finish within the daemon's deadline).
    async fn operator_cancelled(&self) {
        self.control.stopped().await;
        if !self.control.reason().is_some_and(StopReason::aborts) {
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
        if self.spec.dry_run {
            return;
        }
        self.progress.notice(crate::progress::Notice::ItemFailed {
            path: shown,
            error: tributary_config::redact::redact(msg).into_owned(),
        });
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

/// Batches the listing may get ahead of the planner by. It starts before the catalog's
/// item states are loaded and should not stall while they are (100k items from a cold
/// catalog: a few tenths of a second, 20-30k listed entries): typically a folder per
/// batch, at most 256 × MAX_BATCH = 65,536 entries (~10 MB) when the planner waits
/// for file workers.
const LIST_BUFFER: usize = 256;

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
        None if spec.dry_run => {
            p.catalog
                .create_dry_run_job(&spec.connector_id, spec.kind.as_str(), &spec.trigger)
                .await?
        }
        None => {
            p.catalog
                .create_job(&spec.connector_id, spec.kind.as_str(), &spec.trigger)
                .await?
        }
    };
    let budget_permits = (p.settings.max_bytes_in_flight / 1024).max(1) as usize;
    let failed_before = if spec.dry_run {
        Default::default()
    } else {
        p.catalog
            .failed_source_ids(&spec.connector_id)
            .await?
            .into_iter()
            .collect()
    };
    let job = Arc::new(Job {
        failed_before,
        p: p.clone(),
        connector,
        spec: spec.clone(),
        job_id,
        progress: progress.clone(),
        uploaded: Mutex::new(HashMap::new()),
        bytes_budget: Arc::new(Semaphore::new(budget_permits)),
        upload_slots: Semaphore::new(p.settings.upload_concurrency),
        packer: (p.format.packed() && !spec.dry_run).then(|| {
            PackWriter::new(
                p.store.clone(),
                p.settings.pack_size,
                p.settings.upload_concurrency.clamp(1, 2),
                p.settings.retry,
                Arc::new(upload::PackProgress(progress.clone())),
            )
            // a pack lane per file worker: each file's chunks back to back
            .with_lanes(p.settings.file_concurrency)
        }),
        fatal: Mutex::new(None),
        failed: AtomicBool::new(false),
        control: control.clone(),
    });
    tracing::info!(connector = %spec.connector_id, job_id, kind = spec.kind.as_str(), dry_run = spec.dry_run, "job started");
    progress.log(
        "info",
        format!(
            "{} {} started ({})",
            spec.kind.as_str(),
            if spec.dry_run { "dry run" } else { "job" },
            spec.trigger
        ),
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
        (None, Some(StopReason::Shutdown | StopReason::LeaseLost)) => JobStatus::Interrupted,
        (None, None) => JobStatus::Succeeded,
    };
    let item_errors = progress.errors();
    let last_error = error.clone().or_else(|| item_errors.last().cloned());
    match &error {
        Some(e) => progress.log("error", format!("job failed: {e}")),
        None if spec.dry_run => progress.log("info", dry_run_summary(status, &stats)),
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
    // before the job's end is recorded: whoever sees it ended sees the usage after it
    if !spec.dry_run
        && stats.versions_committed > 0
        && let Err(e) = p.catalog.recalculate_usage(&spec.connector_id).await
    {
        tracing::warn!(connector = %spec.connector_id, error = %e, "recalculate the connector's usage");
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
        dry_run: spec.dry_run,
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

/// The last line of a dry run's log: what a real run would do.
fn dry_run_summary(status: JobStatus, s: &Stats) -> String {
    format!(
        "dry run {}: a real run would read {} file(s), {} byte(s) ({} new, {} changed), relocate {}, delete {}, meet {} conflict(s); {}; {} failed",
        status.as_str(),
        s.files_planned,
        s.bytes_planned,
        s.files_new,
        s.files_changed,
        s.files_relocated,
        s.files_deleted,
        s.conflicts,
        if s.mass_delete_held {
            "the mass-delete guard would hold its deletes"
        } else {
            "the mass-delete guard would let its deletes through"
        },
        s.files_failed
    )
}

/// Runs one job's stages: the listing, the planner (here), the file workers
/// ([`read`]), the committer ([`commit`]) and, once the listing is over,
/// reconciliation ([`reconcile`]).
async fn drive(job: Arc<Job>) -> anyhow::Result<()> {
    // The listing starts first: the source's connections and first folders overlap
    // the catalog reads below (its channel holds what arrives meanwhile).
    let (list_tx, mut list_rx) = mpsc::channel::<Vec<Change>>(LIST_BUFFER);
    let mode = match job.spec.kind {
        JobKind::Full => ListMode::Full,
        JobKind::Incremental => ListMode::Incremental,
    };
    let connector = job.spec.connector_id.as_str();
    let catalog = &job.p.catalog;
    let checkpoint = catalog.checkpoint(connector).await?;
    let lister = {
        let c = job.connector.clone();
        tokio::spawn(async move { c.list(mode, checkpoint, list_tx).await })
    };
    let items = catalog.items(connector).await?;
    // hashed and compared by source id only; the seen mark does not move them
    #[allow(clippy::mutable_key_type)]
    let mut known: KnownSet = HashSet::with_capacity_and_hasher(items.len(), Default::default());
    known.extend(items.into_iter().map(Known::new));
    let holds = Holds {
        torn_open: catalog.open_claims(connector, conflicts::TORN_READ).await?,
        torn_dismissed: catalog.dismissed_torn_reads(connector).await?,
        exhausted: match job.spec.max_retries {
            Some(n) => catalog.exhausted_failures(connector, n).await?,
            None => HashMap::new(),
        },
    };
    let place = Place {
        target: &job.spec.target,
        connector,
    };
    let mut quota =
        quota::QuotaCheck::new(job.spec.quota, connector, known.iter().map(|k| &k.state));

    let (commit_tx, commit_rx) = mpsc::channel::<CommitMsg>(job.p.settings.commit_batch_size * 2);
    let dry = job.spec.dry_run;
    let committer = if dry {
        tokio::spawn(commit::dry_commit_loop(job.clone(), commit_rx))
    } else {
        tokio::spawn(commit::commit_loop(job.clone(), commit_rx))
    };
    let (work_tx, work_rx) = mpsc::channel::<Entry>(job.p.settings.file_concurrency * 4);
    let work_rx = Arc::new(tokio::sync::Mutex::new(work_rx));
    // a dry run reads nothing: what a worker would read goes to the (dry) committer as
    // it stands in the listing
    let workers: Vec<_> = (0..if dry {
        0
    } else {
        job.p.settings.file_concurrency
    })
        .map(|lane| {
            tokio::spawn(read::file_worker(
                job.clone(),
                work_rx.clone(),
                commit_tx.clone(),
                lane,
            ))
        })
        .collect();

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
                        k.mark_seen();
                        &k.state
                    });
                    if k.is_none() {
                        seen_new.insert(e.source_id.clone());
                    }
                    let mut decision = plan::classify(place, k, &e, &holds);
                    if decision == Decision::Relocate {
                        // committed without a read, unless its data is gone to retention
                        match catalog.current_content(connector, &e.source_id).await? {
                            Some(mut v) => {
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
                            None => decision = holds.read_or_skip(&e),
                        }
                    }
                    let item = || String::from_utf8_lossy(&e.rel_path).into_owned();
                    match decision {
                        Decision::Unchanged => Progress::add(&pr.files_unchanged, 1),
                        Decision::SkipTorn => {
                            Progress::add(&pr.files_skipped, 1);
                            tracing::debug!(item = %item(), "torn-read conflict; skipped");
                        }
                        Decision::SkipExhausted => {
                            Progress::add(&pr.files_skipped, 1);
                            tracing::debug!(item = %item(), "retries exhausted and unchanged; skipped");
                        }
                        Decision::Relocate | Decision::Read => {
                            if !plan_read(&job, &mut quota, k, e, &work_tx, &commit_tx).await {
                                break 'plan;
                            }
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
                            Some(k) => k.mark_seen(),
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
        known
            .get(sid)
            .map_or_else(|| seen_new.contains(sid), |k| k.seen())
    };
    // Files that failed before and that a partial listing did not name (a delta source
    // names only what changed): looked up again, so that their retries happen. A
    // complete listing named every file still there (and wanted by the filters).
    let partial = matches!(&outcome, Ok(o) if !o.complete);
    if partial && !job.winding_down() {
        for sid in catalog.failed_source_ids(connector).await? {
            if named(&sid) || !holds.retry_unlisted(&sid) {
                continue;
            }
            match job.connector.stat(&sid).await {
                Ok(Some(e)) => {
                    let k = known.get(sid.as_slice()).map(|k| &k.state);
                    if !plan_read(&job, &mut quota, k, e, &work_tx, &commit_tx).await {
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
            job.fail(format!("listing {connector}: {e}"));
            None
        }
    };
    if let Some(reason) = job.control.reason() {
        pr.log(
            "warn",
            format!("job stopped ({reason:?}); files in flight were finished and committed"),
        );
    }
    if !job.winding_down() {
        let listed = reconcile::Listed {
            known: &known,
            named: &named,
            complete: listing.as_ref().is_some_and(|o| o.complete),
            protected: &protected,
            deletes: &explicit_deletes,
        };
        job.reconcile(listed, &commit_tx).await;
        if let Some(c) = checkpoint.filter(|_| !job.stopped() && !dry) {
            let _ = commit_tx.send(CommitMsg::Checkpoint(c)).await;
        }
    }
    drop(commit_tx);
    committer.await?;
    Ok(())
}

/// A file the planner decided to read (`k`: what the catalog knows of it): held as an
/// item error when it would pass the connector's quota; else counted, and handed to
/// the file workers, or in a dry run to the dry committer as the listing describes it
/// (nothing is read). `false` when the job is winding down and the stage is gone.
async fn plan_read(
    job: &Job,
    quota: &mut quota::QuotaCheck,
    k: Option<&tributary_catalog::ItemState>,
    e: Entry,
    work_tx: &mpsc::Sender<Entry>,
    commit_tx: &mpsc::Sender<CommitMsg>,
) -> bool {
    let was = k.filter(|k| !k.deleted).map(|k| k.size.max(0) as u64);
    if let Err(m) = quota.admit(was, e.size) {
        job.item_error(&e.source_id, &e.rel_path, &m, None).await;
        return true;
    }
    let new = k.is_none();
    let pr = &job.progress;
    Progress::add(&pr.files_planned, 1);
    Progress::add(&pr.bytes_planned, e.size);
    Progress::add(
        if new {
            &pr.files_new
        } else {
            &pr.files_changed
        },
        1,
    );
    if !job.spec.dry_run {
        return work_tx.send(e).await.is_ok();
    }
    let v = NewVersion {
        path: target_path(&job.spec.target, &e.rel_path),
        source_id: e.source_id,
        size: e.size,
        mtime_ns: e.mtime_ns,
        inode: e.inode,
        change_tag: e.change_tag,
        principals: e.principals,
        ..Default::default()
    };
    commit_tx.send(CommitMsg::Version(v)).await.is_ok()
}
