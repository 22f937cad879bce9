//! The event bus: what the daemon publishes (jobs, items, conflicts, connectors, the
//! configuration, the vectorizer) for the live views of `/api/v1/events` (SSE) and
//! `/api/v1/ws` (WebSocket) in [`crate::events_http`].
//!
//! - **Ids** are monotonic: a counter that starts, at each start of the daemon, at the
//!   clock's microseconds, so ids stay increasing across restarts (a client's id from
//!   before a restart is older than anything held, which is a gap, never a wrong resume).
//! - **Resume**: the last [`RING`] events are held; a subscriber after id N gets the held
//!   events after N first, then live ones. An N that is not held (too old, or not an id
//!   this daemon gave) gets one [`GAP`] event instead, after which the client re-reads
//!   state through the REST API.
//! - **Slow consumers**: live events go through a bounded broadcast; a subscriber more
//!   than [`LAG`] events behind is dropped (and counted), never allowed to hold memory or
//!   to slow a publisher, which never waits.
//! - Publishing takes one short lock (id, ring, broadcast under it), so every subscriber
//!   sees one order.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

/// Every event type, with what it says (the documented list).
pub const EVENT_TYPES: &[(&str, &str)] = &[
    (
        "job.queued",
        "a job was queued: job_id, connector, kind, trigger, dry_run",
    ),
    ("job.started", "an instance started a queued job"),
    (
        "job.progress",
        "a running job's counters, at most twice a second: files and bytes done and planned, throughput, ETA",
    ),
    (
        "job.finished",
        "a job ended: status, error_count, last_error, counters, duration",
    ),
    (
        "item.failed",
        "a file failed in a job: path and error (it is retried with backoff)",
    ),
    (
        "item.recovered",
        "a file that had failed was stored by a job",
    ),
    (
        "conflict.opened",
        "a job met a conflict that waits for an operator: kind, path, what happened",
    ),
    (
        "conflict.resolved",
        "an operator resolved a conflict: id, resolution, by",
    ),
    ("connector.created", "a connector was created over the API"),
    (
        "connector.changed",
        "a connector's configuration changed (API or reload)",
    ),
    ("connector.paused", "a connector was paused"),
    ("connector.resumed", "a connector was resumed"),
    ("connector.removed", "a connector was deleted or removed"),
    (
        "config.reloaded",
        "the configuration file was read again: what changed",
    ),
    (
        "vectorizer.state",
        "the vectorizer's state or queue depth changed",
    ),
    (
        "instance.up",
        "a daemon instance sharing the catalog came up",
    ),
    (
        "instance.down",
        "a daemon instance stopped or stopped heart-beating",
    ),
    (
        "gap",
        "the id a client resumed after is no longer held: re-read state through the REST API",
    ),
];

/// The type of the event a resuming client gets when events it missed are gone.
pub const GAP: &str = "gap";

/// Events held for resuming clients.
pub const RING: usize = 4096;

/// How far a live subscriber may fall behind before it is dropped.
pub const LAG: usize = 1024;

/// One published event: its id, type, connector (for filters) and its JSON, serialized
/// once for every subscriber.
#[derive(Debug)]
pub struct Event {
    pub id: u64,
    pub kind: String,
    pub connector: Option<String>,
    /// `{"id", "type", "at", "connector"?, ...fields}`.
    pub json: String,
}

/// Counters of the event streams, for `/metrics`.
#[derive(Debug, Default)]
pub struct EventMetrics {
    pub published: AtomicU64,
    pub sent: AtomicU64,
    pub dropped_slow: AtomicU64,
    pub refused: AtomicU64,
}

struct Ring {
    next: u64,
    held: VecDeque<Arc<Event>>,
}

/// The in-process event bus.
pub struct EventBus {
    ring: Mutex<Ring>,
    tx: broadcast::Sender<Arc<Event>>,
    open: Mutex<HashMap<String, usize>>,
    /// Cancelled at shutdown: every stream ends.
    closing: tokio_util::sync::CancellationToken,
    pub metrics: EventMetrics,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

/// What a subscriber gets first: the held events after its id, or a gap.
pub enum Backlog {
    Events(Vec<Arc<Event>>),
    /// The id is not held: the event that says so.
    Gap(Arc<Event>),
}

/// A subscription: its backlog, then the live events.
pub struct Subscription {
    pub backlog: Backlog,
    pub live: broadcast::Receiver<Arc<Event>>,
}

/// Why a stream was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    TooMany,
    TooManyForPrincipal,
}

