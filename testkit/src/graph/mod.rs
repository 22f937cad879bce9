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
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

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

/// Checks a client assertion as Entra ID does; `Err((aadsts, description))`.
fn verify_assertion(
    s: &mut St,
    jwt: &str,
    client_id: Option<&String>,
) -> Result<(), (&'static str, String)> {
    let Some((thumb, public_key)) = s.certificate.clone() else {
        return Err((
            "AADSTS700027",
            "No certificate is registered for the app.".into(),
        ));
    };
    let header = jsonwebtoken::decode_header(jwt)
        .map_err(|e| ("AADSTS50027", format!("Invalid JWT token: {e}")))?;
    if header.x5t_s256.as_deref() != Some(thumb.as_str()) {
        return Err((
            "AADSTS700027",
            "The certificate with identifier used to sign the client assertion is not registered on application.".into(),
        ));
    }
    if !matches!(
        header.alg,
        jsonwebtoken::Algorithm::RS256 | jsonwebtoken::Algorithm::PS256
    ) {
        return Err((
            "AADSTS5002723",
            format!("Invalid JWT header: alg {:?}", header.alg),
        ));
    }
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(&public_key).expect("registered public key");
    let mut v = jsonwebtoken::Validation::new(header.alg);
    v.leeway = 0;
    v.validate_nbf = true;
    v.set_audience(&[s.base_token_url()]);
    v.set_issuer(&[CLIENT_ID]);
    v.set_required_spec_claims(&["exp", "nbf", "aud", "iss", "sub"]);
    let data = jsonwebtoken::decode::<Value>(jwt, &key, &v).map_err(|e| match e.kind() {
        jsonwebtoken::errors::ErrorKind::ExpiredSignature
        | jsonwebtoken::errors::ErrorKind::ImmatureSignature => (
            "AADSTS700024",
            "Client assertion is not within its valid time range.".to_string(),
        ),
        jsonwebtoken::errors::ErrorKind::InvalidSignature => (
            "AADSTS700027",
            "Client assertion contains an invalid signature.".to_string(),
        ),
        k => ("AADSTS50027", format!("Invalid JWT token: {k:?}")),
    })?;
    let claims = data.claims;
    if claims["sub"] != CLIENT_ID || client_id.is_some_and(|c| c != CLIENT_ID) {
        return Err((
            "AADSTS700021",
            "Client assertion application identifier doesn't match 'client_id' parameter.".into(),
        ));
    }
    let jti = claims["jti"].as_str().unwrap_or("").to_string();
    if jti.is_empty() || !s.assertions.insert(jti) {
        return Err((
            "AADSTS700025",
            "The client assertion was used before (jti replay).".into(),
        ));
    }
    Ok(())
}

impl St {
    fn base_token_url(&self) -> String {
        format!(
            "{}/{TENANT}/oauth2/v2.0/token",
            self.base.trim_end_matches("/v1.0")
        )
    }
}

