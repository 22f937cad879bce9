//! Jobs: queueing in the catalog (one per connector fleet-wide; scheduled runs that
//! find one skip, watch runs set a follow-up), running a claimed job in one of this
//! instance's slots, accounting, and handing the connector back on a stop.

use super::*;

impl Daemon {
    /// Records the end of a job the pipeline could not record itself (the catalog was
    /// unreachable, say): retried with backoff until the catalog answers, so that the
    /// job does not stay `running` once it is back; given up at shutdown, after which
    /// the next start marks the job interrupted.
    async fn record_job_end(&self, job_id: i64, status: &str, error: &str) {
        let policy = tributary_retry::RetryPolicy {
            base: Duration::from_millis(500),
            cap: Duration::from_secs(5),
            ..Default::default()
        };
        let mut attempt = 1;
        loop {
            match self
                .pipeline
                .catalog
                .finish_job(job_id, status, "{}", 0, Some(error))
                .await
            {
                Ok(()) => return,
                Err(e) => {
                    if attempt == 1 {
                        tracing::warn!(job_id, error = %e, "record the job's end: trying again until the catalog answers");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(policy.delay(attempt)) => {}
                        _ = self.shutdown.cancelled() => return,
                    }
                    attempt += 1;
                }
            }
        }
    }

    /// Queues a job of `id` in the catalog, where any instance that may run the
    /// connector claims it ([`Daemon::start_dispatcher`]). A connector with a job
    /// queued or running (here or on another instance) gets none: scheduled runs are
    /// skipped (the scheduler counts them), watch and retry runs set a follow-up.
    pub(super) fn trigger<'a>(
        self: &'a Arc<Self>,
        id: &'a str,
        kind: JobKind,
        trigger: &'a str,
    ) -> futures::future::BoxFuture<'a, Result<i64, ControlError>> {
        Box::pin(self.trigger_inner(id, kind, trigger, None, false))
    }

    /// Queues a dry run of `id` asked for over the API: like a run, but it stores
    /// nothing and leaves a mass delete the operator allowed for the real run to use.
    pub(super) async fn trigger_dry_run(
        self: &Arc<Self>,
        id: &str,
        kind: JobKind,
    ) -> Result<i64, ControlError> {
        self.trigger_inner(id, kind, "api", None, true).await
    }

    /// A job queued at start for a connector whose latest job (`seen`, `None` when it
    /// has none) left work to do: not queued when a later job exists by then, as when
    /// another instance starting at the same time queued (and maybe ended) one.
    pub(super) async fn trigger_at_start(
        self: &Arc<Self>,
        id: &str,
        kind: JobKind,
        seen: Option<i64>,
    ) -> Result<i64, ControlError> {
        self.trigger_inner(id, kind, "startup", Some(seen), false)
            .await
    }

    /// Queues a job; with `seen`, only if no job later than that one exists.
    async fn trigger_inner(
        self: &Arc<Self>,
        id: &str,
        kind: JobKind,
        trigger: &str,
        seen: Option<Option<i64>>,
        dry_run: bool,
    ) -> Result<i64, ControlError> {
        if self.shutdown.is_cancelled() {
            return Err(ControlError::ShuttingDown);
        }
        let paused_here = self
            .conns
            .lock()
            .unwrap()
            .get(id)
            .ok_or(ControlError::ConnectorNotFound)?
            .paused;
        if paused_here {
            // resumed through another instance since the last poll?
            if let Ok(paused) = self.pipeline.catalog.paused_connectors().await
                && !paused.contains(id)
                && let Some(s) = self.conns.lock().unwrap().get_mut(id)
            {
                s.paused = false;
            }
        }
        let allow_mass_delete = {
            let mut conns = self.conns.lock().unwrap();
            let st = conns.get_mut(id).ok_or(ControlError::ConnectorNotFound)?;
            if st.paused {
                if trigger != "api" {
                    st.skipped += 1;
                }
                return Err(ControlError::Paused);
            }
            // a job of this instance, or a trigger in flight, answers at once; any
            // other (queued, or on another instance, as last polled) is for the
            // catalog to confirm: it may have ended since the poll
            let here = |cur: i64| cur == 0 || self.live.lock().unwrap().contains_key(&cur);
            if let Some(cur) = st.current.filter(|c| here(*c)) {
                match trigger {
                    "watch" | "retry" => st.rerun_pending = true,
                    "schedule" => st.skipped += 1,
                    _ => {}
                }
                return Err(ControlError::AlreadyRunning(cur));
            }
            st.current = Some(0); // reserved until the job row exists
            !dry_run && std::mem::take(&mut st.allow_mass_delete)
        };
        // the operator's decision travels with the job, to whichever instance runs it
        let trigger = if allow_mass_delete {
            MASS_DELETE_ALLOWED
        } else {
            trigger
        };
        let catalog = &self.pipeline.catalog;
        let queued = match seen {
            None => catalog.queue_job(id, kind.as_str(), trigger, dry_run).await,
            Some(seen) => {
                catalog
                    .create_queued_job_after(id, kind.as_str(), trigger, seen)
                    .await
            }
        };
        let job_id = match queued {
            Ok(j) => j,
            Err(e) => {
                if let Some(s) = self.conns.lock().unwrap().get_mut(id) {
                    s.current = None;
                    s.allow_mass_delete |= allow_mass_delete;
                    if matches!(e, tributary_catalog::CatalogError::JobActive { .. }) {
                        match trigger {
                            "watch" | "retry" => s.rerun_pending = true,
                            "schedule" => s.skipped += 1,
                            _ => {}
                        }
                    }
                }
                return Err(match e {
                    // another instance (or `tributary once`) has it queued or running
                    tributary_catalog::CatalogError::JobActive { job, .. } => {
                        tracing::debug!(
                            connector = id,
                            job_id = job,
                            trigger,
                            "the connector has a job queued or running; not queued"
                        );
                        ControlError::AlreadyRunning(job)
                    }
                    tributary_catalog::CatalogError::JobSuperseded { job, .. } => {
                        tracing::debug!(
                            connector = id,
                            job_id = job,
                            trigger,
                            "the connector has a later job than the one seen; not queued"
                        );
                        ControlError::AlreadyRunning(job)
                    }
                    e => ControlError::Internal(format!("create job: {e}")),
                });
            }
        };
        if let Some(s) = self.conns.lock().unwrap().get_mut(id) {
            s.current = Some(job_id);
            s.running = false;
        }
        self.claimable.notify_one();
        self.publish(
            "job.queued",
            Some(id),
            json!({"job_id": job_id, "kind": kind.as_str(), "trigger": trigger, "dry_run": dry_run}),
        );
        tracing::info!(
            connector = id,
            job_id,
            trigger,
            kind = kind.as_str(),
            "job queued"
        );
        Ok(job_id)
    }

    /// Runs a job this instance claimed, holding one of its job slots.
    pub(super) async fn run_job(
        self: Arc<Self>,
        connector: Arc<dyn Connector>,
        spec: JobSpec,
        progress: Arc<Progress>,
        control: JobControl,
        _slot: tokio::sync::OwnedSemaphorePermit,
    ) {
        let id = spec.connector_id.clone();
        let job_id = spec.job_id.expect("daemon jobs are queued first");
        let started = Instant::now();
        let (status, error) = match self
            .pipeline
            .run_job(connector, &spec, progress.clone(), control.clone())
            .await
        {
            Ok(r) => {
                if !spec.dry_run {
                    self.metrics.account(&r.stats);
                }
                if let Some(e) = &r.error {
                    tracing::warn!(connector = %id, job_id, error = %e, "job failed");
                }
                (r.status.as_str().to_string(), r.error)
            }
            Err(e) => {
                let e = tributary_config::redact::redact(&format!("{e:#}")).into_owned();
                tracing::error!(connector = %id, job_id, error = %e, "job could not run");
                self.record_job_end(job_id, JobStatus::Failed.as_str(), &e)
                    .await;
                ("failed".to_string(), Some(e))
            }
        };
        if control.reason() != Some(StopReason::LeaseLost) {
            self.note_lease_lost(job_id, &id).await;
        }
        self.metrics.job_ended(&status, started.elapsed());
        self.live.lock().unwrap().remove(&job_id);
        // after the job's last notices (its watcher publishes no more once it is gone)
        self.job_finished(
            job_id,
            &id,
            &progress,
            &status,
            error,
            started.elapsed(),
            spec.dry_run,
        );
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
        match control.reason() {
            // a dry run that stopped is over: nothing continues it
            Some(StopReason::Shutdown) if spec.dry_run => {}
            // stopping: the connector goes back to the queue, for another instance to
            // continue at once (or this one when it starts again)
            Some(StopReason::Shutdown) => self.hand_back(&id).await,
            // lost to another instance, which continues it
            Some(StopReason::LeaseLost) => {}
            _ if rerun && !self.shutdown.is_cancelled() => {
                let _ = self.trigger(&id, JobKind::Incremental, "watch").await;
            }
            _ => {}
        }
    }

    /// Says so clearly when job `job_id` turns out to have been interrupted by another
    /// instance because this one lost its lease (the job may have ended on an error of
    /// its own first: the catalog connection of a frozen instance is cut too).
    async fn note_lease_lost(&self, job_id: i64, connector: &str) {
        if let Ok(Some(row)) = self.pipeline.catalog.job(job_id).await
            && row.status == "interrupted"
            && row
                .last_error
                .as_deref()
                .is_some_and(|e| e.starts_with("the lease of instance"))
        {
            tracing::error!(
                connector,
                job_id,
                "lost the connector's lease: this instance did not renew it within daemon.lease_ttl (frozen, or cut off from the catalog); the job was interrupted and another instance continues the connector"
            );
        }
    }

    /// Queues connector `id` again after this instance stopped its job, so that another
    /// instance continues it without waiting for the lease to expire.
    pub(super) async fn hand_back(&self, id: &str) {
        match self
            .pipeline
            .catalog
            .create_queued_job(id, JobKind::Incremental.as_str(), "handoff")
            .await
        {
            Ok(job) => {
                tracing::info!(
                    connector = id,
                    job_id = job,
                    "stopping: the connector is queued again for another instance"
                )
            }
            Err(tributary_catalog::CatalogError::JobActive { .. }) => {}
            Err(e) => {
                tracing::warn!(connector = id, error = %e, "stopping: could not queue the connector again; it resumes at the next start")
            }
        }
    }
}

/// The trigger of a job that acts on an operator's allowing a held mass delete: the
/// instance that claims it lets it delete beyond `max_delete_percent`.
pub(super) const MASS_DELETE_ALLOWED: &str = "mass_delete_allowed";