/// An open event stream's place in the connection limits; given back on drop.
pub struct StreamSlot {
    bus: Arc<EventBus>,
    principal: String,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.bus.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.principal) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.principal);
            }
        }
    }
}

/// Where a subscriber resuming after an id starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// Nothing was published since.
    UpToDate,
    /// Held events follow it.
    Backlog,
    /// Events after it are no longer held (or it is not an id this bus gave).
    Gap,
}

/// Where a subscriber after `after` starts, given the held ids `oldest..next`.
pub fn resume_point(after: u64, oldest: Option<u64>, next: u64) -> Resume {
    if after.checked_add(1) == Some(next) {
        return Resume::UpToDate;
    }
    match oldest {
        Some(o) if after.checked_add(1).is_some_and(|a| a >= o) && after < next => Resume::Backlog,
        _ => Resume::Gap,
    }
}

impl EventBus {
    pub fn new() -> EventBus {
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_micros() as u64);
        Self::starting_at(start)
    }

    /// A bus that takes its events, ids included, from the catalog
    /// ([`publish_received`](Self::publish_received)): the fleet's ids.
    pub fn relayed() -> EventBus {
        let bus = Self::starting_at(1);
        bus.ring.lock().unwrap_or_else(|e| e.into_inner()).next = 0;
        bus
    }

    /// Publishes an event received from the fleet (its JSON, with its id); one whose
    /// id is not past the last one is ignored (ids only increase).
    pub fn publish_received(&self, json: &str) {
        let Ok(v) = serde_json::from_str::<Value>(json) else {
            return;
        };
        let (Some(id), Some(kind)) = (v["id"].as_u64(), v["type"].as_str()) else {
            return;
        };
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        if id < ring.next {
            return;
        }
        ring.next = id + 1;
        let event = Arc::new(Event {
            id,
            kind: kind.to_string(),
            connector: v["connector"].as_str().map(str::to_string),
            json: json.to_string(),
        });
        if ring.held.len() == RING {
            ring.held.pop_front();
        }
        ring.held.push_back(event.clone());
        let _ = self.tx.send(event);
        self.metrics.published.fetch_add(1, Ordering::Relaxed);
    }

    /// Events were lost on their way here: live subscribers get a `gap`, and what is
    /// held no longer serves a resume (a client resuming gets a gap too).
    pub fn lost(&self, why: &str) {
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        ring.held.clear();
        let id = ring.next.saturating_sub(1);
        // the next id is unknown: every resume is a gap until events arrive again
        ring.next = 0;
        let gap = Arc::new(Event {
            id,
            kind: GAP.into(),
            connector: None,
            json: render(
                id,
                GAP,
                None,
                json!({"message": format!("{why}: some events were lost; read the state again through the REST API")}),
            ),
        });
        let _ = self.tx.send(gap);
    }

    /// A bus whose first id is `first`.
    pub fn starting_at(first: u64) -> EventBus {
        let (tx, _) = broadcast::channel(LAG);
        EventBus {
            ring: Mutex::new(Ring {
                next: first.max(1),
                held: VecDeque::with_capacity(RING),
            }),
            tx,
            open: Mutex::new(HashMap::new()),
            closing: tokio_util::sync::CancellationToken::new(),
            metrics: EventMetrics::default(),
        }
    }

    /// Publishes an event of type `kind` with `fields` (an object; `id`, `type`, `at`
    /// and `connector` are set here). Never waits for a subscriber.
    pub fn publish(&self, kind: &str, connector: Option<&str>, fields: Value) {
        debug_assert!(EVENT_TYPES.iter().any(|(t, _)| *t == kind), "{kind}");
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        let id = ring.next;
        ring.next += 1;
        let event = Arc::new(Event {
            id,
            kind: kind.to_string(),
            connector: connector.map(str::to_string),
            json: render(id, kind, connector, fields),
        });
        if ring.held.len() == RING {
            ring.held.pop_front();
        }
        ring.held.push_back(event.clone());
        // no receiver is not an error
        let _ = self.tx.send(event);
        self.metrics.published.fetch_add(1, Ordering::Relaxed);
    }

    /// Subscribes: with `after`, the held events after that id first (or a gap).
    pub fn subscribe(&self, after: Option<u64>) -> Subscription {
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        let live = self.tx.subscribe();
        let backlog = match after {
            None => Backlog::Events(Vec::new()),
            Some(after) => {
                let oldest = ring.held.front().map(|e| e.id);
                match resume_point(after, oldest, ring.next) {
                    Resume::UpToDate => Backlog::Events(Vec::new()),
                    Resume::Backlog => Backlog::Events(
                        ring.held.iter().filter(|e| e.id > after).cloned().collect(),
                    ),
                    Resume::Gap => {
                        let resume = ring.next.saturating_sub(1);
                        Backlog::Gap(Arc::new(Event {
                            id: resume,
                            kind: GAP.into(),
                            connector: None,
                            json: render(
                                resume,
                                GAP,
                                None,
                                json!({
                                    "last_event_id": after,
                                    "oldest_held": oldest,
                                    "message": "the events after the id you resumed from are no longer held: read the state again through the REST API",
                                }),
                            ),
                        }))
                    }
                }
            }
        };
        Subscription { backlog, live }
    }

    /// Takes a place for a stream of `principal` under the limits.
    pub fn open_stream(
        self: &Arc<Self>,
        principal: &str,
        max: usize,
        max_per_principal: usize,
    ) -> Result<StreamSlot, Refused> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let total: usize = open.values().sum();
        let refused = if total >= max {
            Some(Refused::TooMany)
        } else if open.get(principal).copied().unwrap_or(0) >= max_per_principal {
            Some(Refused::TooManyForPrincipal)
        } else {
            None
        };
        if let Some(r) = refused {
            self.metrics.refused.fetch_add(1, Ordering::Relaxed);
            return Err(r);
        }
        *open.entry(principal.to_string()).or_default() += 1;
        Ok(StreamSlot {
            bus: self.clone(),
            principal: principal.to_string(),
        })
    }

    /// Ends every stream (the daemon stops).
    pub fn close(&self) {
        self.closing.cancel();
    }

    pub fn is_closed(&self) -> bool {
        self.closing.is_cancelled()
    }

    /// Resolves once [`close`](Self::close) was called.
    pub async fn closed(&self) {
        self.closing.cancelled().await
    }

    /// Streams open now.
    pub fn open_streams(&self) -> usize {
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .sum()
    }

    /// Registers the streams' metrics for one scrape.
    pub fn register(&self, registry: &mut prometheus_client::registry::Registry) {
        use prometheus_client::metrics::counter::ConstCounter;
        use prometheus_client::metrics::gauge::ConstGauge;
        let c = |a: &AtomicU64| ConstCounter::new(a.load(Ordering::Relaxed));
        registry.register(
            "tributary_event_connections",
            "Live event streams open (SSE and WebSocket)",
            ConstGauge::new(self.open_streams() as i64),
        );
        registry.register(
            "tributary_events_published",
            "Events published on the bus",
            c(&self.metrics.published),
        );
        registry.register(
            "tributary_events_sent",
            "Events sent to event-stream clients",
            c(&self.metrics.sent),
        );
        registry.register(
            "tributary_event_consumers_dropped",
            "Event streams closed because their client fell too far behind",
            c(&self.metrics.dropped_slow),
        );
        registry.register(
            "tributary_event_connections_refused",
            "Event streams refused by api.max_event_connections(_per_principal)",
            c(&self.metrics.refused),
        );
    }
}