fn log(s: &mut St, listener: &'static str, method: &Method, uri: &str, h: &HeaderMap, status: u16) {
    s.log.push(Logged {
        listener,
        method: method.to_string(),
        uri: uri.to_string(),
        authorization: h.contains_key(header::AUTHORIZATION),
        user_agent: h
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        range: h
            .get(header::RANGE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        client_request_id: h
            .get("client-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        prefer: h
            .get("prefer")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        status,
        at: Instant::now(),
    });
}

fn query(uri: &axum::http::Uri) -> HashMap<String, String> {
    form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

async fn graph_handler(State(st): State<Arc<Mutex<St>>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let uri = parts.uri.to_string();
    let mut s = st.lock().unwrap();
    let r = graph(&mut s, &parts.method, &parts.uri, &parts.headers, &body);
    log(
        &mut s,
        "graph",
        &parts.method,
        &uri,
        &parts.headers,
        r.status().as_u16(),
    );
    r
}

/// How long after a 429 a request still counts as having been in flight when it went out.
const IN_FLIGHT_GRACE: Duration = Duration::from_millis(250);

fn graph(
    s: &mut St,
    method: &Method,
    uri: &axum::http::Uri,
    h: &HeaderMap,
    body: &[u8],
) -> Response {
    let path = uri.path().to_string();
    if path.ends_with("/oauth2/v2.0/token") && method == Method::POST {
        return token(s, &path, h, body);
    }
    let Some(rest) = path.strip_prefix("/v1.0") else {
        return graph_error(StatusCode::BAD_REQUEST, "invalidRequest", "unknown route");
    };
    // Requests that were already in flight when the 429 went out (within
    // IN_FLIGHT_GRACE of it) are not the client's fault; later ones are.
    if let Some((at, nb)) = s.not_before
        && Instant::now() < nb
        && Instant::now() > at + IN_FLIGHT_GRACE
    {
        s.violations
            .push(format!("{method} {uri} sent before Retry-After had passed"));
    }
    let bearer = h
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match bearer.and_then(|t| s.tokens.get(t)) {
        Some(exp) if *exp > Instant::now() => {}
        _ => {
            return graph_error(
                StatusCode::UNAUTHORIZED,
                "InvalidAuthenticationToken",
                "Access token has expired or is not yet valid.",
            );
        }
    }
    let mut limit_headers = None;
    if let Some((limit, window)) = s.rate_limit {
        let now = Instant::now();
        if now.duration_since(s.window_start) >= window {
            s.window_start = now;
            s.used = 0;
        }
        let reset = (window - now.duration_since(s.window_start))
            .as_secs_f64()
            .ceil()
            .max(1.0) as u64;
        // resource units as Graph charges them (research/graph.md §4.5)
        s.used += if rest.ends_with("/permissions") {
            5
        } else if rest.contains("/delta") && !uri.query().is_some_and(|q| q.contains("token=")) {
            2
        } else {
            1
        };
        if s.used > limit {
            s.used = limit;
            s.throttled += 1;
            s.not_before = Some((now, s.window_start + window));
            let mut r = graph_error(
                StatusCode::TOO_MANY_REQUESTS,
                "activityLimitReached",
                "The request has been throttled",
            );
            for (k, v) in [
                ("retry-after", reset),
                ("ratelimit-limit", limit as u64),
                ("ratelimit-remaining", 0),
                ("ratelimit-reset", reset),
            ] {
                r.headers_mut().insert(k, HeaderValue::from(v));
            }
            return r;
        }
        if s.used * 5 >= limit * 4 {
            limit_headers = Some((limit, limit - s.used, reset));
        }
    }
    let mut r = route(s, method, uri, rest, h);
    if let Some((limit, remaining, reset)) = limit_headers {
        for (k, v) in [
            ("ratelimit-limit", limit as u64),
            ("ratelimit-remaining", remaining as u64),
            ("ratelimit-reset", reset),
        ] {
            r.headers_mut().insert(k, HeaderValue::from(v));
        }
    }
    r
}

fn route(
    s: &mut St,
    method: &Method,
    uri: &axum::http::Uri,
    rest: &str,
    h: &HeaderMap,
) -> Response {
    let full = uri.to_string();
    if let Some(pos) = s
        .script
        .iter()
        .position(|x| x.method == method.as_str() && full.contains(&x.path_contains))
    {
        let x = s.script.remove(pos).unwrap();
        let mut r = (
            StatusCode::from_u16(x.status).unwrap(),
            [(header::CONTENT_TYPE, "application/json")],
            x.body.to_string(),
        )
            .into_response();
        for (k, v) in x.headers {
            if k.eq_ignore_ascii_case("retry-after") {
                let wait = match v.parse::<u64>() {
                    Ok(secs) => Some(Duration::from_secs(secs)),
                    // an HTTP date: until then, as seen from this clock
                    Err(_) => httpdate::parse_http_date(&v).ok().map(|at| {
                        at.duration_since(std::time::SystemTime::now())
                            .unwrap_or_default()
                    }),
                };
                if let Some(wait) = wait {
                    s.not_before = Some((Instant::now(), Instant::now() + wait));
                }
            }
            r.headers_mut()
                .insert(k, HeaderValue::from_str(&v).unwrap());
        }
        return r;
    }
    let q = query(uri);
    let segs: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
    match segs.as_slice() {
        ["sites", id] | ["sites", id, ""] => site(s, id, None),
        ["sites", host, "sites", name] => site(s, host, Some(name)),
        ["sites", id, "drives"] => {
            let drives: Vec<Value> = s
                .drives
                .iter()
                .filter(|d| d.site == *id)
                .map(|d| json!({"id": d.id, "name": d.name, "driveType": "documentLibrary"}))
                .collect();
            if !s.sites.iter().any(|(sid, _)| sid == id) {
                return graph_error(StatusCode::NOT_FOUND, "itemNotFound", "site not found");
            }
            json_ok(json!({"value": drives}))
        }
        ["drives", d, "root", delta] | ["drives", d, "items", _, delta]
            if delta.starts_with("delta") =>
        {
            let token = q.get("token").cloned().or_else(|| {
                delta
                    .strip_prefix("delta(token='")
                    .and_then(|t| t.strip_suffix("')"))
                    .map(str::to_string)
            });
            let prefer = h
                .get("prefer")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_ascii_lowercase();
            let sharing = prefer.contains("deltashowsharingchanges");
            if sharing
                && !(prefer.contains("deltashowremovedasdeleted")
                    && prefer.contains("deltatraversepermissiongaps"))
            {
                return graph_error(
                    StatusCode::BAD_REQUEST,
                    "invalidRequest",
                    "deltashowsharingchanges requires deltashowremovedasdeleted and deltatraversepermissiongaps",
                );
            }
            delta_page(
                s,
                d,
                token,
                &q,
                sharing,
                prefer.contains("deltashowremovedasdeleted"),
            )
        }
        ["drives", d, "items", i] => match find(s, d, i) {
            Some((drive, it)) if !it.deleted => json_ok(item_json(&drive, &it, true)),
            _ => graph_error(
                StatusCode::NOT_FOUND,
                "itemNotFound",
                "The resource could not be found.",
            ),
        },
        ["drives", d, "items", i, "permissions"] => match find(s, d, i) {
            Some((_, it)) if !it.deleted => json_ok(json!({"value": it.permissions})),
            _ => graph_error(
                StatusCode::NOT_FOUND,
                "itemNotFound",
                "The resource could not be found.",
            ),
        },
        ["drives", d, "items", i, "content"] if s.delete_on_content.remove(*i) => {
            s.seq += 1;
            let seq = s.seq;
            if let Some(it) = drive_item(s, d, i) {
                it.deleted = true;
                it.seq = seq;
            }
            graph_error(
                StatusCode::NOT_FOUND,
                "itemNotFound",
                "The resource could not be found.",
            )
        }
        ["drives", d, "items", i, "content"] => match find(s, d, i) {
            Some((_, it)) if !it.deleted && !it.folder && !it.package => {
                let opaque = format!("dl{:08}", s.next_id);
                s.next_id += 1;
                s.downloads.insert(
                    opaque.clone(),
                    (
                        d.to_string(),
                        i.to_string(),
                        if s.expired_links > 0 {
                            s.expired_links -= 1;
                            Instant::now()
                        } else {
                            Instant::now() + s.download_ttl
                        },
                    ),
                );
                let loc = format!("{}/download/{opaque}?tempauth=t{opaque}", s.dl_base);
                (StatusCode::FOUND, [(header::LOCATION, loc)]).into_response()
            }
            Some((_, it)) if it.folder && !it.deleted => graph_error(
                StatusCode::BAD_REQUEST,
                "invalidRequest",
                "a folder has no content",
            ),
            _ => graph_error(
                StatusCode::NOT_FOUND,
                "itemNotFound",
                "The resource could not be found.",
            ),
        },
        _ => graph_error(
            StatusCode::BAD_REQUEST,
            "invalidRequest",
            "unsupported segment",
        ),
    }
}

fn drive_item<'a>(s: &'a mut St, d: &str, i: &str) -> Option<&'a mut Item> {
    s.drives.iter_mut().find(|x| x.id == d)?.items.get_mut(i)
}

fn json_ok(v: Value) -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/json;odata.metadata=minimal",
        )],
        v.to_string(),
    )
        .into_response()
}

