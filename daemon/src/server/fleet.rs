//! This instance's part in the fleet that shares the catalog (see
//! [`tributary_catalog::queue`]):
//!
//! - the **dispatcher** claims queued jobs into this instance's free job slots — woken
//!   at once by a trigger made here or signalled by another instance
//!   ([`tributary_catalog::signals`], PostgreSQL `LISTEN/NOTIFY`), by a poll otherwise;
//! - the **poll** (every [`POLL`], and at once when another instance signals a cancel,
//!   a pause or resume, or a drain) reads the fleet's active jobs and paused
//!   connectors (so that every instance's API shows them), acts on cancel requests for
//!   jobs running here and on this instance's drain flag, renews the leases of this
//!   instance's jobs (every sixth of `daemon.lease_ttl`; a lease found lost stops its
//!   job), saves their progress for other instances' APIs, and reaps jobs whose lease
//!   expired, queueing their connectors again.
//!
//! A job queued less than [`DEFER_TO_IDLER`] ago is left to an instance running fewer
//! jobs, if one is available, so that work spreads over the fleet.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;

use tokio::sync::OwnedSemaphorePermit;
use tributary_catalog::queue::FleetView;
use tributary_catalog::signals::Signal;
use tributary_catalog::{CatalogError, JobRow};

use super::*;

/// How often the catalog is polled (cancels, pauses and queued jobs from other
/// instances take effect within it).
pub(super) const POLL: Duration = Duration::from_secs(1);

/// How often the progress of this instance's jobs is saved for other instances' APIs.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// How long a queued job waits for a less busy instance before a busier one takes it.
const DEFER_TO_IDLER: Duration = Duration::from_secs(2);

/// Whether this instance, running `mine` jobs, should leave fresh jobs to another:
/// an available instance runs fewer.
pub(super) fn busier_than_others(
    me: &str,
    available: &[String],
    running: &HashMap<String, usize>,
) -> bool {
    let load = |i: &str| running.get(i).copied().unwrap_or(0);
    let mine = load(me);
    available.iter().any(|i| i != me && load(i) < mine)
}

