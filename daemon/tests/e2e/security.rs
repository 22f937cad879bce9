//! The admin API as an attacker on loopback meets it, through the real daemon: every
//! method on every route without a token and with too low a role (fail closed, HEAD
//! included), bounded metrics labels, slow and idle connections, connection caps,
//! oversize and stalled bodies, rate limits, file names no header can carry, ranges it
//! does not serve, and errors that stay in the envelope.

use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tributary_api::{Access, ROUTES};
use tributary_config::Role;

use crate::common::*;

const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "ZZTOP",
];

/// A daemon over one local folder holding `files`, with `api` added to its `api:`
/// section; its first job done when `wait_first_job`.
async fn daemon_with(
    files: &[(&str, &[u8])],
    api: &str,
    wait_first_job: bool,
) -> (tempfile::TempDir, Running) {
    daemon_configured(files, api, "", "", wait_first_job).await
}

/// As [`daemon_with`], with `connector` (keys of the connector) and `extra` (top-level
/// sections) added to the file.
async fn daemon_configured(
    files: &[(&str, &[u8])],
    api: &str,
    connector: &str,
    extra: &str,
    wait_first_job: bool,
) -> (tempfile::TempDir, Running) {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    for (name, data) in files {
        std::fs::write(src.join(name), data).unwrap();
    }
    let port = free_port();
    let cfg = config(dir.path(), port, "", &local_connector(connector), extra);
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "  max_body_size: 4KiB\n",
        &format!("  max_body_size: 4KiB\n{api}"),
    );
    std::fs::write(&cfg, text).unwrap();
    let d = Running::start(&cfg, port, &[]);
    if wait_first_job {
        let job = d.latest_job("docs").await;
        assert_eq!(job["status"], "succeeded", "{job}");
    }
    (dir, d)
}

fn concrete(path: &str) -> String {
    if path.starts_with("/api/v1/connectors/") {
        path.replace("{id}", "docs")
    } else {
        path.replace("{id}", "1")
    }
}

/// The access the table gives (method, path); `None` when the pair is not in it.
fn listed(method: &str, path: &str) -> Option<Access> {
    let m = if method == "HEAD" { "GET" } else { method };
    ROUTES
        .iter()
        .find(|r| r.method == m && r.path == path)
        .map(|r| r.access)
}

async fn send(
    d: &Running,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut req = d
        .http
        .request(method.parse().unwrap(), d.url(path))
        .timeout(Duration::from_secs(20));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.unwrap())
}

