//! Moving an installation: a daemon runs on its SQLite catalog (local folders with a
//! conflict between them and embedded passages, a SharePoint site with its delta
//! checkpoint), `tributary catalog copy` moves the catalog into PostgreSQL, and the
//! daemon started on the copy finds nothing to store and nothing to embed, shows the
//! same conflicts, change feed and search results, asks Graph only for changes, and
//! carries on numbering after the copied rows.

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use tributary_testkit::graph::{self, FakeGraph};
use tributary_testkit::postgres;

use crate::common::*;

fn write(dir: &Path, name: &str, body: &[u8]) {
    std::fs::create_dir_all(dir.join(name).parent().unwrap()).unwrap();
    std::fs::write(dir.join(name), body).unwrap();
}

fn installation(dir: &Path, port: u16, g: &FakeGraph, catalog: &str) -> std::path::PathBuf {
    std::fs::write(
        dir.join("graph-secret"),
        format!("{}\n", graph::CLIENT_SECRET),
    )
    .unwrap();
    let connectors = format!(
        "  - id: a\n    kind: local\n    path: src-a\n    target: /shared\n    vectorize: true\n\
         \x20 - id: b\n    kind: local\n    path: src-b\n    target: /shared\n\
         \x20 - id: team\n    kind: sharepoint\n    tenant_id: {}\n    client_id: {}\n    client_secret_file: {}\n    site: contoso.sharepoint.com:/sites/Team\n    graph_url: {}\n    token_url: {}\n    target: /team\n",
        graph::TENANT,
        graph::CLIENT_ID,
        dir.join("graph-secret").display(),
        g.graph_url,
        g.token_url
    );
    config(
        dir,
        port,
        catalog,
        &connectors,
        &format!(
            "vectorize:\n  embedder: {{ kind: local, model_dir: {} }}\n  extract_timeout: 20s\n  retry_backoff: 1h\n",
            model_dir().display()
        ),
    )
}

/// Every job of the three connectors finished, and nothing left to embed.
async fn settle(d: &Running) {
    for c in ["a", "b", "team"] {
        let job = d.latest_job(c).await;
        assert_eq!(job["status"], "succeeded", "{c}: {job}\n{}", d.log());
    }
    d.wait_for("the vectorization queue to drain", 240, async |d| {
        let q = d.get("/api/v1/queue").await;
        q["state"] == "ready" && q["pending"] == 0
    })
    .await;
}

/// What a user sees of the installation's state.
async fn state(d: &Running) -> (Value, Value, Vec<Value>, Value) {
    let conflicts = d.get("/api/v1/conflicts?status=open&per_page=500").await["items"].clone();
    let feed = d.get("/api/v1/changes?cursor=0&limit=1000").await["items"].clone();
    let mut items = d.get("/api/v1/items?per_page=500").await["items"]
        .as_array()
        .unwrap()
        .clone();
    items.sort_by_key(|i| i["id"].as_i64());
    let q = d.get("/api/v1/queue").await;
    let vectors = serde_json::json!([q["indexed"], q["passages"]]);
    (conflicts, feed, items, vectors)
}

fn delta_requests(g: &FakeGraph) -> Vec<String> {
    g.requests()
        .into_iter()
        .filter(|r| r.listener == "graph" && r.uri.contains("/delta"))
        .map(|r| r.uri)
        .collect()
}

