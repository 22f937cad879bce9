//! `/metrics`: the daemon's part of the one Prometheus registry a scrape encodes (the
//! API adds its request metrics and listener counters). Instruments that count as
//! things happen (job durations, the jobs' totals) live in [`Metrics`]; what the
//! catalog, the scheduler, the vectorizer and the SharePoint connectors know is read at
//! scrape time.

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tributary_pipeline::Stats;

use super::Daemon;

/// A metric's labels, e.g. `[("status", "succeeded")]`.
type Labels = Vec<(&'static str, String)>;

fn labels(name: &'static str, value: impl Into<String>) -> Labels {
    vec![(name, value.into())]
}

/// Job durations: 1 s to 4 h.
const DURATION_BUCKETS: [f64; 8] = [1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 14400.0];

type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

/// What the daemon counts as it runs jobs.
pub(super) struct Metrics {
    durations: HistogramFamily,
    totals: Mutex<Stats>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            durations: Family::new_with_constructor(|| Histogram::new(DURATION_BUCKETS)),
            totals: Mutex::default(),
        }
    }
}

impl Metrics {
    /// A job ended with `status` after `took`.
    pub(super) fn job_ended(&self, status: &str, took: Duration) {
        self.durations
            .get_or_create(&labels("status", status))
            .observe(took.as_secs_f64());
    }

