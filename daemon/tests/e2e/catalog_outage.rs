//! The PostgreSQL catalog goes away for 10 s while a job runs (every connection reset,
//! new ones refused, through a relay in front of the real server): the job ends with a
//! clear error or waits, the daemon keeps answering `/api/v1/health`, reports
//! `/api/v1/health/ready` 503 naming the catalog, becomes ready again by itself when
//! the server is back, and the next run completes — nothing half-committed (`verify`
//! clean, restore byte-identical).

use std::net::ToSocketAddrs;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use tributary_testkit::proxy::Proxy;
use tributary_testkit::{postgres, tree};

use crate::common::*;

/// `host:port` of a `postgres://user@host:port/db` URL.
fn authority(url: &str) -> &str {
    let rest = &url[url.find('@').unwrap() + 1..];
    &rest[..rest.find('/').unwrap()]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalog_outage_mid_job_is_clear_and_the_daemon_recovers_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    tree::generate(&src, 600, 200 << 20);
    // many small files: many commit batches for the outage to fall into
    for i in 0..3000 {
        let p = src.join(format!("many/{:02}/f{i}.txt", i % 50));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, tree::random_bytes(i, 2048 + (i as usize % 7) * 1000)).unwrap();
    }
    let url = postgres::fresh_database();
    let server = authority(&url).to_string();
    let proxy = Proxy::start(server.to_socket_addrs().unwrap().next().unwrap());
    let relayed = url.replace(&server, &format!("127.0.0.1:{}", proxy.port));
    let port = free_port();
    let cfg = config(
        dir.path(),
        port,
        &format!("catalog:\n  url: {relayed}\n  connect_timeout: 3s\n"),
        &local_connector(""),
        "",
    );
    let d = Running::start(&cfg, port, &[]);
    // the first-start job, under way (or, on a machine fast enough, already over: the
    // outage then meets the idle daemon, which must still report it and recover)
    d.wait_for("the job to store files", 60, async |d| {
        d.jobs("connector=docs").await.first().is_some_and(|j| {
            (j["status"] == "running" && j["progress"]["files_done"].as_u64() > Some(0))
                || j["status"] == "succeeded"
        })
    })
    .await;

    proxy.cut();
    let cut_at = Instant::now();
    let mut ready = (0, Value::Null);
    while cut_at.elapsed() < Duration::from_secs(10) {
        let (status, _, _) = d.call("GET", "/api/v1/health", None, None).await;
        assert_eq!(status, 200, "liveness does not need the catalog");
        let (status, _, body) = d.call("GET", "/api/v1/health/ready", None, None).await;
        if status == 503 {
            ready = (status, serde_json::from_str(&body).unwrap());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(ready.0, 503, "not ready while the catalog is gone");
    assert_eq!(ready.1["error"]["code"], "NOT_READY", "{}", ready.1);
    assert!(
        ready.1["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("catalog") && !m.contains("object_store")),
        "names the catalog, and only it: {}",
        ready.1
    );
    proxy.restore();

    // ready again by itself; the job over, with a clear outcome
    d.wait_for("readiness to come back", 60, async |d| {
        d.call("GET", "/api/v1/health/ready", None, None).await.0 == 200
    })
    .await;
    let job = d.latest_job("docs").await;
    assert!(
        ["succeeded", "failed"].contains(&job["status"].as_str().unwrap()),
        "{job}"
    );
    if job["status"] == "failed" {
        assert!(
            job["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("catalog")),
            "the error names the catalog: {job}"
        );
    }
    let next = d.run_and_wait("docs", "incremental").await;
    assert_eq!(next["status"], "succeeded", "{next}\n{}", d.log());
    drop(d);

    let verify = Command::new(BIN)
        .args(["verify", "--json", "-c", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let v: Value = serde_json::from_slice(&verify.stdout).unwrap();
    assert_eq!(
        (&v["missing"], &v["corrupt"]),
        (&serde_json::json!([]), &serde_json::json!([])),
        "{v}"
    );
    let out = restore(&cfg, "/docs", dir.path());
    assert!(
        tree::snapshot(&src) == tree::snapshot(&out),
        "restored bytes differ from the source"
    );
}