impl Daemon {
    /// Claims queued jobs into free job slots until shutdown.
    pub(super) fn start_dispatcher(self: &Arc<Self>) {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                let slot = tokio::select! {
                    p = me.jobs.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                    _ = me.shutdown.cancelled() => break,
                };
                let mut slot = Some(slot);
                while let Some(s) = slot.take() {
                    if me.shutdown.is_cancelled() {
                        return;
                    }
                    match me.claim_next().await {
                        Ok(Some(job)) => me.start_claimed(job, s),
                        Ok(None) => {
                            slot = Some(s);
                            me.wait_for_work().await;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "claim a queued job");
                            slot = Some(s);
                            me.wait_for_work().await;
                        }
                    }
                }
            }
        });
    }

    async fn wait_for_work(&self) {
        tokio::select! {
            _ = self.claimable.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
            _ = self.shutdown.cancelled() => {}
        }
    }

    async fn claim_next(&self) -> Result<Option<JobRow>, CatalogError> {
        if self.draining.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let eligible: Vec<String> = self
            .conns
            .lock()
            .unwrap()
            .values()
            .filter(|s| !s.paused && s.cfg.runs_on(&self.instance))
            .map(|s| s.cfg.id.clone())
            .collect();
        let queued_before = self
            .busier
            .load(Ordering::Relaxed)
            .then(|| tributary_catalog::now_ns() - DEFER_TO_IDLER.as_nanos() as i64);
        self.pipeline
            .catalog
            .claim_job(&eligible, self.config().daemon.lease_ttl, queued_before)
            .await
    }

    /// Runs a job this instance claimed in `slot`.
    fn start_claimed(self: &Arc<Self>, job: JobRow, slot: OwnedSemaphorePermit) {
        let found = self.conns.lock().unwrap().get_mut(&job.connector).map(|s| {
            s.current = Some(job.id);
            s.running = true;
            (s.connector.clone(), s.cfg.clone())
        });
        let Some((connector, cfg)) = found else {
            // removed by a reload since the claim
            let me = self.clone();
            tokio::spawn(async move {
                let why =
                    "the connector is no longer configured on the instance that claimed the job";
                if let Err(e) = me
                    .pipeline
                    .catalog
                    .finish_job(job.id, "cancelled", "{}", 0, Some(why))
                    .await
                {
                    tracing::warn!(job_id = job.id, error = %e, "end a job of a removed connector");
                }
            });
            return;
        };
        let kind = match job.kind.as_str() {
            "full" => JobKind::Full,
            _ => JobKind::Incremental,
        };
        let progress = Arc::new(Progress::default());
        let control = JobControl::default();
        self.live.lock().unwrap().insert(
            job.id,
            Live {
                progress: progress.clone(),
                control: control.clone(),
                connector: job.connector.clone(),
            },
        );
        self.publish(
            "job.started",
            Some(&job.connector),
            json!({"job_id": job.id, "kind": kind.as_str(), "trigger": job.trigger, "dry_run": job.dry_run, "instance": self.instance}),
        );
        self.watch_job(job.id, job.connector.clone(), progress.clone());
        if self.shutdown.is_cancelled() {
            // claimed as the stop began: it hands the connector back at once
            control.stop(StopReason::Shutdown);
        }
        let spec = JobSpec {
            job_id: Some(job.id),
            connector_id: job.connector.clone(),
            target: cfg.target.clone(),
            kind,
            allow_mass_delete: job.trigger == super::jobs::MASS_DELETE_ALLOWED,
            trigger: job.trigger.clone(),
            max_delete_percent: cfg.max_delete_percent,
            max_retries: Some(self.config().daemon.max_retries as i64),
            namespace: Arc::new(wiring::namespace(&self.config())),
            dry_run: job.dry_run,
            quota: cfg.quota,
        };
        tracing::info!(
            connector = %job.connector,
            job_id = job.id,
            trigger = %job.trigger,
            kind = kind.as_str(),
            "job claimed"
        );
        let me = self.clone();
        self.tracker
            .spawn(async move { me.run_job(connector, spec, progress, control, slot).await });
    }

    /// Polls the catalog every [`POLL`] until this instance has stopped and its jobs
    /// have ended (their leases are renewed while they wind down).
    pub(super) fn start_fleet_poll(self: &Arc<Self>) {
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(POLL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last_renewal = Instant::now();
            let mut failing = false;
            let mut last_save = Instant::now();
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = me.look_now.notified() => {}
                }
                if me.shutdown.is_cancelled() && me.live.lock().unwrap().is_empty() {
                    break;
                }
                let ttl = me.config().daemon.lease_ttl;
                if last_renewal.elapsed() >= ttl / 6 {
                    last_renewal = Instant::now();
                    me.renew_leases(ttl).await;
                }
                match me.pipeline.catalog.fleet_view().await {
                    Ok(view) => {
                        failing = false;
                        me.apply_view(view).await;
                        // connectors another instance created, changed or deleted
                        if !me.shutdown.is_cancelled()
                            && me.api_connectors_changed().await.unwrap_or(false)
                            && let Err(e) = me.sync_api_connectors().await
                        {
                            tracing::warn!(error = %format!("{e:#}"), "apply the connectors created over the API");
                        }
                    }
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!(error = %e, "read the fleet's jobs from the catalog; trying again every second");
                    }
                    Err(_) => {}
                }
                if last_save.elapsed() >= PROGRESS_EVERY {
                    last_save = Instant::now();
                    me.save_progress().await;
                }
                if !me.shutdown.is_cancelled() {
                    me.reap().await;
                }
            }
        });
    }

    /// Listens for other instances' signals (PostgreSQL only): a queued job wakes the
    /// dispatcher, any other change the poll and the dispatcher. The poll stays the fallback: a signal
    /// lost while the listener reconnects costs one [`POLL`].
    pub(super) fn start_fleet_signals(self: &Arc<Self>) {
        let me = self.clone();
        tokio::spawn(async move {
            let mut said = false;
            let mut signals = loop {
                let failed = match me.pipeline.catalog.fleet_signals().await {
                    Ok(Some(s)) => break s,
                    Ok(None) => return,
                    Err(e) => e,
                };
                if !std::mem::replace(&mut said, true) {
                    tracing::warn!(error = %failed, "listen for the fleet's signals (polling meanwhile); trying again");
                }
                tokio::select! {
                    _ = tokio::time::sleep(POLL * 5) => {}
                    _ = me.shutdown.cancelled() => return,
                }
            };
            loop {
                tokio::select! {
                    s = signals.next() => match s {
                        Ok(Signal::Queued) => me.claimable.notify_one(),
                        // a resume or an undrain may free a queued job too
                        Ok(Signal::Changed) => {
                            me.look_now.notify_one();
                            me.claimable.notify_one();
                        }
                        // reconnected at the next call; the poll covers the gap
                        Err(_) => tokio::time::sleep(POLL).await,
                    },
                    _ = me.shutdown.cancelled() => return,
                }
            }
        });
    }

    /// Renews this instance's leases; a job whose lease is found lost stops at once.
    async fn renew_leases(&self, ttl: Duration) {
        let local: Vec<i64> = self.live.lock().unwrap().keys().copied().collect();
        if local.is_empty() {
            return;
        }
        let held: HashSet<i64> = match self.pipeline.catalog.renew_leases(ttl).await {
            Ok(h) => h.into_iter().collect(),
            Err(e) => {
                tracing::warn!(error = %e, "renew the leases of this instance's jobs");
                return;
            }
        };
        for id in local.into_iter().filter(|id| !held.contains(id)) {
            let row = match self.pipeline.catalog.job(id).await {
                Ok(Some(j)) => j,
                Ok(None) => continue,
                Err(_) => continue, // asked again at the next renewal
            };
            let live = self.live.lock().unwrap();
            let Some(l) = live.get(&id) else { continue };
            // a job that ended by itself meanwhile lost nothing
            let lost = match row.status.as_str() {
                "running" => true,
                "interrupted" => l.control.reason() != Some(StopReason::Shutdown),
                _ => false,
            };
            if lost && l.control.reason() != Some(StopReason::LeaseLost) {
                tracing::error!(
                    connector = %l.connector,
                    job_id = id,
                    "lost the connector's lease: this instance did not renew it within daemon.lease_ttl (frozen, or cut off from the catalog); the job stops and commits nothing more, another instance continues the connector"
                );
                l.progress.log(
                    "error",
                    "lost the connector's lease (not renewed within daemon.lease_ttl); stopped, another instance continues the connector".to_string(),
                );
                l.control.stop(StopReason::LeaseLost);
            }
        }
    }

    /// Takes in what the catalog says of the fleet.
    async fn apply_view(self: &Arc<Self>, view: FleetView) {
        self.draining.store(view.draining, Ordering::Relaxed);
        let mut running: HashMap<String, usize> = HashMap::new();
        for j in view.jobs.iter().filter(|j| j.status == "running") {
            if let Some(i) = &j.instance {
                *running.entry(i.clone()).or_default() += 1;
            }
        }
        self.busier.store(
            busier_than_others(&self.instance, &view.available, &running),
            Ordering::Relaxed,
        );
        let local: HashSet<i64> = {
            let live = self.live.lock().unwrap();
            for j in &view.jobs {
                if j.cancel_requested != 0
                    && j.instance.as_deref() == Some(self.instance.as_str())
                    && let Some(l) = live.get(&j.id)
                    && l.control.reason().is_none()
                {
                    tracing::info!(connector = %j.connector, job_id = j.id, "cancel requested through another instance");
                    l.control.stop(StopReason::Cancelled);
                }
            }
            live.keys().copied().collect()
        };
        let follow_ups: Vec<String> = {
            let mut conns = self.conns.lock().unwrap();
            for (id, s) in conns.iter_mut() {
                s.paused = view.paused.contains(id);
                let mine = s.current.is_some_and(|c| c == 0 || local.contains(&c));
                if !mine {
                    let active = view.jobs.iter().find(|j| &j.connector == id);
                    s.current = active.map(|j| j.id);
                    s.running = active.is_some_and(|j| j.status == "running");
                }
            }
            conns
                .iter_mut()
                .filter(|(_, s)| s.rerun_pending && s.current.is_none() && !s.paused)
                .map(|(id, s)| {
                    s.rerun_pending = false;
                    id.clone()
                })
                .collect()
        };
        if !self.shutdown.is_cancelled() {
            for id in follow_ups {
                let _ = self.trigger(&id, JobKind::Incremental, "watch").await;
            }
        }
    }

    /// Saves the counters of this instance's running jobs in their rows.
    async fn save_progress(&self) {
        let rows: Vec<(i64, String)> = self
            .live
            .lock()
            .unwrap()
            .iter()
            .map(|(id, l)| {
                (
                    *id,
                    serde_json::to_string(&l.progress.snapshot()).unwrap_or_default(),
                )
            })
            .collect();
        if let Err(e) = self.pipeline.catalog.save_progress(&rows).await {
            tracing::debug!(error = %e, "save the progress of running jobs");
        }
    }

    /// Interrupts jobs whose lease expired and queues their connectors again.
    async fn reap(&self) {
        match self.pipeline.catalog.reap_expired_leases().await {
            Ok(reaped) => {
                for r in &reaped {
                    tracing::warn!(
                        connector = %r.connector,
                        job_id = r.job,
                        instance = r.instance.as_deref().unwrap_or("?"),
                        next_job = r.next,
                        "the lease of the instance running the job expired: the job is interrupted and the connector queued again"
                    );
                }
                if !reaped.is_empty() {
                    self.claimable.notify_one();
                }
            }
            Err(e) => tracing::debug!(error = %e, "reap expired leases"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_jobs_are_left_to_an_available_instance_that_runs_fewer() {
        let available = vec!["a".to_string(), "b".to_string()];
        let load = |a: usize, b: usize| HashMap::from([("a".into(), a), ("b".into(), b)]);
        assert!(!busier_than_others("a", &available, &load(0, 0)));
        assert!(busier_than_others("a", &available, &load(1, 0)));
        assert!(!busier_than_others("b", &available, &load(1, 0)));
        assert!(!busier_than_others("a", &available, &load(2, 2)));
        // a draining or dead instance is not in `available`: nothing is left to it
        assert!(!busier_than_others("a", &["a".to_string()], &load(3, 0)));
    }
}
