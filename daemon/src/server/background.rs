//! Background tasks: failed files whose backoff has passed are queued again; the
//! change feed and old versions are pruned; the instance's heartbeat is renewed, and an
//! instance silent without a clean stop is announced down (`instance.down`, once).

use super::*;

/// How often an instance renews its heartbeat (an instance silent for
/// [`tributary_api::INSTANCE_DOWN_AFTER`] is shown down).
const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);

impl Daemon {
    /// Renews this instance's heartbeat in the catalog until shutdown.
    pub(super) fn start_heartbeat(self: &Arc<Self>, instance: String) {
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(HEARTBEAT_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = me.shutdown.cancelled() => break,
                }
                if let Err(e) = me.pipeline.catalog.heartbeat(&instance).await {
                    tracing::warn!(error = %e, "heartbeat");
                }
                // an instance that died without a clean stop: one instance tells the fleet
                match me
                    .pipeline
                    .catalog
                    .claim_silent_instances(&instance, tributary_api::INSTANCE_DOWN_AFTER)
                    .await
                {
                    Ok(gone) => {
                        for (id, last) in gone {
                            let last = chrono::DateTime::from_timestamp_nanos(last);
                            tracing::warn!(instance = %id, last_heartbeat = %last, "an instance went silent without stopping: announced down");
                            me.publish(
                                "instance.down",
                                None,
                                json!({"instance": id, "reason": "silent", "last_heartbeat_at": last.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)}),
                            );
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "look for silent instances"),
                }
            }
        });
    }

    /// Re-queues connectors with failed files whose backoff has passed; prunes the feed,
    /// schedule firings, the audit trail and old versions (hourly).
    pub(super) fn start_background(self: &Arc<Self>) {
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
                    // schedule firings are claimed within seconds; a day is plenty
                    let day_ago = tributary_catalog::now_ns() - 86_400_000_000_000;
                    if let Err(e) = me.pipeline.catalog.prune_fires(day_ago).await {
                        tracing::warn!(error = %e, "prune schedule firings");
                    }
                    let before = tributary_catalog::now_ns()
                        - cfg.api.audit_retention.as_nanos().min(i64::MAX as u128 / 2) as i64;
                    match me.pipeline.catalog.prune_audit(before).await {
                        Ok(n) if n > 0 => tracing::info!(removed = n, "pruned the audit trail"),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "prune the audit trail"),
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
}