fn site(s: &St, id: &str, name: Option<&str>) -> Response {
    let found = s.sites.iter().find(|(sid, path)| match name {
        None => sid == id,
        Some(n) => *path == format!("{id}/sites/{}", n.trim_end_matches(':')),
    });
    match found {
        Some((sid, path)) => json_ok(
            json!({"id": sid, "name": path.rsplit('/').next(), "webUrl": format!("https://{path}")}),
        ),
        None => graph_error(
            StatusCode::NOT_FOUND,
            "itemNotFound",
            "Requested site could not be found",
        ),
    }
}

fn find(s: &St, d: &str, i: &str) -> Option<(String, Item)> {
    let drive = s.drives.iter().find(|x| x.id == d)?;
    let id = if i == "root" {
        drive.root.clone()
    } else {
        i.to_string()
    };
    drive
        .items
        .get(&id)
        .filter(|it| !it.hidden)
        .map(|it| (drive.id.clone(), it.clone()))
}

fn item_json(drive: &str, it: &Item, with_ctag: bool) -> Value {
    if it.deleted || it.hidden {
        return json!({
            "id": it.id,
            "deleted": {"state": "deleted"},
            "parentReference": {"driveId": drive, "id": it.parent},
            "lastModifiedDateTime": now_iso(it.modified),
        });
    }
    let mut v = json!({
        "id": it.id,
        "name": it.name,
        "eTag": format!("\"{{{}}},{}\"", it.id, it.etag),
        "lastModifiedDateTime": now_iso(it.modified),
        "createdDateTime": now_iso(it.modified),
        "parentReference": {"driveId": drive, "driveType": "documentLibrary", "id": it.parent},
    });
    if it.parent.is_none() {
        v["root"] = json!({});
        v.as_object_mut().unwrap().remove("parentReference");
    }
    if it.package {
        v["package"] = json!({"type": "oneNote"});
    } else if it.folder {
        v["folder"] = json!({"childCount": 0});
    } else {
        v["size"] = json!(it.content.len());
        v["file"] = json!({"mimeType": "application/octet-stream", "hashes": {"quickXorHash": quick_xor_hash(&it.content)}});
        if with_ctag {
            v["cTag"] = json!(format!("\"c:{{{}}},{}\"", it.id, it.ctag));
        }
    }
    v
}

