//! `tributary run`: the long-running daemon.
//!
//! One [`Daemon`] owns the per-connector state (paused, current job, next run, skipped
//! runs), starts jobs under a global concurrency bound, and implements the API's
//! [`Control`]. Per connector, a scheduler task (cron) and, for `watch: true` local
//! connectors, a debounced file-system watcher trigger jobs; at most one job per
//! connector is queued or running, further scheduled runs are skipped and counted and
//! watch events coalesce into one follow-up run. Background tasks re-queue failed files
//! whose backoff has passed and prune the change feed.
//!
//! Shutdown (SIGTERM/SIGINT): stop scheduling and intake, stop jobs (files in flight
//! finish and commit) within `shutdown_deadline`, mark what is left `interrupted`, then
//! stop the API. SIGHUP or `POST /config/reload` re-reads the file; an invalid file is
//! rejected and the running configuration stays.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use async_trait::async_trait;
use chrono::Utc;
use serde_json::json;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tributary_api::{
    AppState, AuthConfig, ConnectorStatus, Control, ControlError, LiveJob, SearchQuery,
};
use tributary_config::{Config, ConnectorConfig, SourceConfig};
use tributary_connectors::Connector;
use tributary_pipeline::{JobControl, JobKind, JobSpec, JobStatus, Pipeline, Progress, StopReason};
use tributary_vectorize::{SearchError, Vectorizer};

use crate::sdnotify::Notifier;
use crate::wiring;

struct ConnState {
    cfg: ConnectorConfig,
    connector: Arc<dyn Connector>,
    paused: bool,
    current: Option<i64>,
    running: bool,
    next_run: Option<chrono::DateTime<Utc>>,
    skipped: u64,
    rerun_pending: bool,
    /// An operator allowed a held mass delete: the next job may delete beyond the limit.
    allow_mass_delete: bool,
    /// Cancels this connector's scheduler and watcher (reload, removal, shutdown).
    tasks: CancellationToken,
}

impl ConnState {
    fn new(cfg: ConnectorConfig, connector: Arc<dyn Connector>, paused: bool) -> ConnState {
        ConnState {
            cfg,
            connector,
            paused,
            current: None,
            running: false,
            next_run: None,
            skipped: 0,
            rerun_pending: false,
            allow_mass_delete: false,
            tasks: CancellationToken::new(),
        }
    }
}

struct Live {
    progress: Arc<Progress>,
    control: JobControl,
}

/// Count, sum and bucket counts of a duration histogram.
type Histogram = (u64, f64, [u64; 8]);

#[derive(Default)]
struct Metrics {
    durations: Mutex<BTreeMap<String, Histogram>>,
    totals: Mutex<tributary_pipeline::Stats>,
}

const DURATION_BUCKETS: [f64; 8] = [1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 14400.0];

pub struct Daemon {
    config_path: PathBuf,
    cfg: RwLock<Arc<Config>>,
    pipeline: Pipeline,
    jobs: Arc<Semaphore>,
    shutdown: CancellationToken,
    conns: Mutex<HashMap<String, ConnState>>,
    live: Mutex<HashMap<i64, Live>>,
    tracker: TaskTracker,
    metrics: Metrics,
    auth: Arc<RwLock<AuthConfig>>,
    /// The vectorization service, once a connector has `vectorize: true`.
    vectors: RwLock<Option<Arc<Vectorizer>>>,
}

fn connector_json(c: &ConnectorConfig) -> serde_json::Value {
    // Only fields known to carry no secret are shown.
    let mut v = json!({
        "id": c.id,
        "kind": kind_name(c),
        "target": c.target,
        "schedule": c.schedule.as_ref().map(|s| s.expression.clone()),
        "include": c.include,
        "exclude": c.exclude,
        "glob_case_insensitive": c.glob_case_insensitive,
        "max_file_size": c.max_file_size,
        "max_delete_percent": c.max_delete_percent,
        "conflict_policy": c.conflict_policy,
        "case_sensitive": c.case_sensitive,
        "watch": c.watch,
    });
    match &c.source {
        SourceConfig::Local {
            path,
            follow_symlinks,
            one_file_system,
        } => {
            v["path"] = json!(path.display().to_string());
            v["follow_symlinks"] = json!(follow_symlinks);
            v["one_file_system"] = json!(one_file_system);
        }
        // never a secret
        SourceConfig::SharePoint(s) => {
            v["tenant_id"] = json!(s.tenant_id);
            v["client_id"] = json!(s.client_id);
            v["site"] = json!(s.site);
            v["drives"] = json!(s.drives);
            v["graph_url"] = json!(s.graph_url);
            v["token_url"] = json!(s.token_url);
        }
        SourceConfig::Smb(s) => {
            v["server"] = json!(s.server);
            v["port"] = json!(s.port);
            v["share"] = json!(s.share);
            v["path"] = json!(s.path);
            v["domain"] = json!(s.domain);
            v["username"] = json!(s.username);
            v["protocol"] = json!(s.protocol);
            v["directory_timeout_secs"] = json!(s.timeout.as_secs_f64());
            v["workers"] = json!(s.workers);
        }
    }
    v
}

