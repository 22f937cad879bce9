//! Daemon instances on one PostgreSQL catalog and one object store (an S3 bucket,
//! SeaweedFS, as instances on several hosts share; or a local directory, as instances
//! of one host may):
//!
//! - started together, every connector's first-start job runs once for the fleet and
//!   the jobs spread over the instances; a consumer polling the change feed of one
//!   while both commit receives every change once; an API run on one instance while the
//!   connector's job runs on the other is refused with the job that holds it;
//! - an instance killed mid-job (SIGKILL): another interrupts the job when its lease
//!   expires and finishes the connector, every file committed once; the fleet's event
//!   stream announces it down once it is silent for 30 s;
//! - an instance frozen past its lease (SIGSTOP, then SIGCONT) commits nothing more
//!   and says so; the connector is finished elsewhere;
//! - pause and cancel issued through one instance reach the job running on another;
//!
//! and restores are byte-identical.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;
use tributary_testkit::{postgres, tree, weed};

use crate::common::*;

const CONNECTORS: usize = 8;

fn instance(dir: &Path, name: &str, port: u16, url: &str) -> std::path::PathBuf {
    let connectors: String = (0..CONNECTORS)
        .map(|i| {
            format!(
                "  - id: c{i}\n    kind: local\n    path: {}\n    target: /c{i}\n",
                dir.join(format!("src-{i}")).display()
            )
        })
        .collect();
    // several hosts' instances share an S3 bucket (SeaweedFS): one prefix per test
    let w = weed::shared();
    let store = format!(
        "object_store:\n  kind: s3\n  endpoint: {}\n  bucket: {}\n  prefix: fleet-{}/\n  access_key_id: {}\n  secret_access_key: {}\n",
        w.endpoint(),
        weed::BUCKET,
        dir.file_name()
            .unwrap()
            .to_string_lossy()
            .trim_start_matches('.'),
        weed::ACCESS_KEY,
        weed::SECRET_KEY
    );
    instance_with(dir, name, port, url, &store, &connectors, "", "")
}

/// A `kind: local` store in `dir`, as instances of one host may share.
fn local_store(dir: &Path) -> String {
    format!(
        "object_store:\n  kind: local\n  path: {}\n",
        dir.join("store").display()
    )
}

/// Instance `name`'s configuration in `dir/name`: the shared catalog and `store`,
/// `connectors`, settings added to `daemon:` and top-level sections.
#[allow(clippy::too_many_arguments)]
fn instance_with(
    dir: &Path,
    name: &str,
    port: u16,
    url: &str,
    store: &str,
    connectors: &str,
    daemon: &str,
    extra: &str,
) -> std::path::PathBuf {
    let home = dir.join(name);
    std::fs::create_dir_all(&home).unwrap();
    let cfg = config(
        &home,
        port,
        &format!("catalog:\n  url: {url}\n{store}"),
        connectors,
        extra,
    );
    let text = std::fs::read_to_string(&cfg).unwrap().replacen(
        "daemon:\n",
        &format!("daemon:\n  instance_id: {name}\n{daemon}"),
        1,
    );
    std::fs::write(&cfg, text).unwrap();
    cfg
}

