//! A fake Microsoft Graph for the SharePoint connector's tests, following the
//! project's research notes (graph.md §5): an OAuth token endpoint, sites, drives,
//! driveItem delta with opaque next/delta links, 410 `resyncRequired`, `/content`
//! answering 302 to a separate download host (pre-authenticated URLs that expire,
//! Range, cut connections), scripted faults (429/503 with Retry-After, 401) and a
//! request log with the violations a well-behaved client never causes (a bearer token
//! sent to the download host, a request before a Retry-After has passed).
//!
//! Two loopback listeners on free ports: the Graph + token host, and the download host.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

mod delta;
mod download;
mod routes;
mod token;

use delta::*;
use download::*;
use routes::*;
use token::*;

pub const TENANT: &str = "11111111-2222-3333-4444-555555555555";
pub const CLIENT_ID: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
pub const CLIENT_SECRET: &str = "fake-graph-client-secret~42";

/// The QuickXorHash of OneDrive/SharePoint, base64 (an independent implementation of
/// the published algorithm; the connector has its own).
pub fn quick_xor_hash(data: &[u8]) -> String {
    let mut bits = [0u8; 20]; // the 160-bit register, least-significant byte first
    for (i, &b) in data.iter().enumerate() {
        let shift = (i * 11) % 160;
        for k in 0..8 {
            if b >> k & 1 == 1 {
                let pos = (shift + k) % 160;
                bits[pos / 8] ^= 1 << (pos % 8);
            }
        }
    }
    let len = (data.len() as u64).to_le_bytes();
    for (j, l) in len.iter().enumerate() {
        bits[12 + j] ^= l;
    }
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bits)
}

/// `t` as an HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`), for a scripted Retry-After.
pub fn http_date(t: std::time::SystemTime) -> String {
    httpdate::fmt_http_date(t)
}

#[derive(Debug, Clone)]
struct Item {
    id: String,
    name: String,
    parent: Option<String>,
    folder: bool,
    /// A package (a OneNote notebook): neither file nor folder, though it has children.
    package: bool,
    content: Vec<u8>,
    modified: i64,
    etag: u32,
    ctag: u32,
    deleted: bool,
    seq: u64,
    /// Graph permission objects (`roles`, `grantedToV2`, `link`, …).
    permissions: Vec<Value>,
    /// The seq of its last sharing change (delta marks it `sharedChanged`).
    shared_seq: u64,
    /// The app lost access to it: it no longer exists as far as the app can tell.
    hidden: bool,
}

#[derive(Debug)]
struct Drive {
    id: String,
    site: String,
    name: String,
    root: String,
    items: HashMap<String, Item>,
}

/// A scripted answer for the next matching Graph request.
#[derive(Debug, Clone)]
pub struct Scripted {
    pub method: &'static str,
    /// A substring of the path and query.
    pub path_contains: String,
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Value,
}

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Logged {
    pub listener: &'static str,
    pub method: String,
    pub uri: String,
    pub authorization: bool,
    pub user_agent: Option<String>,
    pub range: Option<String>,
    pub client_request_id: Option<String>,
    pub prefer: Option<String>,
    pub status: u16,
    /// When the fake answered it.
    pub at: Instant,
}

struct St {
    seq: u64,
    epoch: u64,
    sites: Vec<(String, String)>, // (id, "host:/sites/name")
    drives: Vec<Drive>,
    tokens: HashMap<String, Instant>,
    token_ttl: Duration,
    issued: u64,
    page_size: usize,
    empty_page: bool,
    /// Delta sends children before their parents (deepest first).
    children_first: bool,
    /// nextLinks point at this host instead of the fake's own (a hostile or buggy
    /// server trying to get the bearer token sent elsewhere).
    foreign_next_link: Option<String>,
    downloads: HashMap<String, (String, String, Instant)>,
    download_ttl: Duration,
    ignore_range: bool,
    cut_next_download_after: Option<usize>,
    /// The next download longer than `.0` bytes stalls after `.0` bytes for `.1`.
    slow_download: Option<(usize, Duration)>,
    /// The next `n` `/content` redirects hand out download URLs that have expired.
    expired_links: u32,
    /// Items deleted the moment their `/content` is asked for (deleted between the
    /// delta that named them and their download).
    delete_on_content: std::collections::HashSet<String>,
    /// The next `n` downloads serve one byte flipped (wrong bytes on the wire).
    corrupt_downloads: u32,
    script: VecDeque<Scripted>,
    /// Token errors quote the request body back (as some identity proxies do).
    echo_token_requests: bool,
    /// A Retry-After in force: (when it was answered, until when).
    not_before: Option<(Instant, Instant)>,
    log: Vec<Logged>,
    violations: Vec<String>,
    next_id: u64,
    base: String,
    dl_base: String,
    /// The certificate registered with the app: (x5t#S256 thumbprint, public key).
    certificate: Option<(String, Vec<u8>)>,
    /// `jti`s of the assertions accepted (a replay is refused).
    assertions: std::collections::HashSet<String>,
    /// Request budget: at most `limit` Graph requests per `window` (the app's resource
    /// units, simplified to one per request).
    rate_limit: Option<(u32, Duration)>,
    window_start: Instant,
    used: u32,
    throttled: u64,
}

