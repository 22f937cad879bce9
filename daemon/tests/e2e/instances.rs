//! Instance identity: a daemon names itself (`daemon.instance_id`, or its host's name
//! and a random suffix kept in the state directory), registers in the catalog,
//! renews its heartbeat, records a clean stop, and every job it runs names it;
//! `GET /api/v1/instances` lists the instances with their state and jobs.

use std::process::Command;

use serde_json::Value;

use crate::common::*;

async fn instances(d: &Running) -> Vec<Value> {
    d.get("/api/v1/instances").await["items"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_are_named_registered_and_shown_with_the_jobs_they_ran() {
    let dir = tempfile::tempdir().unwrap();
    tributary_testkit::tree::generate(&dir.path().join("src"), 5, 64 << 10);
    let port = free_port();
    let cfg = config(dir.path(), port, "", &local_connector(""), "");
    let mut d = Running::start(&cfg, port, &[]);
    let job = d.latest_job("docs").await;
    let id = std::fs::read_to_string(dir.path().join("state/instance-id"))
        .unwrap()
        .trim()
        .to_string();
    assert!(
        tributary_config::valid_instance_id(&id) && id.contains('-'),
        "host name and suffix: {id}"
    );
    assert_eq!(job["instance"], id.as_str(), "{job}");
    let listed = instances(&d).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let me = &listed[0];
    assert_eq!(
        (&me["id"], &me["state"], &me["this"], &me["stopped_at"]),
        (
            &Value::from(id.as_str()),
            &Value::from("up"),
            &Value::from(true),
            &Value::Null
        ),
        "{me}"
    );
    assert_eq!(me["version"], env!("CARGO_PKG_VERSION"));
    let first_beat = me["heartbeat_at"].as_str().unwrap().to_string();
    d.wait_for("a heartbeat", 15, async |d| {
        instances(d).await[0]["heartbeat_at"].as_str().unwrap() > first_beat.as_str()
    })
    .await;
    d.signal("TERM");
    assert!(d.wait_exit(30).success(), "{}", d.log());

    // restarted: the same instance; renamed: a new one, the old one shown stopped
    let mut d = Running::start(&cfg, port, &[]);
    let listed = instances(&d).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (&listed[0]["id"], &listed[0]["state"]),
        (&Value::from(id.as_str()), &Value::from("up"))
    );
    d.signal("TERM");
    assert!(d.wait_exit(30).success(), "{}", d.log());

    let cfg = config(dir.path(), port, "", &local_connector(""), "");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("daemon:\n", "daemon:\n  instance_id: node-b.example\n");
    std::fs::write(&cfg, text).unwrap();
    let d = Running::start(&cfg, port, &[]);
    let job = d.run_and_wait("docs", "incremental").await;
    assert_eq!(job["instance"], "node-b.example", "{job}");
    let by_id = d.get(&format!("/api/v1/jobs/{}", job["id"])).await;
    assert_eq!(by_id["instance"], "node-b.example");
    let listed = instances(&d).await;
    let state = |i: &str| {
        let row = listed.iter().find(|r| r["id"] == i).unwrap();
        (row["state"].clone(), row["this"].clone())
    };
    assert_eq!(state(&id), (Value::from("stopped"), Value::from(false)));
    assert_eq!(
        state("node-b.example"),
        (Value::from("up"), Value::from(true))
    );
    let (_, _, metrics) = d.call("GET", "/api/v1/metrics", Some(VIEWER), None).await;
    for line in [
        "tributary_instances{state=\"up\"} 1",
        "tributary_instances{state=\"stopped\"} 1",
        "tributary_instances{state=\"down\"} 0",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    let older = d.jobs("connector=docs").await;
    assert!(
        older.iter().any(|j| j["instance"] == id.as_str()),
        "earlier jobs keep the instance that ran them: {older:?}"
    );
    drop(d);

    // a name that is not an instance id is a configuration error
    let bad = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("instance_id: node-b.example", "instance_id: \"node b/1\"");
    std::fs::write(&cfg, bad).unwrap();
    let out = Command::new(BIN)
        .args(["check", "-c", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("daemon.instance_id") && err.contains("node b/1"),
        "{err}"
    );
}