fn assert_refused(
    method: &str,
    path: &str,
    got: &(u16, reqwest::header::HeaderMap, String),
    status: u16,
    code: &str,
) {
    assert_eq!(got.0, status, "{method} {path}: {}", got.2);
    if method == "HEAD" {
        assert!(got.2.is_empty());
        assert!(got.1.contains_key("x-request-id"), "{method} {path}");
        assert!(
            !got.1.contains_key("content-disposition"),
            "{method} {path} tells nothing of the item"
        );
    } else {
        assert_envelope(got.0, &got.1, &got.2, code);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_method_on_every_route_fails_closed_and_metrics_labels_stay_bounded() {
    let (_dir, d) = daemon_with(
        &[("a.txt", b"alpha bravo"), ("b.txt", b"charlie")],
        "",
        true,
    )
    .await;
    let mut checked = 0;
    for route in ROUTES {
        let path = concrete(route.path);
        for method in METHODS {
            let access = listed(method, route.path);
            // no token: only the open routes answer, and only to their own method
            let got = send(&d, method, &path, None).await;
            if access == Some(Access::Open) {
                assert!(
                    got.0 != 401 && got.0 != 403 && got.0 != 405,
                    "{method} {path}: {}",
                    got.0
                );
            } else if let Some(Access::InBand(_)) = access {
                // authenticated after the WebSocket upgrade; without one, nothing
                assert_refused(method, &path, &got, 426, "UPGRADE_REQUIRED");
            } else {
                assert_refused(method, &path, &got, 401, "AUTH_TOKEN_INVALID");
                assert!(got.1.contains_key("www-authenticate"), "{method} {path}");
            }
            // a token whose role is too low
            for (token, role) in [(VIEWER, Role::Viewer), (OPERATOR, Role::Operator)] {
                if let Some(Access::Needs(need)) = access
                    && need > role
                {
                    let got = send(&d, method, &path, Some(token)).await;
                    assert_refused(method, &path, &got, 403, "AUTHZ_FORBIDDEN");
                }
            }
            // a method the route does not have: 405 once authenticated
            if access.is_none() {
                let got = send(&d, method, &path, Some(ADMIN)).await;
                assert_refused(method, &path, &got, 405, "METHOD_NOT_ALLOWED");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, ROUTES.len() * METHODS.len());
    // what HEAD used to give away without a token
    let (s, h, _) = send(&d, "HEAD", "/api/v1/items/1/content", None).await;
    assert_eq!(s, 401);
    assert!(!h.contains_key("content-disposition"));
    let a = send(&d, "HEAD", "/api/v1/items?prefix=/docs/a", None).await;
    let b = send(&d, "HEAD", "/api/v1/items?prefix=/nope", None).await;
    assert_eq!((a.0, b.0), (401, 401));
    assert_eq!(a.1.get("content-length"), b.1.get("content-length"));
    // with a token HEAD answers as GET does, without the body
    let (s, h, body) = send(&d, "HEAD", "/api/v1/items/1/content", Some(VIEWER)).await;
    assert_eq!(s, 200);
    assert!(body.is_empty());
    assert!(h["content-disposition"].to_str().unwrap().contains(".txt"));
    // unknown paths need a token too, then are 404
    let got = send(&d, "GET", "/api/v1/nothing/here", None).await;
    assert_refused(
        "GET",
        "/api/v1/nothing/here",
        &got,
        401,
        "AUTH_TOKEN_INVALID",
    );
    let got = send(&d, "GET", "/elsewhere", Some(VIEWER)).await;
    assert_refused("GET", "/elsewhere", &got, 404, "ROUTE_NOT_FOUND");

    // made-up methods and paths do not grow the metrics
    let series = |text: &str| {
        text.lines()
            .filter(|l| l.starts_with("tributary_api_requests_total{"))
            .count()
    };
    let before = series(&d.get_text("/api/v1/metrics").await);
    for i in 0..300 {
        send(&d, &format!("ZZ{i}"), "/api/v1/health", None).await;
        send(&d, "GET", &format!("/api/v1/x{i}"), Some(VIEWER)).await;
    }
    let after = d.get_text("/api/v1/metrics").await;
    assert!(
        series(&after) <= before + 3,
        "{} series before, {} after",
        before,
        series(&after)
    );
    assert!(
        !after.contains("ZZ") && !after.contains("/api/v1/x1"),
        "{after}"
    );
    assert!(after.contains(r#"method="other",route="/api/v1/health",status="4xx""#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_idle_and_excess_connections_are_cut_and_oversize_or_stalled_bodies_refused() {
    let (_dir, d) = daemon_with(
        &[("a.txt", b"alpha")],
        "  header_read_timeout: 1s\n  body_read_timeout: 1s\n  max_connections_per_client: 8\n",
        true,
    )
    .await;
    let addr = format!("127.0.0.1:{}", d.port);
    // slowloris: headers sent a byte at a time never finish; each socket is closed
    let mut slow = Vec::new();
    for _ in 0..6 {
        let addr = addr.clone();
        slow.push(tokio::spawn(async move {
            let started = Instant::now();
            let mut s = TcpStream::connect(&addr).await.unwrap();
            s.write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n")
                .await
                .unwrap();
            for _ in 0..100 {
                if s.write_all(b"X").await.is_err() {
                    break;
                }
                let mut buf = [0u8; 512];
                match tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => break,
                    Ok(Ok(_)) => {} // hyper's 408 before the close
                    Err(_) => {}
                }
            }
            started.elapsed()
        }));
    }
    for t in slow {
        let took = t.await.unwrap();
        assert!(
            took < Duration::from_secs(5),
            "a slow header was cut after {took:?}"
        );
    }
    // more connections from one address than allowed: the excess is closed on accept
    let mut idle = Vec::new();
    for _ in 0..8 {
        idle.push(TcpStream::connect(&addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut extra = TcpStream::connect(&addr).await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(2), extra.read(&mut buf))
        .await
        .expect("the ninth connection is closed at once");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    // the idle ones are cut by the header timeout, and the API answers again
    let started = Instant::now();
    for mut s in idle {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("an idle connection is closed");
        assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    let metrics = d.get_text("/api/v1/metrics").await;
    let refused: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("tributary_api_connections_refused_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(refused >= 1.0, "{metrics}");
    // a kept-alive connection that idles is closed too
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let started = Instant::now();
    loop {
        let mut b = [0u8; 1024];
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut b)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => got.extend_from_slice(&b[..n]),
            Err(_) => panic!("an idle kept-alive connection stayed open"),
        }
    }
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"));
    assert!(started.elapsed() < Duration::from_secs(5));
    // a declared body over the limit is 413 at once, without waiting for it
    let started = Instant::now();
    let answer = raw_request(&addr, &run_request("10737418240", "{}")).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("PAYLOAD_TOO_LARGE"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(2));
    // a body that stalls is 408 after body_read_timeout
    let started = Instant::now();
    let answer = raw_request(&addr, &run_request("20", r#"{"kind":"#)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("BODY_TIMEOUT"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(4));
    assert_eq!(
        d.jobs("connector=docs").await.len(),
        1,
        "no job was started"
    );
}

/// An operator's run request that declares `length` bytes of body and sends `body`.
fn run_request(length: &str, body: &str) -> String {
    format!(
        "POST /api/v1/connectors/docs/runs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {OPERATOR}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n{body}"
    )
}

/// Sends `request` on a new connection and reads until the server closes it or 5 s.
async fn raw_request(addr: &str, request: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let mut b = [0u8; 4096];
        match tokio::time::timeout(Duration::from_millis(500), s.read(&mut b)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => {
                got.extend_from_slice(&b[..n]);
                let text = String::from_utf8_lossy(&got);
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len = head.lines().find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length: ")
                            .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                    });
                    if len.is_some_and(|n| body.len() >= n) {
                        break;
                    }
                }
            }
            Err(_) => {}
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_file_name_downloads_ranges_not_served_are_ignored_and_errors_stay_in_the_envelope() {
    let names: [&str; 5] = [
        "new\nline.txt",
        "ctrl\u{1}char.txt",
        "quote\"d.txt",
        "Café ünïcode.txt",
        "plain.txt",
    ];
    let files: Vec<(&str, &[u8])> = names
        .iter()
        .map(|n| {
            (
                *n,
                if *n == "plain.txt" {
                    &b"0123456789"[..]
                } else {
                    n.as_bytes()
                },
            )
        })
        .collect();
    let (_dir, d) = daemon_with(&files, "", true).await;
    let items = d.get("/api/v1/items?per_page=50").await;
    let mut seen = Vec::new();
    let mut plain = 0;
    for it in items["items"].as_array().unwrap() {
        let id = it["id"].as_i64().unwrap();
        let resp = d
            .http
            .get(d.url(&format!("/api/v1/items/{id}/content")))
            .bearer_auth(VIEWER)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{it}");
        let cd = resp.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .to_string();
        let exact = cd.split("filename*=UTF-8''").nth(1).unwrap();
        let name = String::from_utf8(percent_decode(exact)).unwrap();
        let body = resp.bytes().await.unwrap();
        if name == "plain.txt" {
            plain = id;
            assert_eq!(&body[..], b"0123456789");
        } else {
            assert_eq!(&body[..], name.as_bytes(), "{cd}");
        }
        assert!(cd.is_ascii() && !cd.contains('\n'), "{cd}");
        seen.push(name);
    }
    seen.sort();
    let mut want: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(seen, want);
    // ranges: one bytes range is served; others are ignored (200, whole); past the end 416
    let range = |r: &'static str| {
        let url = d.url(&format!("/api/v1/items/{plain}/content"));
        let http = d.http.clone();
        async move {
            let resp = http
                .get(url)
                .bearer_auth(VIEWER)
                .header("Range", r)
                .send()
                .await
                .unwrap();
            let s = resp.status().as_u16();
            let cr = resp
                .headers()
                .get("content-range")
                .map(|v| v.to_str().unwrap().to_string());
            (s, cr, resp.text().await.unwrap())
        }
    };
    assert_eq!(
        range("bytes=2-4").await,
        (206, Some("bytes 2-4/10".into()), "234".into())
    );
    for ignored in ["items=0-1", "bytes=0-1,4-5", "bytes=5-2", "bytes=x-"] {
        assert_eq!(
            range(ignored).await,
            (200, None, "0123456789".into()),
            "{ignored}"
        );
    }
    let (s, cr, body) = range("bytes=10-").await;
    assert_eq!((s, cr.as_deref()), (416, Some("bytes */10")));
    assert!(body.contains("RANGE_NOT_SATISFIABLE"));
    // the router's own errors use the envelope
    for (path, status, code) in [
        ("/api/v1/jobs/%ff", 400, "INVALID_PATH"),
        ("/api/v1/jobs?page=%ff", 400, "INVALID_QUERY"),
        (
            &*format!("/api/v1/jobs?connector={}", "x".repeat(10_000)),
            414,
            "URI_TOO_LONG",
        ),
    ] {
        let (s, h, b) = d.call("GET", path, Some(VIEWER), None).await;
        assert_eq!(s, status, "{b}");
        assert_envelope(s, &h, &b, code);
    }
    // and so do the answers of the HTTP parser itself, before the router runs
    let addr = format!("127.0.0.1:{}", d.port);
    for (request, status, code) in [
        (
            format!(
                "GET /api/v1/jobs?c={} HTTP/1.1\r\nHost: x\r\n\r\n",
                "x".repeat(70_000)
            ),
            414,
            "URI_TOO_LONG",
        ),
        (
            format!(
                "GET /api/v1/jobs HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
                "y".repeat(150_000)
            ),
            431,
            "HEADERS_TOO_LARGE",
        ),
        (
            "GET /api/v1/jobs HTTP/1.1\r\nBad Header\r\n\r\n".into(),
            400,
            "BAD_REQUEST",
        ),
        ("G\x01T / HTTP/1.1\r\n\r\n".into(), 400, "BAD_REQUEST"),
    ] {
        let answer = raw_request(&addr, &request).await;
        let (head, body) = answer
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("{answer:?}"));
        assert!(
            head.starts_with(&format!("HTTP/1.1 {status} ")),
            "{}: {head}",
            &request[..40]
        );
        let head = head.to_ascii_lowercase();
        assert!(head.contains("content-type: application/json"), "{head}");
        assert!(head.contains("x-request-id: "), "{head}");
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"]["code"], code, "{body}");
    }
    // bodies: JSON objects sent as JSON; no body needs no type
    let post = |body: Option<(&'static str, &'static str)>| {
        let mut req = d
            .http
            .post(d.url("/api/v1/connectors/docs/runs"))
            .bearer_auth(OPERATOR);
        if let Some((ctype, b)) = body {
            req = req.header("Content-Type", ctype).body(b);
        }
        async move {
            let resp = req.send().await.unwrap();
            let s = resp.status().as_u16();
            let h = resp.headers().clone();
            (s, h, resp.text().await.unwrap())
        }
    };
    for (body, status, code) in [
        (("application/json", "[]"), 422, "INVALID_BODY"),
        (("application/json", "\"full\""), 422, "INVALID_BODY"),
        (("text/plain", "{}"), 415, "UNSUPPORTED_MEDIA_TYPE"),
        (
            ("application/x-www-form-urlencoded", "kind=full"),
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (
            ("application/json", r#"{"kind":"full","extra":1}"#),
            422,
            "INVALID_BODY",
        ),
        (("application/json", "{"), 422, "INVALID_BODY"),
        // whitespace is not a JSON document; only an empty body means "no body"
        (("application/json", "\n"), 422, "INVALID_BODY"),
        (("application/json", "  "), 422, "INVALID_BODY"),
    ] {
        let (s, h, b) = post(Some(body)).await;
        assert_eq!(s, status, "{body:?}: {b}");
        assert_envelope(s, &h, &b, code);
    }
    assert_eq!(
        d.jobs("connector=docs").await.len(),
        1,
        "none of those started a job"
    );
    let (s, _, b) = post(None).await;
    assert_eq!(s, 202, "{b}");
    d.latest_job("docs").await;
    let (s, _, b) = post(Some((
        "application/json; charset=utf-8",
        r#"{"kind":"full"}"#,
    )))
    .await;
    assert_eq!(s, 202, "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_per_principal_and_failed_authentications_per_address() {
    let (_dir, d) = daemon_with(
        &[("a.txt", b"alpha")],
        "  rate_limits:\n    read: 5/minute\n    write: 2/minute\n",
        false,
    )
    .await;
    let mut remaining = Vec::new();
    for i in 0..6 {
        let (s, h, b) = send(&d, "GET", "/api/v1/jobs", Some(ADMIN)).await;
        if i < 5 {
            assert_eq!(s, 200, "{b}");
            assert_eq!(h["x-ratelimit-limit"], "5");
            remaining.push(h["x-ratelimit-remaining"].to_str().unwrap().to_string());
            assert!(
                h["x-ratelimit-reset"]
                    .to_str()
                    .unwrap()
                    .parse::<u64>()
                    .unwrap()
                    <= 60
            );
        } else {
            assert_refused(
                "GET",
                "/api/v1/jobs",
                &(s, h.clone(), b.clone()),
                429,
                "RATE_LIMITED",
            );
            let v: Value = serde_json::from_str(&b).unwrap();
            let wait = v["error"]["details"]["wait_seconds"].as_u64().unwrap();
            assert!((1..=60).contains(&wait), "{b}");
            assert_eq!(h["retry-after"].to_str().unwrap(), wait.to_string());
            assert_eq!(h["x-ratelimit-remaining"], "0");
        }
    }
    assert_eq!(remaining, ["4", "3", "2", "1", "0"]);
    // another principal has its own allowance; writes have theirs
    assert_eq!(send(&d, "GET", "/api/v1/jobs", Some(OPERATOR)).await.0, 200);
    for expect in [200, 200, 429] {
        let (s, _, b) = send(&d, "POST", "/api/v1/connectors/docs/pause", Some(OPERATOR)).await;
        assert_eq!(s, expect, "{b}");
    }
    // open routes count only against the address's own (generous) limit
    let (s, h, _) = send(&d, "GET", "/api/v1/health", None).await;
    assert_eq!(s, 200);
    assert!(h.contains_key("x-ratelimit-limit"));
    // failed authentications: 50 a minute from one address, then 429 for every
    // request with credentials from it, a right token included (loopback too)
    for i in 0..50 {
        let (s, _, b) = send(
            &d,
            "GET",
            "/api/v1/jobs",
            Some(&format!("guess-{i:04}-xxxxxxxxxxxx")),
        )
        .await;
        assert_eq!(s, 401, "attempt {i}: {b}");
    }
    let got = send(&d, "GET", "/api/v1/jobs", Some("guess-0050-xxxxxxxxxxxx")).await;
    assert_refused("GET", "/api/v1/jobs", &got, 429, "RATE_LIMITED");
    assert!(got.1.contains_key("retry-after"));
    let got = send(&d, "GET", "/api/v1/connectors", Some(VIEWER)).await;
    assert_refused("GET", "/api/v1/connectors", &got, 429, "RATE_LIMITED");
    assert_eq!(send(&d, "GET", "/api/v1/health", None).await.0, 200);
    // each failure is logged with the address, never with the token
    let log = d.log();
    assert!(log.matches("authentication failed").count() >= 50, "{log}");
    assert!(log.contains("127.0.0.1"), "{log}");
    assert!(
        !log.contains("guess-00"),
        "a presented token is never logged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_connect_tokens_of_a_real_provider_are_verified_mapped_and_rotated() {
    use tributary_testkit::oidc::OidcProvider;
    let mut idp = OidcProvider::start();
    let api = format!(
        "  oidc:\n    issuer: {}\n    audience: [api://tributary, api://second]\n    role_map: {{ operator: operator, viewer: viewer, Tributary.Admin: admin }}\n    allowed_clients: [ops, reader, admins-es, no-role]\n",
        idp.issuer()
    );
    let (_dir, d) = daemon_with(&[("a.txt", b"alpha")], &api, true).await;
    let reader = idp.token("reader", None).await;
    let ops = idp.token("ops", None).await;
    let admin_es = idp.token("admins-es", Some("api://second")).await;
    // roles from the claim, through the map; ES256 and RS256 alike
    assert_eq!(send(&d, "GET", "/api/v1/jobs", Some(&reader)).await.0, 200);
    let got = send(&d, "POST", "/api/v1/connectors/docs/pause", Some(&reader)).await;
    assert_refused("POST", "pause", &got, 403, "AUTHZ_FORBIDDEN");
    let (s, _, b) = send(&d, "POST", "/api/v1/connectors/docs/pause", Some(&ops)).await;
    assert_eq!(s, 200, "{b}");
    let got = send(&d, "POST", "/api/v1/config/reload", Some(&ops)).await;
    assert_refused("POST", "reload", &got, 403, "AUTHZ_FORBIDDEN");
    let (s, _, b) = send(&d, "POST", "/api/v1/config/reload", Some(&admin_es)).await;
    assert_eq!(s, 200, "{b}");
    // a token that grants no role here, and a client not allowed
    let got = send(
        &d,
        "GET",
        "/api/v1/jobs",
        Some(&idp.token("no-role", None).await),
    )
    .await;
    assert_refused("GET", "jobs", &got, 403, "AUTHZ_FORBIDDEN");
    let refused = |got: &(u16, reqwest::header::HeaderMap, String), why: &str| {
        assert_refused("GET", "jobs", got, 401, "AUTH_TOKEN_INVALID");
        assert!(got.2.contains(why), "{why}: {}", got.2);
    };
    refused(
        &send(
            &d,
            "GET",
            "/api/v1/jobs",
            Some(&idp.token("stranger", None).await),
        )
        .await,
        "not in api.oidc.allowed_clients",
    );
    // another audience, expired, signed by another key, unsigned
    let other = idp.token("ops", Some("api://other")).await;
    refused(
        &send(&d, "GET", "/api/v1/jobs", Some(&other)).await,
        "another audience",
    );
    let expired = idp.mint("expired").await;
    refused(
        &send(&d, "GET", "/api/v1/jobs", Some(&expired)).await,
        "expired",
    );
    let foreign = idp.mint("foreign").await;
    refused(
        &send(&d, "GET", "/api/v1/jobs", Some(&foreign)).await,
        "signature",
    );
    let none = idp.mint("none").await;
    refused(
        &send(&d, "GET", "/api/v1/jobs", Some(&none)).await,
        "not accepted",
    );
    // key rotation: the provider's new keys are fetched (at most every 10 s) and its
    // old ones stop counting
    idp.restart();
    let rotated = idp.token("ops", None).await;
    assert_ne!(
        rotated.split('.').next(),
        ops.split('.').next(),
        "a new key id"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (s, _, b) = send(&d, "GET", "/api/v1/jobs", Some(&rotated)).await;
        if s == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the rotated key was never fetched: {b}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    refused(
        &send(&d, "GET", "/api/v1/jobs", Some(&ops)).await,
        "is not one the issuer publishes",
    );
    // static tokens still work beside OIDC; failures name the reason, never the token;
    // actions name who took them
    assert_eq!(send(&d, "GET", "/api/v1/jobs", Some(VIEWER)).await.0, 200);
    let log = d.log();
    assert!(
        log.lines().any(|l| l.contains("api action")
            && l.contains("oidc:ops")
            && l.contains("/api/v1/connectors/{id}/pause")),
        "{log}"
    );
    assert!(log.contains("the token has expired"), "{log}");
    assert!(!log.contains(&expired[..40]), "a token is never logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_driven_fuzzer_finds_no_mismatch_between_the_api_and_its_document() {
    // schemathesis (PyPI), every check on, against the real daemon with vectorization
    // (the real model) so that search and the queue answer too
    let st = std::env::var("TRIBUTARY_SCHEMATHESIS").unwrap_or_else(|_| {
        format!(
            "{}/.cache/tributary/venv/bin/schemathesis",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    assert!(
        std::path::Path::new(&st).exists(),
        "schemathesis not found at {st}: run `bash .ci/run` once or set TRIBUTARY_SCHEMATHESIS"
    );
    let api = "  rate_limits: { client: off, read: off, write: off, failed_auth: off }\n";
    let vectorize = format!(
        "vectorize:\n  embedder: {{ kind: local, model_dir: {} }}\n",
        model_dir().display()
    );
    let files: [(&str, &[u8]); 2] = [
        ("notes.md", b"# Pumps\n\nClean the filter every month.\n"),
        ("b.txt", b"invoice payment terms"),
    ];
    let (dir, d) = daemon_configured(&files, api, "    vectorize: true\n", &vectorize, true).await;
    d.wait_for("search to be ready", 120, async |d| {
        d.call("GET", "/api/v1/search?q=filter", Some(VIEWER), None)
            .await
            .0
            == 200
    })
    .await;
    let seconds = std::env::var("TRIBUTARY_SCHEMATHESIS_SECONDS").unwrap_or_else(|_| "60".into());
    let conf = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/schemathesis/schemathesis.toml"
    );
    let out = tokio::process::Command::new(&st)
        .args(["--config-file", conf, "run"])
        .arg(d.url("/api/v1/openapi.json"))
        .args(["-H", &format!("Authorization: Bearer {ADMIN}")])
        .args(["--checks", "all", "--max-time", &seconds, "-w", "1"])
        // the live event streams never end (a fuzzer waits on them for ever): they are
        // tested by the event tests (events.rs), through SSE and WebSocket clients
        .args(["--exclude-path-regex", "^/api/v1/(events|ws)$"])
        .env("NO_COLOR", "1")
        // its cache (`.schemathesis/`) goes to the test's directory, not the source tree
        .current_dir(dir.path())
        .output()
        .await
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    let summary: String = report
        .lines()
        .skip_while(|l| !l.contains("SUMMARY"))
        .collect::<Vec<_>>()
        .join("\n");
    println!("{summary}");
    assert!(
        out.status.success(),
        "schemathesis found mismatches:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("passed"), "{report}");
    assert!(!d.log().contains("panicked"), "{}", d.log());
}
