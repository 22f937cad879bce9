//! What the daemon publishes on the API's event bus ([`tributary_api::events`]): a
//! watcher per running job (`job.progress` at most every [`PROGRESS_EVERY`] when its
//! counters moved, and the job's item and conflict notices), and a watcher of the
//! vectorizer (`vectorizer.state` when its state or queue depth changes). The other
//! events are published where they happen (queueing, claiming, ending a job; pause,
//! resume, conflict resolution; configuration changes).

use super::*;
use tributary_catalog::Stats;
use tributary_pipeline::progress::Notice;

/// Least time between two `job.progress` events of one job (at most 2 per second).
pub(super) const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// How often the vectorizer's queue is looked at.
const VECTORIZER_EVERY: Duration = Duration::from_secs(2);

/// A running job's progress as an event: counters, and from the bytes read so far in
/// `elapsed` its throughput and, once the listing is done, its ETA.
pub(super) fn progress_fields(job_id: i64, s: &Stats, elapsed: Duration) -> serde_json::Value {
    let secs = elapsed.as_secs_f64();
    let throughput = if secs > 0.0 {
        (s.bytes_read as f64 / secs).round() as u64
    } else {
        0
    };
    let left = s.bytes_planned.saturating_sub(s.bytes_read);
    let eta = match (s.listing_done, throughput) {
        (true, _) if left == 0 => Some(0),
        (true, t) if t > 0 => Some(left.div_ceil(t)),
        _ => None,
    };
    json!({
        "job_id": job_id,
        "files_seen": s.files_seen,
        "files_planned": s.files_planned,
        "files_done": s.files_done,
        "files_failed": s.files_failed,
        "bytes_planned": s.bytes_planned,
        "bytes_done": s.bytes_read,
        "listing_done": s.listing_done,
        "elapsed_seconds": (secs * 10.0).round() / 10.0,
        "throughput_bytes_per_second": throughput,
        "eta_seconds": eta,
    })
}

/// A notice of a job as an event: its type and fields.
pub(super) fn notice_event(job_id: i64, n: Notice) -> (&'static str, serde_json::Value) {
    match n {
        Notice::ItemFailed { path, error } => (
            "item.failed",
            json!({"job_id": job_id, "path": path, "error": error}),
        ),
        Notice::ItemRecovered { path } => {
            ("item.recovered", json!({"job_id": job_id, "path": path}))
        }
        Notice::ConflictOpened { kind, path, note } => (
            "conflict.opened",
            json!({"job_id": job_id, "kind": kind, "path": path, "detail": note}),
        ),
    }
}

/// Events waiting to be sent to the fleet; past it, they are dropped (and the streams
/// told so by a gap).
pub(super) const RELAY_QUEUE: usize = 10_000;

/// Events sent to the fleet in one transaction, at most.
const RELAY_BATCH: usize = 500;

impl Daemon {
    /// Publishes an event: on the bus at once (SQLite: one daemon), or through the
    /// catalog to every instance of the fleet (PostgreSQL), this one included.
    pub(super) fn publish(&self, kind: &str, connector: Option<&str>, fields: serde_json::Value) {
        let Some(relay) = &self.relay else {
            self.events.publish(kind, connector, fields);
            return;
        };
        let e = tributary_catalog::fleet_events::OutEvent {
            kind: kind.to_string(),
            connector: connector.map(str::to_string),
            fields,
        };
        if relay.try_send(e).is_err() {
            self.events
                .lost("more events than the catalog took in time");
        }
    }

