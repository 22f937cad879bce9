//! The daemon end to end: the real binary on a free loopback port, driven over HTTP.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use tributary_testkit::{tree, weed};

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedule_fires_jobs_are_listed_with_pagination_and_filters() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("src/sub")).unwrap();
    std::fs::write(dir.path().join("src/a.txt"), "alpha").unwrap();
    std::fs::write(
        dir.path().join("src/sub/b.bin"),
        tree::random_bytes(1, 100_000),
    )
    .unwrap();
    let port = free_port();
    let cfg = config(
        dir.path(),
        port,
        "",
        &local_connector("    schedule: \"*/1 * * * * *\"\n"),
        "",
    );
    let d = Running::start(&cfg, port, &[]);
    d.wait_for("three scheduled jobs", 20, async |d| {
        d.jobs("").await.len() >= 4
    })
    .await;
    let all = d.jobs("").await;
    assert_eq!(
        all[all.len() - 1]["trigger"],
        "startup",
        "the first start ingests at once"
    );
    assert!(
        all.iter()
            .any(|j| j["trigger"] == "schedule" && j["status"] == "succeeded")
    );

    let page = d
        .get("/api/v1/jobs?per_page=2&page=2&connector=docs&status=succeeded")
        .await;
    let meta = &page["meta"];
    assert_eq!(meta["page"], 2);
    assert_eq!(meta["per_page"], 2);
    let total = meta["total"].as_i64().unwrap();
    assert!(total >= 3);
    assert_eq!(meta["pages"], (total + 1) / 2);
    // the second page holds the third and fourth job (a fourth may still be running)
    assert_eq!(
        page["items"].as_array().unwrap().len() as i64,
        (total - 2).min(2),
        "{page}"
    );
    let none = d.get("/api/v1/jobs?connector=nope").await;
    assert_eq!(none["meta"]["total"], 0);
    let future = d.get("/api/v1/jobs?since=2200-01-01T00:00:00Z").await;
    assert_eq!(future["meta"]["total"], 0);

    // connector status: next run, last job
    let c = d.get("/api/v1/connectors/docs").await;
    assert_eq!(c["schedule"], "*/1 * * * * *");
    assert!(c["status"]["next_run"].is_string(), "{c}");
    assert_eq!(c["status"]["last_job"]["connector"], "docs");
    assert_eq!(c["source"], "file");

    // items, versions, content with Range
    let items = d
        .get("/api/v1/items?connector=docs&prefix=/docs/sub&status=completed")
        .await;
    assert_eq!(items["meta"]["total"], 1, "{items}");
    let id = items["items"][0]["id"].as_i64().unwrap();
    let item = d.get(&format!("/api/v1/items/{id}")).await;
    assert_eq!(item["path"], "/docs/sub/b.bin");
    assert_eq!(item["versions"].as_array().unwrap().len(), 1);
    assert!(
        item["versions"][0]["digest"]
            .as_str()
            .unwrap()
            .starts_with("blake3:")
    );
    let expected = tree::random_bytes(1, 100_000);
    let full = d
        .http
        .get(d.url(&format!("/api/v1/items/{id}/content")))
        .bearer_auth(VIEWER)
        .send()
        .await
        .unwrap();
    assert_eq!(full.status(), 200);
    assert_eq!(full.bytes().await.unwrap().as_ref(), expected.as_slice());
    let part = d
        .http
        .get(d.url(&format!("/api/v1/items/{id}/content")))
        .bearer_auth(VIEWER)
        .header("Range", "bytes=1000-1999")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.headers()["content-range"], "bytes 1000-1999/100000");
    assert_eq!(part.bytes().await.unwrap().as_ref(), &expected[1000..2000]);

    // the change feed
    let feed = d.get("/api/v1/changes?cursor=0&limit=1").await;
    assert_eq!(feed["items"].as_array().unwrap().len(), 1);
    let next = feed["next_cursor"].as_i64().unwrap();
    let rest = d.get(&format!("/api/v1/changes?cursor={next}")).await;
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    assert_ne!(rest["items"][0]["path"], feed["items"][0]["path"]);

    // metrics
    let (status, _, text) = d.call("GET", "/api/v1/metrics", Some(VIEWER), None).await;
    assert_eq!(status, 200);
    assert!(
        text.contains("tributary_jobs{status=\"succeeded\"}"),
        "{text}"
    );
    assert!(
        text.contains(
            "tributary_api_requests_total{method=\"GET\",route=\"/api/v1/jobs\",status=\"2xx\"}"
        ),
        "{text}"
    );
    assert!(text.contains("tributary_last_success_timestamp_seconds{connector=\"docs\"}"));
    assert!(!text.contains("/docs/sub"), "no paths in metric labels");

    // the CLI: status reads the catalog beside the running daemon; ctl acts through the API
    let out = Command::new(BIN)
        .args(["status", "-c", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && text.contains("docs")
            && text.contains("succeeded")
            && text.contains("schedule"),
        "{text}"
    );
    let ctl = |token: &str, args: &[&str]| {
        Command::new(BIN)
            .args(["ctl", "-c", cfg.to_str().unwrap()])
            .args(args)
            .env("TRIBUTARY_TOKEN", token)
            .output()
            .unwrap()
    };
    let denied = ctl(VIEWER, &["pause", "docs"]);
    assert!(!denied.status.success());
    assert!(String::from_utf8_lossy(&denied.stdout).contains("AUTHZ_FORBIDDEN"));
    // the refusal is explained by its entry of the error catalog
    let why = String::from_utf8_lossy(&denied.stderr);
    assert!(
        why.contains("AUTHZ_FORBIDDEN: The caller is authenticated but its role may not do this")
            && why.contains("docs/errors.md"),
        "{why}"
    );
    assert!(ctl(OPERATOR, &["pause", "docs"]).status.success());
    assert_eq!(
        d.get("/api/v1/connectors/docs").await["status"]["paused"],
        true
    );
    assert!(ctl(OPERATOR, &["resume", "docs"]).status.success());
    assert_eq!(
        d.get("/api/v1/connectors/docs").await["status"]["paused"],
        false
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_system_event_triggers_an_incremental_job() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    std::fs::write(dir.path().join("src/a.txt"), "alpha").unwrap();
    let port = free_port();
    let cfg = config(
        dir.path(),
        port,
        "",
        &local_connector("    watch: true\n"),
        "",
    );
    let d = Running::start(&cfg, port, &[]);
    d.wait_for("the startup job", 20, async |d| {
        d.jobs("status=succeeded").await.len() == 1
    })
    .await;
    std::fs::write(dir.path().join("src/new.txt"), "from a watch").unwrap();
    d.wait_for("a watch job", 20, async |d| {
        d.jobs("status=succeeded")
            .await
            .iter()
            .any(|j| j["trigger"] == "watch" && j["kind"] == "incremental")
    })
    .await;
    let items = d.get("/api/v1/items?prefix=/docs/new.txt").await;
    assert_eq!(items["meta"]["total"], 1);
    std::fs::remove_file(dir.path().join("src/a.txt")).unwrap();
    d.wait_for("the delete to be seen", 20, async |d| {
        d.get("/api/v1/items?status=deleted").await["meta"]["total"] == 1
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_use_the_envelope_and_secrets_never_leak() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    let w = weed::shared();
    let store = format!(
        "object_store:\n  kind: s3\n  endpoint: {}\n  bucket: {}\n  prefix: leak-test/\n  access_key_id: {}\n  secret_access_key: {}\n",
        w.endpoint(),
        weed::BUCKET,
        weed::ACCESS_KEY,
        weed::SECRET_KEY
    );
    let port = free_port();
    let cfg = config(dir.path(), port, &store, &local_connector(""), "");
    let d = Running::start(&cfg, port, &[]);
    let mut bodies = Vec::new();
    // (method, path, token, body, status, code)
    type Case<'a> = (
        &'a str,
        &'a str,
        Option<&'a str>,
        Option<Value>,
        u16,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            "GET",
            "/api/v1/nope",
            Some(VIEWER),
            None,
            404,
            "ROUTE_NOT_FOUND",
        ),
        ("GET", "/api/v1/jobs", None, None, 401, "AUTH_TOKEN_INVALID"),
        (
            "GET",
            "/api/v1/jobs",
            Some("wrong-token-wrong-token"),
            None,
            401,
            "AUTH_TOKEN_INVALID",
        ),
        (
            "POST",
            "/api/v1/connectors/docs/pause",
            Some(VIEWER),
            None,
            403,
            "AUTHZ_FORBIDDEN",
        ),
        (
            "POST",
            "/api/v1/config/reload",
            Some(OPERATOR),
            None,
            403,
            "AUTHZ_FORBIDDEN",
        ),
        (
            "GET",
            "/api/v1/jobs/999999",
            Some(VIEWER),
            None,
            404,
            "JOB_NOT_FOUND",
        ),
        (
            "GET",
            "/api/v1/jobs/abc",
            Some(VIEWER),
            None,
            404,
            "JOB_NOT_FOUND",
        ),
        (
            "GET",
            "/api/v1/items/424242",
            Some(VIEWER),
            None,
            404,
            "ITEM_NOT_FOUND",
        ),
        (
            "GET",
            "/api/v1/connectors/nope",
            Some(VIEWER),
            None,
            404,
            "CONNECTOR_NOT_FOUND",
        ),
        (
            "POST",
            "/api/v1/connectors/nope/runs",
            Some(OPERATOR),
            Some(json!({})),
            404,
            "CONNECTOR_NOT_FOUND",
        ),
        (
            "POST",
            "/api/v1/connectors/docs/runs",
            Some(OPERATOR),
            Some(json!({"kind": "sideways"})),
            422,
            "INVALID_BODY",
        ),
        (
            "POST",
            "/api/v1/connectors/docs/runs",
            Some(OPERATOR),
            Some(json!({"padding": "x".repeat(8000)})),
            413,
            "PAYLOAD_TOO_LARGE",
        ),
        (
            "GET",
            "/api/v1/jobs?page=zero&per_page=9999",
            Some(VIEWER),
            None,
            400,
            "INVALID_QUERY",
        ),
        (
            "DELETE",
            "/api/v1/jobs",
            Some(VIEWER),
            None,
            405,
            "METHOD_NOT_ALLOWED",
        ),
        (
            "POST",
            "/api/v1/jobs/999999/cancel",
            Some(OPERATOR),
            None,
            404,
            "JOB_NOT_FOUND",
        ),
    ];
    for (method, path, token, body, status, code) in cases {
        let (s, h, b) = d.call(method, path, token, body).await;
        assert_eq!(s, status, "{method} {path}: {b}");
        assert_envelope(s, &h, &b, code);
        bodies.push(b);
    }
    // validation lists each bad field
    let (_, _, b) = d
        .call(
            "GET",
            "/api/v1/jobs?page=zero&per_page=9999",
            Some(VIEWER),
            None,
        )
        .await;
    let v: Value = serde_json::from_str(&b).unwrap();
    assert_eq!(
        v["error"]["details"]["fields"].as_array().unwrap().len(),
        2,
        "{b}"
    );
    // a given request id is echoed
    let resp = d
        .http
        .get(d.url("/api/v1/jobs/999999"))
        .bearer_auth(VIEWER)
        .header("X-Request-Id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "trace-me-42");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["request_id"], "trace-me-42");
    // the OpenAPI document lists exactly the routes the router serves
    let doc: Value =
        serde_json::from_str(&d.call("GET", "/api/v1/openapi.json", None, None).await.2).unwrap();
    let mut documented = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            documented += 1;
            let concrete = path.replace("{id}", "docs");
            if path == "/api/v1/events" {
                // a stream that never ends: served, but not read to its end
                let resp = d
                    .http
                    .get(d.url(path))
                    .bearer_auth(ADMIN)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 200, "{path}");
                continue;
            }
            let (_, _, b) = d
                .call(&method.to_uppercase(), &concrete, Some(ADMIN), None)
                .await;
            assert!(
                !b.contains("ROUTE_NOT_FOUND") && !b.contains("METHOD_NOT_ALLOWED"),
                "{method} {path} is documented but not served: {b}"
            );
            bodies.push(b);
        }
    }
    assert_eq!(documented, tributary_api::ROUTES.len());
    // every body, success or error, is free of secrets
    for path in [
        "/api/v1/connectors",
        "/api/v1/connectors/docs",
        "/api/v1/metrics",
        "/api/v1/health/ready",
    ] {
        bodies.push(d.call("GET", path, Some(VIEWER), None).await.2);
    }
    for b in &bodies {
        for secret in [weed::SECRET_KEY, VIEWER, OPERATOR, ADMIN] {
            assert!(!b.contains(secret), "a response contains a secret: {b}");
        }
    }
    assert!(!d.log().contains(weed::SECRET_KEY));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_conflict_pause_resume_cancel_and_sigterm_interrupts_then_restart_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    tree::generate(&src, 3, 4 << 20);
    let mut w = weed::Weed::start(&dir.path().join("weed"));
    let store = format!(
        "object_store:\n  kind: s3\n  endpoint: {}\n  bucket: {}\n  access_key_id: {}\n  secret_access_key: {}\npipeline:\n  upload_max_attempts: 40\n",
        w.endpoint(),
        weed::BUCKET,
        weed::ACCESS_KEY,
        weed::SECRET_KEY
    );
    let port = free_port();
    let cfg = config(dir.path(), port, &store, &local_connector(""), "");
    let mut d = Running::start(&cfg, port, &[]);
    d.wait_for("the startup job", 30, async |d| {
        d.jobs("status=succeeded").await.len() == 1
    })
    .await;

    // the store goes away: the next job hangs in upload retries
    std::fs::write(src.join("stuck.bin"), tree::random_bytes(9, 3 << 20)).unwrap();
    let w = tokio::task::spawn_blocking(move || {
        w.stop();
        w
    })
    .await
    .unwrap();
    let job = d.queue_run("docs", Some("full")).await;
    d.wait_for("the job to run", 10, async |d| {
        d.get(&format!("/api/v1/jobs/{job}")).await["status"] == "running"
    })
    .await;
    let (s, h, b) = d
        .call("POST", "/api/v1/connectors/docs/runs", Some(OPERATOR), None)
        .await;
    assert_eq!(s, 409);
    assert_envelope(s, &h, &b, "JOB_ALREADY_RUNNING");
    // cancel
    let (s, _, _) = d
        .call(
            "POST",
            &format!("/api/v1/jobs/{job}/cancel"),
            Some(OPERATOR),
            None,
        )
        .await;
    assert_eq!(s, 202);
    d.wait_for("the job to be cancelled", 15, async |d| {
        d.get(&format!("/api/v1/jobs/{job}")).await["status"] == "cancelled"
    })
    .await;
    let log = d.get(&format!("/api/v1/jobs/{job}/log")).await;
    assert!(
        log["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["message"].as_str().unwrap().contains("stopped")),
        "{log}"
    );
    let (s, _, b) = d
        .call(
            "POST",
            &format!("/api/v1/jobs/{job}/cancel"),
            Some(OPERATOR),
            None,
        )
        .await;
    assert_eq!(s, 409, "{b}");
    // pause: runs are refused; resume
    assert_eq!(
        d.call(
            "POST",
            "/api/v1/connectors/docs/pause",
            Some(OPERATOR),
            None
        )
        .await
        .0,
        200
    );
    assert_eq!(
        d.get("/api/v1/connectors/docs").await["status"]["paused"],
        true
    );
    let (s, h, b) = d
        .call("POST", "/api/v1/connectors/docs/runs", Some(OPERATOR), None)
        .await;
    assert_envelope(s, &h, &b, "CONNECTOR_PAUSED");
    assert_eq!(
        d.call(
            "POST",
            "/api/v1/connectors/docs/resume",
            Some(OPERATOR),
            None
        )
        .await
        .0,
        200
    );

    // another job hangs; SIGTERM mid-job leaves it interrupted and the daemon exits 0
    let job2 = d.queue_run("docs", None).await;
    d.wait_for("the job to run", 10, async |d| {
        d.get(&format!("/api/v1/jobs/{job2}")).await["status"] == "running"
    })
    .await;
    d.signal("TERM");
    let status = d.wait_exit(20);
    assert!(status.success(), "exit status {status:?}: {}", d.log());
    drop(d);

    // the store is back; the next start claims the connector the stop handed back
    // and finishes the work
    let _w = tokio::task::spawn_blocking(move || {
        let mut w = w;
        w.restart();
        w
    })
    .await
    .unwrap();
    let d = Running::start(&cfg, port, &[]);
    let j2 = d.get(&format!("/api/v1/jobs/{job2}")).await;
    assert_eq!(j2["status"], "interrupted", "{j2}");
    d.wait_for("the resumed job", 30, async |d| {
        d.jobs("status=succeeded")
            .await
            .iter()
            .any(|j| j["trigger"] == "handoff" && j["kind"] == "incremental")
    })
    .await;
    let out = dir.path().join("restored");
    let r = Command::new(BIN)
        .args([
            "restore",
            "-c",
            cfg.to_str().unwrap(),
            "/docs",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let a = tree::snapshot(&src);
    let b = tree::snapshot(&out.join("docs"));
    assert!(a == b, "restored tree differs from the source");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_rejects_an_invalid_file_and_applies_a_valid_one() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    std::fs::create_dir_all(dir.path().join("more")).unwrap();
    std::fs::write(dir.path().join("more/m.txt"), "more").unwrap();
    let port = free_port();
    let cfg = config(dir.path(), port, "", &local_connector(""), "");
    let good = std::fs::read_to_string(&cfg).unwrap();
    let d = Running::start(&cfg, port, &[]);
    // an invalid file: SIGHUP keeps the old configuration and says why
    std::fs::write(
        &cfg,
        good.replace("kind: local", "kind: local\n    schedule: \"not a cron\""),
    )
    .unwrap();
    d.signal("HUP");
    d.wait_for("the rejection in the log", 10, async |d| {
        d.log().contains("reload rejected")
    })
    .await;
    assert!(
        d.log().contains("tributary.yaml:"),
        "the rejection names file:line:column: {}",
        d.log()
    );
    assert_eq!(
        d.get("/api/v1/connectors").await["meta"]["total"],
        1,
        "the old configuration still runs"
    );
    let (s, h, b) = d
        .call("POST", "/api/v1/config/reload", Some(ADMIN), None)
        .await;
    assert_eq!(s, 422);
    assert_envelope(s, &h, &b, "CONFIG_INVALID");
    assert!(b.contains("invalid cron expression"), "{b}");
    // a valid file with one more connector
    std::fs::write(
        &cfg,
        format!("{good}  - id: more\n    kind: local\n    path: more\n"),
    )
    .unwrap();
    let (s, _, b) = d
        .call("POST", "/api/v1/config/reload", Some(ADMIN), None)
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        serde_json::from_str::<Value>(&b).unwrap()["added"],
        json!(["more"])
    );
    assert_eq!(d.get("/api/v1/connectors").await["meta"]["total"], 2);
    let (s, _, b) = d
        .call("POST", "/api/v1/connectors/more/runs", Some(OPERATOR), None)
        .await;
    assert_eq!(s, 202, "{b}");
    d.wait_for("the new connector's job", 20, async |d| {
        d.jobs("connector=more&status=succeeded").await.len() == 1
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_notifications_ready_watchdog_stopping() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let port = free_port();
    let cfg = config(dir.path(), port, "", &local_connector(""), "");
    let mut d = Running::start(
        &cfg,
        port,
        &[
            ("NOTIFY_SOCKET", sock_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "400000"),
        ],
    );
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    while !(seen.iter().any(|m: &String| m == "READY=1") && seen.iter().any(|m| m == "WATCHDOG=1"))
    {
        let n = sock.recv(&mut buf).expect("a notification within 20s");
        seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    d.signal("TERM");
    loop {
        let n = sock.recv(&mut buf).expect("STOPPING=1 on SIGTERM");
        if &buf[..n] == b"STOPPING=1" {
            break;
        }
    }
    assert!(d.wait_exit(20).success());
}

/// As an unprivileged user (root reads everything): unreadable files and folders fail
/// alone, failed files are retried with backoff until `max_retries`, then left alone
/// until they change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_files_fail_alone_are_retried_with_backoff_then_given_up() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("closed")).unwrap();
    std::fs::write(src.join("ok.txt"), "fine").unwrap();
    std::fs::write(src.join("locked.txt"), "secret").unwrap();
    std::fs::write(src.join("closed/inside.txt"), "inside").unwrap();
    let port = free_port();
    let cfg = config(dir.path(), port, "", &local_connector(""), "");
    let extra = "daemon:\n  shutdown_deadline: 3s\n  watch_debounce: 300ms\n  max_retries: 2\n  retry_backoff: 1s\n";
    std::fs::write(
        &cfg,
        std::fs::read_to_string(&cfg).unwrap().replace(
            "daemon:\n  shutdown_deadline: 3s\n  watch_debounce: 300ms\n",
            extra,
        ),
    )
    .unwrap();
    let d = start_as_nobody(dir.path(), &cfg, port);
    d.wait_for("the startup job", 20, async |d| {
        d.jobs("status=succeeded").await.len() == 1
    })
    .await;
    assert_eq!(
        d.get("/api/v1/items?status=completed").await["meta"]["total"],
        3
    );

    // a changed file that cannot be read (a mode change alone is no content change)
    std::fs::write(src.join("locked.txt"), "secret, edited").unwrap();
    std::fs::set_permissions(
        src.join("locked.txt"),
        std::fs::Permissions::from_mode(0o000),
    )
    .unwrap();
    std::fs::set_permissions(src.join("closed"), std::fs::Permissions::from_mode(0o000)).unwrap();
    std::fs::write(src.join("ok.txt"), "changed").unwrap();
    let job = d.queue_run("docs", Some("full")).await;
    d.wait_for("the job", 20, async |d| {
        d.get(&format!("/api/v1/jobs/{job}")).await["finished_at"].is_string()
    })
    .await;
    let j = d.get(&format!("/api/v1/jobs/{job}")).await;
    assert_eq!(
        j["status"], "succeeded",
        "one bad file does not fail the job: {j}"
    );
    assert_eq!(j["error_count"], 2, "{j}");
    assert!(
        j["last_error"]
            .as_str()
            .unwrap()
            .contains("ermission denied"),
        "{j}"
    );
    // the unreadable folder's known file is kept, the changed file stored
    assert_eq!(
        d.get("/api/v1/items?status=completed").await["meta"]["total"],
        3
    );
    assert_eq!(
        d.get("/api/v1/items?status=deleted").await["meta"]["total"],
        0
    );

    // retries: two more attempts with backoff, then the file is given up on
    d.wait_for("two retries", 30, async |d| {
        let failed = d
            .get("/api/v1/items?status=failed&prefix=/docs/locked.txt")
            .await;
        failed["items"][0]["retry_count"] == 2
    })
    .await;
    // a third retry would be due 4 s (1 s × 2²) after the last failure if the limit
    // did not hold; give the sweep (every second) two rounds past that, measured from
    // the failure the daemon recorded rather than from now
    let failed = d
        .get("/api/v1/items?status=failed&prefix=/docs/locked.txt")
        .await;
    let at =
        chrono::DateTime::parse_from_rfc3339(failed["items"][0]["failed_at"].as_str().unwrap())
            .unwrap();
    let past_due = at + chrono::Duration::seconds(4 + 2);
    while chrono::Utc::now() < past_due {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        d.get("/api/v1/items?status=failed&prefix=/docs/locked.txt")
            .await["items"][0]["retry_count"],
        2
    );
    let retries = d
        .jobs("")
        .await
        .iter()
        .filter(|j| j["trigger"] == "retry")
        .count();
    assert_eq!(retries, 2, "exactly max_retries retry jobs");
    let failed = d.get("/api/v1/items?status=failed").await;
    assert_eq!(failed["meta"]["total"], 2, "{failed}");
    // an exhausted, unchanged file is left alone by later jobs
    let job = d.queue_run("docs", None).await;
    d.wait_for("the job", 20, async |d| {
        d.get(&format!("/api/v1/jobs/{job}")).await["finished_at"].is_string()
    })
    .await;
    let j = d.get(&format!("/api/v1/jobs/{job}")).await;
    assert_eq!(j["progress"]["files_skipped"], 1, "{j}");
    // once readable and changed, it is stored and no longer failed
    std::fs::set_permissions(
        src.join("locked.txt"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    std::fs::set_permissions(src.join("closed"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(src.join("locked.txt"), "readable now").unwrap();
    d.call("POST", "/api/v1/connectors/docs/runs", Some(OPERATOR), None)
        .await;
    d.wait_for("the repair", 20, async |d| {
        d.get("/api/v1/items?prefix=/docs/locked.txt&status=completed")
            .await["items"][0]["last_error"]
            .is_null()
    })
    .await;
    // the folder lists again: its error is over too
    let failed = d.get("/api/v1/items?status=failed").await;
    assert_eq!(failed["meta"]["total"], 0, "{failed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_serves_https_when_tls_is_configured() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
        ])
        .args([
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(ok.success(), "openssl makes a test certificate");
    let port = free_port();
    let cfg = config(dir.path(), port, "", &local_connector(""), "");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "  max_body_size: 4KiB\n",
        "  max_body_size: 4KiB\n  tls:\n    cert_file: cert.pem\n    key_file: key.pem\n",
    );
    std::fs::write(&cfg, text).unwrap();
    let d = Running::start(&cfg, port, &[]);
    let pem = std::fs::read(&cert).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap();
    let resp = client
        .get(format!("https://localhost:{port}/api/v1/connectors"))
        .bearer_auth(VIEWER)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("x-request-id"));
    // plain HTTP is not served
    assert!(
        d.http
            .get(d.url("/api/v1/health"))
            .send()
            .await
            .map(|r| r.status() != 200)
            .unwrap_or(true)
    );
    // the CLI's health probe and ctl speak HTTPS and trust the configured certificate
    let out = Command::new(BIN)
        .args(["health", "-c", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = Command::new(BIN)
        .args(["ctl", "-c", cfg.to_str().unwrap(), "run", "docs"])
        .env("TRIBUTARY_TOKEN", OPERATOR)
        .output()
        .unwrap();
    assert!(
        out.status.success()
            || String::from_utf8_lossy(&out.stdout).contains("JOB_ALREADY_RUNNING"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_feed_cursor_older_than_the_retention_is_410() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    for i in 0..3 {
        std::fs::write(dir.path().join(format!("src/f{i}")), format!("{i}")).unwrap();
    }
    let port = free_port();
    let cfg = config(dir.path(), port, "", &local_connector(""), "");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "daemon:\n",
        "daemon:\n  change_retention: 2s\n  retry_backoff: 1s\n",
    );
    std::fs::write(&cfg, text).unwrap();
    let d = Running::start(&cfg, port, &[]);
    d.wait_for("the startup job", 20, async |d| {
        d.jobs("status=succeeded").await.len() == 1
    })
    .await;
    assert_eq!(
        d.get("/api/v1/changes?cursor=0").await["items"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    // the feed is pruned past the retention (the newest row stays)
    d.wait_for("pruning", 20, async |d| {
        d.call("GET", "/api/v1/changes?cursor=0", Some(VIEWER), None)
            .await
            .0
            == 410
    })
    .await;
    let (s, h, b) = d
        .call("GET", "/api/v1/changes?cursor=0", Some(VIEWER), None)
        .await;
    assert_envelope(s, &h, &b, "SYNC_CURSOR_INVALID");
    let v: Value = serde_json::from_str(&b).unwrap();
    let valid = v["error"]["details"]["oldest_valid_cursor"]
        .as_i64()
        .unwrap();
    assert_eq!(valid, 2);
    let rest = d.get(&format!("/api/v1/changes?cursor={valid}")).await;
    assert_eq!(rest["items"].as_array().unwrap().len(), 1, "{rest}");
    assert_eq!(rest["next_cursor"], 3);
}
