//! The SharePoint Online connector: the document libraries (drives) of a site, through
//! Microsoft Graph driveItem delta.
//!
//! - **Auth**: [`token::TokenProvider`] (client credentials, our token URL) plugged into
//!   graph-rs-sdk; a 401 from Graph forces one refresh and one retry.
//! - **Listing**: per drive, the stored `@odata.deltaLink` is fetched as it is (never
//!   rebuilt); without one (first run, or after `410 resyncRequired`) the drive is
//!   enumerated from scratch. A round is buffered whole, applied to the connector's map
//!   of items by id (delta sends no paths and a renamed folder does not resend its
//!   children), and the map is diffed against the previous one: changed or moved files
//!   are upserts, files gone (including those under a deleted folder) are deletes. The
//!   map and the links are the checkpoint, committed with the round's work.
//! - **Download** ([`download`]): `/content` answers 302 to a pre-authenticated URL,
//!   streamed, resumed with `Range`, and checked against size and QuickXorHash; a
//!   file that changed since the listing reports its new state.
//! - **Throttling**: one gate per tenant (Graph throttles per app and tenant), shared
//!   by every connector and job of the process: a 429/503 with `Retry-After` pauses
//!   every request to the tenant until then; without it, capped exponential backoff.
//!   `RateLimit-Remaining`/`RateLimit-Reset` (sent from 80 % of the budget) spread the
//!   remaining requests over the reset window before Graph has to refuse any, and at
//!   most [`TENANT_CONCURRENCY`] Graph requests per tenant are in flight.

mod download;
pub mod quickxor;
pub mod token;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use graph_rs_sdk::GraphClient;
use graph_rs_sdk::GraphClientConfiguration;
use reqwest12::{Method, StatusCode, header};
use serde::{Deserialize, Serialize};
use tributary_connectors::filter::Filter;
use tributary_connectors::{
    Batch, Change, ChangeTx, Connector, ConnectorError, Entry, ItemError, ListMode, ListOutcome,
    SkipReason, SourceFile,
};
use url::Url;

pub use crate::token::Credential;
use crate::token::{TokenError, TokenProvider};
use tributary_graph_delta::{Known, apply, file_paths, principals_of};

const USER_AGENT: &str = concat!("NONISV|Tributary|tributary/", env!("CARGO_PKG_VERSION"));
const SELECT: &str =
    "id,name,size,lastModifiedDateTime,parentReference,file,folder,package,deleted,root";
/// Attempts per request before a throttled or failing call gives up.
const ATTEMPTS: u32 = 8;

#[derive(Clone)]
pub struct SharePointSettings {
    /// `https://graph.microsoft.com/v1.0` (loopback http only for tests).
    pub graph_url: String,
    pub token_url: String,
    pub client_id: String,
    pub credential: Credential,
    /// A site id, or `host:/sites/name`.
    pub site: String,
    /// Library names; empty: every document library of the site.
    pub drives: Vec<String>,
    pub filter: Filter,
    pub max_file_size: Option<u64>,
    /// Read each file's permissions (needs Sites.FullControl.All for complete lists).
    pub permissions: bool,
    /// Read every file's permissions again this often, whatever delta says (changes at
    /// library or folder level can go unreported).
    pub permissions_rescan: Duration,
    /// A download that delivers no bytes for this long is cut and resumed with `Range`.
    pub read_timeout: Duration,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct DriveState {
    name: String,
    #[serde(default)]
    link: Option<String>,
    #[serde(default)]
    items: HashMap<String, Known>,
    /// When every file's permissions were last read (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    permissions_scanned: Option<u64>,
}

/// The checkpoint: per drive, its delta link and item map.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Checkpoint {
    v: u32,
    drives: BTreeMap<String, DriveState>,
}

pub struct SharePointConnector {
    id: String,
    s: SharePointSettings,
    base: Url,
    graph: GraphClient,
    tokens: TokenProvider,
    /// Downloads: no redirects followed, no whole-request timeout.
    http: reqwest12::Client,
    /// The tenant's gate: not before an instant (a Retry-After), bounded concurrency.
    gate: Arc<TenantGate>,
    /// Throttling events for the job log ([`Connector::take_notes`]).
    notes: Arc<Mutex<Vec<String>>>,
    /// The item maps of the last listing (for `stat` and `open`).
    state: Arc<Mutex<Checkpoint>>,
}