fn kind_name(c: &ConnectorConfig) -> &'static str {
    match c.kind {
        tributary_config::ConnectorKind::Local => "local",
        tributary_config::ConnectorKind::Smb => "smb",
        tributary_config::ConnectorKind::Sharepoint => "sharepoint",
    }
}

fn auth_of(cfg: &Config) -> AuthConfig {
    AuthConfig {
        tokens: cfg.api.tokens.clone(),
        open_metrics: cfg.api.open_metrics,
        rate_limits: cfg.api.rate_limits,
        oidc: cfg
            .api
            .oidc
            .clone()
            .map(|o| Arc::new(tributary_api::oidc::Oidc::new(o))),
    }
}

impl Daemon {
    async fn new(config_path: PathBuf, cfg: Config) -> anyhow::Result<Arc<Daemon>> {
        let pipeline = wiring::pipeline(&cfg).await?;
        let paused = pipeline.catalog.paused_connectors().await?;
        let mut conns = HashMap::new();
        for c in &cfg.connectors {
            let state = ConnState::new(c.clone(), wiring::connector(c)?, paused.contains(&c.id));
            conns.insert(c.id.clone(), state);
        }
        Ok(Arc::new(Daemon {
            config_path,
            jobs: Arc::new(Semaphore::new(cfg.daemon.max_concurrent_jobs)),
            auth: Arc::new(RwLock::new(auth_of(&cfg))),
            cfg: RwLock::new(Arc::new(cfg)),
            pipeline,
            shutdown: CancellationToken::new(),
            conns: Mutex::new(conns),
            live: Mutex::new(HashMap::new()),
            tracker: TaskTracker::new(),
            metrics: Metrics::default(),
            vectors: RwLock::new(None),
        }))
    }

    fn vectorizer(&self) -> Option<Arc<Vectorizer>> {
        self.vectors.read().unwrap().clone()
    }

