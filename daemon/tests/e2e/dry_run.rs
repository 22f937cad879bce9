//! Dry runs through the real daemon and CLI: `POST /connectors/{id}/runs {"dry_run":
//! true}` and `tributary once --dry-run` store nothing (the bucket and the catalog are
//! as they were) and report the numbers the real run then has.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::common::*;

/// Every object in the local store, with its bytes.
fn bucket(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    tributary_testkit::tree::snapshot(&dir.join("state/objects"))
        .into_iter()
        .collect()
}

/// The counters a dry run promises about the real run (`bytes_planned` of a real run
/// also counts a file read again because it changed while being read: compared apart).
fn promised(progress: &Value) -> Vec<(String, Value)> {
    [
        "files_seen",
        "files_unchanged",
        "files_planned",
        "files_new",
        "files_changed",
        "files_relocated",
        "files_deleted",
        "conflicts",
        "mass_delete_held",
        "files_delete_held",
    ]
    .iter()
    .map(|k| (k.to_string(), progress[*k].clone()))
    .collect()
}

/// What the API says the catalog holds: the connector's items, its deleted and failed
/// ones, and the conflicts.
async fn catalog_view(d: &Running) -> Vec<Value> {
    let mut out = Vec::new();
    for q in [
        "/api/v1/items?connector=docs&per_page=500",
        "/api/v1/items?connector=docs&per_page=500&status=deleted",
        "/api/v1/items?connector=docs&per_page=500&status=failed",
        "/api/v1/conflicts?include_resolved=true",
    ] {
        out.push(d.get(q).await["items"].clone());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_over_the_api_stores_nothing_and_the_real_run_does_what_it_said() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("a")).unwrap();
    for i in 0..6 {
        std::fs::write(
            src.join(format!("a/{i}.txt")),
            format!("text {i} ").repeat(50),
        )
        .unwrap();
    }
    let port = free_port();
    let cfg = config(dir.path(), port, "", &local_connector(""), "");
    let d = Running::start(&cfg, port, &[]);
    let first = d.latest_job("docs").await;
    assert_eq!(first["status"], "succeeded", "{first}");
    assert_eq!(first["dry_run"], false);

    std::fs::write(src.join("new.txt"), "new").unwrap();
    std::fs::write(src.join("a/0.txt"), "changed").unwrap();
    std::fs::remove_file(src.join("a/1.txt")).unwrap();
    let bucket_before = bucket(dir.path());
    let catalog_before = catalog_view(&d).await;

    // a viewer may not ask for one; an operator may
    let (status, _, _) = d
        .call(
            "POST",
            "/api/v1/connectors/docs/runs",
            Some(VIEWER),
            Some(json!({"kind": "full", "dry_run": true})),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _, body) = d
        .call(
            "POST",
            "/api/v1/connectors/docs/runs",
            Some(OPERATOR),
            Some(json!({"kind": "full", "dry_run": true})),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["dry_run"], true, "{answer}");
    let job_id = answer["job_id"].as_i64().unwrap();
    let dry = d.latest_job("docs").await;
    assert_eq!(dry["id"], job_id);
    assert_eq!(
        (dry["status"].as_str(), dry["dry_run"].as_bool()),
        (Some("succeeded"), Some(true)),
        "{dry}"
    );
    assert_eq!(dry["requested_by"], "o");
    let p = &dry["progress"];
    assert_eq!(
        (
            &p["files_planned"],
            &p["files_new"],
            &p["files_changed"],
            &p["files_deleted"],
            &p["bytes_planned"],
        ),
        (&json!(2), &json!(1), &json!(1), &json!(1), &json!(10)),
        "{dry}"
    );
    assert_eq!(
        (
            &p["files_done"],
            &p["bytes_uploaded"],
            &p["mass_delete_held"]
        ),
        (&json!(0), &json!(0), &json!(false)),
        "{dry}"
    );
    assert_eq!(bucket(dir.path()), bucket_before, "the bucket is as it was");
    assert_eq!(
        catalog_view(&d).await,
        catalog_before,
        "the catalog is as it was"
    );
    let log = d.get(&format!("/api/v1/jobs/{job_id}/log")).await;
    assert!(
        log.to_string().contains("a real run would read 2 file(s)"),
        "{log}"
    );

    // the same from the CLI, while the daemon runs
    let out = Command::new(BIN)
        .args([
            "once",
            "-c",
            cfg.to_str().unwrap(),
            "docs",
            "--dry-run",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cli["dry_run"], true, "{cli}");
    assert_eq!(promised(&cli["stats"]), promised(p), "{cli}");
    let out = Command::new(BIN)
        .args(["once", "-c", cfg.to_str().unwrap(), "docs", "--dry-run"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("nothing was stored") && text.contains("would read:   2 files"),
        "{text}"
    );
    assert_eq!(bucket(dir.path()), bucket_before);
    assert_eq!(catalog_view(&d).await, catalog_before);

    // the real run does what the dry run said
    let real = d.run_and_wait("docs", "full").await;
    assert_eq!(
        (real["status"].as_str(), real["dry_run"].as_bool()),
        (Some("succeeded"), Some(false)),
        "{real}"
    );
    assert_eq!(promised(&real["progress"]), promised(p), "{real}");
    assert!(
        real["progress"]["bytes_planned"].as_u64() >= p["bytes_planned"].as_u64(),
        "{real}"
    );
    assert_ne!(bucket(dir.path()), bucket_before);
    let restored = restore(&cfg, "/docs", dir.path());
    assert_eq!(
        tributary_testkit::tree::snapshot(&restored),
        tributary_testkit::tree::snapshot(&src)
    );

    // an incremental dry run, the API's default kind: nothing changed since
    let (status, _, body) = d
        .call(
            "POST",
            "/api/v1/connectors/docs/runs",
            Some(OPERATOR),
            Some(json!({"dry_run": true})),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let dry = d.latest_job("docs").await;
    assert_eq!(
        (dry["dry_run"].as_bool(), dry["kind"].as_str()),
        (Some(true), Some("incremental")),
        "{dry}"
    );
    assert_eq!(dry["progress"]["files_planned"], 0, "{dry}");
    assert!(!d.log().contains("panicked"), "{}", d.log());
}
