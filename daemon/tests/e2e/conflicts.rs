//! Conflicts end to end: the real daemon with local connectors sharing one target,
//! every kind and every policy, checked by restoring what the catalog says is there.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use tributary_testkit::tree;

use crate::common::*;

fn write(dir: &Path, name: &str, body: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), body).unwrap();
}

fn set_mtime(path: &Path, secs: u64) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
        .unwrap();
}

/// Connectors sharing `/shared`, one per (id, extra settings), sources `src-<id>`.
fn shared(parts: &[(&str, &str)]) -> String {
    parts
        .iter()
        .map(|(id, extra)| {
            format!(
                "  - id: {id}\n    kind: local\n    path: src-{id}\n    target: /shared\n{extra}"
            )
        })
        .collect()
}

impl Running {
    /// Queues a job and waits for it to succeed.
    async fn run_job(&self, connector: &str) -> Value {
        let id = self.queue_run(connector, Some("full")).await;
        self.job_done(id).await
    }

    async fn job_done(&self, id: i64) -> Value {
        let mut job = Value::Null;
        self.wait_for("the job to finish", 60, async |d| {
            job = d.get(&format!("/api/v1/jobs/{id}")).await;
            !["queued", "running"].contains(&job["status"].as_str().unwrap())
        })
        .await;
        assert_eq!(job["status"], "succeeded", "{job}");
        job
    }

    /// Waits until every connector's first job is over. (A connector is `idle` too
    /// in the moment between the API answering and its startup job being queued.)
    async fn idle(&self) {
        self.wait_for("idle connectors", 60, async |d| {
            let c = d.get("/api/v1/connectors").await;
            for c in c["items"].as_array().unwrap() {
                let id = c["id"].as_str().unwrap();
                // a job queued but not yet claimed leaves the connector `idle`: every
                // job must have ended
                let jobs = d.jobs(&format!("connector={id}")).await;
                if c["state"] != "idle"
                    || jobs.is_empty()
                    || jobs.iter().any(|j| {
                        ["queued", "running"].contains(&j["status"].as_str().unwrap_or(""))
                    })
                {
                    return false;
                }
            }
            true
        })
        .await;
    }

    async fn conflicts(&self, query: &str) -> Vec<Value> {
        self.get(&format!("/api/v1/conflicts?per_page=500&{query}"))
            .await["items"]
            .as_array()
            .unwrap()
            .clone()
    }

    async fn resolve(&self, id: &Value, resolution: &str) -> (u16, Value) {
        let (status, _, body) = self
            .call(
                "POST",
                &format!("/api/v1/conflicts/{id}/resolve"),
                Some(OPERATOR),
                Some(json!({ "resolution": resolution })),
            )
            .await;
        (status, serde_json::from_str(&body).unwrap())
    }

    async fn metric(&self, line_start: &str) -> f64 {
        let (_, _, text) = self
            .call("GET", "/api/v1/metrics", Some(VIEWER), None)
            .await;
        text.lines()
            .find_map(|l| l.strip_prefix(line_start))
            .unwrap_or_else(|| panic!("no {line_start} in\n{text}"))
            .trim()
            .parse()
            .unwrap()
    }
}

fn by_path<'a>(list: &'a [Value], path: &str) -> &'a Value {
    list.iter()
        .find(|c| c["path"] == path)
        .unwrap_or_else(|| panic!("no conflict on {path} in {list:?}"))
}