fn migrate(cfg: &Path) {
    let out = Command::new(BIN)
        .args(["migrate", "-c", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_catalog_run_each_connector_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = 0;
    for i in 0..CONNECTORS {
        files += tree::generate(
            &dir.path().join(format!("src-{i}")),
            900 + i as u64,
            4 << 20,
        )
        .len();
    }
    let url = postgres::fresh_database();
    let (pa, pb) = (free_port(), free_port());
    let cfg_a = instance(dir.path(), "node-a", pa, &url);
    let cfg_b = instance(dir.path(), "node-b", pb, &url);
    // a migrated catalog first, so that the two start on equal terms
    migrate(&cfg_a);
    let a = Running::start(&cfg_a, pa, &[]);
    let b = Running::start(&cfg_b, pb, &[]);
    // a consumer of the change feed, polling one instance while both commit
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let consumer = tokio::spawn(follow_feed(b.url("/api/v1/changes"), stopped));

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
    // every change once, in the order of its cursor, none skipped: one per file
    stop.send(()).unwrap();
    let feed = consumer.await.unwrap();
    let mut seen = std::collections::HashSet::new();
    for c in &feed {
        assert!(
            seen.insert((c["connector"].to_string(), c["item_id"].as_i64().unwrap())),
            "a change received twice: {c}"
        );
    }
    assert_eq!(feed.len(), files, "changes received, one per file");
    let total: usize = postgres::query(&url, "SELECT count(*) FROM changes")
        .parse()
        .unwrap();
    assert_eq!(
        feed.len(),
        total,
        "the feed holds no change the consumer missed"
    );
    // two job slots each (the default): the eight jobs spread over both instances
    assert_eq!(ran_on.len(), 2, "spread over the instances: {ran_on:?}");
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

/// The changes a consumer polling `url` receives until `stop` fires and the feed is
/// read to its end; asserts that cursors only grow.
async fn follow_feed(url: String, mut stop: tokio::sync::oneshot::Receiver<()>) -> Vec<Value> {
    let http = reqwest::Client::new();
    let (mut cursor, mut out, mut last_round) = (0i64, Vec::new(), false);
    loop {
        let page: Value = http
            .get(format!("{url}?cursor={cursor}&limit=1000"))
            .bearer_auth(VIEWER)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let items = page["items"].as_array().unwrap();
        for c in items {
            let seq = c["seq"].as_i64().unwrap();
            assert!(seq > cursor, "cursor went back: {seq} after {cursor}");
            cursor = seq;
            out.push(c.clone());
        }
        if items.is_empty() {
            if last_round {
                return out;
            }
            last_round = stop.try_recv().is_ok();
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

/// A connector of many small files committed one by one: a job that lasts long
/// enough to be interrupted mid-way.
const SLOW: &str = "pipeline:\n  commit_batch_size: 1\n  file_concurrency: 1\n";
const FILES: usize = 1500;

fn many_files(root: &Path) {
    for i in 0..FILES {
        let p = root.join(format!("d{:02}/f{i:05}.txt", i % 20));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, tree::random_bytes(i as u64, 700 + i % 900)).unwrap();
    }
}

/// Two instances sharing a catalog with one slow connector `big` and a short lease.
struct Pair {
    dir: tempfile::TempDir,
    url: String,
    cfgs: [std::path::PathBuf; 2],
    nodes: Vec<Running>,
}

const LEASE_TTL_S: u64 = 4;

impl Pair {
    fn start() -> Pair {
        let dir = tempfile::tempdir().unwrap();
        many_files(&dir.path().join("src-big"));
        let url = postgres::fresh_database();
        let connector = format!(
            "  - id: big\n    kind: local\n    path: {}\n    target: /big\n",
            dir.path().join("src-big").display()
        );
        let lease = format!("  lease_ttl: {LEASE_TTL_S}s\n");
        let ports = [free_port(), free_port()];
        let cfgs = ["node-a", "node-b"]
            .iter()
            .zip(ports)
            .map(|(n, p)| {
                let store = local_store(dir.path());
                instance_with(dir.path(), n, p, &url, &store, &connector, &lease, SLOW)
            })
            .collect::<Vec<_>>();
        migrate(&cfgs[0]);
        let nodes = vec![
            Running::start(&cfgs[0], ports[0], &[]),
            Running::start(&cfgs[1], ports[1], &[]),
        ];
        Pair {
            dir,
            url,
            cfgs: [cfgs[0].clone(), cfgs[1].clone()],
            nodes,
        }
    }

    /// The first-start job of `big` once it has committed some files, and the index of
    /// the instance running it.
    async fn job_under_way(&self) -> (i64, usize) {
        let mut found = None;
        self.nodes[0]
            .wait_for("big's first job under way", 60, async |d| {
                let Some(j) = d.jobs("connector=big").await.first().cloned() else {
                    return false;
                };
                assert!(
                    ["queued", "running"].contains(&j["status"].as_str().unwrap()),
                    "the job ended before the test could act on it: {j}"
                );
                let committed = self.committed(j["id"].as_i64().unwrap());
                if j["status"] == "running" && committed >= 20 {
                    let on = usize::from(j["instance"] == "node-b");
                    found = Some((j["id"].as_i64().unwrap(), on));
                }
                found.is_some()
            })
            .await;
        found.unwrap()
    }

    /// Versions job `job` committed, as the catalog holds them.
    fn committed(&self, job: i64) -> usize {
        postgres::query(
            &self.url,
            &format!("SELECT count(*) FROM versions WHERE job_id = {job}"),
        )
        .parse()
        .unwrap()
    }

    /// Every file of `big` committed exactly once over all its jobs, nothing lost:
    /// one version per file, one change per file; restore byte-identical.
    fn assert_complete(&self) {
        let per_item = postgres::query(
            &self.url,
            "SELECT count(*) FROM versions v JOIN items i ON i.id = v.item_id
             WHERE i.connector = 'big' GROUP BY v.item_id HAVING count(*) > 1",
        );
        assert_eq!(per_item, "", "files committed more than once");
        let versions = postgres::query(
            &self.url,
            "SELECT count(*) FROM versions v JOIN items i ON i.id = v.item_id WHERE i.connector = 'big'",
        );
        assert_eq!(versions, FILES.to_string());
        let changes = postgres::query(
            &self.url,
            "SELECT count(*) FROM changes WHERE connector = 'big'",
        );
        assert_eq!(
            changes,
            FILES.to_string(),
            "one change per file in the feed"
        );
        let out = restore(&self.cfgs[0], "/big", self.dir.path());
        assert!(
            tree::snapshot(&self.dir.path().join("src-big")) == tree::snapshot(&out),
            "the restore differs from the source"
        );
    }
}

/// The jobs of `big` after `job`, once one of them succeeded.
async fn finished_elsewhere(by: &Running, job: i64) -> Vec<Value> {
    let mut after = Vec::new();
    by.wait_for(
        "the connector finished by the other instance",
        240,
        async |d| {
            after = d
                .jobs("connector=big")
                .await
                .into_iter()
                .filter(|j| j["id"].as_i64().unwrap() > job)
                .collect();
            after.iter().any(|j| j["status"] == "succeeded")
        },
    )
    .await;
    after
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_killed_mid_job_is_taken_over_by_another() {
    let mut pair = Pair::start();
    let (job, on) = pair.job_under_way().await;
    let (victim, survivor) = (on, 1 - on);
    let mut instance_events =
        crate::events::Sse::open(&pair.nodes[survivor], "?type=instance", None).await;
    pair.nodes[victim].signal("KILL");
    pair.nodes[victim].wait_exit(10);
    let killed_at = std::time::Instant::now();
    let survivor = &pair.nodes[survivor];
    survivor
        .wait_for("the killed instance's job interrupted", 30, async |d| {
            d.get(&format!("/api/v1/jobs/{job}")).await["status"] == "interrupted"
        })
        .await;
    let detected = killed_at.elapsed();
    let interrupted = survivor.get(&format!("/api/v1/jobs/{job}")).await;
    assert!(
        interrupted["last_error"]
            .as_str()
            .unwrap()
            .contains("lease"),
        "{interrupted}"
    );
    // within the lease and one poll (and the time its last renewal had left)
    assert!(
        detected.as_secs_f64() <= LEASE_TTL_S as f64 + 5.0,
        "took {detected:?} to notice"
    );
    let after = finished_elsewhere(survivor, job).await;
    let next = after.iter().find(|j| j["status"] == "succeeded").unwrap();
    assert_eq!(next["trigger"], "failover", "{after:?}");
    assert_eq!(next["kind"], "incremental");
    assert_ne!(next["instance"], interrupted["instance"]);
    eprintln!("failover: the job was interrupted {detected:?} after the kill");
    // the fleet hears that the killed instance is gone, once it is silent for 30 s
    let down = instance_events
        .until(45, |e| e.kind == "instance.down")
        .await;
    let down = &down.last().unwrap().data;
    assert_eq!(down["instance"], interrupted["instance"], "{down}");
    assert_eq!(down["reason"], "silent", "{down}");
    assert!(down["last_heartbeat_at"].is_string(), "{down}");
    pair.nodes.clear();
    let verify = Command::new(BIN)
        .args(["verify", "-c", pair.cfgs[0].to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "verify: {}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    pair.assert_complete();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_frozen_past_its_lease_commits_nothing_after_it() {
    let mut pair = Pair::start();
    let (job, on) = pair.job_under_way().await;
    let (frozen, other) = (on, 1 - on);
    pair.nodes[frozen].signal("STOP");
    {
        let other = &pair.nodes[other];
        other
            .wait_for("the frozen instance's job interrupted", 30, async |d| {
                d.get(&format!("/api/v1/jobs/{job}")).await["status"] == "interrupted"
            })
            .await;
    }
    let at_loss = pair.committed(job);
    pair.nodes[frozen].signal("CONT");
    // it wakes with files in flight: it must give the job up, not commit them
    pair.nodes[frozen]
        .wait_for("the woken instance to give the job up", 30, async |d| {
            d.log().contains("lost the connector's lease")
        })
        .await;
    let after = finished_elsewhere(&pair.nodes[other], job).await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(
        pair.committed(job),
        at_loss,
        "the frozen instance committed after losing its lease"
    );
    let next = after.iter().find(|j| j["status"] == "succeeded").unwrap();
    assert_eq!(next["trigger"], "failover", "{after:?}");
    let ended = pair.nodes[other].get(&format!("/api/v1/jobs/{job}")).await;
    assert_eq!(
        ended["status"], "interrupted",
        "its late end did not overwrite: {ended}"
    );
    // the woken instance is a working member again: it answers and claims new work
    let woken = &pair.nodes[frozen];
    assert_eq!(woken.get("/api/v1/health").await["status"], "ok");
    pair.nodes.clear();
    pair.assert_complete();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_cancel_through_one_instance_reach_the_job_on_another() {
    let pair = Pair::start();
    let (job, on) = pair.job_under_way().await;
    let (runner, other) = (&pair.nodes[on], &pair.nodes[1 - on]);
    // each instance's event stream carries the fleet's events, under the same ids
    use crate::events::{Sse, is_finish_of};
    let mut on_runner = Sse::open(runner, "?connector=big", None).await;
    let mut on_other = Sse::open(other, "?connector=big", None).await;
    // the running instance's progress is seen through the other (saved every 2 s)
    other
        .wait_for(
            "the job's progress seen through the other instance",
            10,
            async |d| {
                let seen = d.get(&format!("/api/v1/jobs/{job}")).await;
                assert_eq!(seen["status"], "running", "{seen}");
                seen["progress"]["files_done"].as_u64().unwrap_or(0) > 0
            },
        )
        .await;
    let (status, _, body) = other
        .call("POST", "/api/v1/connectors/big/pause", Some(OPERATOR), None)
        .await;
    assert_eq!(status, 200, "{body}");
    runner
        .wait_for("the pause seen by the running instance", 5, async |d| {
            let c = d.get("/api/v1/connectors/big").await;
            c["status"]["paused"] == true
        })
        .await;
    let (status, _, body) = other
        .call(
            "POST",
            &format!("/api/v1/jobs/{job}/cancel"),
            Some(OPERATOR),
            None,
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let started = std::time::Instant::now();
    runner
        .wait_for(
            "the job cancelled on the instance running it",
            15,
            async |d| d.get(&format!("/api/v1/jobs/{job}")).await["status"] == "cancelled",
        )
        .await;
    eprintln!(
        "cancel through the other instance took effect in {:?}",
        started.elapsed()
    );
    let seen_by_runner = on_runner.until(20, is_finish_of(job)).await;
    let seen_by_other = on_other.until(20, is_finish_of(job)).await;
    let from = seen_by_runner[0].id.max(seen_by_other[0].id);
    let tail = |v: &[crate::events::Ev]| -> Vec<(u64, String)> {
        v.iter()
            .filter(|e| e.id >= from)
            .map(|e| (e.id, e.kind.clone()))
            .collect()
    };
    assert_eq!(tail(&seen_by_runner), tail(&seen_by_other));
    let kinds: Vec<&str> = seen_by_other.iter().map(|e| e.kind.as_str()).collect();
    assert!(
        seen_by_other
            .iter()
            .any(|e| e.kind == "job.progress" && e.data["job_id"] == job),
        "the running instance's progress reaches the other's stream: {kinds:?}"
    );
    assert!(
        seen_by_runner.iter().any(|e| e.kind == "connector.paused"),
        "a pause made through the other instance reaches the runner's stream: {kinds:?}"
    );
    assert_eq!(seen_by_other.last().unwrap().data["status"], "cancelled");
    let ids: Vec<u64> = seen_by_other.iter().map(|e| e.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    // paused: nothing more runs until it is resumed, through either instance
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let jobs = runner.jobs("connector=big").await;
    assert_eq!(jobs.len(), 1, "nothing ran while paused: {jobs:?}");
    let (status, _, _) = runner
        .call(
            "POST",
            "/api/v1/connectors/big/resume",
            Some(OPERATOR),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let id = other.queue_run("big", Some("incremental")).await;
    other
        .wait_for("the run after the resume", 120, async |d| {
            d.get(&format!("/api/v1/jobs/{id}")).await["status"] == "succeeded"
        })
        .await;
    pair.assert_complete();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connector_created_through_one_instance_is_run_by_the_fleet() {
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shares/team");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::write(shared.join("a.txt"), b"seen by every instance").unwrap();
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    let secrets = secrets_key(dir.path());
    let url = postgres::fresh_database();
    let ports = [free_port(), free_port()];
    let cfgs: Vec<_> = ["node-a", "node-b"]
        .iter()
        .zip(ports)
        .map(|(n, p)| {
            let connector = format!(
                "  - id: docs\n    kind: local\n    path: {}\n",
                dir.path().join("src").display()
            );
            let extra = secrets.clone();
            let cfg = instance_with(
                dir.path(),
                n,
                p,
                &url,
                &local_store(dir.path()),
                &connector,
                "",
                &extra,
            );
            let text = std::fs::read_to_string(&cfg).unwrap().replace(
                "  max_body_size: 4KiB\n",
                &format!(
                    "  max_body_size: 4KiB\n  connector_roots: [{}]\n",
                    dir.path().join("shares").display()
                ),
            );
            std::fs::write(&cfg, text).unwrap();
            cfg
        })
        .collect();
    migrate(&cfgs[0]);
    let a = Running::start(&cfgs[0], ports[0], &[]);
    let b = Running::start(&cfgs[1], ports[1], &[]);
    let body = serde_json::json!({"id": "team", "kind": "smb", "server": "127.0.0.1", "port": 1,
        "share": "s", "username": "u", "password": "fleet-pw-0099"});
    let (s, _, v) = a
        .call("POST", "/api/v1/connectors", Some(ADMIN), Some(body))
        .await;
    assert_eq!(s, 201, "{v}");
    // the other instance runs it too: its secret opens there with the same key
    b.wait_for("the connector on the other instance", 10, async |d| {
        let (s, _, _) = d
            .call("GET", "/api/v1/connectors/team", Some(VIEWER), None)
            .await;
        s == 200
    })
    .await;
    let local = serde_json::json!({"id": "team", "kind": "local", "path": shared});
    let (s, _, v) = b
        .call("PUT", "/api/v1/connectors/team", Some(ADMIN), Some(local))
        .await;
    assert_eq!(s, 200, "{v}");
    a.wait_for("the change on the first instance", 10, async |d| {
        let c = d.get("/api/v1/connectors/team").await;
        c["revision"] == 2 && c["kind"] == "local"
    })
    .await;
    let job = a.run_and_wait("team", "full").await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let (s, _, _) = a
        .call("DELETE", "/api/v1/connectors/team", Some(ADMIN), None)
        .await;
    assert_eq!(s, 204);
    b.wait_for("the delete on the other instance", 10, async |d| {
        let (s, _, _) = d
            .call("GET", "/api/v1/connectors/team", Some(VIEWER), None)
            .await;
        s == 404
    })
    .await;
    assert!(!a.log().contains("fleet-pw-0099") && !b.log().contains("fleet-pw-0099"));
}