/// With permissions: items whose sharing changed come back in delta, marked
/// `@microsoft.graph.sharedChanged` (the three values only work together).
const PREFER_SHARING: &str =
    "deltashowremovedasdeleted, deltatraversepermissiongaps, deltashowsharingchanges";

/// Graph requests in flight per tenant, across connectors and jobs.
pub const TENANT_CONCURRENCY: usize = 4;

/// What every connector of one tenant shares: Graph throttles per app and tenant.
pub struct TenantGate {
    until: Mutex<Option<Instant>>,
    slots: tokio::sync::Semaphore,
}

/// Graph answers that asked us to wait (429/503) and the time the gates were closed
/// (Retry-After, backoff and RateLimit pacing), since the process started.
static THROTTLED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static WAITED_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Graph responses (429/503) that asked this process's SharePoint connectors to wait,
/// and how long requests were held back in all (Retry-After, backoff, RateLimit
/// pacing): the daemon's `/metrics`.
pub fn throttle_totals() -> (u64, Duration) {
    use std::sync::atomic::Ordering::Relaxed;
    (
        THROTTLED.load(Relaxed),
        Duration::from_millis(WAITED_MS.load(Relaxed)),
    )
}

impl TenantGate {
    fn close(&self, wait: Duration) {
        WAITED_MS.fetch_add(
            wait.as_millis() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        let until = Instant::now() + wait;
        let mut g = self.until.lock().unwrap();
        if g.is_none_or(|t| t < until) {
            *g = Some(until);
        }
    }
}

/// The gate of the tenant behind `token_url` (one per process).
fn tenant_gate(token_url: &str) -> Arc<TenantGate> {
    static GATES: std::sync::OnceLock<Mutex<HashMap<String, std::sync::Weak<TenantGate>>>> =
        std::sync::OnceLock::new();
    let mut gates = GATES.get_or_init(Default::default).lock().unwrap();
    gates.retain(|_, g| g.strong_count() > 0);
    if let Some(g) = gates.get(token_url).and_then(|g| g.upgrade()) {
        return g;
    }
    let g = Arc::new(TenantGate {
        until: Mutex::new(None),
        slots: tokio::sync::Semaphore::new(TENANT_CONCURRENCY),
    });
    gates.insert(token_url.to_string(), Arc::downgrade(&g));
    g
}

/// A Graph request that did not succeed.
#[derive(Debug)]
enum GraphError {
    Token(TokenError),
    Status(StatusCode, String, String),
    Transport(String),
}

impl std::fmt::Display for GraphError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GraphError::Token(e) => write!(f, "{e}"),
            GraphError::Status(s, code, msg) => write!(f, "Graph answered {s}: {code}: {msg}"),
            GraphError::Transport(m) => write!(f, "{m}"),
        }
    }
}

impl GraphError {
    fn code(&self) -> Option<&str> {
        match self {
            GraphError::Status(_, c, _) => Some(c),
            _ => None,
        }
    }
}

fn connector_error(e: GraphError) -> ConnectorError {
    match e {
        GraphError::Token(TokenError::Rejected(m)) => ConnectorError::Auth(m),
        GraphError::Status(StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN, ..) => {
            ConnectorError::Auth(e.to_string())
        }
        GraphError::Token(TokenError::Unavailable(_)) | GraphError::Transport(_) => {
            ConnectorError::Unavailable(e.to_string())
        }
        e => ConnectorError::Other(e.to_string()),
    }
}

/// A new `client-request-id` (a random UUID), which Graph echoes and logs: support
/// can trace a request from it.
fn client_request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

// Graph's retries do not go through `tributary_retry::with_retry`: a throttled answer
// closes the tenant's gate (every request of every connector to that tenant waits), so
// the wait is the gate's, not a sleep of the one request that saw it. The Retry-After
// parser is the shared one.