#[derive(Clone)]
pub struct FakeGraph {
    st: Arc<Mutex<St>>,
    /// `http://127.0.0.1:<port>/v1.0`
    pub graph_url: String,
    /// `http://127.0.0.1:<port>/<tenant>/oauth2/v2.0/token`
    pub token_url: String,
}

fn now_iso(t: i64) -> String {
    chrono_like(t)
}

/// RFC 3339 (UTC, seconds) of Unix seconds, without a date crate.
fn chrono_like(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // civil from days (Howard Hinnant's algorithm)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn graph_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"error": {"code": code, "message": message, "innerError": {"date": now_iso(unix_now()), "request-id": "fake"}}})
            .to_string(),
    )
        .into_response()
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

impl FakeGraph {
    /// Starts both listeners on the current tokio runtime.
    pub async fn start() -> FakeGraph {
        let g = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dl = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (ga, da): (SocketAddr, SocketAddr) =
            (g.local_addr().unwrap(), dl.local_addr().unwrap());
        let st = Arc::new(Mutex::new(St {
            seq: 0,
            epoch: 1,
            sites: Vec::new(),
            drives: Vec::new(),
            tokens: HashMap::new(),
            certificate: None,
            assertions: Default::default(),
            rate_limit: None,
            window_start: Instant::now(),
            used: 0,
            throttled: 0,
            token_ttl: Duration::from_secs(3599),
            issued: 0,
            page_size: 200,
            empty_page: false,
            children_first: false,
            slow_download: None,
            expired_links: 0,
            delete_on_content: Default::default(),
            foreign_next_link: None,
            downloads: HashMap::new(),
            download_ttl: Duration::from_secs(3600),
            ignore_range: false,
            cut_next_download_after: None,
            corrupt_downloads: 0,
            script: VecDeque::new(),
            echo_token_requests: false,
            not_before: None,
            log: Vec::new(),
            violations: Vec::new(),
            next_id: 1,
            base: format!("http://{ga}/v1.0"),
            dl_base: format!("http://{da}"),
        }));
        let graph = Router::new().fallback(graph_handler).with_state(st.clone());
        let download = Router::new()
            .fallback(download_handler)
            .with_state(st.clone());
        tokio::spawn(async move { axum::serve(g, graph).await.unwrap() });
        tokio::spawn(async move { axum::serve(dl, download).await.unwrap() });
        FakeGraph {
            st,
            graph_url: format!("http://{ga}/v1.0"),
            token_url: format!("http://{ga}/{TENANT}/oauth2/v2.0/token"),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut St) -> T) -> T {
        f(&mut self.st.lock().unwrap())
    }

    /// A site reachable as `host:/sites/name`; returns its id.
    pub fn add_site(&self, host: &str, name: &str) -> String {
        self.with(|s| {
            let id = format!("{host},{:08x}-site,{:08x}-web", s.next_id, s.next_id);
            s.next_id += 1;
            s.sites.push((id.clone(), format!("{host}:/sites/{name}")));
            id
        })
    }

