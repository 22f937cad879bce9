//! Two daemon instances on one PostgreSQL catalog and one object store (a local
//! directory both use, as two instances of one host may): started together, every
//! connector's first-start job runs once for the fleet, not once per instance; an
//! API run on one instance while the connector's job runs on the other is refused
//! with the job that holds it; `tributary once` meanwhile too; restores are
//! byte-identical.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;
use tributary_testkit::{postgres, tree};

use crate::common::*;

const CONNECTORS: usize = 6;

fn instance(dir: &Path, name: &str, port: u16, url: &str) -> std::path::PathBuf {
    let home = dir.join(name);
    std::fs::create_dir_all(&home).unwrap();
    let connectors: String = (0..CONNECTORS)
        .map(|i| {
            format!(
                "  - id: c{i}\n    kind: local\n    path: {}\n    target: /c{i}\n",
                dir.join(format!("src-{i}")).display()
            )
        })
        .collect();
    let cfg = config(
        &home,
        port,
        &format!(
            "catalog:\n  url: {url}\nobject_store:\n  kind: local\n  path: {}\n",
            dir.join("store").display()
        ),
        &connectors,
        "",
    );
    let text = std::fs::read_to_string(&cfg).unwrap().replacen(
        "daemon:\n",
        &format!("daemon:\n  instance_id: {name}\n"),
        1,
    );
    std::fs::write(&cfg, text).unwrap();
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_catalog_run_each_connector_once() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..CONNECTORS {
        tree::generate(
            &dir.path().join(format!("src-{i}")),
            900 + i as u64,
            4 << 20,
        );
    }
    let url = postgres::fresh_database();
    let (pa, pb) = (free_port(), free_port());
    let cfg_a = instance(dir.path(), "node-a", pa, &url);
    let cfg_b = instance(dir.path(), "node-b", pb, &url);
    // a migrated catalog first, so that the two start on equal terms
    let out = Command::new(BIN)
        .args(["migrate", "-c", cfg_a.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let a = Running::start(&cfg_a, pa, &[]);
    let b = Running::start(&cfg_b, pb, &[]);

    // every connector's first job, once for the fleet
    let mut ran_on: HashMap<String, usize> = HashMap::new();
    for i in 0..CONNECTORS {
        let c = format!("c{i}");
        let job = a.latest_job(&c).await;
        assert_eq!(
            job["status"],
            "succeeded",
            "{c}: {job}\n{}\n{}",
            a.log(),
            b.log()
        );
        let jobs = b.jobs(&format!("connector={c}")).await;
        assert_eq!(
            jobs.len(),
            1,
            "{c} ran once, not once per instance: {jobs:?}"
        );
        *ran_on
            .entry(jobs[0]["instance"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert!(
        ran_on.keys().all(|k| k == "node-a" || k == "node-b"),
        "{ran_on:?}"
    );
    let listed = a.get("/api/v1/instances").await["items"].clone();
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["state"] == "up")
    );

    // while c0 runs on one instance, the other refuses another run of it, naming the job
    let (first, second) = if ran_on.contains_key("node-a") {
        (&a, &b)
    } else {
        (&b, &a)
    };
    let id = first.queue_run("c0", Some("full")).await;
    let (status, _, body) = second
        .call(
            "POST",
            "/api/v1/connectors/c0/runs",
            Some(OPERATOR),
            Some(serde_json::json!({"kind": "full"})),
        )
        .await;
    let running = first.get(&format!("/api/v1/jobs/{id}")).await;
    if running["status"] == "queued" || running["status"] == "running" {
        assert_eq!(status, 409, "{body}");
        let e: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(e["error"]["code"], "JOB_ALREADY_RUNNING", "{e}");
    }
    first
        .wait_for("c0's second job", 60, async |d| {
            d.get(&format!("/api/v1/jobs/{id}")).await["status"] == "succeeded"
        })
        .await;
    drop((a, b));

    for i in 0..CONNECTORS {
        let out = restore(&cfg_a, &format!("/c{i}"), dir.path());
        assert!(
            tree::snapshot(&dir.path().join(format!("src-{i}"))) == tree::snapshot(&out),
            "c{i} restored differs from its source"
        );
    }
}