/// Tokens: `e<epoch>.s<since>` (a delta link) and `e<epoch>.s<since>.u<upto>.o<offset>`
/// (a next link inside one round).
fn delta_page(
    s: &mut St,
    d: &str,
    token: Option<String>,
    q: &HashMap<String, String>,
    sharing: bool,
    removed: bool,
) -> Response {
    let Some(drive) = s.drives.iter().find(|x| x.id == d) else {
        return graph_error(StatusCode::NOT_FOUND, "itemNotFound", "drive not found");
    };
    let (since, upto, offset) = match token.as_deref() {
        None => (0, s.seq, 0),
        Some("latest") => (s.seq, s.seq, 0),
        Some(t) => {
            let f: Vec<&str> = t.split('.').collect();
            let num = |p: &str, k: char| p.strip_prefix(k).and_then(|x| x.parse::<u64>().ok());
            let epoch = f.first().and_then(|p| num(p, 'e'));
            let since = f.get(1).and_then(|p| num(p, 's'));
            let (Some(epoch), Some(since)) = (epoch, since) else {
                return graph_error(StatusCode::BAD_REQUEST, "invalidRequest", "Invalid token");
            };
            if epoch != s.epoch {
                let loc = format!("{}/drives/{d}/root/delta", s.base);
                let mut r = graph_error(
                    StatusCode::GONE,
                    "resyncRequired",
                    "Resync required. Replace any local items with the server's version (including deletes) if you're sure that the service was up to date with your local changes when you last sync'd.",
                );
                r.headers_mut()
                    .insert(header::LOCATION, HeaderValue::from_str(&loc).unwrap());
                return r;
            }
            let upto = f.get(2).and_then(|p| num(p, 'u')).unwrap_or(s.seq);
            let offset = f.get(3).and_then(|p| num(p, 'o')).unwrap_or(0);
            (since, upto, offset as usize)
        }
    };
    // the changed items, parents first (by depth), each once in its latest state
    let depth = |it: &Item| {
        let mut n = 0;
        let mut p = it.parent.clone();
        while let Some(x) = p {
            n += 1;
            p = drive.items.get(&x).and_then(|i| i.parent.clone());
        }
        n
    };
    // a full enumeration: every live item in its latest state; a round of changes: the
    // items changed in (since, upto] and their live ancestor folders
    let mut changed: Vec<&Item> = if since == 0 {
        drive
            .items
            .values()
            .filter(|it| !it.deleted && !it.hidden)
            .collect()
    } else {
        let mut v: Vec<&Item> = drive
            .items
            .values()
            .filter(|it| it.seq > since && it.seq <= upto)
            .filter(|it| removed || !it.hidden)
            .collect();
        let mut ancestors = Vec::new();
        for it in &v {
            let mut p = it.parent.clone();
            while let Some(x) = p {
                match drive.items.get(&x) {
                    Some(a) if !a.deleted => {
                        ancestors.push(a);
                        p = a.parent.clone();
                    }
                    _ => break,
                }
            }
        }
        for a in ancestors {
            if !v.iter().any(|x| x.id == a.id) {
                v.push(a);
            }
        }
        v
    };
    if s.children_first {
        changed.sort_by_key(|it| (std::cmp::Reverse(depth(it)), it.id.clone()));
    } else {
        changed.sort_by_key(|it| (depth(it), it.id.clone()));
    }
    let top = q
        .get("$top")
        .and_then(|t| t.parse::<usize>().ok())
        .unwrap_or(usize::MAX)
        .min(s.page_size);
    let mut pages: Vec<Vec<&Item>> = changed.chunks(top).map(|c| c.to_vec()).collect();
    if pages.is_empty() {
        pages.push(Vec::new());
    }
    if s.empty_page && pages.len() > 1 {
        pages.insert(1, Vec::new());
    }
    let page = offset.min(pages.len() - 1);
    let value: Vec<Value> = pages[page]
        .iter()
        .map(|it| {
            let mut v = item_json(&drive.id, it, false);
            if sharing && it.shared_seq == it.seq && !it.deleted {
                v["@microsoft.graph.sharedChanged"] = json!("True");
            }
            v
        })
        .collect();
    let base = format!("{}/drives/{d}/root/delta", s.base);
    let select = q
        .get("$select")
        .map(|x| format!("&%24select={}", x.replace(',', "%2C")))
        .unwrap_or_default();
    let mut body = json!({"value": value});
    if page + 1 < pages.len() {
        let mut link = format!(
            "{base}?token=e{}.s{since}.u{upto}.o{}{select}",
            s.epoch,
            page + 1
        );
        if let Some(host) = &s.foreign_next_link {
            let own = s.base.trim_end_matches("/v1.0");
            link = link.replacen(own, host, 1);
        }
        body["@odata.nextLink"] = json!(link);
    } else {
        body["@odata.deltaLink"] = json!(format!("{base}?token=e{}.s{upto}{select}", s.epoch));
    }
    json_ok(body)
}

