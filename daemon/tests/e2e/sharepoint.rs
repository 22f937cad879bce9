//! The SharePoint connector through the real daemon, against the fake Microsoft Graph
//! of `testkit::graph` (token endpoint, delta with opaque links, a separate download
//! host): first and incremental syncs, moves without downloads, 410 resync, throttling,
//! expired tokens, cut downloads and the errors a user sees.

use serde_json::json;
use std::path::{Path, PathBuf};
use tributary_testkit::graph::{self, FakeGraph, Scripted};

use crate::common::*;

fn sp_config(dir: &Path, g: &FakeGraph, api: u16, secret: &str, extra: &str) -> PathBuf {
    std::fs::write(dir.join("graph-secret"), format!("{secret}\n")).unwrap();
    config(
        dir,
        api,
        "",
        &format!(
            "  - id: team\n    kind: sharepoint\n    tenant_id: {}\n    client_id: {}\n    client_secret_file: {}\n    site: contoso.sharepoint.com:/sites/Team\n    graph_url: {}\n    token_url: {}\n    target: /team\n{extra}",
            graph::TENANT,
            graph::CLIENT_ID,
            dir.join("graph-secret").display(),
            g.graph_url,
            g.token_url
        ),
        "",
    )
}

fn content_requests(g: &FakeGraph) -> usize {
    g.requests()
        .iter()
        .filter(|r| r.listener == "graph" && r.uri.ends_with("/content"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_syncs_by_delta_and_restores_byte_for_byte() {
    let g = FakeGraph::start().await;
    let site = g.add_site("contoso.sharepoint.com", "Team");
    let docs = g.add_drive(&site, "Documents");
    let policies = g.add_drive(&site, "Policies");
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
    g.put(&docs, "report.docx", b"quarterly report");
    g.put(&docs, "finance/2026/budget.xlsx", &big);
    g.put(&docs, "finance/2026/notes.txt", b"notes");
    g.put(&docs, "empty.txt", b"");
    g.put(&policies, "travel.pdf", b"travel policy");
    // small pages with an empty one in the middle
    g.set_page_size(2);
    g.set_empty_page(true);
    let dir = tempfile::tempdir().unwrap();
    let api = free_port();
    let cfg = sp_config(dir.path(), &g, api, graph::CLIENT_SECRET, "");
    let d = Running::start(&cfg, api, &[]);
    let job = d.latest_job("team").await;
    assert_eq!(job["status"], "succeeded", "{job}\n{}", d.log());
    assert_eq!(job["progress"]["files_done"], 5, "{job}");
    let out = restore(&cfg, "/team", dir.path());
    assert_eq!(
        std::fs::read(out.join("Documents/report.docx")).unwrap(),
        b"quarterly report"
    );
    assert_eq!(
        std::fs::read(out.join("Documents/finance/2026/budget.xlsx")).unwrap(),
        big
    );
    assert_eq!(std::fs::read(out.join("Documents/empty.txt")).unwrap(), b"");
    assert_eq!(
        std::fs::read(out.join("Policies/travel.pdf")).unwrap(),
        b"travel policy"
    );
    assert!(g.violations().is_empty(), "{:?}", g.violations());
    assert!(
        g.requests()
            .iter()
            .filter(|r| r.listener == "graph" && !r.uri.contains("oauth2"))
            .all(|r| r
                .user_agent
                .as_deref()
                .is_some_and(|u| u.starts_with("NONISV|Tributary|"))),
        "every Graph request is decorated"
    );
    let downloads = content_requests(&g);
    assert_eq!(downloads, 5);

    // nothing changed: the stored delta link answers an empty round, nothing is read
    let job = d.run_and_wait("team", "incremental").await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(content_requests(&g), downloads);
    assert!(
        g.requests().iter().any(|r| r.uri.contains("delta?token=")),
        "later runs GET the stored link"
    );

    // changes: new, modified, metadata only, renamed folder, moved file, deleted file,
    // deleted folder with its files
    g.put(&docs, "new.txt", b"brand new");
    g.put(&docs, "report.docx", b"quarterly report, v2");
    let notes = g.id_of(&docs, "finance/2026/notes.txt");
    g.touch_metadata(&docs, &notes);
    let finance = g.id_of(&docs, "finance");
    g.rename(&docs, &finance, "Finance-Archive");
    let travel = g.id_of(&policies, "travel.pdf");
    let empty = g.id_of(&docs, "empty.txt");
    g.delete(&docs, &empty);
    g.put(&policies, "old/retired.pdf", b"retired");
    g.put(&policies, "archive/readme.txt", b"archive");
    let job = d.run_and_wait("team", "incremental").await;
    assert_eq!(job["status"], "succeeded", "{job}");
    // a folder deleted with its files (only the folder is reported), a file moved
    g.delete(&policies, &g.id_of(&policies, "old"));
    g.move_to(&policies, &travel, &g.id_of(&policies, "archive"));
    let job = d.run_and_wait("team", "incremental").await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let out = restore(&cfg, "/team", dir.path());
    assert_eq!(
        std::fs::read(out.join("Documents/new.txt")).unwrap(),
        b"brand new"
    );
    assert_eq!(
        std::fs::read(out.join("Documents/report.docx")).unwrap(),
        b"quarterly report, v2"
    );
    assert_eq!(
        std::fs::read(out.join("Documents/Finance-Archive/2026/budget.xlsx")).unwrap(),
        big,
        "a renamed folder moves its files"
    );
    assert!(!out.join("Documents/finance").exists());
    assert!(!out.join("Documents/empty.txt").exists());
    assert!(
        !out.join("Policies/old").exists(),
        "a deleted folder takes its files"
    );
    assert!(!out.join("Policies/travel.pdf").exists());
    assert_eq!(
        std::fs::read(out.join("Policies/archive/travel.pdf")).unwrap(),
        b"travel policy",
        "a moved file follows"
    );
    // downloads: new.txt, report v2, retired.pdf, readme.txt; not the renamed,
    // moved or touched files
    assert_eq!(content_requests(&g), downloads + 4);
    assert!(g.violations().is_empty(), "{:?}", g.violations());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resync_throttling_expired_tokens_and_cut_downloads_lose_nothing() {
    let g = FakeGraph::start().await;
    let site = g.add_site("contoso.sharepoint.com", "Team");
    let docs = g.add_drive(&site, "Documents");
    for i in 0..6 {
        g.put(&docs, &format!("f{i}.txt"), format!("file {i}").as_bytes());
    }
    let big: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    g.put(&docs, "big.bin", &big);
    g.cut_next_download_after(300_000);
    let dir = tempfile::tempdir().unwrap();
    let api = free_port();
    let cfg = sp_config(dir.path(), &g, api, graph::CLIENT_SECRET, "");
    let d = Running::start(&cfg, api, &[]);
    let job = d.latest_job("team").await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert!(
        g.requests()
            .iter()
            .any(|r| r.listener == "download" && r.range.as_deref() == Some("bytes=300000-")),
        "the cut download resumed with Range"
    );
    let out = restore(&cfg, "/team", dir.path());
    assert_eq!(std::fs::read(out.join("Documents/big.bin")).unwrap(), big);

    // 410 on the stored link: enumerate again and reconcile
    let f0 = g.id_of(&docs, "f0.txt");
    g.delete(&docs, &f0);
    g.invalidate_delta_links();
    // and throttling: the next delta call is refused for 2 s
    g.script(Scripted {
        method: "GET",
        path_contains: "delta".into(),
        status: 429,
        headers: vec![("Retry-After", "2".into())],
        body: json!({"error": {"code": "activityLimitReached", "message": "The request has been throttled"}}),
    });
    // and the token is revoked: Graph answers 401 once, the client refreshes
    g.revoke_tokens();
    let tokens = g.tokens_issued();
    let job = d.run_and_wait("team", "incremental").await;
    assert_eq!(job["status"], "succeeded", "{job}\n{}", d.log());
    assert!(g.tokens_issued() > tokens, "a 401 forced a new token");
    assert!(
        g.violations().is_empty(),
        "Retry-After was honoured: {:?}",
        g.violations()
    );
    let log = d.get(&format!("/api/v1/jobs/{}/log", job["id"])).await;
    assert!(
        log.to_string().contains("Graph answered 429 Too Many Requests (activityLimitReached): every request to the tenant waits 2."),
        "the throttle wait is in the job log: {log}"
    );
    let out = restore(&cfg, "/team", dir.path());
    assert!(
        !out.join("Documents/f0.txt").exists(),
        "the resync reconciled the delete"
    );
    assert_eq!(
        std::fs::read(out.join("Documents/f1.txt")).unwrap(),
        b"file 1"
    );
    let downloads = content_requests(&g);
    assert_eq!(downloads, 7, "the resync downloaded nothing again");

    // wrong bytes on the wire: the QuickXorHash check fails that file alone, and the
    // next run stores it right
    g.put(&docs, "garbled.txt", b"the bytes Graph says it has");
    g.corrupt_next_downloads(1);
    let job = d.run_and_wait("team", "incremental").await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["error_count"], 1, "{job}");
    let failed = d.get("/api/v1/items?status=failed").await;
    assert!(
        failed.to_string().contains("QuickXorHash") || failed.to_string().contains("quickXorHash"),
        "{failed}"
    );
    let job = d.run_and_wait("team", "incremental").await;
    assert_eq!(job["error_count"], 0, "{job}");
    let out = restore(&cfg, "/team", dir.path());
    assert_eq!(
        std::fs::read(out.join("Documents/garbled.txt")).unwrap(),
        b"the bytes Graph says it has"
    );

    // a file whose download fails is retried by a later run, although delta no longer
    // names it
    g.put(&docs, "flaky.txt", b"flaky");
    g.script(Scripted {
        method: "GET",
        path_contains: "/content".into(),
        status: 403,
        headers: vec![],
        body: json!({"error": {"code": "accessDenied", "message": "Access denied"}}),
    });
    let job = d.run_and_wait("team", "incremental").await;
    assert_eq!(job["error_count"], 1, "{job}");
    let job = d.run_and_wait("team", "incremental").await;
    assert_eq!(job["error_count"], 0, "{job}");
    let out = restore(&cfg, "/team", dir.path());
    assert_eq!(
        std::fs::read(out.join("Documents/flaky.txt")).unwrap(),
        b"flaky"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_or_site_is_a_clear_error() {
    let g = FakeGraph::start().await;
    let site = g.add_site("contoso.sharepoint.com", "Team");
    g.add_drive(&site, "Documents");
    let dir = tempfile::tempdir().unwrap();
    let wrong = "not-the-secret-0042";
    let cfg = sp_config(dir.path(), &g, free_port(), wrong, "");
    let out = std::process::Command::new(BIN)
        .args(["once", "-c", cfg.to_str().unwrap(), "team"])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("invalid_client") && text.contains("AADSTS7000215"),
        "{text}"
    );
    assert!(!text.contains(wrong), "the secret never shows: {text}");
    assert_eq!(g.tokens_issued(), 0);
    // a library that does not exist
    let cfg = sp_config(
        dir.path(),
        &g,
        free_port(),
        graph::CLIENT_SECRET,
        "    drives: [Archive]\n",
    );
    let out = std::process::Command::new(BIN)
        .args(["check", "--connect", "-c", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("library `Archive` not found") && text.contains("Documents"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_echoed_back_by_the_token_endpoint_is_masked_wherever_the_error_goes() {
    let g = FakeGraph::start().await;
    let site = g.add_site("contoso.sharepoint.com", "Team");
    g.add_drive(&site, "Documents");
    g.echo_token_requests_in_errors();
    let dir = tempfile::tempdir().unwrap();
    // characters that a form body encodes, so the echo is not the secret as configured
    let wrong = "wrong+secret/echoed=back&0042";
    let port = free_port();
    let cfg = sp_config(dir.path(), &g, port, wrong, "");
    // the CLI's error
    let out = std::process::Command::new(BIN)
        .args(["once", "-c", cfg.to_str().unwrap(), "team"])
        .output()
        .unwrap();
    let cli = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{cli}");
    assert!(
        cli.contains("AADSTS7000215") && cli.contains("client_secret=[REDACTED]"),
        "the server's echo is shown, masked: {cli}"
    );
    // the daemon's job, its log, the API and the daemon's own log
    let d = Running::start(&cfg, port, &[]);
    d.wait_for("the first job to fail", 60, async |d| {
        d.jobs("connector=team")
            .await
            .iter()
            .any(|j| j["status"] == "failed")
    })
    .await;
    let job = d.latest_job("team").await;
    let last_error = job["last_error"].as_str().unwrap_or_default().to_string();
    assert!(
        last_error.contains("invalid_client") && last_error.contains("[REDACTED]"),
        "{job}"
    );
    let texts = [
        cli,
        last_error,
        d.get(&format!("/api/v1/jobs/{}/log", job["id"]))
            .await
            .to_string(),
        d.get("/api/v1/connectors/team").await.to_string(),
        d.get("/api/v1/jobs?connector=team").await.to_string(),
        d.log(),
    ];
    assert!(
        texts[5].contains("invalid_client"),
        "the daemon logged the failure: {}",
        texts[5]
    );
    for t in &texts {
        assert!(
            !t.contains("echoed"),
            "no form of the secret is shown or stored: {t}"
        );
    }
}

/// An RSA key, a self-signed certificate for it and its public key, made by openssl.
fn certificate(dir: &Path, name: &str) -> (PathBuf, PathBuf, String, String) {
    let key = dir.join(format!("{name}.key"));
    let cert = dir.join(format!("{name}.crt"));
    let ok = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
        ])
        .arg(format!("/CN=tributary-{name}"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let public = std::process::Command::new("openssl")
        .args(["x509", "-pubkey", "-noout", "-in"])
        .arg(&cert)
        .output()
        .unwrap();
    assert!(public.status.success());
    (
        cert.clone(),
        key,
        std::fs::read_to_string(&cert).unwrap(),
        String::from_utf8(public.stdout).unwrap(),
    )
}

fn cert_config(dir: &Path, g: &FakeGraph, api: u16, cert: &Path, key: &Path) -> PathBuf {
    config(
        dir,
        api,
        "",
        &format!(
            "  - id: team\n    kind: sharepoint\n    tenant_id: {}\n    client_id: {}\n    certificate_file: {}\n    private_key_file: {}\n    site: contoso.sharepoint.com:/sites/Team\n    graph_url: {}\n    token_url: {}\n    target: /team\n",
            graph::TENANT,
            graph::CLIENT_ID,
            cert.display(),
            key.display(),
            g.graph_url,
            g.token_url
        ),
        "",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_credentials_sign_a_fresh_assertion_for_every_token() {
    let g = FakeGraph::start().await;
    let site = g.add_site("contoso.sharepoint.com", "Team");
    let docs = g.add_drive(&site, "Documents");
    g.put(&docs, "a.txt", b"signed in with a certificate");
    g.set_token_ttl(std::time::Duration::from_secs(2));
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, cert_pem, public_pem) = certificate(dir.path(), "app");
    g.register_certificate(&cert_pem, &public_pem);
    let api = free_port();
    let cfg = cert_config(dir.path(), &g, api, &cert, &key);
    let d = Running::start(&cfg, api, &[]);
    let job = d.latest_job("team").await;
    assert_eq!(job["status"], "succeeded", "{job}");
    // Several token lifetimes later, each refresh carried a newly signed assertion
    // (the fake refuses a replayed jti and an expired assertion).
    for i in 0..3 {
        tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
        g.put(&docs, &format!("b{i}.txt"), format!("later {i}").as_bytes());
        let job = d.run_and_wait("team", "incremental").await;
        assert_eq!(job["status"], "succeeded", "{job}");
    }
    assert!(g.tokens_issued() >= 4, "{}", g.tokens_issued());
    assert_eq!(g.assertions_accepted() as u64, g.tokens_issued());
    let out = restore(&cfg, "/team", dir.path());
    assert_eq!(
        std::fs::read(out.join("Documents/b2.txt")).unwrap(),
        b"later 2"
    );
    drop(d);

    // A certificate the app does not know: a clear error, no key material anywhere.
    let (other_cert, other_key, ..) = certificate(dir.path(), "other");
    let api = free_port();
    let cfg = cert_config(dir.path(), &g, api, &other_cert, &other_key);
    let d = Running::start(&cfg, api, &[]);
    let job = d.run_and_wait("team", "full").await;
    assert_eq!(job["status"], "failed", "{job}");
    let err = job["last_error"].as_str().unwrap();
    assert!(
        err.contains("invalid_client") && err.contains("AADSTS700027"),
        "{err}"
    );
    let key_text = std::fs::read_to_string(&other_key).unwrap();
    let key_line = key_text.lines().nth(1).unwrap();
    assert!(
        !d.log().contains(key_line),
        "the private key leaked into the log"
    );
    let (_, _, body) = d
        .call("GET", "/api/v1/connectors/team", Some(VIEWER), None)
        .await;
    assert!(!body.contains(key_line));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_connectors_of_one_tenant_share_its_request_budget() {
    let g = FakeGraph::start().await;
    let site = g.add_site("contoso.sharepoint.com", "Team");
    let docs = g.add_drive(&site, "Documents");
    let archive = g.add_drive(&site, "Archive");
    for i in 0..30 {
        g.put(&docs, &format!("d{i}.txt"), format!("doc {i}").as_bytes());
        g.put(
            &archive,
            &format!("a{i}.txt"),
            format!("old {i}").as_bytes(),
        );
    }
    // 25 Graph requests per 3 s for the app in this tenant; ~70 are needed.
    g.set_rate_limit(25, std::time::Duration::from_secs(3));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("graph-secret"), graph::CLIENT_SECRET).unwrap();
    let connector = |id: &str, drive: &str| {
        format!(
            "  - id: {id}\n    kind: sharepoint\n    tenant_id: {}\n    client_id: {}\n    client_secret_file: graph-secret\n    site: contoso.sharepoint.com:/sites/Team\n    drives: [{drive}]\n    graph_url: {}\n    token_url: {}\n    target: /{id}\n",
            graph::TENANT,
            graph::CLIENT_ID,
            g.graph_url,
            g.token_url
        )
    };
    let api = free_port();
    let cfg = config(
        dir.path(),
        api,
        "",
        &format!(
            "{}{}",
            connector("docs", "Documents"),
            connector("old", "Archive")
        ),
        "",
    );
    let d = Running::start(&cfg, api, &[]);
    for id in ["docs", "old"] {
        let job = d.latest_job(id).await;
        assert_eq!(job["status"], "succeeded", "{job}");
    }
    // Nobody sent a request while the tenant was told to wait, and the RateLimit
    // headers slowed the client down before most refusals.
    assert!(g.violations().is_empty(), "{:?}", g.violations());
    // Every Graph request identifies the client and itself.
    let mut ids = std::collections::HashSet::new();
    for r in g
        .requests()
        .iter()
        .filter(|r| r.listener == "graph" && !r.uri.contains("/oauth2/"))
    {
        let ua = r.user_agent.as_deref().unwrap_or("");
        assert!(ua.starts_with("NONISV|Tributary|tributary/"), "{ua}");
        let id = r.client_request_id.clone().expect("client-request-id");
        assert_eq!(id.len(), 36, "{id}");
        assert!(ids.insert(id), "client-request-id reused");
        if r.uri.contains("/delta") {
            assert_eq!(
                r.prefer.as_deref(),
                Some("deltashowremovedasdeleted"),
                "{}",
                r.uri
            );
        }
    }
    let graph_requests = g
        .requests()
        .iter()
        .filter(|r| r.listener == "graph")
        .count();
    assert!(graph_requests > 60, "{graph_requests}");
    // (Without the RateLimit pacing, 4 to 6 requests are refused here.)
    assert_eq!(g.throttled(), 0, "requests were refused");
    // The waits show in the metrics.
    let (_, _, metrics) = d.call("GET", "/api/v1/metrics", Some(VIEWER), None).await;
    let waited: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("tributary_graph_throttle_wait_seconds_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(waited > 1.0, "{metrics}");
    let out = restore(&cfg, "/", dir.path());
    assert_eq!(
        std::fs::read(out.join("docs/Documents/d29.txt")).unwrap(),
        b"doc 29"
    );
    assert_eq!(
        std::fs::read(out.join("old/Archive/a0.txt")).unwrap(),
        b"old 0"
    );
}

fn grant(kind: &str, id: &str, role: &str) -> serde_json::Value {
    json!({"id": format!("p-{kind}-{id}"), "roles": [role], "grantedToV2": {kind: {"id": id, "displayName": id}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissions_are_captured_and_filter_search_by_principal() {
    let model = model_dir();
    let g = FakeGraph::start().await;
    let site = g.add_site("contoso.sharepoint.com", "Team");
    let docs = g.add_drive(&site, "Documents");
    g.put(
        &docs,
        "salaries.txt",
        b"Salary bands for engineers and managers in 2027.",
    );
    g.put(
        &docs,
        "budget.txt",
        b"The finance budget for the marketing department.",
    );
    g.put(
        &docs,
        "holidays.txt",
        b"Public holidays and the office closing days.",
    );
    let salaries = g.id_of(&docs, "salaries.txt");
    let budget = g.id_of(&docs, "budget.txt");
    let holidays = g.id_of(&docs, "holidays.txt");
    g.set_permissions(
        &docs,
        &salaries,
        vec![
            grant("user", "alice", "read"),
            grant("siteGroup", "7", "owner"),
        ],
    );
    g.set_permissions(
        &docs,
        &budget,
        vec![
            grant("group", "finance", "write"),
            grant("user", "bob", "unknownRole"),
        ],
    );
    g.set_permissions(
        &docs,
        &holidays,
        vec![json!({"id": "link1", "roles": ["read"], "link": {"type": "view", "scope": "organization"}})],
    );
    let dir = tempfile::tempdir().unwrap();
    let api = free_port();
    std::fs::write(dir.path().join("graph-secret"), graph::CLIENT_SECRET).unwrap();
    let cfg = config(
        dir.path(),
        api,
        "",
        &format!(
            "  - id: team\n    kind: sharepoint\n    tenant_id: {}\n    client_id: {}\n    client_secret_file: graph-secret\n    site: contoso.sharepoint.com:/sites/Team\n    graph_url: {}\n    token_url: {}\n    target: /team\n    permissions: true\n    vectorize: true\n",
            graph::TENANT,
            graph::CLIENT_ID,
            g.graph_url,
            g.token_url
        ),
        &format!(
            "vectorize:\n  embedder: {{ kind: local, model_dir: {} }}\n",
            model.display()
        ),
    );
    let d = Running::start(&cfg, api, &[]);
    let job = d.latest_job("team").await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let settled = async |d: &Running| {
        d.wait_for("the index", 120, async |d| {
            let q = d.get("/api/v1/queue").await;
            q["state"] == "ready" && q["pending"] == 0
        })
        .await;
    };
    settled(&d).await;
    let search = async |d: &Running, principal: &str| -> Vec<String> {
        let v = d
            .get(&format!(
                "/api/v1/search?q=documents&k=10&principal={principal}"
            ))
            .await;
        let mut p: Vec<String> = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["path"].as_str().unwrap().to_string())
            .collect();
        p.sort();
        p
    };
    assert_eq!(
        search(&d, "user:alice").await,
        vec!["/team/Documents/salaries.txt"]
    );
    assert_eq!(
        search(&d, "siteGroup:7").await,
        vec!["/team/Documents/salaries.txt"]
    );
    assert_eq!(
        search(&d, "group:finance").await,
        vec!["/team/Documents/budget.txt"]
    );
    assert!(
        search(&d, "user:bob").await.is_empty(),
        "an unknown role grants nothing"
    );
    assert_eq!(
        search(&d, "organization").await,
        vec!["/team/Documents/holidays.txt"]
    );
    assert_eq!(
        search(&d, "user:alice,organization").await,
        vec![
            "/team/Documents/holidays.txt",
            "/team/Documents/salaries.txt"
        ]
    );
    let all = d.get("/api/v1/search?q=documents&k=10").await;
    assert_eq!(all["items"].as_array().unwrap().len(), 3);
    let perm_reads = |g: &FakeGraph| {
        g.requests()
            .iter()
            .filter(|r| r.uri.ends_with("/permissions"))
            .count()
    };
    assert_eq!(perm_reads(&g), 3);
    let delta_prefer = g
        .requests()
        .iter()
        .filter(|r| r.uri.contains("/delta"))
        .all(|r| {
            r.prefer
                .as_deref()
                .is_some_and(|p| p.contains("deltashowsharingchanges"))
        });
    assert!(
        delta_prefer,
        "the sharing Prefer headers are on every delta page"
    );

    // Alice gets the budget too: only that item's permissions are read again, and its
    // content is not downloaded again.
    let downloads = content_requests(&g);
    g.set_permissions(
        &docs,
        &budget,
        vec![
            grant("group", "finance", "write"),
            grant("user", "alice", "read"),
        ],
    );
    let job = d.run_and_wait("team", "incremental").await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(
        perm_reads(&g),
        4,
        "only the changed item's permissions were read"
    );
    assert_eq!(
        content_requests(&g),
        downloads,
        "a sharing change downloads nothing"
    );
    settled(&d).await;
    assert_eq!(
        search(&d, "user:alice").await,
        vec!["/team/Documents/budget.txt", "/team/Documents/salaries.txt"]
    );
    // The app loses access to a file: delta reports it deleted (we ask with
    // deltashowremovedasdeleted), so it leaves the store's current view and the index.
    g.revoke_app_access(&docs, &holidays);
    let job = d.run_and_wait("team", "incremental").await;
    assert_eq!(job["status"], "succeeded", "{job}");
    settled(&d).await;
    assert!(search(&d, "organization").await.is_empty());
    let out = restore(&cfg, "/team", dir.path());
    assert!(!out.join("Documents/holidays.txt").exists());
    assert!(out.join("Documents/budget.txt").exists());
    // The CLI passes principals through.
    let out = std::process::Command::new(BIN)
        .args([
            "search",
            "-c",
            cfg.to_str().unwrap(),
            "--token",
            VIEWER,
            "--principal",
            "group:finance",
            "finance",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("/team/Documents/budget.txt") && !stdout.contains("salaries"),
        "{stdout}"
    );
}

/// Peak resident memory of a process, from /proc.
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drive_of_20000_items_syncs_with_bounded_requests_and_memory() {
    let g = FakeGraph::start().await;
    let site = g.add_site("contoso.sharepoint.com", "Team");
    let docs = g.add_drive(&site, "Documents");
    for i in 0..20_000 {
        g.put(
            &docs,
            &format!("f{:02}/d{:03}/file{i}.txt", i % 20, i % 500),
            format!("content {i}").as_bytes(),
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let api = free_port();
    let cfg = sp_config(dir.path(), &g, api, graph::CLIENT_SECRET, "");
    let d = Running::start(&cfg, api, &[]);
    let mut job = serde_json::Value::Null;
    d.wait_for("the first sync", 600, async |d| {
        match d.jobs("connector=team").await.first() {
            Some(j) if !["queued", "running"].contains(&j["status"].as_str().unwrap()) => {
                job = j.clone();
                true
            }
            _ => false,
        }
    })
    .await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["progress"]["versions_committed"], 20_000, "{job}");
    let reqs = g.requests();
    let graph = reqs.iter().filter(|r| r.listener == "graph").count();
    let downloads = reqs.iter().filter(|r| r.listener == "download").count();
    // one /content per file, 200 items per delta page, a few for the site and drives
    assert_eq!(downloads, 20_000);
    assert!(
        graph <= 20_000 + 20_520 / 200 + 1 + 10,
        "{graph} Graph requests"
    );
    let rss_mib = peak_rss_kib(d.child.id()) / 1024;
    assert!(rss_mib < 400, "peak RSS {rss_mib} MiB");
    // an incremental run with nothing changed: one delta request, no download
    let before = g.requests().len();
    let job = d.run_and_wait("team", "incremental").await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let after: Vec<_> = g.requests().into_iter().skip(before).collect();
    assert!(
        after.iter().all(|r| !r.uri.ends_with("/content")),
        "nothing downloaded"
    );
    assert!(
        after.iter().filter(|r| r.listener == "graph").count() <= 4,
        "{after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissions_are_read_again_on_the_rescan_schedule() {
    let g = FakeGraph::start().await;
    let site = g.add_site("contoso.sharepoint.com", "Team");
    let docs = g.add_drive(&site, "Documents");
    g.put(&docs, "a.txt", b"a");
    g.put(&docs, "b.txt", b"b");
    let a = g.id_of(&docs, "a.txt");
    g.set_permissions(&docs, &a, vec![grant("user", "alice", "read")]);
    let dir = tempfile::tempdir().unwrap();
    let api = free_port();
    let cfg = sp_config(
        dir.path(),
        &g,
        api,
        graph::CLIENT_SECRET,
        "    permissions: true\n    permissions_rescan: 1s\n",
    );
    let d = Running::start(&cfg, api, &[]);
    assert_eq!(d.latest_job("team").await["status"], "succeeded");
    let reads = |g: &FakeGraph| {
        g.requests()
            .iter()
            .filter(|r| r.uri.ends_with("/permissions"))
            .count()
    };
    assert_eq!(reads(&g), 2);
    // Nothing changed, but the rescan interval has passed: every file is read again.
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let job = d.run_and_wait("team", "incremental").await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(reads(&g), 4);
    assert_eq!(
        job["progress"]["versions_committed"], 0,
        "unchanged permissions commit nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_lived_secret_tokens_and_a_link_to_another_host() {
    let g = FakeGraph::start().await;
    let site = g.add_site("contoso.sharepoint.com", "Team");
    let docs = g.add_drive(&site, "Documents");
    for i in 0..5 {
        g.put(&docs, &format!("f{i}.txt"), format!("file {i}").as_bytes());
    }
    g.set_token_ttl(std::time::Duration::from_secs(2));
    let dir = tempfile::tempdir().unwrap();
    let api = free_port();
    let cfg = sp_config(dir.path(), &g, api, graph::CLIENT_SECRET, "");
    let d = Running::start(&cfg, api, &[]);
    assert_eq!(d.latest_job("team").await["status"], "succeeded");
    // Several token lifetimes: every run gets a fresh token before the old one expires.
    for i in 0..3 {
        tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
        g.put(&docs, &format!("later{i}.txt"), b"later");
        let job = d.run_and_wait("team", "incremental").await;
        assert_eq!(job["status"], "succeeded", "{job}");
    }
    assert!(g.tokens_issued() >= 4);
    let unauthorized = g.requests().iter().filter(|r| r.status == 401).count();
    assert_eq!(unauthorized, 0, "no request went out with an expired token");

    // A nextLink to another host is refused: the bearer token stays with Graph.
    let decoy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let decoy_url = format!("http://{}", decoy.local_addr().unwrap());
    decoy.set_nonblocking(true).unwrap();
    g.set_page_size(2);
    g.set_foreign_next_link(Some(&decoy_url));
    g.invalidate_delta_links();
    let job = d.run_and_wait("team", "incremental").await;
    assert_eq!(job["status"], "failed", "{job}");
    let err = job["last_error"].as_str().unwrap();
    assert!(err.contains("another host"), "{err}");
    assert!(
        decoy.accept().is_err(),
        "nothing connected to the other host"
    );
}

/// The delta requests of a drive, in order.
fn delta_requests(g: &FakeGraph) -> Vec<String> {
    g.requests()
        .into_iter()
        .filter(|r| r.listener == "graph" && r.uri.contains("/delta"))
        .map(|r| r.uri)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_sync_skips_packages_and_keeps_no_link_until_its_last_page() {
    let g = FakeGraph::start().await;
    let site = g.add_site("contoso.sharepoint.com", "Team");
    let docs = g.add_drive(&site, "Documents");
    let files = [
        "a.txt",
        "b/c.txt",
        "b/d/e.txt",
        "b/d/f/g.txt",
        "h/i.txt",
        "j.txt",
    ];
    for f in files {
        g.put(&docs, f, format!("content of {f}").as_bytes());
    }
    // a OneNote notebook: a package item with a section inside; neither is a file
    g.put_package(&docs, "Notes/Team Notebook");
    g.put(
        &docs,
        "Notes/Team Notebook/Meetings.one",
        b"onenote section",
    );
    // 14 items, 2 per page, and an empty page: 8 pages. The fourth fails for good.
    g.set_page_size(2);
    g.set_empty_page(true);
    g.script(Scripted {
        method: "GET",
        path_contains: ".o3".into(),
        status: 400,
        headers: vec![],
        body: json!({"error": {"code": "invalidRequest", "message": "scripted failure of the fourth page"}}),
    });
    let dir = tempfile::tempdir().unwrap();
    let api = free_port();
    let cfg = sp_config(dir.path(), &g, api, graph::CLIENT_SECRET, "");
    let d = Running::start(&cfg, api, &[]);
    let job = d.latest_job("team").await;
    assert_eq!(job["status"], "failed", "{job}");
    assert!(
        job["last_error"]
            .as_str()
            .unwrap()
            .contains("scripted failure"),
        "{job}"
    );
    assert_eq!(
        content_requests(&g),
        0,
        "nothing read from a half enumeration"
    );
    let failed_run = delta_requests(&g).len();
    assert_eq!(failed_run, 4, "{:?}", delta_requests(&g));

    // No deltaLink was kept, so the next run enumerates from the start again.
    let job = d.run_and_wait("team", "incremental").await;
    assert_eq!(job["status"], "succeeded", "{job}\n{}", d.log());
    let deltas = delta_requests(&g);
    assert!(
        !deltas[failed_run].contains("token="),
        "the second run began without a token: {}",
        deltas[failed_run]
    );
    assert_eq!(deltas.len() - failed_run, 8, "{deltas:?}");
    assert_eq!(job["progress"]["files_done"], 6, "{job}");
    assert_eq!(
        content_requests(&g),
        6,
        "every file once, nothing of the notebook"
    );
    let out = restore(&cfg, "/team", dir.path());
    for f in files {
        assert_eq!(
            std::fs::read(out.join("Documents").join(f)).unwrap(),
            format!("content of {f}").as_bytes()
        );
    }
    assert!(!out.join("Documents/Notes/Team Notebook").exists());
    let items = d.get("/api/v1/items?status=failed").await;
    assert_eq!(items["items"].as_array().map(Vec::len), Some(0), "{items}");

    // the link of the complete enumeration is the one used now
    let job = d.run_and_wait("team", "incremental").await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let deltas = delta_requests(&g);
    assert_eq!(deltas.len() - failed_run, 9);
    assert!(deltas.last().unwrap().contains("token="));
    assert_eq!(content_requests(&g), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_items_children_before_parents_and_nameless_deletes() {
    let g = FakeGraph::start().await;
    let site = g.add_site("contoso.sharepoint.com", "Team");
    let docs = g.add_drive(&site, "Documents");
    let plan = g.put(&docs, "Projects/Alpha/plan.txt", b"the plan");
    let alpha = g.id_of(&docs, "Projects/Alpha");
    let projects = g.id_of(&docs, "Projects");
    let memo = g.put(&docs, "memo.txt", b"memo, final wording");
    let scratch = g.put(&docs, "scratch.txt", b"scratch");
    g.delete(&docs, &scratch);
    // The first round as Graph may send it: every child before its parent, the memo
    // first in an older state (another name, size and hash) and again, as it is now, on
    // the last page, and a deleted item the client never saw, which has no name.
    let mut stale = g.delta_item(&docs, &memo);
    stale["name"] = json!("memo-draft.txt");
    stale["size"] = json!(5);
    stale["file"]["hashes"]["quickXorHash"] = json!(graph::quick_xor_hash(b"draft"));
    let nameless = g.delta_item(&docs, &scratch);
    assert!(nameless.get("name").is_none(), "{nameless}");
    let page2 = format!("{}/drives/{docs}/root/delta?token=scripted-2", g.graph_url);
    g.script(Scripted {
        method: "GET",
        path_contains: format!("/drives/{docs}/root/delta?"),
        status: 200,
        headers: vec![],
        body: json!({
            "value": [g.delta_item(&docs, &plan), stale, nameless, g.delta_item(&docs, &alpha)],
            "@odata.nextLink": page2,
        }),
    });
    g.script(Scripted {
        method: "GET",
        path_contains: "token=scripted-2".into(),
        status: 200,
        headers: vec![],
        body: json!({
            "value": [g.delta_item(&docs, &projects), g.delta_item(&docs, &memo), g.delta_item(&docs, "root")],
            "@odata.deltaLink": g.latest_delta_link(&docs),
        }),
    });
    let dir = tempfile::tempdir().unwrap();
    let api = free_port();
    let cfg = sp_config(dir.path(), &g, api, graph::CLIENT_SECRET, "");
    let d = Running::start(&cfg, api, &[]);
    let job = d.latest_job("team").await;
    assert_eq!(job["status"], "succeeded", "{job}\n{}", d.log());
    assert_eq!(job["error_count"], 0, "{job}");
    assert_eq!(job["progress"]["files_done"], 2, "{job}");
    let out = restore(&cfg, "/team", dir.path());
    assert_eq!(
        std::fs::read(out.join("Documents/Projects/Alpha/plan.txt")).unwrap(),
        b"the plan",
        "a child sent before its folders lands under them"
    );
    assert_eq!(
        std::fs::read(out.join("Documents/memo.txt")).unwrap(),
        b"memo, final wording",
        "the last occurrence of an item wins"
    );
    assert!(!out.join("Documents/memo-draft.txt").exists());
    assert!(!out.join("Documents/scratch.txt").exists());

    // Incremental rounds in the fake's own pages, one item each, deepest first: a
    // renamed folder and a new folder with a file arrive after the file inside them.
    g.set_children_first(true);
    g.set_page_size(1);
    g.rename(&docs, &alpha, "Alpha-2026");
    g.put(&docs, "Projects/Alpha-2026/Beta/spec.txt", b"the spec");
    g.put(&docs, "memo.txt", b"memo, amended");
    let job = d.run_and_wait("team", "incremental").await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["error_count"], 0, "{job}");
    let out = restore(&cfg, "/team", dir.path());
    assert_eq!(
        std::fs::read(out.join("Documents/Projects/Alpha-2026/plan.txt")).unwrap(),
        b"the plan"
    );
    assert_eq!(
        std::fs::read(out.join("Documents/Projects/Alpha-2026/Beta/spec.txt")).unwrap(),
        b"the spec"
    );
    assert_eq!(
        std::fs::read(out.join("Documents/memo.txt")).unwrap(),
        b"memo, amended"
    );
    assert!(!out.join("Documents/Projects/Alpha").exists());
    // plan.txt (first run), memo.txt, spec.txt, memo v2: the renamed folder's file was
    // not downloaded again
    assert_eq!(content_requests(&g), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dated_retry_after_bare_429s_and_a_stalled_download() {
    use std::time::{Duration, Instant, SystemTime};
    let g = FakeGraph::start().await;
    let site = g.add_site("contoso.sharepoint.com", "Team");
    let docs = g.add_drive(&site, "Documents");
    let small = g.put(&docs, "small.txt", b"small");
    let big: Vec<u8> = (0..1_500_000u32).map(|i| (i % 241) as u8).collect();
    g.put(&docs, "big.bin", &big);
    // 503 with Retry-After as an HTTP date on the first delta request
    g.script(Scripted {
        method: "GET",
        path_contains: "/root/delta".into(),
        status: 503,
        headers: vec![(
            "Retry-After",
            graph::http_date(SystemTime::now() + Duration::from_secs(3)),
        )],
        body: json!({"error": {"code": "serviceNotAvailable", "message": "Service unavailable"}}),
    });
    // three 429s without Retry-After on one download: backoff, doubling each time
    for _ in 0..3 {
        g.script(Scripted {
            method: "GET",
            path_contains: format!("{small}/content"),
            status: 429,
            headers: vec![],
            body: json!({"error": {"code": "activityLimitReached", "message": "throttled"}}),
        });
    }
    // and the big download stalls for 40 s after 200 kB: cut after read_timeout, resumed
    g.stall_next_download(200_000, Duration::from_secs(40));
    let dir = tempfile::tempdir().unwrap();
    let api = free_port();
    let cfg = sp_config(
        dir.path(),
        &g,
        api,
        graph::CLIENT_SECRET,
        "    read_timeout: 1s\n",
    );
    let started = Instant::now();
    let d = Running::start(&cfg, api, &[]);
    let job = d.latest_job("team").await;
    assert_eq!(job["status"], "succeeded", "{job}\n{}", d.log());
    assert_eq!(job["error_count"], 0, "{job}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the stalled transfer was cut, not waited out: {:?}",
        started.elapsed()
    );
    assert!(g.violations().is_empty(), "{:?}", g.violations());
    let log = g.requests();
    let graph_calls: Vec<_> = log
        .iter()
        .filter(|r| r.listener == "graph" && !r.uri.contains("oauth2"))
        .collect();
    let i = graph_calls.iter().position(|r| r.status == 503).unwrap();
    let waited = graph_calls[i + 1].at - graph_calls[i].at;
    assert!(
        waited >= Duration::from_secs(2),
        "the next request waited for the date: {waited:?}"
    );
    let tries: Vec<_> = log
        .iter()
        .filter(|r| r.uri.contains(&format!("{small}/content")))
        .collect();
    assert_eq!(
        tries.iter().map(|r| r.status).collect::<Vec<_>>(),
        [429, 429, 429, 302]
    );
    let gaps: Vec<Duration> = tries.windows(2).map(|w| w[1].at - w[0].at).collect();
    assert!(
        gaps[0] >= Duration::from_millis(450)
            && gaps[1] >= gaps[0].mul_f64(1.5)
            && gaps[2] >= gaps[1].mul_f64(1.5),
        "the backoff doubles: {gaps:?}"
    );
    assert!(
        log.iter()
            .any(|r| r.listener == "download" && r.range.as_deref() == Some("bytes=200000-")),
        "the stalled download resumed where it stopped"
    );
    let out = restore(&cfg, "/team", dir.path());
    assert_eq!(std::fs::read(out.join("Documents/big.bin")).unwrap(), big);
    assert_eq!(
        std::fs::read(out.join("Documents/small.txt")).unwrap(),
        b"small"
    );
    let text = d
        .get(&format!("/api/v1/jobs/{}/log", job["id"]))
        .await
        .to_string();
    assert!(
        text.contains("Graph answered 503 Service Unavailable (serviceNotAvailable)")
            && text.contains("Graph answered 429 Too Many Requests to a download"),
        "the waits are in the job log: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignored_ranges_expired_links_and_items_deleted_before_their_download() {
    let g = FakeGraph::start().await;
    let site = g.add_site("contoso.sharepoint.com", "Team");
    let docs = g.add_drive(&site, "Documents");
    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 239) as u8).collect();
    let big_id = g.put(&docs, "big.bin", &big);
    g.put(&docs, "keep/a.txt", b"a");
    g.put(&docs, "keep/b.txt", b"b");
    // enough files that the folder deletes at the end stay under max_delete_percent
    for i in 0..6 {
        g.put(&docs, &format!("stay/{i}.txt"), b"stays");
    }
    // a host that ignores Range, and a first transfer cut after 250 kB: the client
    // starts over and skips the bytes it already has
    g.set_ignore_range(true);
    g.cut_next_download_after(250_000);
    let dir = tempfile::tempdir().unwrap();
    let api = free_port();
    let cfg = sp_config(dir.path(), &g, api, graph::CLIENT_SECRET, "");
    let d = Running::start(&cfg, api, &[]);
    let job = d.latest_job("team").await;
    assert_eq!(job["status"], "succeeded", "{job}\n{}", d.log());
    assert_eq!(job["error_count"], 0, "{job}");
    let big_downloads: Vec<_> = g
        .requests()
        .into_iter()
        .filter(|r| r.listener == "download" && r.status == 200)
        .filter(|r| r.range.as_deref() == Some("bytes=250000-"))
        .collect();
    assert_eq!(big_downloads.len(), 1, "resumed once, answered in full");
    let out = restore(&cfg, "/team", dir.path());
    assert_eq!(std::fs::read(out.join("Documents/big.bin")).unwrap(), big);
    g.set_ignore_range(false);

    // an expired pre-authenticated URL (401 from the download host) is asked for again
    g.put(&docs, "fresh.txt", b"fresh");
    let fresh = g.id_of(&docs, "fresh.txt");
    g.expire_next_download_links(1);
    let job = d.run_and_wait("team", "incremental").await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["error_count"], 0, "{job}");
    let asked = g
        .requests()
        .iter()
        .filter(|r| r.uri.contains(&format!("{fresh}/content")))
        .count();
    assert_eq!(asked, 2, "one expired link, one fresh");
    assert!(
        g.requests()
            .iter()
            .any(|r| r.listener == "download" && r.status == 401)
    );

    // files deleted after the delta named them and before their download: a changed
    // file already stored is deleted, a new one is dropped, and neither is an error
    g.put(&docs, "big.bin", b"big.bin, rewritten");
    g.delete_before_download(&big_id);
    g.put(&docs, "short-lived.txt", b"short-lived");
    let short = g.id_of(&docs, "short-lived.txt");
    g.delete_before_download(&short);
    let job = d.run_and_wait("team", "incremental").await;
    assert_eq!(job["status"], "succeeded", "{job}\n{}", d.log());
    assert_eq!(job["error_count"], 0, "{job}");
    let failed = d.get("/api/v1/items?status=failed").await;
    assert_eq!(
        failed["items"].as_array().map(Vec::len),
        Some(0),
        "{failed}"
    );
    let out = restore(&cfg, "/team", dir.path());
    assert!(!out.join("Documents/big.bin").exists());
    assert!(!out.join("Documents/short-lived.txt").exists());
    assert_eq!(
        std::fs::read(out.join("Documents/fresh.txt")).unwrap(),
        b"fresh"
    );
    // the next round reports both deletes: nothing left to do, nothing failed
    let job = d.run_and_wait("team", "incremental").await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["error_count"], 0, "{job}");

    // a folder deleted with every descendant reported, then one without
    g.put(&docs, "old/x/1.txt", b"1");
    g.put(&docs, "old/2.txt", b"2");
    let job = d.run_and_wait("team", "incremental").await;
    assert_eq!(job["progress"]["versions_committed"], 2, "{job}");
    g.delete_with_descendants(&docs, &g.id_of(&docs, "old"));
    g.delete(&docs, &g.id_of(&docs, "keep"));
    let job = d.run_and_wait("team", "incremental").await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let out = restore(&cfg, "/team", dir.path());
    assert!(!out.join("Documents/old").exists());
    assert!(!out.join("Documents/keep").exists());
    assert_eq!(
        std::fs::read(out.join("Documents/fresh.txt")).unwrap(),
        b"fresh"
    );
    assert_eq!(
        std::fs::read(out.join("Documents/stay/5.txt")).unwrap(),
        b"stays"
    );
    // Prefer on every delta request, User-Agent on every Graph request
    for r in g.requests().iter().filter(|r| r.listener == "graph") {
        if r.uri.contains("/delta") {
            assert!(
                r.prefer
                    .as_deref()
                    .is_some_and(|p| p.contains("deltashowremovedasdeleted")),
                "{r:?}"
            );
        }
        if !r.uri.contains("oauth2") {
            assert!(
                r.user_agent
                    .as_deref()
                    .is_some_and(|u| u.starts_with("NONISV|"))
            );
        }
    }
    assert!(g.violations().is_empty(), "{:?}", g.violations());
}

/// A document library of the fake Graph as a conformance fixture: files are written and
/// removed through the fake's own item store, and listed by the connector as
/// `Documents/<path>`.
struct LibraryFixture {
    g: FakeGraph,
    drive: String,
    ids: std::sync::Mutex<std::collections::HashMap<Vec<u8>, String>>,
    c: tributary_connector_sharepoint::SharePointConnector,
}

#[async_trait::async_trait]
impl tributary_connectors::testsuite::Fixture for LibraryFixture {
    fn connector(&self) -> &dyn tributary_connectors::Connector {
        &self.c
    }
    async fn write(&self, rel: &[u8], data: &[u8]) {
        let id = self
            .g
            .put(&self.drive, std::str::from_utf8(rel).unwrap(), data);
        self.ids.lock().unwrap().insert(rel.to_vec(), id);
    }
    async fn remove(&self, rel: &[u8]) {
        let id = self.ids.lock().unwrap()[rel].clone();
        self.g.delete(&self.drive, &id);
    }
    fn supports_non_utf8(&self) -> bool {
        false // Graph names are JSON strings
    }
    fn listed_as(&self, rel: &[u8]) -> Vec<u8> {
        [b"Documents/".as_slice(), rel].concat()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sharepoint_connector_passes_the_conformance_suite() {
    use tributary_connector_sharepoint::{Credential, SharePointConnector, SharePointSettings};
    let g = FakeGraph::start().await;
    let site = g.add_site("contoso.sharepoint.com", "Team");
    let drive = g.add_drive(&site, "Documents");
    let c = SharePointConnector::new(
        "team".into(),
        SharePointSettings {
            graph_url: g.graph_url.clone(),
            token_url: g.token_url.clone(),
            client_id: graph::CLIENT_ID.into(),
            credential: Credential::Secret(graph::CLIENT_SECRET.into()),
            site: "contoso.sharepoint.com:/sites/Team".into(),
            drives: vec![],
            filter: tributary_connectors::filter::Filter::all(),
            max_file_size: None,
            permissions: false,
            permissions_rescan: std::time::Duration::from_secs(7 * 86_400),
            read_timeout: std::time::Duration::from_secs(60),
        },
    )
    .unwrap();
    let fx = LibraryFixture {
        g,
        drive,
        ids: Default::default(),
        c,
    };
    tributary_connectors::testsuite::run(&fx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_connector_made_over_the_api_is_tested_run_and_restored() {
    let g = FakeGraph::start().await;
    let site = g.add_site("contoso.sharepoint.com", "Team");
    let docs = g.add_drive(&site, "Documents");
    g.put(&docs, "plans/q3.txt", b"third quarter");
    g.put(&docs, "deck.pptx", &vec![9u8; 1_200_000]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    let secrets = secrets_key(dir.path());
    let api = free_port();
    let cfg = config(dir.path(), api, "", &local_connector(""), &secrets);
    // the fake Graph is an endpoint override: the operator allows them here
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "  max_body_size: 4KiB\n",
        "  max_body_size: 4KiB\n  allow_endpoint_overrides: true\n",
    );
    std::fs::write(&cfg, text).unwrap();
    let d = Running::start(&cfg, api, &[]);
    let body = |secret: &str| {
        json!({"id": "team", "kind": "sharepoint", "tenant_id": graph::TENANT,
               "client_id": graph::CLIENT_ID, "client_secret": secret,
               "site": "contoso.sharepoint.com:/sites/Team", "graph_url": g.graph_url,
               "token_url": g.token_url, "target": "/team"})
    };
    let wrong = "wrong-graph-secret-0077";
    let (s, _, b) = d
        .call(
            "POST",
            "/api/v1/connector-tests",
            Some(ADMIN),
            Some(body(wrong)),
        )
        .await;
    let v: serde_json::Value = serde_json::from_str(&b).unwrap();
    assert_eq!((s, &v["ok"]), (200, &json!(false)), "{v}");
    assert_eq!(v["error"]["code"], "ACCESS_DENIED", "{v}");
    assert!(!b.contains(wrong));
    let (s, _, b) = d
        .call(
            "POST",
            "/api/v1/connectors",
            Some(ADMIN),
            Some(body(graph::CLIENT_SECRET)),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let (s, _, b) = d
        .call("POST", "/api/v1/connectors/team/test", Some(ADMIN), None)
        .await;
    assert!(s == 200 && b.contains("\"ok\":true"), "{b}");
    let job = d.run_and_wait("team", "full").await;
    assert_eq!(job["status"], "succeeded", "{job}\n{}", d.log());
    let out = restore(&cfg, "/team", dir.path());
    assert_eq!(
        std::fs::read(out.join("Documents/plans/q3.txt")).unwrap(),
        b"third quarter"
    );
    assert_eq!(
        std::fs::read(out.join("Documents/deck.pptx")).unwrap(),
        vec![9u8; 1_200_000]
    );
    let shown = d.get("/api/v1/connectors/team").await;
    assert_eq!(shown["client_secret"], json!({"set": true}));
    for t in [d.log(), shown.to_string()] {
        assert!(
            !t.contains(graph::CLIENT_SECRET) && !t.contains(wrong),
            "{t}"
        );
    }
}