/// The longest wait between retries when Graph gives no Retry-After.
const BACKOFF_CAP: Duration = Duration::from_secs(60);

/// The next backoff without Retry-After: doubled, at most [`BACKOFF_CAP`].
fn grow(backoff: Duration) -> Duration {
    (backoff * 2).min(BACKOFF_CAP)
}

/// A wait plus up to a tenth of it (at most 1 s) at random, so that clients released
/// by the same Retry-After do not all come back at the same instant — and never sooner
/// than the server asked.
fn jittered(wait: Duration) -> Duration {
    let max = (wait / 10).min(Duration::from_secs(1));
    wait + max.mul_f64(rand::random::<f64>())
}

/// `Retry-After` in seconds or as an HTTP date ([`tributary_retry::retry_after`]).
fn retry_after(h: &header::HeaderMap) -> Option<Duration> {
    let v = h.get(header::RETRY_AFTER)?.to_str().ok()?;
    tributary_retry::retry_after(v, std::time::SystemTime::now())
}

impl SharePointConnector {
    pub fn new(id: String, s: SharePointSettings) -> Result<SharePointConnector, String> {
        let gate = tenant_gate(&s.token_url);
        let base = Url::parse(s.graph_url.trim_end_matches('/'))
            .map_err(|e| format!("graph_url `{}`: {e}", s.graph_url))?;
        let tokens = TokenProvider::new(
            s.token_url.clone(),
            s.client_id.clone(),
            s.credential.clone(),
        )?;
        let cfg = GraphClientConfiguration::new()
            .client_application(tokens.clone())
            .https_only(base.scheme() == "https")
            .user_agent(header::HeaderValue::from_static(USER_AGENT))
            .connect_timeout(Duration::from_secs(30))
            .timeout(Duration::from_secs(120));
        let mut graph = GraphClient::from(cfg);
        if base.scheme() == "http" {
            graph.use_test_endpoint(&base);
        }
        let http = reqwest12::Client::builder()
            .redirect(reqwest12::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(30))
            .user_agent(USER_AGENT)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(SharePointConnector {
            id,
            s,
            base,
            graph,
            tokens,
            http,
            gate,
            notes: Default::default(),
            state: Arc::new(Mutex::new(Checkpoint::default())),
        })
    }

