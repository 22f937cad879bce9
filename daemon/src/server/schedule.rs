//! Per connector: the cron scheduler and, for `watch: true` local connectors, the
//! debounced file-system watcher.

use super::*;

impl Daemon {
    /// Starts the scheduler and watcher of one connector.
    pub(super) fn start_tasks(self: &Arc<Self>, id: &str) {
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
                    // one instance of the fleet fires it, whatever the clocks say
                    let at = next.timestamp_nanos_opt().unwrap_or(i64::MAX);
                    match me.pipeline.catalog.claim_fire(&id, at).await {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::debug!(connector = %id, "scheduled run fired by another instance");
                            continue;
                        }
                        Err(e) => {
                            tracing::warn!(connector = %id, error = %e, "scheduled run not started: the catalog did not answer");
                            continue;
                        }
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

    pub(super) fn watch(
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
}