    /// A document library of `site`; returns its id.
    pub fn add_drive(&self, site: &str, name: &str) -> String {
        self.with(|s| {
            let id = format!("b!drive{:04}", s.next_id);
            let root = format!("01ROOT{:04}", s.next_id);
            s.next_id += 1;
            s.seq += 1;
            let mut items = HashMap::new();
            items.insert(
                root.clone(),
                Item {
                    id: root.clone(),
                    name: "root".into(),
                    parent: None,
                    folder: true,
                    package: false,
                    content: Vec::new(),
                    modified: unix_now(),
                    etag: 1,
                    ctag: 1,
                    deleted: false,
                    seq: s.seq,
                    permissions: Vec::new(),
                    shared_seq: 0,
                    hidden: false,
                },
            );
            s.drives.push(Drive {
                id: id.clone(),
                site: site.into(),
                name: name.into(),
                root,
                items,
            });
            id
        })
    }

    fn drive_mut<'a>(s: &'a mut St, drive: &str) -> &'a mut Drive {
        s.drives.iter_mut().find(|d| d.id == drive).expect("drive")
    }

    /// Creates (or replaces the content of) the file at `path` (`a/b/c.txt`), creating
    /// folders on the way; returns the file's id.
    pub fn put(&self, drive: &str, path: &str, content: &[u8]) -> String {
        self.with(|s| {
            let mut next = s.next_id;
            s.seq += 1;
            let seq = s.seq;
            let d = Self::drive_mut(s, drive);
            let mut parent = d.root.clone();
            let parts: Vec<&str> = path.split('/').collect();
            for (i, part) in parts.iter().enumerate() {
                let last = i == parts.len() - 1;
                let found = d
                    .items
                    .values()
                    .find(|it| {
                        !it.deleted && it.parent.as_deref() == Some(&parent) && it.name == *part
                    })
                    .map(|it| it.id.clone());
                let id = match found {
                    Some(id) => {
                        if last {
                            let it = d.items.get_mut(&id).unwrap();
                            it.content = content.to_vec();
                            it.etag += 1;
                            it.ctag += 1;
                            it.modified = unix_now();
                            it.seq = seq;
                        }
                        id
                    }
                    None => {
                        let id = format!("01ITEM{next:06}");
                        next += 1;
                        d.items.insert(
                            id.clone(),
                            Item {
                                id: id.clone(),
                                name: part.to_string(),
                                parent: Some(parent.clone()),
                                folder: !last,
                                package: false,
                                content: if last { content.to_vec() } else { Vec::new() },
                                modified: unix_now(),
                                etag: 1,
                                ctag: 1,
                                deleted: false,
                                seq,
                                permissions: Vec::new(),
                                shared_seq: 0,
                                hidden: false,
                            },
                        );
                        id
                    }
                };
                parent = id;
            }
            s.next_id = next;
            parent
        })
    }

    fn touch(&self, drive: &str, id: &str, f: impl FnOnce(&mut Item)) {
        self.with(|s| {
            s.seq += 1;
            let seq = s.seq;
            let it = Self::drive_mut(s, drive).items.get_mut(id).expect("item");
            f(it);
            it.etag += 1;
            it.seq = seq;
        })
    }

    /// Renames an item (a folder's descendants keep their ids and are not re-sent).
    pub fn rename(&self, drive: &str, id: &str, name: &str) {
        self.touch(drive, id, |it| it.name = name.into());
    }

    /// Moves an item under another folder.
    pub fn move_to(&self, drive: &str, id: &str, parent: &str) {
        self.touch(drive, id, |it| it.parent = Some(parent.into()));
    }

    /// Changes only metadata: a new eTag and mtime, the same content and hash.
    /// Replaces an item's permissions (Graph permission objects); delta reports the
    /// item again, marked `sharedChanged` for requests that ask for sharing changes.
    pub fn set_permissions(&self, drive: &str, id: &str, permissions: Vec<Value>) {
        self.with(|s| {
            s.seq += 1;
            let seq = s.seq;
            let it = Self::drive_mut(s, drive).items.get_mut(id).expect("item");
            it.permissions = permissions;
            it.seq = seq;
            it.shared_seq = seq;
        })
    }

    /// The app loses access to an item (its permissions no longer include the app):
    /// delta reports it as deleted to requests with `Prefer: deltashowremovedasdeleted`
    /// and leaves it out silently otherwise; reading it answers 404.
    pub fn revoke_app_access(&self, drive: &str, id: &str) {
        self.touch(drive, id, |it| it.hidden = true);
    }

    pub fn touch_metadata(&self, drive: &str, id: &str) {
        self.touch(drive, id, |it| it.modified += 60);
    }

    /// Deletes an item; a folder's descendants are deleted too, but only the folder is
    /// logged (delta then reports just the folder, as SharePoint may).
    pub fn delete(&self, drive: &str, id: &str) {
        self.delete_reporting(drive, id, false)
    }

    /// Deletes a folder and reports every descendant's delete as well.
    pub fn delete_with_descendants(&self, drive: &str, id: &str) {
        self.delete_reporting(drive, id, true)
    }

    fn delete_reporting(&self, drive: &str, id: &str, descendants: bool) {
        self.with(|s| {
            s.seq += 1;
            let seq = s.seq;
            let d = Self::drive_mut(s, drive);
            let mut doomed = vec![id.to_string()];
            let mut i = 0;
            while i < doomed.len() {
                let p = doomed[i].clone();
                doomed.extend(
                    d.items
                        .values()
                        .filter(|it| it.parent.as_deref() == Some(&p) && !it.deleted)
                        .map(|it| it.id.clone()),
                );
                i += 1;
            }
            for (k, x) in doomed.iter().enumerate() {
                let it = d.items.get_mut(x).unwrap();
                it.deleted = true;
                if k == 0 || descendants {
                    it.seq = seq;
                }
            }
        })
    }

    pub fn id_of(&self, drive: &str, path: &str) -> String {
        self.with(|s| {
            let d = s.drives.iter().find(|d| d.id == drive).unwrap();
            let mut parent = d.root.clone();
            for part in path.split('/') {
                parent = d
                    .items
                    .values()
                    .find(|it| {
                        !it.deleted && it.parent.as_deref() == Some(&parent) && it.name == part
                    })
                    .unwrap_or_else(|| panic!("no {path}"))
                    .id
                    .clone();
            }
            parent
        })
    }

    /// Items per delta page (the client's `$top` may lower it).
    pub fn set_page_size(&self, n: usize) {
        self.with(|s| s.page_size = n.max(1));
    }
    /// Insert an empty page in the middle of enumerations.
    pub fn set_empty_page(&self, on: bool) {
        self.with(|s| s.empty_page = on);
    }
    /// The next `n` `/content` redirects point at download URLs that have already
    /// expired (the download host answers 401).
    pub fn expire_next_download_links(&self, n: u32) {
        self.with(|s| s.expired_links = n);
    }
    /// The item is deleted when its `/content` is first asked for: deleted after the
    /// delta that named it, before its download.
    pub fn delete_before_download(&self, id: &str) {
        self.with(|s| s.delete_on_content.insert(id.to_string()));
    }
    /// Delta sends every child before its parent folder (deepest items first).
    pub fn set_children_first(&self, on: bool) {
        self.with(|s| s.children_first = on);
    }
    /// The next download longer than `after` bytes sends `after` bytes, then nothing
    /// for `stall`, then the rest (a stalled connection, for read timeouts).
    pub fn stall_next_download(&self, after: usize, stall: Duration) {
        self.with(|s| s.slow_download = Some((after, stall)));
    }
    /// Creates a package item (a OneNote notebook) at `path`, folders on the way;
    /// files can then be put inside it. Returns its id.
    pub fn put_package(&self, drive: &str, path: &str) -> String {
        let id = self.put(drive, path, b"");
        self.with(|s| {
            let it = Self::drive_mut(s, drive).items.get_mut(&id).unwrap();
            it.package = true;
        });
        id
    }
    /// An item as delta reports it now (to compose scripted delta pages from); `root`
    /// names the drive's root.
    pub fn delta_item(&self, drive: &str, id: &str) -> Value {
        self.with(|s| {
            let d = s.drives.iter().find(|d| d.id == drive).unwrap();
            let id = if id == "root" { d.root.as_str() } else { id };
            item_json(&d.id, &d.items[id], false)
        })
    }
    /// A deltaLink that reports changes from now on (what the last page of a scripted
    /// round hands the client).
    pub fn latest_delta_link(&self, drive: &str) -> String {
        self.with(|s| {
            format!(
                "{}/drives/{drive}/root/delta?token=e{}.s{}",
                s.base, s.epoch, s.seq
            )
        })
    }
    /// Delta nextLinks name `host` (e.g. `http://127.0.0.1:9`) instead of the fake.
    pub fn set_foreign_next_link(&self, host: Option<&str>) {
        self.with(|s| s.foreign_next_link = host.map(str::to_string));
    }
    pub fn set_token_ttl(&self, ttl: Duration) {
        self.with(|s| s.token_ttl = ttl);
    }
    pub fn set_download_ttl(&self, ttl: Duration) {
        self.with(|s| s.download_ttl = ttl);
    }
    pub fn set_ignore_range(&self, on: bool) {
        self.with(|s| s.ignore_range = on);
    }
    /// The next download longer than `n` bytes is cut after `n` bytes.
    /// The next `n` downloads deliver one wrong byte (the size stays right).
    pub fn corrupt_next_downloads(&self, n: u32) {
        self.with(|s| s.corrupt_downloads = n);
    }

    pub fn cut_next_download_after(&self, n: usize) {
        self.with(|s| s.cut_next_download_after = Some(n));
    }
    /// Every stored delta link becomes invalid (410 resyncRequired).
    pub fn invalidate_delta_links(&self) {
        self.with(|s| s.epoch += 1);
    }
    /// Every issued access token is revoked (Graph answers 401).
    pub fn revoke_tokens(&self) {
        self.with(|s| s.tokens.clear());
    }
    /// From now on, token errors quote the request body (client secret included) in
    /// their `error_description`, as some identity proxies do.
    pub fn echo_token_requests_in_errors(&self) {
        self.with(|s| s.echo_token_requests = true);
    }

    pub fn script(&self, r: Scripted) {
        self.with(|s| s.script.push_back(r));
    }
    pub fn requests(&self) -> Vec<Logged> {
        self.with(|s| s.log.clone())
    }
    pub fn violations(&self) -> Vec<String> {
        self.with(|s| s.violations.clone())
    }
    pub fn tokens_issued(&self) -> u64 {
        self.with(|s| s.issued)
    }

    /// Registers a certificate with the app (as an admin uploads it in Entra ID): its
    /// PEM and the PEM of its public key. Client assertions must then be signed by its
    /// key (RS256 or PS256) and name it by `x5t#S256` (or the SHA-1 `x5t`).
    pub fn register_certificate(&self, cert_pem: &str, public_key_pem: &str) {
        use base64::Engine as _;
        use sha2::Digest as _;
        let der = pem::parse_many(cert_pem)
            .unwrap()
            .into_iter()
            .find(|p| p.tag() == "CERTIFICATE")
            .expect("a CERTIFICATE block")
            .into_contents();
        let thumb =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(&der));
        self.with(|s| s.certificate = Some((thumb, public_key_pem.as_bytes().to_vec())));
    }

    /// A request budget as Graph applies one per app and tenant: at most `limit`
    /// resource units per `window` (a permissions read costs 5, a delta request without
    /// a token 2, anything else 1). From 80 % used, responses carry `RateLimit-Limit`,
    /// `RateLimit-Remaining` and `RateLimit-Reset`; past the budget, 429 with
    /// `Retry-After` until the window ends.
    pub fn set_rate_limit(&self, limit: u32, window: Duration) {
        self.with(|s| {
            s.rate_limit = Some((limit, window));
            s.window_start = Instant::now();
            s.used = 0;
        });
    }

    /// Requests refused with 429 by the request budget.
    pub fn throttled(&self) -> u64 {
        self.with(|s| s.throttled)
    }

    /// Client assertions accepted so far (each with its own `jti`).
    pub fn assertions_accepted(&self) -> usize {
        self.with(|s| s.assertions.len())
    }
}

impl St {
    fn base_token_url(&self) -> String {
        format!(
            "{}/{TENANT}/oauth2/v2.0/token",
            self.base.trim_end_matches("/v1.0")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_xor_hash_matches_the_published_vectors() {
        assert_eq!(quick_xor_hash(b""), "AAAAAAAAAAAAAAAAAAAAAAAAAAA=");
        assert_eq!(quick_xor_hash(b"a"), "YQAAAAAAAAAAAAAAAQAAAAAAAAA=");
        assert_eq!(
            quick_xor_hash(b"hello world"),
            "aCgDG9jwBhDc4Q1yawMZAAAAAAA="
        );
        let v: Vec<u8> = (0..4).flat_map(|_| 0..=255u8).collect();
        assert_eq!(quick_xor_hash(&v), "h7xr2dbCayZCQYR9KKhlwDuT4UI=");
    }

    #[test]
    fn dates_are_rfc3339() {
        assert_eq!(chrono_like(0), "1970-01-01T00:00:00Z");
        assert_eq!(chrono_like(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