fn token(s: &mut St, path: &str, h: &HeaderMap, body: &[u8]) -> Response {
    let echo = if s.echo_token_requests {
        format!(" (request: {})", String::from_utf8_lossy(body))
    } else {
        String::new()
    };
    let err = |status: StatusCode, code: &str, aad: &str, desc: &str| {
        (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            json!({"error": code, "error_description": format!("{aad}: {desc}{echo}"), "error_codes": [aad.trim_start_matches("AADSTS").parse::<u64>().unwrap_or(0)]}).to_string(),
        )
            .into_response()
    };
    if !path.starts_with(&format!("/{TENANT}/")) {
        return err(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "AADSTS90002",
            "Tenant not found.",
        );
    }
    let form: HashMap<String, String> = form_urlencoded::parse(body).into_owned().collect();
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return err(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "AADSTS70003",
            "The app requested an unsupported grant type.",
        );
    }
    if form.get("scope").map(String::as_str) != Some("https://graph.microsoft.com/.default") {
        return err(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "AADSTS70011",
            "The provided value for scope is not valid.",
        );
    }
    let basic = h
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .map(str::to_string);
    if form.get("client_assertion_type").map(String::as_str)
        == Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    {
        let jwt = form.get("client_assertion").cloned().unwrap_or_default();
        if let Err((aad, desc)) = verify_assertion(s, &jwt, form.get("client_id")) {
            return err(StatusCode::UNAUTHORIZED, "invalid_client", aad, &desc);
        }
        return issue(s);
    }
    let (id, secret) = match (form.get("client_id"), form.get("client_secret"), basic) {
        (Some(id), Some(sec), _) => (id.clone(), sec.clone()),
        (_, _, Some(_b)) => (CLIENT_ID.to_string(), String::new()),
        _ => {
            return err(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "AADSTS900144",
                "The request body must contain the client_secret or client_assertion parameter.",
            );
        }
    };
    if id != CLIENT_ID {
        return err(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            "AADSTS700016",
            "Application not found in the directory.",
        );
    }
    if secret != CLIENT_SECRET {
        return err(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "AADSTS7000215",
            "Invalid client secret provided.",
        );
    }
    issue(s)
}