    /// Adds a finished job's counters to the totals.
    pub(super) fn account(&self, s: &Stats) {
        let mut t = self.totals.lock().unwrap();
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
}

/// A gauge family set from `(label value, value)` pairs.
fn gauges<V: Into<i64>>(
    reg: &mut Registry,
    name: &str,
    help: &str,
    label: &'static str,
    values: impl IntoIterator<Item = (String, V)>,
) {
    let family = Family::<Labels, Gauge>::default();
    for (l, v) in values {
        family.get_or_create(&labels(label, l)).set(v.into());
    }
    reg.register(name, help, family);
}

fn gauge(reg: &mut Registry, name: &str, help: &str, v: i64) {
    let g = Gauge::<i64>::default();
    g.set(v);
    reg.register(name, help, g);
}

/// `name` is registered without `_total`, which the encoding adds.
fn counter(reg: &mut Registry, name: &str, help: &str, v: u64) {
    reg.register(name, help, ConstCounter::new(v));
}

fn seconds_counter(reg: &mut Registry, name: &str, help: &str, v: f64) {
    reg.register(name, help, ConstCounter::new(v));
}

impl Daemon {
    /// Registers the daemon's metrics into `reg`.
    pub(super) async fn register_metrics(&self, reg: &mut Registry) {
        let cat = &self.pipeline.catalog;
        if let Ok(counts) = cat.job_status_counts().await {
            gauges(
                reg,
                "tributary_jobs",
                "Jobs in the catalog by status",
                "status",
                counts,
            );
        }
        if let Ok(instances) = cat.instances().await {
            let now = tributary_catalog::now_ns();
            let ttl = tributary_api::INSTANCE_DOWN_AFTER.as_nanos() as i64;
            let states = ["up", "down", "stopped"].map(|state| {
                let n = instances
                    .iter()
                    .filter(|(r, _)| tributary_catalog::instance_state(r, now, ttl) == state)
                    .count() as i64;
                (state.to_string(), n)
            });
            gauges(
                reg,
                "tributary_instances",
                "Daemon instances using the catalog, by state (down: no heartbeat for 30 s)",
                "state",
                states.to_vec(),
            );
        }
        if let Ok(usage) = cat.usage().await {
            type Pick = fn(&tributary_catalog::Usage) -> i64;
            let all: [(&str, &str, Pick); 3] = [
                (
                    "tributary_connector_files",
                    "Live files of each connector (as last calculated)",
                    |u| u.files,
                ),
                (
                    "tributary_connector_bytes",
                    "Logical bytes of each connector's live files (as last calculated)",
                    |u| u.bytes,
                ),
                (
                    "tributary_connector_stored_bytes",
                    "Stored bytes of the distinct chunks each connector's live files reference, after dedup and compression",
                    |u| u.stored_bytes,
                ),
            ];
            for (name, help, pick) in all {
                let values = usage.iter().map(|u| (u.connector.clone(), pick(u)));
                gauges(reg, name, help, "connector", values);
            }
        }
        let quotas: Vec<(String, tributary_config::Quota)> = self
            .conns
            .lock()
            .unwrap()
            .values()
            .map(|s| (s.cfg.id.clone(), s.cfg.quota))
            .collect();
        type Limit = fn(&tributary_config::Quota) -> Option<u64>;
        let limits: [(&str, &str, Limit); 2] = [
            (
                "tributary_connector_quota_bytes",
                "Each connector's quota.max_bytes (connectors with one)",
                |q| q.max_bytes,
            ),
            (
                "tributary_connector_quota_files",
                "Each connector's quota.max_files (connectors with one)",
                |q| q.max_files,
            ),
        ];
        for (name, help, limit) in limits {
            let values = quotas.iter().filter_map(|(id, q)| {
                limit(q).map(|v| (id.clone(), v.min(i64::MAX as u64) as i64))
            });
            gauges(reg, name, help, "connector", values);
        }
        reg.register(
            "tributary_job_duration_seconds",
            "Duration of jobs run by this process",
            self.metrics.durations.clone(),
        );
        let t = self.metrics.totals.lock().unwrap().clone();
        for (name, help, v) in [
            (
                "tributary_items_stored",
                "Item versions stored",
                t.files_done,
            ),
            (
                "tributary_items_failed",
                "Item attempts that failed",
                t.files_failed,
            ),
            (
                "tributary_items_deleted",
                "Items reconciled as deleted",
                t.files_deleted,
            ),
            (
                "tributary_bytes_read",
                "Bytes read from sources",
                t.bytes_read,
            ),
            (
                "tributary_bytes_uploaded",
                "Bytes written to the object store (after compression)",
                t.bytes_uploaded,
            ),
            (
                "tributary_bytes_deduplicated",
                "Bytes not uploaded because their chunk was already stored",
                t.bytes_deduplicated,
            ),
            ("tributary_chunks_uploaded", "Chunks uploaded", t.chunks_new),
            (
                "tributary_chunks_deduplicated",
                "Chunk dedup hits",
                t.chunks_reused,
            ),
            (
                "tributary_upload_retries",
                "Object store requests retried",
                t.upload_retries,
            ),
            (
                "tributary_torn_reads",
                "Files that changed while being read",
                t.torn_reads,
            ),
            (
                "tributary_conflicts",
                "Conflicts met by jobs (opened, updated or decided by a policy)",
                t.conflicts,
            ),
            (
                "tributary_items_held",
                "Item versions stored but kept aside by a conflict",
                t.files_held,
            ),
        ] {
            counter(reg, name, help, v);
        }

        // (id, skipped runs, queued, running)
        let conns: Vec<(String, u64, bool, bool)> = self
            .conns
            .lock()
            .unwrap()
            .values()
            .map(|s| {
                let queued = s.current.is_some() && !s.running;
                (s.cfg.id.clone(), s.skipped, queued, s.running)
            })
            .collect();
        let count = |f: fn(&(String, u64, bool, bool)) -> bool| {
            conns.iter().filter(|c| f(c)).count() as i64
        };
        gauge(
            reg,
            "tributary_queue_depth",
            "Jobs waiting for a slot",
            count(|c| c.2),
        );
        gauge(
            reg,
            "tributary_jobs_running",
            "Jobs running now",
            count(|c| c.3),
        );
        let skips = Family::<Labels, Counter>::default();
        for (id, skipped, ..) in &conns {
            skips
                .get_or_create(&labels("connector", id))
                .inc_by(*skipped);
        }
        reg.register(
            "tributary_schedule_skips",
            "Scheduled runs skipped because a job was running",
            skips,
        );
        let open = cat.open_conflict_counts().await.unwrap_or_default();
        gauges(
            reg,
            "tributary_conflicts_open",
            "Open conflicts by kind",
            "kind",
            tributary_catalog::conflicts::KINDS.iter().map(|kind| {
                let n = open.iter().find(|(k, _)| k == kind).map_or(0, |(_, n)| *n);
                (kind.to_string(), n)
            }),
        );
        let last = Family::<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        for (id, ..) in &conns {
            if let Ok(Some(ns)) = cat.last_success(id).await {
                last.get_or_create(&labels("connector", id))
                    .set(ns as f64 / 1e9);
            }
        }
        reg.register(
            "tributary_last_success_timestamp_seconds",
            "End of the last successful job per connector",
            last,
        );
        if let Some(v) = self.vectorizer()
            && let Ok(s) = v.status().await
        {
            register_vectorizer(reg, &s);
        }
        let (throttled, waited) = tributary_connector_sharepoint::throttle_totals();
        counter(
            reg,
            "tributary_graph_throttled",
            "Graph responses (429/503) that asked the SharePoint connectors to wait",
            throttled,
        );
        seconds_counter(
            reg,
            "tributary_graph_throttle_wait_seconds",
            "Time Graph requests were held back (Retry-After, backoff, RateLimit pacing)",
            waited.as_secs_f64(),
        );
    }
}

fn register_vectorizer(reg: &mut Registry, s: &tributary_vectorize::QueueStatus) {
    gauge(
        reg,
        "tributary_vectorize_ready",
        "1 when the embedder and vector index are ready",
        i64::from(s.state == "ready"),
    );
    gauges(
        reg,
        "tributary_vectorize_versions",
        "Current versions of vectorized connectors by index state",
        "state",
        [
            ("pending", s.pending),
            ("indexed", s.indexed),
            ("failed", s.failed),
            ("skipped", s.skipped),
        ]
        .map(|(k, v)| (k.to_string(), v)),
    );
    gauge(
        reg,
        "tributary_vectorize_queue_depth",
        "Versions waiting to be indexed",
        s.pending,
    );
    gauge(
        reg,
        "tributary_vectorize_passages",
        "Passages in the vector store",
        s.passages,
    );
    let done = Family::<Labels, Counter>::default();
    for (outcome, n) in [
        ("indexed", s.totals.indexed),
        ("failed", s.totals.failed),
        ("skipped", s.totals.skipped),
        ("reused", s.totals.reused),
    ] {
        done.get_or_create(&labels("outcome", outcome)).inc_by(n);
    }
    reg.register(
        "tributary_vectorize_done",
        "Versions handled since start, by outcome",
        done,
    );
    counter(
        reg,
        "tributary_vectorize_passages_embedded",
        "Passages embedded since start",
        s.totals.passages_embedded,
    );
    let secs = Family::<Labels, Counter<f64, std::sync::atomic::AtomicU64>>::default();
    for (stage, v) in [
        ("embed", s.totals.embed_seconds),
        ("extract", s.totals.extract_seconds),
    ] {
        secs.get_or_create(&labels("stage", stage)).inc_by(v);
    }
    reg.register("tributary_vectorize_seconds", "Time spent, by stage", secs);
}