    /// With PostgreSQL: sends the events published here to the fleet, in batches, and
    /// feeds the bus with the fleet's events (ours included) as the catalog delivers
    /// them, in id order.
    pub(super) fn start_event_relay(self: &Arc<Self>) {
        let Some(mut rx) = self.relay_rx.lock().unwrap().take() else {
            return;
        };
        let me = self.clone();
        tokio::spawn(async move {
            let mut failing = false;
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                while batch.len() < RELAY_BATCH {
                    match rx.try_recv() {
                        Ok(e) => batch.push(e),
                        Err(_) => break,
                    }
                }
                let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                match me.pipeline.catalog.send_events(&batch, &at).await {
                    Ok(_) => failing = false,
                    Err(e) => {
                        if !std::mem::replace(&mut failing, true) {
                            tracing::warn!(error = %e, "send events to the fleet: they are lost (streams get a gap)");
                        }
                        me.events.lost("the catalog did not take the events");
                    }
                }
            }
        });
        let me = self.clone();
        tokio::spawn(async move {
            let mut said = false;
            loop {
                let mut listener = match me.pipeline.catalog.fleet_events().await {
                    Ok(Some(l)) => l,
                    Ok(None) => return,
                    Err(e) => {
                        if !std::mem::replace(&mut said, true) {
                            tracing::warn!(error = %e, "listen for the fleet's events; trying again");
                        }
                        me.events.lost("the catalog's event channel is down");
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_secs(2)) => continue,
                            _ = me.events.closed() => return,
                        }
                    }
                };
                loop {
                    use tributary_catalog::fleet_events::Received;
                    let got = tokio::select! {
                        r = listener.next() => r,
                        _ = me.events.closed() => return,
                    };
                    match got {
                        Ok(Received::Event(json)) => me.events.publish_received(&json),
                        Ok(Received::Lost) => me.events.lost("the catalog's event channel dropped"),
                        Err(_) => {
                            me.events.lost("the catalog's event channel is down");
                            break;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
    }

    /// Waits (up to `max`) until the events published here went to the fleet.
    pub(super) async fn flush_events(&self, max: Duration) {
        let Some(relay) = &self.relay else { return };
        let deadline = Instant::now() + max;
        while relay.capacity() < relay.max_capacity() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // and came back through the listener
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    /// Publishes job `job_id`'s progress and notices while it runs, until it is no
    /// longer live here.
    pub(super) fn watch_job(
        self: &Arc<Self>,
        job_id: i64,
        connector: String,
        progress: Arc<Progress>,
    ) {
        let me = self.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let mut last: Option<Stats> = None;
            let mut tick = tokio::time::interval(PROGRESS_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                // under the lock: once the job is gone, `job.finished` is its last event
                let live = me.live.lock().unwrap();
                if !live.contains_key(&job_id) {
                    return;
                }
                me.publish_notices(job_id, &connector, &progress);
                let now = progress.snapshot();
                if last.as_ref() != Some(&now) {
                    me.publish(
                        "job.progress",
                        Some(&connector),
                        progress_fields(job_id, &now, started.elapsed()),
                    );
                    last = Some(now);
                }
                drop(live);
            }
        });
    }

    /// Publishes `job.finished` (after the job's last notices).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn job_finished(
        &self,
        job_id: i64,
        connector: &str,
        progress: &Progress,
        status: &str,
        error: Option<String>,
        elapsed: Duration,
        dry_run: bool,
    ) {
        self.publish_notices(job_id, connector, progress);
        let stats = progress.snapshot();
        self.publish(
            "job.finished",
            Some(connector),
            json!({
                "job_id": job_id,
                "status": status,
                "dry_run": dry_run,
                "error_count": stats.files_failed,
                "last_error": error.or_else(|| progress.errors().last().cloned()),
                "duration_seconds": (elapsed.as_secs_f64() * 10.0).round() / 10.0,
                "stats": stats,
            }),
        );
    }

    fn publish_notices(&self, job_id: i64, connector: &str, progress: &Progress) {
        let (notices, dropped) = progress.take_notices();
        for n in notices {
            let (kind, fields) = notice_event(job_id, n);
            self.publish(kind, Some(connector), fields);
        }
        if dropped > 0 {
            tracing::info!(
                job_id,
                dropped,
                "item notices dropped between two looks (more than the event bus takes)"
            );
        }
    }

    /// Publishes `vectorizer.state` when the vectorizer's state or queue changes.
    pub(super) fn watch_vectorizer(self: &Arc<Self>) {
        let me = self.clone();
        tokio::spawn(async move {
            let mut last: Option<serde_json::Value> = None;
            let mut tick = tokio::time::interval(VECTORIZER_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = me.shutdown.cancelled() => return,
                }
                let Some(v) = me.vectorizer() else { continue };
                let Ok(s) = v.status().await else { continue };
                let now = json!({
                    "state": s.state,
                    "error": s.error,
                    "pending": s.pending,
                    "indexed": s.indexed,
                    "failed": s.failed,
                    "skipped": s.skipped,
                });
                if last.as_ref() != Some(&now) {
                    me.publish("vectorizer.state", None, now.clone());
                    last = Some(now);
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throughput_and_eta_come_from_the_bytes_read_so_far() {
        let s = Stats {
            bytes_planned: 1000,
            bytes_read: 250,
            files_planned: 4,
            files_done: 1,
            listing_done: true,
            ..Default::default()
        };
        let v = progress_fields(7, &s, Duration::from_secs(5));
        assert_eq!(v["job_id"], 7);
        assert_eq!(v["throughput_bytes_per_second"], 50);
        assert_eq!(v["eta_seconds"], 15);
        assert_eq!(v["bytes_done"], 250);
        // still listing: more may come, so no ETA
        let listing = Stats {
            listing_done: false,
            ..s.clone()
        };
        assert!(progress_fields(7, &listing, Duration::from_secs(5))["eta_seconds"].is_null());
        // nothing read yet: no rate to go by
        let idle = Stats {
            bytes_read: 0,
            ..s.clone()
        };
        let v = progress_fields(7, &idle, Duration::from_secs(5));
        assert_eq!(v["throughput_bytes_per_second"], 0);
        assert!(v["eta_seconds"].is_null());
        let done = Stats {
            bytes_read: 1000,
            ..s
        };
        assert_eq!(progress_fields(7, &done, Duration::ZERO)["eta_seconds"], 0);
    }

    #[test]
    fn notices_become_events_of_their_type() {
        let (k, v) = notice_event(
            3,
            Notice::ItemFailed {
                path: "/a/b.txt".into(),
                error: "denied".into(),
            },
        );
        assert_eq!(k, "item.failed");
        assert_eq!(v["path"], "/a/b.txt");
        assert_eq!(v["job_id"], 3);
        let (k, _) = notice_event(3, Notice::ItemRecovered { path: "/a".into() });
        assert_eq!(k, "item.recovered");
        let (k, v) = notice_event(
            3,
            Notice::ConflictOpened {
                kind: "overlap".into(),
                path: "/a".into(),
                note: "two connectors".into(),
            },
        );
        assert_eq!(k, "conflict.opened");
        assert_eq!(v["kind"], "overlap");
    }
}