fn render(id: u64, kind: &str, connector: Option<&str>, fields: Value) -> String {
    let mut m = Map::new();
    m.insert("id".into(), json!(id));
    m.insert("type".into(), json!(kind));
    m.insert(
        "at".into(),
        json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
    );
    if let Some(c) = connector {
        m.insert("connector".into(), json!(c));
    }
    if let Value::Object(f) = fields {
        for (k, v) in f {
            m.entry(k).or_insert(v);
        }
    }
    Value::Object(m).to_string()
}

/// Which events a stream wants: connectors and types (a type, or a family such as
/// `job` or `job.*`); empty lists want everything. A gap always passes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub connectors: Vec<String>,
    pub types: Vec<String>,
}

impl Filter {
    /// Parses comma-separated lists; an unknown type or family is an error naming the
    /// known ones.
    pub fn parse(connectors: Option<&str>, types: Option<&str>) -> Result<Filter, String> {
        let split = |s: Option<&str>| -> Vec<String> {
            s.map(|s| {
                s.split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
        };
        let types = split(types);
        for t in &types {
            let family = t.strip_suffix(".*").unwrap_or(t);
            let known = EVENT_TYPES.iter().any(|(k, _)| {
                *k == family
                    || k.split_once('.')
                        .is_some_and(|(f, _)| f == family && !t.ends_with('.'))
            });
            if !known {
                return Err(format!(
                    "unknown event type `{t}`: one of {} (or a family such as `job`)",
                    EVENT_TYPES
                        .iter()
                        .map(|(k, _)| *k)
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        Ok(Filter {
            connectors: split(connectors),
            types,
        })
    }

    pub fn wants(&self, e: &Event) -> bool {
        if e.kind == GAP {
            return true;
        }
        let connector_ok = self.connectors.is_empty()
            || e.connector
                .as_deref()
                .is_some_and(|c| self.connectors.iter().any(|w| w == c));
        let type_ok = self.types.is_empty()
            || self.types.iter().any(|t| {
                let family = t.strip_suffix(".*").unwrap_or(t);
                e.kind == family || e.kind.split_once('.').is_some_and(|(f, _)| f == family)
            });
        connector_ok && type_ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_points() {
        // held 10..=19, next 20
        use Resume::*;
        assert_eq!(resume_point(19, Some(10), 20), UpToDate);
        assert_eq!(resume_point(15, Some(10), 20), Backlog);
        assert_eq!(resume_point(9, Some(10), 20), Backlog);
        assert_eq!(resume_point(8, Some(10), 20), Gap);
        assert_eq!(resume_point(25, Some(10), 20), Gap);
        assert_eq!(resume_point(20, Some(10), 20), Gap);
        assert_eq!(resume_point(u64::MAX, Some(10), 20), Gap);
        // nothing held yet
        assert_eq!(resume_point(99, None, 100), UpToDate);
        assert_eq!(resume_point(5, None, 100), Gap);
    }

    #[test]
    fn subscribers_resume_after_their_id_or_get_a_gap() {
        let bus = EventBus::starting_at(1000);
        for i in 0..(RING + 10) {
            bus.publish("connector.paused", Some("a"), json!({"n": i}));
        }
        let oldest = 1000 + 10;
        let newest = 1000 + RING as u64 + 9;
        let ids = |s: Subscription| match s.backlog {
            Backlog::Events(e) => e.iter().map(|e| e.id).collect::<Vec<_>>(),
            Backlog::Gap(g) => panic!("gap: {}", g.json),
        };
        assert_eq!(
            ids(bus.subscribe(Some(newest - 2))),
            vec![newest - 1, newest]
        );
        assert_eq!(ids(bus.subscribe(Some(newest))), Vec::<u64>::new());
        assert_eq!(ids(bus.subscribe(Some(oldest - 1))).len(), RING);
        match bus.subscribe(Some(oldest - 2)).backlog {
            Backlog::Gap(g) => {
                assert_eq!(g.kind, GAP);
                assert_eq!(g.id, newest);
                let v: Value = serde_json::from_str(&g.json).unwrap();
                assert_eq!(v["last_event_id"], oldest - 2);
                assert_eq!(v["oldest_held"], oldest);
            }
            Backlog::Events(_) => panic!("no gap"),
        }
        // a live subscriber sees the next event in order
        let mut s = bus.subscribe(None);
        bus.publish("connector.resumed", Some("a"), json!({}));
        let e = s.live.try_recv().unwrap();
        assert_eq!(e.id, newest + 1);
        let v: Value = serde_json::from_str(&e.json).unwrap();
        assert_eq!(v["type"], "connector.resumed");
        assert_eq!(v["connector"], "a");
        assert_eq!(v["id"], newest + 1);
    }

    #[test]
    fn a_subscriber_that_falls_behind_lags_and_the_publisher_never_waits() {
        let bus = EventBus::starting_at(1);
        let mut s = bus.subscribe(None);
        for _ in 0..(LAG + 5) {
            bus.publish("connector.paused", None, json!({}));
        }
        assert!(matches!(
            s.live.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(5))
        ));
    }

    #[test]
    fn a_relayed_bus_takes_the_fleets_ids_in_order_and_a_loss_is_a_gap() {
        let bus = EventBus::relayed();
        let mut s = bus.subscribe(None);
        for id in [5, 6, 4, 9] {
            bus.publish_received(&format!(
                r#"{{"id":{id},"type":"job.queued","connector":"a"}}"#
            ));
        }
        bus.publish_received("not json");
        let got: Vec<u64> = std::iter::from_fn(|| s.live.try_recv().ok())
            .map(|e| e.id)
            .collect();
        assert_eq!(got, [5, 6, 9], "an id not past the last is ignored");
        let ids = |s: Subscription| match s.backlog {
            Backlog::Events(e) => e.iter().map(|e| e.id).collect::<Vec<_>>(),
            Backlog::Gap(_) => vec![0],
        };
        assert_eq!(ids(bus.subscribe(Some(5))), [6, 9]);
        let mut s = bus.subscribe(None);
        bus.lost("the catalog connection dropped");
        assert_eq!(s.live.try_recv().unwrap().kind, GAP);
        assert_eq!(
            ids(bus.subscribe(Some(6))),
            [0],
            "nothing held serves a resume"
        );
        assert_eq!(
            ids(bus.subscribe(Some(9))),
            [0],
            "nor does the last id seen"
        );
        bus.publish_received(r#"{"id":12,"type":"job.queued"}"#);
        assert_eq!(ids(bus.subscribe(Some(12))), Vec::<u64>::new());
    }

    #[test]
    fn filters_by_connector_and_type_family() {
        let e = |kind: &str, c: Option<&str>| Event {
            id: 1,
            kind: kind.into(),
            connector: c.map(str::to_string),
            json: String::new(),
        };
        let f = Filter::parse(Some("a, b"), Some("job,conflict.opened")).unwrap();
        assert!(f.wants(&e("job.progress", Some("a"))));
        assert!(f.wants(&e("conflict.opened", Some("b"))));
        assert!(!f.wants(&e("conflict.resolved", Some("b"))));
        assert!(!f.wants(&e("job.progress", Some("c"))));
        assert!(!f.wants(&e("config.reloaded", None)));
        assert!(f.wants(&e(GAP, None)));
        let all = Filter::parse(None, Some("job.*")).unwrap();
        assert!(all.wants(&e("job.finished", None)));
        assert!(!all.wants(&e("item.failed", None)));
        assert!(
            Filter::parse(None, None)
                .unwrap()
                .wants(&e("item.failed", None))
        );
        let err = Filter::parse(None, Some("jobs")).unwrap_err();
        assert!(err.contains("unknown event type `jobs`"), "{err}");
        assert!(Filter::parse(None, Some("job.")).is_err());
    }

    #[test]
    fn stream_limits_hold_in_all_and_per_principal_and_slots_come_back() {
        let bus = Arc::new(EventBus::starting_at(1));
        let a1 = bus.open_stream("a", 3, 2).unwrap();
        let _a2 = bus.open_stream("a", 3, 2).unwrap();
        assert_eq!(
            bus.open_stream("a", 3, 2).err(),
            Some(Refused::TooManyForPrincipal)
        );
        let _b1 = bus.open_stream("b", 3, 2).unwrap();
        assert_eq!(bus.open_stream("c", 3, 2).err(), Some(Refused::TooMany));
        drop(a1);
        assert_eq!(bus.open_streams(), 2);
        assert!(bus.open_stream("c", 3, 2).is_ok());
    }
}