    /// Waits until the tenant's gate is open and a request slot is free.
    async fn wait_gate(&self) -> tokio::sync::SemaphorePermit<'_> {
        loop {
            let until = *self.gate.until.lock().unwrap();
            match until {
                Some(t) if t > Instant::now() => tokio::time::sleep_until(t.into()).await,
                _ => break,
            }
        }
        let permit = self.gate.slots.acquire().await.expect("never closed");
        // another request may have closed the gate while this one waited for a slot
        loop {
            let until = *self.gate.until.lock().unwrap();
            match until {
                Some(t) if t > Instant::now() => tokio::time::sleep_until(t.into()).await,
                _ => return permit,
            }
        }
    }

    fn close_gate(&self, wait: Duration) {
        self.gate.close(wait);
    }

    /// Keeps an event for the job log (at most 100 per job; the count says the rest).
    fn note(&self, line: String) {
        let mut n = self.notes.lock().unwrap();
        if n.len() < 100 {
            n.push(line);
        } else if n.len() == 100 {
            n.push("… more throttling; see tributary_graph_throttled_total".into());
        }
    }

    /// Spreads the requests left in Graph's budget over its reset window, from the
    /// `RateLimit-*` headers (sent when about 80 % of the budget is used).
    fn pace(&self, h: &header::HeaderMap) {
        let num = |name: &str| {
            h.get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        let (Some(remaining), Some(reset)) = (num("ratelimit-remaining"), num("ratelimit-reset"))
        else {
            return;
        };
        // With no more requests left than may be in flight, wait for the reset; else
        // spread what is left over the window.
        let wait = if remaining <= TENANT_CONCURRENCY as u64 {
            Duration::from_secs(reset)
        } else {
            Duration::from_millis(reset * 1000 / (remaining + 1))
        };
        if !wait.is_zero() {
            tracing::debug!(connector = %self.id, remaining, reset, wait_ms = wait.as_millis() as u64, "Graph budget nearly used; slowing down");
            self.close_gate(wait);
        }
    }

    /// A Graph link we may send the bearer token to: same scheme, host and port as
    /// the configured base.
    fn same_origin(&self, link: &str) -> Result<Url, GraphError> {
        let u =
            Url::parse(link).map_err(|e| GraphError::Transport(format!("link `{link}`: {e}")))?;
        if u.scheme() != self.base.scheme()
            || u.host_str() != self.base.host_str()
            || u.port_or_known_default() != self.base.port_or_known_default()
        {
            return Err(GraphError::Transport(format!(
                "refusing to follow a link to another host ({}): the bearer token stays with {}",
                u.host_str().unwrap_or("?"),
                self.base.host_str().unwrap_or("?")
            )));
        }
        Ok(u)
    }

    /// GET a Graph URL through graph-rs-sdk, with the throttle gate, one token refresh
    /// on 401, and retries with backoff on 429/5xx. Returns the JSON body, or the
    /// status and the Graph error for anything else.
    async fn get_json(
        &self,
        url: &str,
    ) -> Result<(StatusCode, header::HeaderMap, serde_json::Value), GraphError> {
        let url = self.same_origin(url)?;
        let mut refreshed = false;
        let mut backoff = Duration::from_millis(500);
        for attempt in 1..=ATTEMPTS {
            let _slot = self.wait_gate().await;
            // surfaces token errors as they are (the SDK then takes it from the cache)
            self.tokens.token().await.map_err(GraphError::Token)?;
            let mut h = self.graph.custom(Method::GET, None);
            *AsMut::<Url>::as_mut(&mut h) = url.clone();
            let resp = h
                .header(
                    header::HeaderName::from_static("prefer"),
                    header::HeaderValue::from_static(if self.s.permissions {
                        PREFER_SHARING
                    } else {
                        "deltashowremovedasdeleted"
                    }),
                )
                .header(
                    header::HeaderName::from_static("client-request-id"),
                    header::HeaderValue::from_str(&client_request_id()).expect("ascii"),
                )
                .send()
                .await
                .map_err(|e| GraphError::Transport(format!("Graph request: {e}")))?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let body: serde_json::Value = resp.json().await.unwrap_or_default();
            self.pace(&headers);
            if status.is_success() {
                return Ok((status, headers, body));
            }
            let code = body["error"]["code"].as_str().unwrap_or("").to_string();
            let mut msg = body["error"]["message"].as_str().unwrap_or("").to_string();
            if let Some(rid) = headers.get("request-id").and_then(|v| v.to_str().ok()) {
                msg = format!("{msg} (request-id {rid})");
            }
            match status {
                StatusCode::UNAUTHORIZED if !refreshed => {
                    refreshed = true;
                    self.tokens.invalidate().await;
                }
                StatusCode::TOO_MANY_REQUESTS
                | StatusCode::SERVICE_UNAVAILABLE
                | StatusCode::INTERNAL_SERVER_ERROR
                | StatusCode::BAD_GATEWAY
                | StatusCode::GATEWAY_TIMEOUT
                    if attempt < ATTEMPTS =>
                {
                    let wait = jittered(retry_after(&headers).unwrap_or(backoff));
                    backoff = grow(backoff);
                    THROTTLED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::warn!(connector = %self.id, %status, wait_ms = wait.as_millis() as u64, request_id = headers.get("request-id").and_then(|v| v.to_str().ok()).unwrap_or(""), "Graph throttled or failed; waiting");
                    self.note(format!(
                        "Graph answered {status}{}: every request to the tenant waits {:.1}s",
                        if code.is_empty() {
                            String::new()
                        } else {
                            format!(" ({code})")
                        },
                        wait.as_secs_f64()
                    ));
                    self.close_gate(wait);
                }
                _ => return Err(GraphError::Status(status, code, msg)),
            }
        }
        Err(GraphError::Transport("Graph kept failing; gave up".into()))
    }

    async fn resolve_drives(&self) -> Result<Vec<(String, String)>, ConnectorError> {
        let site = self.s.site.trim_matches('/');
        let (_, _, v) = self
            .get_json(&format!("{}/sites/{site}", self.base))
            .await
            .map_err(|e| match e {
                GraphError::Status(StatusCode::NOT_FOUND, ..) => {
                    ConnectorError::Other(format!("site `{site}` not found"))
                }
                e => connector_error(e),
            })?;
        let site_id = v["id"].as_str().unwrap_or(site).to_string();
        let mut url = format!("{}/sites/{site_id}/drives", self.base);
        let mut all = Vec::new();
        loop {
            let (_, _, v) = self.get_json(&url).await.map_err(connector_error)?;
            for d in v["value"].as_array().into_iter().flatten() {
                all.push((
                    d["id"].as_str().unwrap_or_default().to_string(),
                    d["name"].as_str().unwrap_or_default().to_string(),
                ));
            }
            match v["@odata.nextLink"].as_str() {
                Some(n) => url = n.to_string(),
                None => break,
            }
        }
        if self.s.drives.is_empty() {
            return Ok(all);
        }
        let mut out = Vec::new();
        for want in &self.s.drives {
            match all.iter().find(|(_, n)| n.eq_ignore_ascii_case(want)) {
                Some(d) => out.push(d.clone()),
                None => {
                    return Err(ConnectorError::Other(format!(
                        "library `{want}` not found in site `{site}`; it has: {}",
                        all.iter()
                            .map(|(_, n)| n.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
            }
        }
        Ok(out)
    }

    /// One delta round from `url` to its deltaLink: every item (repeated ones
    /// included; the last wins when applied) and the link. `Err(None)` is 410.
    async fn round(
        &self,
        url: &str,
    ) -> Result<(Vec<serde_json::Value>, String), Option<GraphError>> {
        let mut url = url.to_string();
        let mut items = Vec::new();
        loop {
            let (_, _, v) = match self.get_json(&url).await {
                Ok(x) => x,
                Err(e) if e.code() == Some("resyncRequired") => return Err(None),
                Err(GraphError::Status(StatusCode::GONE, ..)) => return Err(None),
                Err(e) => return Err(Some(e)),
            };
            if let Some(vals) = v["value"].as_array() {
                items.extend(vals.iter().cloned());
            }
            if let Some(next) = v["@odata.nextLink"].as_str() {
                url = next.to_string();
            } else if let Some(delta) = v["@odata.deltaLink"].as_str() {
                return Ok((items, delta.to_string()));
            } else {
                return Err(Some(GraphError::Transport(
                    "a delta page with neither nextLink nor deltaLink".into(),
                )));
            }
        }
    }
}

impl SharePointConnector {
    /// Fills in the principals of the round's files: read from Graph for files that are
    /// new, in a full enumeration, or marked `sharedChanged`; kept from the previous
    /// map otherwise (a permission read costs 5 resource units, so only those).
    async fn read_permissions(
        &self,
        drive: &str,
        old: &HashMap<String, Known>,
        items: &mut HashMap<String, Known>,
        round: &[serde_json::Value],
        full: bool,
    ) -> Result<(), ConnectorError> {
        let mut changed: std::collections::HashSet<&str> = Default::default();
        for it in round {
            if it["@microsoft.graph.sharedChanged"].as_str() == Some("True")
                && let Some(id) = it["id"].as_str()
            {
                changed.insert(id);
            }
        }
        let ids: Vec<String> = items
            .iter()
            .filter(|(_, k)| !k.folder)
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            let previous = old.get(&id).and_then(|k| k.acl.clone());
            let read = full || previous.is_none() || changed.contains(id.as_str());
            let acl = if read {
                let url = format!("{}/drives/{drive}/items/{id}/permissions", self.base);
                let mut principals = Vec::new();
                let mut next = Some(url);
                while let Some(u) = next.take() {
                    match self.get_json(&u).await {
                        Ok((_, _, v)) => {
                            for p in v["value"].as_array().into_iter().flatten() {
                                principals.extend(principals_of(p));
                            }
                            next = v["@odata.nextLink"].as_str().map(str::to_string);
                        }
                        // gone since the delta: the next round reports it
                        Err(GraphError::Status(StatusCode::NOT_FOUND, ..)) => break,
                        Err(e) => return Err(connector_error(e)),
                    }
                }
                principals.sort();
                principals.dedup();
                Some(principals)
            } else {
                previous
            };
            if let Some(k) = items.get_mut(&id) {
                k.acl = acl;
            }
        }
        Ok(())
    }
}

fn source_id(drive: &str, item: &str) -> Vec<u8> {
    format!("{drive}/{item}").into_bytes()
}

#[async_trait]
impl Connector for SharePointConnector {
    fn id(&self) -> &str {
        &self.id
    }

    async fn list(
        &self,
        _mode: ListMode,
        checkpoint: Option<String>,
        tx: ChangeTx,
    ) -> Result<ListOutcome, ConnectorError> {
        let mut batch = Batch::new(&tx);
        let prev: Checkpoint = checkpoint
            .as_deref()
            .and_then(|c| serde_json::from_str(c).ok())
            .unwrap_or_default();
        let drives = self.resolve_drives().await?;
        let mut next = Checkpoint {
            v: 1,
            drives: BTreeMap::new(),
        };
        let mut all_full = true;
        for (drive_id, name) in drives {
            let old = prev.drives.get(&drive_id).cloned().unwrap_or_default();
            let first = format!(
                "{}/drives/{drive_id}/root/delta?$select={SELECT}",
                self.base
            );
            let (round, link, full) = match &old.link {
                Some(link) => match self.round(link).await {
                    Ok((r, l)) => (r, l, false),
                    Err(None) => {
                        tracing::warn!(connector = %self.id, drive = %name, "delta link expired (410 resyncRequired): enumerating the library again");
                        let (r, l) = self.round(&first).await.map_err(|e| {
                            connector_error(e.unwrap_or(GraphError::Transport("410 again".into())))
                        })?;
                        (r, l, true)
                    }
                    Err(Some(e)) => return Err(connector_error(e)),
                },
                None => {
                    let (r, l) = self.round(&first).await.map_err(|e| {
                        connector_error(
                            e.unwrap_or(GraphError::Transport("410 on a first enumeration".into())),
                        )
                    })?;
                    (r, l, true)
                }
            };
            all_full &= full;
            let mut items = if full {
                HashMap::new()
            } else {
                old.items.clone()
            };
            apply(&mut items, &round);
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let mut permissions_scanned = old.permissions_scanned;
            if self.s.permissions {
                let rescan = full
                    || old.permissions_scanned.is_none_or(|t| {
                        now.saturating_sub(t) >= self.s.permissions_rescan.as_secs()
                    });
                self.read_permissions(&drive_id, &old.items, &mut items, &round, rescan)
                    .await?;
                if rescan {
                    permissions_scanned = Some(now);
                }
            }
            let before = file_paths(&old.name, &old.items);
            let after = file_paths(&name, &items);
            for (id, path) in &after {
                let k = &items[id];
                let rel = path.clone();
                let unchanged =
                    !full && old.items.get(id) == Some(k) && before.get(id) == Some(path);
                if unchanged {
                    continue;
                }
                let in_excluded_folder = rel
                    .iter()
                    .enumerate()
                    .any(|(i, b)| *b == b'/' && self.s.filter.excluded(&rel[..i]));
                let change = if in_excluded_folder || !self.s.filter.file_wanted(&rel) {
                    continue;
                } else if self.s.max_file_size.is_some_and(|m| k.size > m) {
                    Change::Skipped {
                        rel_path: rel,
                        reason: SkipReason::TooLarge,
                    }
                } else {
                    Change::Upsert(Entry {
                        source_id: source_id(&drive_id, id),
                        rel_path: rel,
                        size: k.size,
                        mtime_ns: k.mtime_ns,
                        inode: None,
                        change_tag: k.hash.clone(),
                        principals: k.acl.clone(),
                    })
                };
                if !batch.push(change).await {
                    return Ok(ListOutcome { complete: false });
                }
            }
            for id in before.keys().filter(|id| !after.contains_key(*id)) {
                let del = Change::Delete {
                    source_id: source_id(&drive_id, id),
                };
                if !batch.push(del).await {
                    return Ok(ListOutcome { complete: false });
                }
            }
            // what this library listed reaches the job before the next one is asked
            if !batch.flush().await {
                return Ok(ListOutcome { complete: false });
            }
            next.drives.insert(
                drive_id,
                DriveState {
                    name,
                    link: Some(link),
                    items,
                    permissions_scanned,
                },
            );
        }
        let cp = serde_json::to_string(&next).map_err(|e| ConnectorError::Other(e.to_string()))?;
        *self.state.lock().unwrap() = next;
        let _ = batch.push(Change::Checkpoint(cp)).await && batch.flush().await;
        // a full enumeration of every library covers the source: what it did not see is
        // deleted by the job (the first run, or after resyncs)
        Ok(ListOutcome { complete: all_full })
    }

    fn take_notes(&self) -> Vec<String> {
        std::mem::take(&mut *self.notes.lock().unwrap())
    }

    async fn stat(&self, source_id: &[u8]) -> Result<Option<Entry>, ItemError> {
        let sid = String::from_utf8_lossy(source_id).into_owned();
        let Some((drive, item)) = sid.split_once('/') else {
            return Ok(None);
        };
        let url = format!("{}/drives/{drive}/items/{item}?$select={SELECT}", self.base);
        let v = match self.get_json(&url).await {
            Ok((_, _, v)) => v,
            Err(GraphError::Status(StatusCode::NOT_FOUND, ..)) => return Ok(None),
            Err(e) => return Err(ItemError::Io(e.to_string())),
        };
        let mut st = self.state.lock().unwrap();
        let Some(d) = st.drives.get_mut(drive) else {
            return Ok(None);
        };
        let acl = d.items.get(item).and_then(|k| k.acl.clone());
        apply(&mut d.items, std::slice::from_ref(&v));
        if let Some(k) = d.items.get_mut(item) {
            k.acl = acl;
        }
        let paths = file_paths(&d.name, &d.items);
        let (Some(path), Some(k)) = (paths.get(item), d.items.get(item)) else {
            return Ok(None);
        };
        Ok(Some(Entry {
            source_id: source_id.to_vec(),
            rel_path: path.clone(),
            size: k.size,
            mtime_ns: k.mtime_ns,
            inode: None,
            change_tag: k.hash.clone(),
            principals: k.acl.clone(),
        }))
    }

    async fn open(&self, e: &Entry) -> Result<Box<dyn SourceFile>, ItemError> {
        self.download(e).await
    }

    async fn check(&self) -> Result<String, ConnectorError> {
        let drives = self.resolve_drives().await?;
        Ok(format!(
            "site `{}`: {} librar{}: {}",
            self.s.site,
            drives.len(),
            if drives.len() == 1 { "y" } else { "ies" },
            drives
                .iter()
                .map(|(_, n)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }

    fn mtime_granularity(&self) -> Duration {
        // change detection goes by QuickXorHash and size, and downloads are verified
        Duration::ZERO
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_without_retry_after_doubles_up_to_a_cap() {
        let mut b = Duration::from_millis(500);
        let mut seen = vec![b];
        for _ in 0..12 {
            b = grow(b);
            seen.push(b);
        }
        assert_eq!(seen[1], Duration::from_secs(1));
        assert_eq!(seen[3], Duration::from_secs(4));
        assert_eq!(*seen.last().unwrap(), BACKOFF_CAP);
        assert!(seen.windows(2).all(|w| w[1] >= w[0] && w[1] <= BACKOFF_CAP));
        // jitter adds at most a tenth (and never more than a second)
        for w in [Duration::from_millis(500), BACKOFF_CAP] {
            let j = jittered(w);
            assert!(j >= w && j <= w + (w / 10).min(Duration::from_secs(1)));
        }
    }
}
