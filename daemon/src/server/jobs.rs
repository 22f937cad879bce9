//! Jobs: queueing (one per connector; scheduled runs that find one skip, watch runs
//! set a follow-up), running under the global concurrency bound, and accounting.

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

    /// Queues a job of `id`. Scheduled runs that find a job running are skipped and
    /// counted; watch runs set a follow-up.
    pub(super) fn trigger<'a>(
        self: &'a Arc<Self>,
        id: &'a str,
        kind: JobKind,
        trigger: &'a str,
    ) -> futures::future::BoxFuture<'a, Result<i64, ControlError>> {
        Box::pin(self.trigger_inner(id, kind, trigger))
    }

    pub(super) async fn trigger_inner(
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
                    if matches!(e, tributary_catalog::CatalogError::JobActive { .. })
                        && trigger == "schedule"
                    {
                        s.skipped += 1;
                    }
                }
                return Err(match e {
                    // another instance (or `tributary once`) runs the connector now
                    tributary_catalog::CatalogError::JobActive { job, .. } => {
                        tracing::info!(
                            connector = id,
                            job_id = job,
                            trigger,
                            "the connector's job runs elsewhere; not queued"
                        );
                        ControlError::AlreadyRunning(job)
                    }
                    e => ControlError::Internal(format!("create job: {e}")),
                });
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

    pub(super) async fn run_job(
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
                self.record_job_end(job_id, status, "stopped before it started")
                    .await;
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
                        self.metrics.account(&r.stats);
                        if let Some(e) = &r.error {
                            tracing::warn!(connector = %id, job_id, error = %e, "job failed");
                        }
                        r.status.as_str().to_string()
                    }
                    Err(e) => {
                        tracing::error!(connector = %id, job_id, error = format!("{e:#}"), "job could not run");
                        self.record_job_end(job_id, JobStatus::Failed.as_str(), &format!("{e:#}"))
                            .await;
                        "failed".to_string()
                    }
                }
            }
        };
        self.metrics.job_ended(&status, started.elapsed());
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
}