fn claim<'a>(c: &'a Value, role: &str) -> &'a Value {
    c["claims"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["role"] == role)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_conflicts_block_only_their_paths_until_an_operator_resolves_them() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("src-a"), dir.path().join("src-b"));
    write(&a, "report.txt", b"report from a, v1");
    write(&a, "Notes.md", b"notes of a");
    write(&a, "Caf\u{e9}.txt", b"cafe of a (NFC name)");
    write(&a, "only-a.txt", b"a alone");
    std::fs::create_dir_all(&b).unwrap();
    let port = free_port();
    // `a` is case-insensitive, so `Notes.md` and `notes.md` collide although `b` is not
    let cfg = config(
        dir.path(),
        port,
        "",
        &shared(&[("a", "    case_sensitive: false\n"), ("b", "")]),
        "",
    );
    let d = Running::start(&cfg, port, &[]);
    d.idle().await;
    write(&b, "report.txt", b"report from b, v1");
    write(&b, "notes.md", b"notes of b");
    write(&b, "Cafe\u{301}.txt", b"cafe of b (NFD name)");
    write(&b, "only-b.txt", b"b alone");
    let job = d.run_job("b").await;
    assert_eq!(
        job["progress"]["conflicts"], 3,
        "the rest of the job completed: {job}"
    );

    let open = d.conflicts("").await;
    assert_eq!(open.len(), 3, "{open:?}");
    let report = by_path(&open, "/shared/report.txt");
    assert_eq!(report["kind"], "path_claim");
    assert_eq!(report["status"], "open");
    assert_eq!(report["policy"], "manual");
    let (existing, incoming) = (claim(report, "existing"), claim(report, "incoming"));
    assert_eq!(existing["connector"], "a");
    assert_eq!(existing["state"], "visible");
    assert_eq!(existing["size"], 17);
    assert_eq!(incoming["connector"], "b");
    assert_eq!(incoming["state"], "held");
    assert!(
        incoming["digest"].as_str().unwrap().starts_with("blake3:")
            && incoming["digest"] != existing["digest"]
    );
    assert_eq!(by_path(&open, "/shared/notes.md")["kind"], "name_collision");
    assert_eq!(
        by_path(&open, "/shared/Cafe\u{301}.txt")["kind"],
        "name_collision",
        "NFC and NFD names always collide"
    );
    assert_eq!(d.conflicts("kind=path_claim").await.len(), 1);
    assert_eq!(d.conflicts("connector=a").await.len(), 3, "either side");
    assert_eq!(d.conflicts("connector=nope").await.len(), 0);
    assert_eq!(
        d.metric("tributary_conflicts_open{kind=\"name_collision\"}")
            .await,
        2.0
    );

    // the contested bytes are stored, retrievable, and not visible
    let v = d
        .get(&format!("/api/v1/items/{}", incoming["item_id"]))
        .await;
    assert_eq!(v["status"], "conflict");
    let held = v["versions"][0]["id"].clone();
    assert_eq!(v["versions"][0]["held"], true);
    let (status, _, body) = d
        .call(
            "GET",
            &format!(
                "/api/v1/items/{}/content?version={held}",
                incoming["item_id"]
            ),
            Some(VIEWER),
            None,
        )
        .await;
    assert_eq!((status, body.as_str()), (200, "report from b, v1"));
    let out = restore(&cfg, "/shared", dir.path());
    assert_eq!(
        names(&out),
        [
            "Caf\u{e9}.txt",
            "Notes.md",
            "only-a.txt",
            "only-b.txt",
            "report.txt"
        ]
    );
    assert_eq!(
        std::fs::read(out.join("report.txt")).unwrap(),
        b"report from a, v1"
    );

    // blocked: b's further changes are recorded on the conflict, not applied; the owner
    // keeps updating its own file
    write(&b, "report.txt", b"report from b, v2");
    write(&a, "report.txt", b"report from a, v2");
    d.run_job("b").await;
    d.run_job("a").await;
    let again = d.conflicts("kind=path_claim").await;
    assert_eq!(again.len(), 1, "still one conflict: {again:?}");
    assert!(again[0]["last_seen"].as_str() > report["last_seen"].as_str());
    assert_eq!(claim(&again[0], "incoming")["size"], 17);
    let out = restore(&cfg, "/shared", dir.path());
    assert_eq!(
        std::fs::read(out.join("report.txt")).unwrap(),
        b"report from a, v2"
    );
    let cursor = d.get("/api/v1/changes?limit=1000").await["next_cursor"].clone();

    // keep_source: b's latest claim becomes the content, a's is displaced
    let (status, r) = d.resolve(&report["id"], "keep_source").await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(
        (r["status"].as_str(), r["resolution"].as_str()),
        (Some("resolved"), Some("keep_source"))
    );
    assert_eq!(
        r["resolved_by"], "o",
        "the principal (the token's name) decided"
    );
    let out = restore(&cfg, "/shared", dir.path());
    assert_eq!(
        std::fs::read(out.join("report.txt")).unwrap(),
        b"report from b, v2"
    );
    let feed = d.get(&format!("/api/v1/changes?cursor={cursor}")).await;
    let ops: Vec<(String, String)> = feed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["op"].as_str().unwrap().into(),
                c["path"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        ops,
        [
            ("delete".into(), "/shared/report.txt".into()),
            ("upsert".into(), "/shared/report.txt".into())
        ]
    );
    // a second decision is refused
    let (status, _, body) = d
        .call(
            "POST",
            &format!("/api/v1/conflicts/{}/resolve", report["id"]),
            Some(OPERATOR),
            Some(json!({"resolution": "keep_existing"})),
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"]["code"],
        "CONFLICT_ALREADY_RESOLVED"
    );
    let notes = by_path(&open, "/shared/notes.md");
    let (status, _, body) = d
        .call(
            "POST",
            &format!("/api/v1/conflicts/{}/resolve", notes["id"]),
            Some(OPERATOR),
            Some(json!({"resolution": "allow"})),
        )
        .await;
    assert_eq!(status, 422, "allow is for mass deletes: {body}");
    let (status, _, _) = d
        .call(
            "POST",
            &format!("/api/v1/conflicts/{}/resolve", notes["id"]),
            Some(VIEWER),
            Some(json!({"resolution": "keep_both"})),
        )
        .await;
    assert_eq!(status, 403, "viewers do not decide");
    let (status, _, _) = d
        .call("GET", "/api/v1/conflicts/999999", Some(VIEWER), None)
        .await;
    assert_eq!(status, 404);

    // keep_both: b's claim lands beside a's under the conflict name
    let (status, r) = d.resolve(&notes["id"], "keep_both").await;
    assert_eq!(status, 200, "{r}");
    let renamed = r["renamed_to"].as_str().unwrap().to_string();
    let stamp = notes["first_seen"]
        .as_str()
        .unwrap()
        .replace(['-', ':'], "");
    let stamp = format!("{}Z", &stamp[..15]);
    assert_eq!(renamed, format!("/shared/notes (conflict b {stamp}).md"));
    // keep_existing: nothing changes, the path is unblocked
    let cafe = by_path(&open, "/shared/Cafe\u{301}.txt");
    assert_eq!(d.resolve(&cafe["id"], "keep_existing").await.0, 200);
    let out = restore(&cfg, "/shared", dir.path());
    let file = |n: &str| std::fs::read(out.join(n)).unwrap();
    assert_eq!(file("Notes.md"), b"notes of a");
    assert_eq!(
        file(renamed.strip_prefix("/shared/").unwrap()),
        b"notes of b"
    );
    assert_eq!(file("Caf\u{e9}.txt"), b"cafe of a (NFC name)");
    assert!(d.conflicts("").await.is_empty());
    assert_eq!(d.conflicts("include_resolved=true").await.len(), 3);
    assert_eq!(
        d.metric("tributary_conflicts_open{kind=\"path_claim\"}")
            .await,
        0.0
    );
    // the renamed claim stays where it is when b changes it again
    write(&b, "notes.md", b"notes of b, v2");
    d.run_job("b").await;
    let out = restore(&cfg, "/shared", dir.path());
    assert_eq!(
        std::fs::read(out.join(renamed.strip_prefix("/shared/").unwrap())).unwrap(),
        b"notes of b, v2"
    );
    assert!(d.conflicts("").await.is_empty());

    // the terminal view
    let out = std::process::Command::new(BIN)
        .args(["conflicts", "--all", "-c", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.contains("path_claim")
            && text.contains("keep_both")
            && text.contains("/shared/report.txt"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_decide_on_their_own_and_a_diverged_owner_waits() {
    let dir = tempfile::tempdir().unwrap();
    let src = |id: &str| dir.path().join(format!("src-{id}"));
    let base = 1_700_000_000;
    for (name, body) in [
        ("s.txt", "s of a"),
        ("n1.txt", "n1 of a"),
        ("n2.txt", "n2 of a"),
        ("n3.txt", "n3 of a"),
        ("k.txt", "k of a"),
        ("same.txt", "identical"),
    ] {
        write(&src("a"), name, body.as_bytes());
        set_mtime(&src("a").join(name), base);
    }
    for id in ["sw", "nw", "kb"] {
        std::fs::create_dir_all(src(id)).unwrap();
    }
    let port = free_port();
    let cfg = config(
        dir.path(),
        port,
        "",
        &shared(&[
            ("a", ""),
            ("sw", "    conflict_policy: source_wins\n"),
            ("nw", "    conflict_policy: newest_wins\n"),
            ("kb", "    conflict_policy: keep_both\n"),
        ]),
        "",
    );
    let d = Running::start(&cfg, port, &[]);
    d.idle().await;
    write(&src("sw"), "s.txt", b"s of sw");
    write(&src("sw"), "same.txt", b"identical");
    for (name, body, mtime) in [
        ("n1.txt", "n1 of nw (newer)", base + 60),
        ("n2.txt", "n2 of nw (older)", base - 60),
        ("n3.txt", "n3 of nw (same time)", base),
    ] {
        write(&src("nw"), name, body.as_bytes());
        set_mtime(&src("nw").join(name), mtime);
    }
    write(&src("kb"), "k.txt", b"k of kb");
    for id in ["sw", "nw", "kb"] {
        d.run_job(id).await;
    }
    let open = d.conflicts("").await;
    assert!(open.is_empty(), "policies leave nothing open: {open:?}");
    let all = d.conflicts("include_resolved=true").await;
    assert_eq!(all.len(), 6, "{all:?}");
    let res = |p: &str| {
        let c = by_path(&all, p);
        (
            c["resolution"].as_str().unwrap().to_string(),
            c["resolved_by"].as_str().unwrap().to_string(),
        )
    };
    assert_eq!(
        res("/shared/s.txt"),
        ("keep_source".into(), "policy".into())
    );
    assert_eq!(
        res("/shared/n1.txt"),
        ("keep_source".into(), "policy".into())
    );
    assert_eq!(
        res("/shared/n2.txt"),
        ("keep_existing".into(), "policy".into())
    );
    assert_eq!(
        res("/shared/n3.txt"),
        ("keep_existing".into(), "policy".into()),
        "a tie goes to the connector listed first"
    );
    assert_eq!(
        res("/shared/same.txt"),
        ("keep_existing".into(), "identical".into())
    );
    let renamed = by_path(&all, "/shared/k.txt")["renamed_to"]
        .as_str()
        .unwrap()
        .strip_prefix("/shared/")
        .unwrap()
        .to_string();
    assert!(renamed.starts_with("k (conflict kb 2") && renamed.ends_with("Z).txt"));

    let out = restore(&cfg, "/shared", dir.path());
    let file =
        |out: &Path, n: &str| String::from_utf8(std::fs::read(out.join(n)).unwrap()).unwrap();
    assert_eq!(file(&out, "s.txt"), "s of sw");
    assert_eq!(file(&out, "n1.txt"), "n1 of nw (newer)");
    assert_eq!(file(&out, "n2.txt"), "n2 of a");
    assert_eq!(file(&out, "n3.txt"), "n3 of a");
    assert_eq!(file(&out, "k.txt"), "k of a");
    assert_eq!(file(&out, &renamed), "k of kb");
    assert_eq!(file(&out, "same.txt"), "identical");
    assert_eq!(names(&out).len(), 7, "{:?}", names(&out));

    // keep_both names are stable across reruns
    write(&src("kb"), "k.txt", b"k of kb, v2");
    d.run_job("kb").await;
    let out = restore(&cfg, "/shared", dir.path());
    assert_eq!(file(&out, &renamed), "k of kb, v2");
    assert_eq!(d.conflicts("include_resolved=true").await.len(), 6);

    // a's s.txt was replaced by sw since a last committed it: a's next change is a
    // diverged conflict (a is manual), kept aside; sw's content stays
    write(&src("a"), "s.txt", b"s of a, v2");
    let job = d.run_job("a").await;
    assert_eq!(job["progress"]["conflicts"], 1, "{job}");
    let open = d.conflicts("").await;
    assert_eq!(open.len(), 1);
    assert_eq!(open[0]["kind"], "diverged");
    assert_eq!(claim(&open[0], "existing")["connector"], "sw");
    let out = restore(&cfg, "/shared", dir.path());
    assert_eq!(file(&out, "s.txt"), "s of sw");
    let log = d.get(&format!("/api/v1/jobs/{}/log", job["id"])).await;
    assert!(
        log["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["message"].as_str().unwrap().contains("diverged")),
        "the job log names the conflict: {log}"
    );
    let (status, _) = d.resolve(&open[0]["id"], "keep_source").await;
    assert_eq!(status, 200);
    let out = restore(&cfg, "/shared", dir.path());
    assert_eq!(file(&out, "s.txt"), "s of a, v2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mass_delete_deletes_nothing_until_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src-docs");
    for i in 0..6 {
        write(&src, &format!("f{i}.txt"), format!("file {i}").as_bytes());
    }
    let port = free_port();
    let cfg = config(dir.path(), port, "", &shared(&[("docs", "")]), "");
    let d = Running::start(&cfg, port, &[]);
    d.idle().await;
    for i in 0..6 {
        std::fs::remove_file(src.join(format!("f{i}.txt"))).unwrap();
    }
    write(&src, "new.txt", b"the rest of the job goes on");
    d.run_job("docs").await;
    let open = d.conflicts("kind=mass_delete").await;
    assert_eq!(open.len(), 1);
    assert!(
        open[0]["detail"]
            .as_str()
            .unwrap()
            .contains("6 of 6 live items"),
        "{}",
        open[0]
    );
    assert_eq!(open[0]["resolutions"], json!(["allow", "reject"]));
    let out = restore(&cfg, "/shared", dir.path());
    assert_eq!(
        names(&out).len(),
        7,
        "nothing was deleted, the new file is in"
    );
    // rejected: still nothing deleted; the next job asks again
    assert_eq!(d.resolve(&open[0]["id"], "reject").await.0, 200);
    d.run_job("docs").await;
    let again = d.conflicts("kind=mass_delete").await;
    assert_eq!(again.len(), 1);
    assert_ne!(again[0]["id"], open[0]["id"]);
    assert_eq!(names(&restore(&cfg, "/shared", dir.path())).len(), 7);
    // allowed: a job runs and deletes
    let (status, r) = d.resolve(&again[0]["id"], "allow").await;
    assert_eq!(status, 200, "{r}");
    d.wait_for("the allowed deletes", 30, async |d| {
        d.get("/api/v1/items?status=deleted").await["meta"]["total"] == 6
    })
    .await;
    assert_eq!(names(&restore(&cfg, "/shared", dir.path())), ["new.txt"]);
    assert!(d.conflicts("").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_rewritten_all_the_time_becomes_a_torn_read_conflict_and_never_commits_mixed() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src-docs");
    write(&src, "calm.txt", b"calm");
    let busy = src.join("busy.bin");
    write(&src, "busy.bin", &tree::random_bytes(0, 4 << 20));
    let port = free_port();
    let cfg = config(
        dir.path(),
        port,
        "",
        &shared(&[("docs", "")]),
        "pipeline:\n  torn_read_retries: 1\n",
    );
    let stop = Arc::new(AtomicBool::new(false));
    let writes = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, busy, writes) = (stop.clone(), busy.clone(), writes.clone());
        std::thread::spawn(move || {
            // the file is rewritten back to back; each whole state is one seed's bytes
            let bufs = [
                tree::random_bytes(1, 8 << 20),
                tree::random_bytes(2, 8 << 20),
            ];
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                std::fs::write(&busy, &bufs[(n % 2) as usize]).unwrap();
                n += 1;
                writes.store(n, Ordering::Relaxed);
            }
            n
        })
    };
    while writes.load(Ordering::Relaxed) < 3 {
        std::thread::sleep(Duration::from_millis(10));
    }
    let d = Running::start(&cfg, port, &[]);
    d.idle().await;
    // A read can still be clean when the writer thread is descheduled long enough on
    // a loaded machine; then what is committed must be a whole state of the file.
    let whole = [
        Vec::new(),
        tree::random_bytes(1, 8 << 20),
        tree::random_bytes(2, 8 << 20),
    ];
    let mut open = Vec::new();
    for _ in 0..10 {
        open = d.conflicts("kind=torn_read").await;
        if !open.is_empty() {
            break;
        }
        let out = restore(&cfg, "/shared", dir.path());
        let got = std::fs::read(out.join("busy.bin")).unwrap();
        assert!(whole.contains(&got), "a mixed version was committed");
        d.run_job("docs").await;
    }
    stop.store(true, Ordering::Relaxed);
    let last = (writer.join().unwrap() - 1) % 2 + 1;
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0]["path"], "/shared/busy.bin");
    let out = restore(&cfg, "/shared", dir.path());
    if let Ok(got) = std::fs::read(out.join("busy.bin")) {
        assert!(whole.contains(&got), "a mixed version was committed");
    }
    // the operator asks for another try once the writer is done
    let (status, _) = d.resolve(&open[0]["id"], "keep_source").await;
    assert_eq!(status, 200);
    d.wait_for("the file to be stored", 30, async |_| {
        let out = restore(&cfg, "/shared", dir.path());
        std::fs::read(out.join("busy.bin")).ok() == Some(tree::random_bytes(last, 8 << 20))
    })
    .await;
    let out = restore(&cfg, "/shared", dir.path());
    assert_eq!(
        std::fs::read(out.join("busy.bin")).unwrap(),
        tree::random_bytes(last, 8 << 20)
    );
}