    /// Starts the vectorization service when a connector is vectorized (and tells a
    /// running one which connectors are).
    fn ensure_vectorizer(self: &Arc<Self>) {
        let cfg = self.config();
        let connectors = cfg.vectorized_connectors();
        if let Some(v) = self.vectorizer() {
            v.set_connectors(connectors);
            return;
        }
        if connectors.is_empty() {
            return;
        }
        let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("tributary"));
        let v = Vectorizer::new(
            self.pipeline.catalog.clone(),
            self.pipeline.store.clone(),
            cfg.vectorize.clone(),
            connectors,
            exe,
        );
        *self.vectors.write().unwrap() = Some(v.clone());
        let stop = self.shutdown.clone();
        tokio::spawn(v.run(stop));
    }

    fn notify_vectorizer(&self) {
        if let Some(v) = self.vectorizer() {
            v.notify();
        }
    }

    fn config(&self) -> Arc<Config> {
        self.cfg.read().unwrap().clone()
    }

    /// Queues a job of `id`. Scheduled runs that find a job running are skipped and
    /// counted; watch runs set a follow-up.
    fn trigger<'a>(
        self: &'a Arc<Self>,
        id: &'a str,
        kind: JobKind,
        trigger: &'a str,
    ) -> futures::future::BoxFuture<'a, Result<i64, ControlError>> {
        Box::pin(self.trigger_inner(id, kind, trigger))
    }

    async fn trigger_inner(
        self: &Arc<Self>,
        id: &str,
        kind: JobKind,
        trigger: &str,
    ) -> Result<i64, ControlError> {
        if self.shutdown.is_cancelled() {
            return Err(ControlError::ShuttingDown);
        }
        let (connector, cfg, allow_mass_delete) = {
            let mut conns = self.conns.lock().unwrap();
            let st = conns.get_mut(id).ok_or(ControlError::ConnectorNotFound)?;
            if st.paused {
                if trigger != "api" {
                    st.skipped += 1;
                }
                return Err(ControlError::Paused);
            }
            if let Some(cur) = st.current {
                match trigger {
                    "watch" | "retry" => st.rerun_pending = true,
                    "schedule" => st.skipped += 1,
                    _ => {}
                }
                return Err(ControlError::AlreadyRunning(cur));
            }
            st.current = Some(0); // reserved until the job row exists
            let allow = std::mem::take(&mut st.allow_mass_delete);
            (st.connector.clone(), st.cfg.clone(), allow)
        };
        let job_id = match self
            .pipeline
            .catalog
            .create_queued_job(id, kind.as_str(), trigger)
            .await
        {
            Ok(j) => j,
            Err(e) => {
                if let Some(s) = self.conns.lock().unwrap().get_mut(id) {
                    s.current = None;
                }
                return Err(ControlError::Internal(format!("create job: {e}")));
            }
        };
        let progress = Arc::new(Progress::default());
        let control = JobControl::default();
        self.live.lock().unwrap().insert(
            job_id,
            Live {
                progress: progress.clone(),
                control: control.clone(),
            },
        );
        if let Some(s) = self.conns.lock().unwrap().get_mut(id) {
            s.current = Some(job_id);
        }
        let me = self.clone();
        let spec = JobSpec {
            job_id: Some(job_id),
            connector_id: id.to_string(),
            target: cfg.target.clone(),
            kind,
            trigger: trigger.to_string(),
            max_delete_percent: cfg.max_delete_percent,
            allow_mass_delete,
            max_retries: Some(self.config().daemon.max_retries as i64),
            namespace: Arc::new(wiring::namespace(&self.config())),
        };
        self.tracker
            .spawn(async move { me.run_job(connector, spec, progress, control).await });
        tracing::info!(
            connector = id,
            job_id,
            trigger,
            kind = kind.as_str(),
            "job queued"
        );
        Ok(job_id)
    }

    async fn run_job(
        self: Arc<Self>,
        connector: Arc<dyn Connector>,
        spec: JobSpec,
        progress: Arc<Progress>,
        control: JobControl,
    ) {
        let id = spec.connector_id.clone();
        let job_id = spec.job_id.expect("daemon jobs are queued first");
        let permit = tokio::select! {
            p = self.jobs.clone().acquire_owned() => p.ok(),
            _ = control.stopped() => None,
        };
        let started = Instant::now();
        let status = match permit {
            None => {
                // stopped while queued
                let status = match control.reason() {
                    Some(StopReason::Shutdown) => "interrupted",
                    _ => "cancelled",
                };
                if let Err(e) = self
                    .pipeline
                    .catalog
                    .finish_job(job_id, status, "{}", 0, Some("stopped before it started"))
                    .await
                {
                    tracing::error!(job_id, error = %e, "record job end");
                }
                status.to_string()
            }
            Some(_permit) => {
                if let Some(s) = self.conns.lock().unwrap().get_mut(&id) {
                    s.running = true;
                }
                match self
                    .pipeline
                    .run_job(connector, &spec, progress, control)
                    .await
                {
                    Ok(r) => {
                        self.account(&r.stats);
                        if let Some(e) = &r.error {
                            tracing::warn!(connector = %id, job_id, error = %e, "job failed");
                        }
                        r.status.as_str().to_string()
                    }
                    Err(e) => {
                        tracing::error!(connector = %id, job_id, error = format!("{e:#}"), "job could not run");
                        let _ = self
                            .pipeline
                            .catalog
                            .finish_job(
                                job_id,
                                JobStatus::Failed.as_str(),
                                "{}",
                                0,
                                Some(&format!("{e:#}")),
                            )
                            .await;
                        "failed".to_string()
                    }
                }
            }
        };
        self.observe_duration(&status, started.elapsed());
        self.live.lock().unwrap().remove(&job_id);
        self.notify_vectorizer();
        let rerun = {
            let mut conns = self.conns.lock().unwrap();
            match conns.get_mut(&id) {
                Some(s) => {
                    s.current = None;
                    s.running = false;
                    std::mem::take(&mut s.rerun_pending)
                }
                None => false,
            }
        };
        if rerun && !self.shutdown.is_cancelled() {
            let _ = self.trigger(&id, JobKind::Incremental, "watch").await;
        }
    }

    fn account(&self, s: &tributary_pipeline::Stats) {
        let mut t = self.metrics.totals.lock().unwrap();
        t.files_done += s.files_done;
        t.files_failed += s.files_failed;
        t.files_deleted += s.files_deleted;
        t.files_unchanged += s.files_unchanged;
        t.bytes_read += s.bytes_read;
        t.bytes_uploaded += s.bytes_uploaded;
        t.bytes_deduplicated += s.bytes_deduplicated;
        t.chunks_new += s.chunks_new;
        t.chunks_reused += s.chunks_reused;
        t.upload_retries += s.upload_retries;
        t.torn_reads += s.torn_reads;
        t.conflicts += s.conflicts;
        t.files_held += s.files_held;
    }

    fn observe_duration(&self, status: &str, d: Duration) {
        let mut m = self.metrics.durations.lock().unwrap();
        let e = m.entry(status.to_string()).or_insert((0, 0.0, [0; 8]));
        e.0 += 1;
        e.1 += d.as_secs_f64();
        for (i, b) in DURATION_BUCKETS.iter().enumerate() {
            if d.as_secs_f64() <= *b {
                e.2[i] += 1;
            }
        }
    }

    /// Starts the scheduler and watcher of one connector.
    fn start_tasks(self: &Arc<Self>, id: &str) {
        let (cfg, token) = {
            let conns = self.conns.lock().unwrap();
            let Some(s) = conns.get(id) else { return };
            (s.cfg.clone(), s.tasks.clone())
        };
        if let Some(schedule) = cfg.schedule.clone() {
            let me = self.clone();
            let id = id.to_string();
            let token = token.clone();
            tokio::spawn(async move {
                while let Some(next) = schedule.next_after(Utc::now()) {
                    if let Some(s) = me.conns.lock().unwrap().get_mut(&id) {
                        s.next_run = Some(next);
                    }
                    let wait = (next - Utc::now()).to_std().unwrap_or_default();
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = token.cancelled() => break,
                    }
                    match me.trigger(&id, JobKind::Full, "schedule").await {
                        Ok(_) => {}
                        Err(ControlError::AlreadyRunning(j)) => {
                            tracing::info!(connector = %id, running_job = j, "scheduled run skipped: a job is running")
                        }
                        Err(ControlError::Paused) => {
                            tracing::info!(connector = %id, "scheduled run skipped: paused")
                        }
                        Err(e) => {
                            tracing::warn!(connector = %id, error = ?e, "scheduled run not started")
                        }
                    }
                }
            });
        }
        if cfg.watch {
            let SourceConfig::Local { path, .. } = &cfg.source else {
                return;
            };
            if let Err(e) = self.clone().watch(id.to_string(), path.clone(), token) {
                tracing::error!(
                    connector = id,
                    error = format!("{e:#}"),
                    "cannot watch the folder; scheduled runs continue"
                );
            }
        }
    }

    fn watch(
        self: Arc<Self>,
        id: String,
        path: PathBuf,
        token: CancellationToken,
    ) -> anyhow::Result<()> {
        use notify::{RecursiveMode, Watcher};
        let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
        let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
            let relevant = match &ev {
                Ok(e) => !e.kind.is_access(),
                Err(_) => true, // overflow or error: a run rescans anyway
            };
            if relevant {
                let _ = tx.try_send(());
            }
        })
        .context("start file-system watcher")?;
        watcher
            .watch(&path, RecursiveMode::Recursive)
            .with_context(|| format!("watch {}", path.display()))?;
        let debounce = self.config().daemon.watch_debounce;
        tokio::spawn(async move {
            let _watcher = watcher; // lives as long as this task
            loop {
                tokio::select! {
                    e = rx.recv() => if e.is_none() { break },
                    _ = token.cancelled() => break,
                }
                // debounce: wait for quiet, at most 10× the debounce time
                let deadline = tokio::time::Instant::now() + debounce * 10;
                loop {
                    tokio::select! {
                        e = rx.recv() => if e.is_none() { break },
                        _ = tokio::time::sleep(debounce) => break,
                        _ = tokio::time::sleep_until(deadline) => break,
                        _ = token.cancelled() => return,
                    }
                }
                match self.trigger(&id, JobKind::Incremental, "watch").await {
                    Ok(_) | Err(ControlError::AlreadyRunning(_)) | Err(ControlError::Paused) => {}
                    Err(e) => tracing::warn!(connector = %id, error = ?e, "watch run not started"),
                }
            }
        });
        Ok(())
    }

    /// Re-queues connectors with failed files whose backoff has passed; prunes the feed.
    fn start_background(self: &Arc<Self>) {
        let me = self.clone();
        tokio::spawn(async move {
            // often enough for the configured backoff, at most every 30 s
            let every = me
                .config()
                .daemon
                .retry_backoff
                .clamp(Duration::from_secs(1), Duration::from_secs(30));
            let mut tick = tokio::time::interval(every);
            let mut last_prune = Instant::now() - Duration::from_secs(3600);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = me.shutdown.cancelled() => break,
                }
                let cfg = me.config();
                match me
                    .pipeline
                    .catalog
                    .due_retries(cfg.daemon.max_retries as i64, cfg.daemon.retry_backoff)
                    .await
                {
                    Ok(due) => {
                        for d in due {
                            let idle = me
                                .conns
                                .lock()
                                .unwrap()
                                .get(&d.connector)
                                .is_some_and(|s| s.current.is_none() && !s.paused);
                            if idle {
                                tracing::info!(connector = %d.connector, files = d.count, "retrying failed files");
                                let _ = me
                                    .trigger(&d.connector, JobKind::Incremental, "retry")
                                    .await;
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "retry sweep"),
                }
                // hourly, or more often when the retention itself is short
                let prune_every = (cfg
                    .daemon
                    .change_retention
                    .min(cfg.daemon.version_retention)
                    / 2)
                .clamp(Duration::from_secs(1), Duration::from_secs(3600));
                if last_prune.elapsed() >= prune_every {
                    last_prune = Instant::now();
                    let before =
                        tributary_catalog::now_ns() - cfg.daemon.change_retention.as_nanos() as i64;
                    match me.pipeline.catalog.prune_changes(before).await {
                        Ok(n) if n > 0 => tracing::info!(removed = n, "pruned the change feed"),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "prune change feed"),
                    }
                    let before = tributary_catalog::now_ns()
                        - cfg.daemon.version_retention.as_nanos() as i64;
                    match me.pipeline.catalog.prune_versions(before).await {
                        Ok((v, i)) if v > 0 => {
                            tracing::info!(versions = v, items = i, "pruned old versions")
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "prune versions"),
                    }
                }
            }
        });
    }

    async fn reload_config(self: &Arc<Self>) -> Result<serde_json::Value, ControlError> {
        let new = wiring::load_config(&self.config_path).map_err(|errs| {
            ControlError::ConfigInvalid(errs.0.iter().map(|e| e.to_string()).collect())
        })?;
        let old = self.config();
        let mut added = Vec::new();
        let mut removed = Vec::new();
        let mut changed = Vec::new();
        let mut built = HashMap::new();
        for c in &new.connectors {
            let conn = wiring::connector(c).map_err(|e| {
                ControlError::ConfigInvalid(vec![format!("connector {}: {e:#}", c.id)])
            })?;
            built.insert(c.id.clone(), conn);
        }
        let mut restart = Vec::new();
        {
            let mut conns = self.conns.lock().unwrap();
            let ids: Vec<String> = conns.keys().cloned().collect();
            for id in ids {
                if new.connector(&id).is_none() {
                    if let Some(s) = conns.remove(&id) {
                        s.tasks.cancel();
                    }
                    removed.push(id);
                }
            }
            for c in &new.connectors {
                let conn = built.remove(&c.id).expect("built above");
                match conns.get_mut(&c.id) {
                    Some(s) if s.cfg.same_settings(c) => {}
                    Some(s) => {
                        s.tasks.cancel();
                        s.tasks = CancellationToken::new();
                        s.cfg = c.clone();
                        s.connector = conn; // a running job keeps the config it started with
                        s.next_run = None;
                        changed.push(c.id.clone());
                        restart.push(c.id.clone());
                    }
                    None => {
                        conns.insert(c.id.clone(), ConnState::new(c.clone(), conn, false));
                        added.push(c.id.clone());
                        restart.push(c.id.clone());
                    }
                }
            }
        }
        for id in &restart {
            self.start_tasks(id);
        }
        let restart_required = format!("{:?}{:?}{:?}", old.catalog, old.object_store, old.pipeline)
            != format!("{:?}{:?}{:?}", new.catalog, new.object_store, new.pipeline)
            || old.api.listen != new.api.listen;
        let vectorize_changed = format!("{:?}", old.vectorize) != format!("{:?}", new.vectorize);
        *self.auth.write().unwrap() = auth_of(&new);
        *self.cfg.write().unwrap() = Arc::new(new);
        self.ensure_vectorizer();
        tracing::info!(?added, ?removed, ?changed, "configuration reloaded");
        Ok(json!({
            "reloaded": true,
            "added": added,
            "removed": removed,
            "changed": changed,
            "restart_required_for": match (restart_required, vectorize_changed) {
                (false, false) => json!([]),
                (true, false) => json!(["catalog, object_store, pipeline or api.listen changed: restart to apply"]),
                (false, true) => json!(["vectorize changed: restart to apply"]),
                (true, true) => json!(["catalog, object_store, pipeline or api.listen changed: restart to apply", "vectorize changed: restart to apply"]),
            },
        }))
    }
}

