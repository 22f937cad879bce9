//! `tributary run`: the long-running daemon.
//!
//! One [`Daemon`] is one instance of the fleet that shares the catalog. It owns the
//! per-connector state (paused, current job, next run, skipped runs) and implements the
//! API's [`Control`]. Per connector, a scheduler task (cron; each firing claimed once
//! for the fleet) and, for `watch: true` local connectors, a debounced file-system
//! watcher trigger jobs: a trigger queues a job row in the catalog, at most one queued
//! or running per connector fleet-wide; further scheduled runs are skipped and counted
//! and watch events coalesce into one follow-up run. Any instance with a free job slot
//! claims queued jobs and holds the connector's lease while it runs one ([`fleet`]).
//! Background tasks re-queue failed files whose backoff has passed and prune the
//! change feed.
//!
//! Shutdown (SIGTERM/SIGINT): stop scheduling and claiming, stop jobs (files in flight
//! finish and commit) within `shutdown_deadline`, mark what is left `interrupted`,
//! queue the connectors again for another instance (hand-back), then stop the API. SIGHUP or `POST /config/reload` re-reads the file; an invalid file is
//! rejected and the running configuration stays.

use std::collections::HashMap;
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
    AppState, AuthConfig, ConnectorSpec, ConnectorStatus, Control, ControlError, LiveJob,
    SearchQuery,
};
use tributary_config::{Config, ConnectorConfig, SourceConfig};
use tributary_connectors::Connector;
use tributary_pipeline::{JobControl, JobKind, JobSpec, JobStatus, Pipeline, Progress, StopReason};
use tributary_vectorize::{SearchError, Vectorizer};

use crate::sdnotify::Notifier;
use crate::wiring;

mod api_connectors;
mod background;
mod connector_data;
mod control;
mod events;
mod fleet;
mod jobs;
mod metrics;

use metrics::Metrics;
mod reload;
mod schedule;

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
    connector: String,
}

pub struct Daemon {
    config_path: PathBuf,
    /// This instance's id among those sharing the catalog.
    instance: String,
    /// Wakes the dispatcher: a job was queued here, or a lease reaped.
    claimable: tokio::sync::Notify,
    /// Another instance signalled a change the fleet's poll reads (a cancel, a pause,
    /// a drain): poll now.
    look_now: tokio::sync::Notify,
    /// Told through the catalog to claim no new job (`tributary ctl drain`).
    draining: std::sync::atomic::AtomicBool,
    /// Another available instance runs fewer jobs: fresh jobs are left to it.
    busier: std::sync::atomic::AtomicBool,
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
    /// `secrets.key_file`: seals the secrets of connectors created over the API.
    secrets_key: Option<Arc<tributary_store::crypt::Kek>>,
    /// One change of the running connector set at a time (reload, API write, sync).
    applying: tokio::sync::Mutex<()>,
    /// `(id, revision)` of the catalog's API connectors when last applied.
    api_revisions_seen: Mutex<Vec<(String, i64)>>,
    /// What `/api/v1/events` and `/api/v1/ws` stream ([`events`]).
    events: Arc<tributary_api::events::EventBus>,
    /// With PostgreSQL, events go to the fleet through the catalog first ([`events`]).
    relay: Option<tokio::sync::mpsc::Sender<tributary_catalog::fleet_events::OutEvent>>,
    relay_rx: Mutex<Option<tokio::sync::mpsc::Receiver<tributary_catalog::fleet_events::OutEvent>>>,
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
        max_event_connections: cfg.api.max_event_connections,
        max_event_connections_per_principal: cfg.api.max_event_connections_per_principal,
        session_ttl: cfg.api.session_ttl,
    }
}