fn copy(from: &str, to: &str) -> std::process::Output {
    Command::new(BIN)
        .args(["catalog", "copy", "--from", from, "--to", to, "--json"])
        .env_remove("PGPASSWORD")
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_installation_moves_from_sqlite_to_postgres_without_reingesting_a_byte() {
    let g = FakeGraph::start().await;
    let site = g.add_site("contoso.sharepoint.com", "Team");
    let docs = g.add_drive(&site, "Documents");
    g.put(&docs, "report.docx", b"quarterly report");
    g.put(&docs, "finance/notes.txt", b"notes of the finance team");
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("src-a"), dir.path().join("src-b"));
    write(
        &a,
        "kitchen/sourdough.txt",
        b"Baking sourdough bread at home. Feed the starter the evening before, fold the \
          dough every half hour and bake it in a hot Dutch oven.",
    );
    write(&a, "report.txt", b"report of a");
    write(
        &b,
        "report.txt",
        b"report of b, another file on the same path",
    );
    write(&b, "only-b.txt", b"b alone");

    let port = free_port();
    let cfg = installation(dir.path(), port, &g, "");
    let mut d = Running::start(&cfg, port, &[]);
    settle(&d).await;
    let before = state(&d).await;
    let (conflicts, feed, items, vectors) = &before;
    assert_eq!(conflicts.as_array().unwrap().len(), 1, "{conflicts}");
    assert!(items.len() >= 6, "{items:?}");
    assert!(vectors[1].as_i64().unwrap() > 0, "passages: {vectors}");
    let sourdough = d.get("/api/v1/search?q=baking%20bread&k=1").await;
    assert_eq!(
        sourdough["items"][0]["path"], "/shared/kitchen/sourdough.txt",
        "{sourdough}"
    );
    let contents = g
        .requests()
        .iter()
        .filter(|r| r.uri.ends_with("/content"))
        .count();
    d.signal("TERM");
    assert!(d.wait_exit(30).success(), "{}", d.log());

    // the copy, checked table by table
    let url = postgres::fresh_database();
    let sqlite = format!("sqlite://{}", dir.path().join("state/catalog.db").display());
    let out = copy(&sqlite, &url);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let tables = report["tables"].as_array().unwrap();
    let rows = |t: &str| {
        let row = tables.iter().find(|r| r["table"] == t).unwrap();
        assert_eq!(row["source_rows"], row["copied_rows"], "{row}");
        row["copied_rows"].as_u64().unwrap()
    };
    for t in [
        "items",
        "versions",
        "chunks",
        "version_chunks",
        "changes",
        "jobs",
        "conflicts",
        "conflict_claims",
        "passages",
        "index_state",
        "connectors",
    ] {
        assert!(rows(t) > 0, "{t}: {report}");
    }
    assert_eq!(rows("conflicts"), 1);

    // a second copy into the same database is refused, and leaves it as it is
    let again = copy(&sqlite, &url);
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("already holds data"), "{err}");

    // the daemon on the copy
    let port = free_port();
    let cfg = installation(dir.path(), port, &g, &format!("catalog:\n  url: {url}\n"));
    let deltas = delta_requests(&g).len();
    std::fs::rename(
        dir.path().join("state/catalog.db"),
        dir.path().join("catalog.db.moved"),
    )
    .unwrap();
    let mut d = Running::start(&cfg, port, &[]);
    // the copy is in the trail of the catalog that goes on
    let (s, _, b) = d
        .call(
            "GET",
            "/api/v1/audit?action=cli.catalog_copy",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let trail: Value = serde_json::from_str(&b).unwrap();
    assert_eq!(trail["meta"]["total"], 1, "{trail}");
    assert_eq!(trail["items"][0]["outcome"], "success", "{trail}");
    // the jobs came along: no connector is new, so none is ingested from scratch
    for c in ["a", "b", "team"] {
        let jobs = d.jobs(&format!("connector={c}")).await;
        assert!(
            !jobs.is_empty() && jobs.iter().all(|j| j["status"] == "succeeded"),
            "{c}: {jobs:?}"
        );
    }
    for c in ["a", "b", "team"] {
        let job = d.run_and_wait(c, "incremental").await;
        assert_eq!(job["status"], "succeeded", "{c}: {job}\n{}", d.log());
        assert_eq!(
            job["progress"]["versions_committed"], 0,
            "{c} found its files stored already: {job}"
        );
    }
    settle(&d).await;
    assert!(
        !dir.path().join("state/catalog.db").exists(),
        "no new SQLite catalog"
    );
    let after = state(&d).await;
    assert_eq!(after, before, "the same conflicts, feed, items and vectors");
    assert_eq!(
        d.get("/api/v1/search?q=baking%20bread&k=1").await["items"][0]["path"],
        "/shared/kitchen/sourdough.txt"
    );
    let new_deltas = &delta_requests(&g)[deltas..];
    assert!(
        !new_deltas.is_empty() && new_deltas.iter().all(|u| u.contains("token=")),
        "SharePoint carried on from its checkpoint: {new_deltas:?}"
    );
    assert_eq!(
        g.requests()
            .iter()
            .filter(|r| r.uri.ends_with("/content"))
            .count(),
        contents,
        "no file was downloaded again"
    );

    // new work is numbered after the copied rows
    let last_seq = feed.as_array().unwrap().last().unwrap()["seq"]
        .as_i64()
        .unwrap();
    write(&a, "new.txt", b"written after the move");
    d.queue_run("a", Some("incremental")).await;
    let mut newer = Value::Null;
    d.wait_for("the new file in the feed", 60, async |d| {
        newer = d.get(&format!("/api/v1/changes?cursor={last_seq}")).await["items"].clone();
        !newer.as_array().unwrap().is_empty()
    })
    .await;
    assert_eq!(newer.as_array().unwrap().len(), 1, "{newer}");
    assert_eq!(newer[0]["path"], "/shared/new.txt");
    assert!(newer[0]["seq"].as_i64().unwrap() > last_seq);
    d.signal("TERM");
    assert!(d.wait_exit(30).success(), "{}", d.log());
}