/// The daemon as the API's [`Control`].
pub struct Handle(Arc<Daemon>);

impl std::ops::Deref for Handle {
    type Target = Arc<Daemon>;
    fn deref(&self) -> &Arc<Daemon> {
        &self.0
    }
}

fn vectors_off() -> ControlError {
    ControlError::VectorsUnavailable(
        "vectorization is off: no connector has `vectorize: true`".into(),
    )
}

#[async_trait]
impl Control for Handle {
    fn connectors(&self) -> Vec<ConnectorStatus> {
        let conns = self.conns.lock().unwrap();
        let mut out: Vec<ConnectorStatus> = conns
            .values()
            .map(|s| ConnectorStatus {
                id: s.cfg.id.clone(),
                kind: kind_name(&s.cfg).into(),
                target: s.cfg.target.clone(),
                schedule: s.cfg.schedule.as_ref().map(|x| x.expression.clone()),
                timezone: s.cfg.schedule.as_ref().map(|x| x.zone.name()),
                watch: s.cfg.watch,
                paused: s.paused,
                state: match (s.current, s.running) {
                    (None, _) => "idle",
                    (Some(_), false) => "queued",
                    (Some(_), true) => "running",
                }
                .into(),
                current_job: s.current.filter(|j| *j > 0),
                next_run: if s.paused {
                    None
                } else {
                    s.next_run
                        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                },
                skipped_runs: s.skipped,
                config: connector_json(&s.cfg),
            })
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    async fn run_now(&self, connector: &str, full: bool) -> Result<i64, ControlError> {
        self.trigger(
            connector,
            if full {
                JobKind::Full
            } else {
                JobKind::Incremental
            },
            "api",
        )
        .await
    }

    async fn resolve_conflict(
        &self,
        id: i64,
        resolution: &str,
        by: &str,
    ) -> Result<tributary_catalog::ConflictRow, ControlError> {
        use tributary_catalog::ResolveError;
        use tributary_pipeline::ResolveFailure;
        let c = tributary_pipeline::resolve_conflict(&self.pipeline, id, resolution, by)
            .await
            .map_err(|e| match e {
                ResolveFailure::Resolve(ResolveError::NotFound(id)) => {
                    ControlError::ConflictNotFound(id)
                }
                ResolveFailure::Resolve(ResolveError::AlreadyResolved(id)) => {
                    ControlError::ConflictAlreadyResolved(id)
                }
                ResolveFailure::Resolve(e @ ResolveError::NotApplicable { .. }) => {
                    ControlError::ResolutionInvalid(e.to_string())
                }
                e => ControlError::Internal(e.to_string()),
            })?;
        // the decisions that act through a job
        let rerun = match (c.kind.as_str(), resolution) {
            ("mass_delete", "allow") => {
                if let Some(s) = self.conns.lock().unwrap().get_mut(&c.connector) {
                    s.allow_mass_delete = true;
                }
                Some(JobKind::Full)
            }
            ("torn_read", "keep_source") => Some(JobKind::Incremental),
            _ => None,
        };
        if let Some(kind) = rerun {
            match self.trigger(&c.connector, kind, "conflict").await {
                Ok(_) | Err(ControlError::AlreadyRunning(_)) => {
                    if let Some(s) = self.conns.lock().unwrap().get_mut(&c.connector) {
                        // a running job may not have seen the decision: run once more
                        s.rerun_pending |= s.current.is_some();
                    }
                }
                Err(e) => {
                    tracing::warn!(conflict = id, error = ?e, "the job acting on the resolution was not started")
                }
            }
        }
        self.notify_vectorizer();
        Ok(c)
    }

    async fn set_paused(&self, connector: &str, paused: bool) -> Result<(), ControlError> {
        {
            let mut conns = self.conns.lock().unwrap();
            let s = conns
                .get_mut(connector)
                .ok_or(ControlError::ConnectorNotFound)?;
            s.paused = paused;
        }
        self.pipeline
            .catalog
            .set_paused(connector, paused)
            .await
            .map_err(|e| ControlError::Internal(e.to_string()))
    }

    async fn cancel_job(&self, job_id: i64) -> Result<(), ControlError> {
        let live = self.live.lock().unwrap();
        let l = live.get(&job_id).ok_or(ControlError::JobNotRunning)?;
        l.control.stop(StopReason::Cancelled);
        Ok(())
    }

    fn live_job(&self, job_id: i64) -> Option<LiveJob> {
        let live = self.live.lock().unwrap();
        live.get(&job_id).map(|l| LiveJob {
            stats: l.progress.snapshot(),
            log: l.progress.log_lines(),
        })
    }

    async fn reload(&self) -> Result<serde_json::Value, ControlError> {
        self.reload_config().await
    }

    async fn search(&self, q: SearchQuery) -> Result<serde_json::Value, ControlError> {
        let v = self.vectorizer().ok_or_else(vectors_off)?;
        let hits = v
            .search(
                &q.q,
                q.k,
                q.connector.as_deref(),
                q.path_prefix.as_deref(),
                &q.principals,
            )
            .await
            .map_err(|e| match e {
                SearchError::NotReady(m) | SearchError::Embedder(m) => {
                    ControlError::VectorsUnavailable(m)
                }
                SearchError::Catalog(e) => ControlError::Internal(e.to_string()),
            })?;
        Ok(json!({ "items": hits }))
    }

    async fn vector_queue(&self) -> Result<serde_json::Value, ControlError> {
        let v = self.vectorizer().ok_or_else(vectors_off)?;
        let s = v
            .status()
            .await
            .map_err(|e| ControlError::Internal(e.to_string()))?;
        Ok(serde_json::to_value(s).unwrap_or_default())
    }

    fn vectors_ready(&self) -> Option<Result<(), String>> {
        self.vectorizer().map(|v| v.ready())
    }

    async fn metrics(&self) -> String {
        let mut out = String::new();
        let cat = &self.pipeline.catalog;
        out.push_str(
            "# HELP tributary_jobs Jobs in the catalog by status.\n# TYPE tributary_jobs gauge\n",
        );
        if let Ok(counts) = cat.job_status_counts().await {
            for (status, n) in counts {
                let _ = writeln!(out, "tributary_jobs{{status=\"{status}\"}} {n}");
            }
        }
        out.push_str("# HELP tributary_job_duration_seconds Duration of jobs run by this process.\n# TYPE tributary_job_duration_seconds histogram\n");
        for (status, (count, sum, buckets)) in self.metrics.durations.lock().unwrap().iter() {
            for (i, b) in DURATION_BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "tributary_job_duration_seconds_bucket{{status=\"{status}\",le=\"{b}\"}} {}",
                    buckets[i]
                );
            }
            let _ = writeln!(
                out,
                "tributary_job_duration_seconds_bucket{{status=\"{status}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                out,
                "tributary_job_duration_seconds_sum{{status=\"{status}\"}} {sum}"
            );
            let _ = writeln!(
                out,
                "tributary_job_duration_seconds_count{{status=\"{status}\"}} {count}"
            );
        }
        let t = self.metrics.totals.lock().unwrap().clone();
        for (name, help, v) in [
            (
                "tributary_items_stored_total",
                "Item versions stored.",
                t.files_done,
            ),
            (
                "tributary_items_failed_total",
                "Item attempts that failed.",
                t.files_failed,
            ),
            (
                "tributary_items_deleted_total",
                "Items reconciled as deleted.",
                t.files_deleted,
            ),
            (
                "tributary_bytes_read_total",
                "Bytes read from sources.",
                t.bytes_read,
            ),
            (
                "tributary_bytes_uploaded_total",
                "Bytes written to the object store (after compression).",
                t.bytes_uploaded,
            ),
            (
                "tributary_bytes_deduplicated_total",
                "Bytes not uploaded because their chunk was already stored.",
                t.bytes_deduplicated,
            ),
            (
                "tributary_chunks_uploaded_total",
                "Chunks uploaded.",
                t.chunks_new,
            ),
            (
                "tributary_chunks_deduplicated_total",
                "Chunk dedup hits.",
                t.chunks_reused,
            ),
            (
                "tributary_upload_retries_total",
                "Object store requests retried.",
                t.upload_retries,
            ),
            (
                "tributary_torn_reads_total",
                "Files that changed while being read.",
                t.torn_reads,
            ),
            (
                "tributary_conflicts_total",
                "Conflicts met by jobs (opened, updated or decided by a policy).",
                t.conflicts,
            ),
            (
                "tributary_items_held_total",
                "Item versions stored but kept aside by a conflict.",
                t.files_held,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        }
        let conns: Vec<(String, u64, bool, bool)> = self
            .conns
            .lock()
            .unwrap()
            .values()
            .map(|s| {
                (
                    s.cfg.id.clone(),
                    s.skipped,
                    s.current.is_some() && !s.running,
                    s.running,
                )
            })
            .collect();
        let queued = conns.iter().filter(|c| c.2).count();
        let running = conns.iter().filter(|c| c.3).count();
        let _ = writeln!(
            out,
            "# HELP tributary_queue_depth Jobs waiting for a slot.\n# TYPE tributary_queue_depth gauge\ntributary_queue_depth {queued}"
        );
        let _ = writeln!(
            out,
            "# HELP tributary_jobs_running Jobs running now.\n# TYPE tributary_jobs_running gauge\ntributary_jobs_running {running}"
        );
        out.push_str("# HELP tributary_schedule_skips_total Scheduled runs skipped because a job was running.\n# TYPE tributary_schedule_skips_total counter\n");
        for (id, skipped, _, _) in &conns {
            let _ = writeln!(
                out,
                "tributary_schedule_skips_total{{connector=\"{id}\"}} {skipped}"
            );
        }
        out.push_str("# HELP tributary_conflicts_open Open conflicts by kind.\n# TYPE tributary_conflicts_open gauge\n");
        let open = cat.open_conflict_counts().await.unwrap_or_default();
        for kind in tributary_catalog::conflicts::KINDS {
            let n = open.iter().find(|(k, _)| k == kind).map_or(0, |(_, n)| *n);
            let _ = writeln!(out, "tributary_conflicts_open{{kind=\"{kind}\"}} {n}");
        }
        out.push_str("# HELP tributary_last_success_timestamp_seconds End of the last successful job per connector.\n# TYPE tributary_last_success_timestamp_seconds gauge\n");
        for (id, ..) in &conns {
            if let Ok(Some(ns)) = cat.last_success(id).await {
                let _ = writeln!(
                    out,
                    "tributary_last_success_timestamp_seconds{{connector=\"{id}\"}} {}",
                    ns as f64 / 1e9
                );
            }
        }
        if let Some(v) = self.vectorizer() {
            out.push_str(&v.metrics().await);
        }
        out.push_str(&tributary_connector_sharepoint::metrics());
        out.push_str(&tributary_api::serve::metrics());
        out
    }
}