fn issue(s: &mut St) -> Response {
    s.issued += 1;
    let tok = format!("fake-token-{}-{}", s.issued, s.next_id);
    s.next_id += 1;
    s.tokens.insert(tok.clone(), Instant::now() + s.token_ttl);
    json_ok(
        json!({"token_type": "Bearer", "expires_in": s.token_ttl.as_secs(), "ext_expires_in": s.token_ttl.as_secs(), "access_token": tok}),
    )
}

async fn download_handler(State(st): State<Arc<Mutex<St>>>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    let uri = parts.uri.to_string();
    let mut s = st.lock().unwrap();
    let r = download(&mut s, &parts.uri, &parts.headers);
    log(
        &mut s,
        "download",
        &parts.method,
        &uri,
        &parts.headers,
        r.status().as_u16(),
    );
    r
}

fn download(s: &mut St, uri: &axum::http::Uri, h: &HeaderMap) -> Response {
    if h.contains_key(header::AUTHORIZATION) {
        s.violations.push(format!(
            "Authorization header sent to the download host: {uri}"
        ));
        return StatusCode::BAD_REQUEST.into_response();
    }
    let opaque = uri.path().trim_start_matches("/download/").to_string();
    let Some((d, i, exp)) = s.downloads.get(&opaque).cloned() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if Instant::now() > exp {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let Some((_, it)) = find(s, &d, &i) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let total = it.content.len();
    let range = h
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.split_once('-'))
        .and_then(|(a, b)| {
            let a: usize = a.parse().ok()?;
            let b: usize = if b.is_empty() {
                total.saturating_sub(1)
            } else {
                b.parse().ok()?
            };
            Some((a, b.min(total.saturating_sub(1))))
        });
    let (status, start, end) = match range {
        Some((a, _)) if a >= total && total > 0 => {
            return (
                StatusCode::RANGE_NOT_SATISFIABLE,
                [(header::CONTENT_RANGE, format!("bytes */{total}"))],
            )
                .into_response();
        }
        Some((a, b)) if !s.ignore_range => (StatusCode::PARTIAL_CONTENT, a, b + 1),
        _ => (StatusCode::OK, 0, total),
    };
    let mut bytes = it.content[start..end.max(start)].to_vec();
    if s.corrupt_downloads > 0 && !bytes.is_empty() {
        s.corrupt_downloads -= 1;
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x20;
    }
    let declared = bytes.len();
    // the knob applies to the next download longer than its cut
    let cut = match s.cut_next_download_after {
        Some(n) if n < bytes.len() => s.cut_next_download_after.take(),
        _ => None,
    };
    if let Some(n) = cut {
        bytes.truncate(n);
    }
    let slow = match s.slow_download {
        Some((n, _)) if n < bytes.len() && cut.is_none() => s.slow_download.take(),
        _ => None,
    };
    let mut headers = vec![
        (header::CONTENT_TYPE, "application/octet-stream".to_string()),
        (header::ACCEPT_RANGES, "bytes".to_string()),
    ];
    if status == StatusCode::PARTIAL_CONTENT {
        headers.push((
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{total}", end - 1),
        ));
    }
    let body = if cut.is_some() {
        // declare the whole length, send part of it, then drop the connection
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(2);
        tokio::spawn(async move {
            let _ = tx.send(Ok(bytes)).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            let _ = tx
                .send(Err(std::io::Error::other("connection cut by the fake")))
                .await;
        });
        Body::from_stream(tokio_stream_from(rx))
    } else if let Some((n, stall)) = slow {
        // part of the body, then nothing for `stall`, then the rest
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(2);
        tokio::spawn(async move {
            let rest = bytes.split_off(n);
            let _ = tx.send(Ok(bytes)).await;
            tokio::time::sleep(stall).await;
            let _ = tx.send(Ok(rest)).await;
        });
        Body::from_stream(tokio_stream_from(rx))
    } else {
        Body::from(bytes)
    };
    let mut r = (status, body).into_response();
    for (k, v) in headers {
        r.headers_mut()
            .insert(k, HeaderValue::from_str(&v).unwrap());
    }
    r.headers_mut().insert(
        header::CONTENT_LENGTH,
        HeaderValue::from_str(&declared.to_string()).unwrap(),
    );
    r
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
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