impl Daemon {
    async fn new(config_path: PathBuf, cfg: Config) -> anyhow::Result<Arc<Daemon>> {
        let pipeline = wiring::pipeline(&cfg).await?;
        let (events, relay, relay_rx) = if pipeline.catalog.relays_events() {
            let (tx, rx) = tokio::sync::mpsc::channel(events::RELAY_QUEUE);
            (
                tributary_api::events::EventBus::relayed(),
                Some(tx),
                Some(rx),
            )
        } else {
            (tributary_api::events::EventBus::new(), None, None)
        };
        let paused = pipeline.catalog.paused_connectors().await?;
        let secrets_key = api_connectors::load_secrets_key(&cfg)?;
        let instance = pipeline
            .catalog
            .instance()
            .expect("the daemon's catalog acts for its instance")
            .to_string();
        let daemon = Arc::new(Daemon {
            config_path,
            instance,
            claimable: tokio::sync::Notify::new(),
            look_now: tokio::sync::Notify::new(),
            draining: Default::default(),
            busier: Default::default(),
            jobs: Arc::new(Semaphore::new(cfg.daemon.max_concurrent_jobs)),
            auth: Arc::new(RwLock::new(auth_of(&cfg))),
            cfg: RwLock::new(Arc::new(cfg)),
            pipeline,
            shutdown: CancellationToken::new(),
            conns: Mutex::new(HashMap::new()),
            live: Mutex::new(HashMap::new()),
            tracker: TaskTracker::new(),
            metrics: Metrics::default(),
            vectors: RwLock::new(None),
            secrets_key,
            applying: Default::default(),
            api_revisions_seen: Default::default(),
            events: Arc::new(events),
            relay,
            relay_rx: Mutex::new(relay_rx),
        });
        // the file's connectors and, beside them, those created over the API
        let file = daemon.file_config();
        let api = daemon.load_api_connectors(&file).await?;
        let cfg = match api_connectors::merged(file.clone(), api.clone()) {
            Ok(cfg) => cfg,
            Err(clashes) => {
                for c in &clashes {
                    tracing::error!("{c}; the file's connector runs");
                }
                let api: Vec<ConnectorConfig> = api
                    .into_iter()
                    .filter(|c| file.connector(&c.id).is_none())
                    .collect();
                api_connectors::merged(file, api).expect("clashes left out")
            }
        };
        {
            let mut conns = daemon.conns.lock().unwrap();
            for c in &cfg.connectors {
                let state =
                    ConnState::new(c.clone(), wiring::connector(c)?, paused.contains(&c.id));
                conns.insert(c.id.clone(), state);
            }
        }
        *daemon.cfg.write().unwrap() = Arc::new(cfg);
        Ok(daemon)
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
            Box::new(wiring::VectorBackends(cfg.vectorize.clone())),
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
}

/// The daemon as the API's [`Control`].
pub struct Handle(Arc<Daemon>);

impl std::ops::Deref for Handle {
    type Target = Arc<Daemon>;
    fn deref(&self) -> &Arc<Daemon> {
        &self.0
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
    let instance = daemon.instance.clone();
    daemon
        .pipeline
        .catalog
        .register_instance(
            &instance,
            &crate::instance::hostname(),
            env!("CARGO_PKG_VERSION"),
        )
        .await?;
    tracing::info!(%instance, "instance registered");
    let interrupted = daemon
        .pipeline
        .catalog
        .interrupt_unfinished_jobs(tributary_api::INSTANCE_DOWN_AFTER)
        .await?;
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
        events: daemon.events.clone(),
        sessions: Default::default(),
        sign_in_flows: Default::default(),
        secure_cookies: api.tls.is_some(),
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
    daemon.start_event_relay();
    daemon.watch_vectorizer();
    daemon.publish(
        "instance.up",
        None,
        json!({"instance": instance, "hostname": crate::instance::hostname(), "version": env!("CARGO_PKG_VERSION")}),
    );
    daemon.start_heartbeat(instance.clone());
    daemon.start_fleet_poll();
    daemon.start_fleet_signals();
    daemon.start_dispatcher();
    daemon.ensure_vectorizer();
    for id in &ids {
        let last = daemon.pipeline.catalog.last_job(id).await?;
        let seen = last.as_ref().map(|j| j.id);
        match startup_run(
            interrupted.contains(id),
            last.as_ref().map(|j| j.status.as_str()),
            daemon.pipeline.catalog.last_success(id).await?.is_some(),
        ) {
            Some(JobKind::Incremental) => {
                tracing::info!(connector = %id, "resuming after an interrupted job");
                let _ = daemon
                    .trigger_at_start(id, JobKind::Incremental, seen)
                    .await;
            }
            Some(JobKind::Full) => {
                tracing::info!(connector = %id, "first start: ingesting");
                let _ = daemon.trigger_at_start(id, JobKind::Full, seen).await;
            }
            None => {}
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
        let left = daemon
            .pipeline
            .catalog
            .interrupt_unfinished_jobs(tributary_api::INSTANCE_DOWN_AFTER)
            .await?;
        for id in &left {
            daemon.hand_back(id).await;
        }
    }
    // event streams end (after the fleet heard of this stop), then the API
    daemon.publish(
        "instance.down",
        None,
        json!({"instance": instance, "reason": "stopped"}),
    );
    daemon.flush_events(Duration::from_secs(2)).await;
    daemon.events.close();
    api_stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    if let Err(e) = daemon.pipeline.catalog.instance_stopped(&instance).await {
        tracing::warn!(error = %e, "record the instance's stop");
    }
    daemon.pipeline.catalog.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// The job a connector needs when the daemon starts, from its latest job's status
/// (`None` when it has none) and whether it ever succeeded: an interrupted one is
/// resumed (incremental), a connector never ingested is ingested (full); one with a job
/// queued or running (on another instance) needs none — that job does the work.
fn startup_run(interrupted_here: bool, last: Option<&str>, succeeded: bool) -> Option<JobKind> {
    match last {
        _ if interrupted_here => Some(JobKind::Incremental),
        Some("queued" | "running") => None,
        Some("interrupted") => Some(JobKind::Incremental),
        _ if !succeeded => Some(JobKind::Full),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_start_resumes_interrupted_work_ingests_new_connectors_and_leaves_live_jobs_be() {
        assert_eq!(
            startup_run(true, Some("interrupted"), true),
            Some(JobKind::Incremental)
        );
        assert_eq!(
            startup_run(false, Some("interrupted"), false),
            Some(JobKind::Incremental)
        );
        assert_eq!(startup_run(false, None, false), Some(JobKind::Full));
        assert_eq!(
            startup_run(false, Some("failed"), false),
            Some(JobKind::Full)
        );
        assert_eq!(startup_run(false, Some("succeeded"), true), None);
        assert_eq!(startup_run(false, Some("failed"), true), None);
        // another instance's first job, queued or under way: not a second one
        assert_eq!(startup_run(false, Some("running"), false), None);
        assert_eq!(startup_run(false, Some("queued"), false), None);
    }
}