/// Runs the daemon until SIGTERM/SIGINT.
pub async fn run(config_path: PathBuf, cfg: Config) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let notifier = Notifier::from_env();
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;

    let api = cfg.api.clone();
    let listen = api.listen;
    let daemon = Daemon::new(config_path, cfg).await?;
    let interrupted = daemon.pipeline.catalog.interrupt_unfinished_jobs().await?;
    let tls = match &api.tls {
        Some((cert, key)) => Some(
            tributary_api::serve::tls_acceptor(cert, key)
                .map_err(|e| anyhow::anyhow!("api.tls: {e}"))?,
        ),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listen on {listen} (api.listen)"))?;
    let state = AppState {
        catalog: daemon.pipeline.catalog.clone(),
        store: daemon.pipeline.store.clone(),
        control: Arc::new(Handle(daemon.clone())),
        auth: daemon.auth.clone(),
        metrics: Default::default(),
        limiter: Default::default(),
        bodies: tributary_api::BodyLimits {
            max_size: api.max_body_size as usize,
            read_timeout: api.body_read_timeout,
        },
    };
    let api_stop = CancellationToken::new();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let server = tokio::spawn(tributary_api::serve::serve(
        listener,
        tls,
        tributary_api::router(state),
        tributary_api::serve::ConnLimits {
            max_connections: api.max_connections,
            max_connections_per_client: api.max_connections_per_client,
            header_read_timeout: api.header_read_timeout,
        },
        api_stop.clone(),
        Duration::from_secs(5),
    ));
    eprintln!("tributary: API listening on {scheme}://{listen}/api/v1");
    tracing::info!(%listen, "api listening");

    let ids: Vec<String> = daemon.conns.lock().unwrap().keys().cloned().collect();
    for id in &ids {
        daemon.start_tasks(id);
    }
    daemon.start_background();
    daemon.ensure_vectorizer();
    for id in &ids {
        let last = daemon.pipeline.catalog.last_job(id).await?;
        if interrupted.contains(id) || last.is_some_and(|j| j.status == "interrupted") {
            tracing::info!(connector = %id, "resuming after an interrupted job");
            let _ = daemon.trigger(id, JobKind::Incremental, "startup").await;
        } else if daemon.pipeline.catalog.last_success(id).await?.is_none() {
            tracing::info!(connector = %id, "first start: ingesting");
            let _ = daemon.trigger(id, JobKind::Full, "startup").await;
        }
    }
    notifier.notify("READY=1");
    if let Some(every) = notifier.watchdog_interval() {
        let n = notifier.clone();
        let stop = daemon.shutdown.clone();
        tokio::spawn(async move {
            let mut t = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = t.tick() => n.notify("WATCHDOG=1"),
                    _ = stop.cancelled() => break,
                }
            }
        });
    }

    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                notifier.notify("RELOADING=1");
                match daemon.reload_config().await {
                    Ok(r) => tracing::info!(summary = %r, "reloaded on SIGHUP"),
                    Err(ControlError::ConfigInvalid(errs)) => {
                        for e in &errs {
                            eprintln!("reload rejected: {e}");
                        }
                        tracing::error!(errors = ?errs, "reload rejected; the previous configuration keeps running");
                    }
                    Err(e) => tracing::error!(error = ?e, "reload failed"),
                }
                notifier.notify("READY=1");
            }
        }
    }

    // shutdown: scheduling and intake stop, jobs wind down, API last
    notifier.notify("STOPPING=1");
    tracing::info!("shutting down");
    daemon.shutdown.cancel();
    for s in daemon.conns.lock().unwrap().values() {
        s.tasks.cancel();
    }
    for l in daemon.live.lock().unwrap().values() {
        l.control.stop(StopReason::Shutdown);
    }
    daemon.tracker.close();
    let deadline = daemon.config().daemon.shutdown_deadline;
    if tokio::time::timeout(deadline, daemon.tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            ?deadline,
            "jobs did not finish within the shutdown deadline; marking them interrupted"
        );
        daemon.pipeline.catalog.interrupt_unfinished_jobs().await?;
    }
    api_stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    daemon.pipeline.catalog.close().await;
    tracing::info!("stopped");
    Ok(())
}
