//! Connector administration through the real daemon: connectors created, changed and
//! deleted over the API beside the file's, checked by the file's validator, guarded by
//! revisions, with write-only secrets — and still there after a restart.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::common::*;

const SECRET: &str = "smb-pw-never-shown-7f3a";

/// A daemon configuration whose API connectors may read under `<dir>/shares`, with a
/// secrets key (when `key`).
fn admin_config(dir: &Path, port: u16, key: bool) -> std::path::PathBuf {
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::create_dir_all(dir.join("shares")).unwrap();
    let extra = if key { secrets_key(dir) } else { String::new() };
    let cfg = config(dir, port, "", &local_connector(""), &extra);
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "  max_body_size: 4KiB\n",
        &format!(
            "  max_body_size: 4KiB\n  connector_roots: [{}]\n",
            dir.join("shares").display()
        ),
    );
    std::fs::write(&cfg, text).unwrap();
    cfg
}

async fn send(
    d: &Running,
    method: &str,
    path: &str,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, Value) {
    let (s, h, b) = d.call_with(method, path, Some(ADMIN), body, headers).await;
    let v = if b.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&b).unwrap_or_else(|_| panic!("not JSON: {b}"))
    };
    (s, h, v)
}

fn fields(v: &Value) -> Vec<(String, String)> {
    v["error"]["details"]["fields"]
        .as_array()
        .unwrap_or_else(|| panic!("no fields: {v}"))
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connectors_are_created_changed_and_deleted_over_the_api_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = admin_config(dir.path(), port, true);
    std::fs::write(dir.path().join("src/a.txt"), b"file connector").unwrap();
    let data = dir.path().join("shares/team");
    std::fs::create_dir_all(data.join("sub")).unwrap();
    std::fs::write(data.join("report.txt"), b"quarterly numbers").unwrap();
    std::fs::write(data.join("sub/blob.bin"), vec![7u8; 300_000]).unwrap();
    let mut d = Running::start(&cfg, port, &[]);
    d.latest_job("docs").await;

    let team = json!({"id": "team", "kind": "local", "path": data, "target": "/team",
                      "schedule": "0 0 1 1 *", "exclude": ["*.tmp"]});
    // only an admin creates
    let (s, _, _) = d
        .call(
            "POST",
            "/api/v1/connectors",
            Some(OPERATOR),
            Some(team.clone()),
        )
        .await;
    assert_eq!(s, 403);
    let (s, h, v) = send(&d, "POST", "/api/v1/connectors", Some(team.clone()), &[]).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(h["etag"], "\"1\"");
    assert_eq!(h["location"], "/api/v1/connectors/team");
    assert_eq!(v["source"], "api");
    assert_eq!(v["revision"], 1);
    assert_eq!(v["schedule"], "0 0 1 1 *");
    assert_eq!(v["exclude"], json!(["*.tmp"]));
    assert_eq!(v["status"]["state"], "idle");
    // the GET is the body as written, ready to be edited and sent back
    let got = d.get("/api/v1/connectors/team").await;
    for k in ["id", "kind", "path", "target", "schedule", "exclude"] {
        assert_eq!(got[k], team[k], "{k}: {got}");
    }
    let list = d.get("/api/v1/connectors").await;
    let sources: Vec<(&str, &str)> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["id"].as_str().unwrap(), c["source"].as_str().unwrap()))
        .collect();
    assert_eq!(sources, [("docs", "file"), ("team", "api")]);
    // creating starts no job by itself; a run ingests, and the restore is exact
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(d.jobs("connector=team").await.is_empty());
    let job = d.run_and_wait("team", "full").await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["progress"]["files_done"], 2, "{job}");
    let back = restore(&cfg, "/team", dir.path());
    assert_eq!(
        std::fs::read(back.join("report.txt")).unwrap(),
        b"quarterly numbers"
    );
    assert_eq!(
        std::fs::read(back.join("sub/blob.bin")).unwrap(),
        vec![7u8; 300_000]
    );

    // a test reaches the source and stores nothing
    let (s, _, v) = send(
        &d,
        "POST",
        "/api/v1/connector-tests",
        Some(team.clone()),
        &[],
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["ok"], true, "{v}");
    assert!(v["found"].as_str().unwrap().contains("/team"), "{v}");
    let mut gone = team.clone();
    gone["id"] = json!("gone");
    gone["path"] = json!(dir.path().join("shares/not-there"));
    let (s, _, v) = send(&d, "POST", "/api/v1/connector-tests", Some(gone), &[]).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["error"]["code"], "SOURCE_UNAVAILABLE", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not-there"),
        "{v}"
    );
    let (s, _, v) = send(&d, "POST", "/api/v1/connectors/team/test", None, &[]).await;
    assert_eq!((s, v["ok"].as_bool()), (200, Some(true)), "{v}");
    let (s, _, _) = d
        .call("POST", "/api/v1/connectors/team/test", Some(OPERATOR), None)
        .await;
    assert_eq!(s, 403, "testing is an admin's");
    let (s, _, _) = send(&d, "POST", "/api/v1/connectors/gone/test", None, &[]).await;
    assert_eq!(s, 404);
    assert_eq!(d.get("/api/v1/connectors").await["meta"]["total"], 2);

    // one entry per bad field, in the words of the file's errors
    let bad = json!({"id": "Bad Id", "kind": "local", "path": "/etc", "schedule": "every day",
                     "include": ["[x"], "max_delete_percent": 300});
    let (s, h, v) = send(&d, "POST", "/api/v1/connectors", Some(bad), &[]).await;
    assert_eq!(s, 422);
    assert_envelope(s, &h, &v.to_string(), "CONNECTOR_INVALID");
    let got = fields(&v);
    let paths: Vec<&str> = got.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        ["id", "include[0]", "max_delete_percent", "path", "schedule"],
        "{v}"
    );
    let yaml = dir.path().join("bad.yaml");
    std::fs::write(
        &yaml,
        "version: 1\nconnectors:\n  - id: Bad Id\n    kind: local\n    path: /x\n    schedule: every day\n    include: ['[x']\n    max_delete_percent: 300\n",
    )
    .unwrap();
    let check = Command::new(BIN)
        .args(["check", "-c", yaml.to_str().unwrap()])
        .output()
        .unwrap();
    let file_errors = String::from_utf8_lossy(&check.stderr).to_string();
    for (path, message) in &got {
        if path == "path" {
            assert!(message.contains("api.connector_roots"), "{message}");
        } else {
            assert!(
                file_errors.contains(&format!("connectors[0].{path}: {message}")),
                "`{path}: {message}` is not what the file says:\n{file_errors}"
            );
        }
    }
    // a connector of the file is the file's
    for method in ["PUT", "PATCH", "DELETE"] {
        let (s, h, v) = send(
            &d,
            method,
            "/api/v1/connectors/docs",
            Some(json!({"schedule": "0 1 * * *"})).filter(|_| method != "DELETE"),
            &[],
        )
        .await;
        assert_eq!(s, 409, "{method}: {v}");
        assert_envelope(s, &h, &v.to_string(), "CONNECTOR_MANAGED_BY_FILE");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("tributary.yaml")
        );
    }
    let (s, _, v) = send(
        &d,
        "POST",
        "/api/v1/connectors",
        Some(json!({"id": "docs", "kind": "local", "path": data})),
        &[],
    )
    .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (409, Some("CONNECTOR_EXISTS"))
    );

    // the file may not take an id the API holds: the reload is refused, naming both
    let original = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        format!("{original}  - id: team\n    kind: local\n    path: /srv\n"),
    )
    .unwrap();
    let (s, _, v) = send(&d, "POST", "/api/v1/config/reload", None, &[]).await;
    assert_eq!(s, 422, "{v}");
    assert!(v.to_string().contains("created over the API"), "{v}");
    std::fs::write(&cfg, original).unwrap();

    // a merge patch moves the schedule; the next run follows at once
    let before = d.get("/api/v1/connectors/team").await["status"]["next_run"].clone();
    assert!(
        before.as_str().unwrap().contains("-01-01T00:00:00"),
        "{before}"
    );
    let (s, h, v) = send(
        &d,
        "PATCH",
        "/api/v1/connectors/team",
        Some(json!({"schedule": "*/2 * * * * *", "exclude": null})),
        &[("content-type", "application/merge-patch+json")],
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(h["etag"], "\"2\"");
    assert_eq!(v["schedule"], "*/2 * * * * *");
    assert!(v.get("exclude").is_none(), "null removes a key: {v}");
    d.wait_for("the next run to move", 10, async |d| {
        let next = d.get("/api/v1/connectors/team").await["status"]["next_run"].clone();
        next.is_string() && next != before
    })
    .await;
    d.wait_for("a scheduled run", 20, async |d| {
        d.jobs("connector=team")
            .await
            .iter()
            .any(|j| j["trigger"] == "schedule")
    })
    .await;
    // a stale revision is refused; the current one goes through
    let (s, h, v) = send(
        &d,
        "PUT",
        "/api/v1/connectors/team",
        Some(team.clone()),
        &[("if-match", "\"1\"")],
    )
    .await;
    assert_eq!(s, 412, "{v}");
    assert_envelope(s, &h, &v.to_string(), "PRECONDITION_FAILED");
    assert_eq!(v["error"]["details"]["revision"], 2);
    let (s, h, v) = send(
        &d,
        "PUT",
        "/api/v1/connectors/team",
        Some(team.clone()),
        &[("if-match", "\"2\"")],
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(h["etag"], "\"3\"");
    assert_eq!(v["schedule"], "0 0 1 1 *");

    // secrets are write-only: accepted, never shown, kept by {"set": true}
    let smb = json!({"id": "files", "kind": "smb", "server": "127.0.0.1", "port": 1,
                     "share": "docs", "username": "svc", "password": SECRET});
    let (s, _, v) = send(&d, "POST", "/api/v1/connectors", Some(smb), &[]).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["password"], json!({"set": true}));
    let mut shown = d.get("/api/v1/connectors/files").await;
    shown["domain"] = json!("CORP");
    let (s, _, v) = send(&d, "PUT", "/api/v1/connectors/files", Some(shown), &[]).await;
    assert_eq!(s, 200, "the GET sent back keeps the secret: {v}");
    assert_eq!(v["domain"], "CORP");
    assert_eq!(v["password"], json!({"set": true}));

    // a restart keeps every API connector at its revision
    d.signal("TERM");
    d.wait_exit(30);
    let d = Running::start(&cfg, port, &[]);
    let team_after = d.get("/api/v1/connectors/team").await;
    assert_eq!(team_after["revision"], 3, "{team_after}");
    assert_eq!(team_after["source"], "api");
    let files_after = d.get("/api/v1/connectors/files").await;
    assert_eq!(files_after["domain"], "CORP");
    assert_eq!(files_after["password"], json!({"set": true}));

    // delete: a stale revision is refused; then the connector is gone, its data kept
    let (s, _, _) = send(
        &d,
        "DELETE",
        "/api/v1/connectors/team",
        None,
        &[("if-match", "\"2\"")],
    )
    .await;
    assert_eq!(s, 412);
    let (s, _, v) = send(&d, "DELETE", "/api/v1/connectors/team?data=keep", None, &[]).await;
    assert_eq!(s, 204, "{v}");
    let (s, _, _) = d
        .call("GET", "/api/v1/connectors/team", Some(VIEWER), None)
        .await;
    assert_eq!(s, 404);
    let items = d.get("/api/v1/items?connector=team").await;
    assert_eq!(
        items["meta"]["total"], 2,
        "the stored versions stay: {items}"
    );
    let back = restore(&cfg, "/team", dir.path());
    assert_eq!(
        std::fs::read(back.join("report.txt")).unwrap(),
        b"quarterly numbers"
    );

    // the trail names the admin for each change
    let (s, _, b) = d
        .call(
            "GET",
            "/api/v1/audit?resource=connectors/team&per_page=2",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let page: Value = serde_json::from_str(&b).unwrap();
    assert!(page["meta"]["total"].as_i64().unwrap() >= 5, "{page}");
    assert_eq!(page["items"][0]["action"], "connector.delete");
    assert_eq!(page["items"][0]["principal"], "a");
    let (_, _, b) = d
        .call(
            "GET",
            "/api/v1/audit?action=connector.create&outcome=success",
            Some(ADMIN),
            None,
        )
        .await;
    let created: Value = serde_json::from_str(&b).unwrap();
    let resources: Vec<&str> = created["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["resource"].as_str().unwrap())
        .collect();
    assert_eq!(resources, ["connectors/files", "connectors/team"]);

    // the secret is nowhere: not in a response, the log, the trail or the catalog file
    let mut texts = vec![d.log(), b];
    for path in [
        "/api/v1/connectors",
        "/api/v1/connectors/files",
        "/api/v1/audit?per_page=500",
    ] {
        texts.push(d.call("GET", path, Some(ADMIN), None).await.2);
    }
    for t in &texts {
        assert!(!t.contains(SECRET), "the secret leaked: {t}");
    }
    let catalog = std::fs::read(dir.path().join("state/catalog.db")).unwrap();
    assert!(
        !catalog
            .windows(SECRET.len())
            .any(|w| w == SECRET.as_bytes()),
        "the catalog holds the secret in the clear"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_connector_reads_only_what_the_operator_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = admin_config(dir.path(), port, false);
    let d = Running::start(&cfg, port, &[]);
    let state = dir.path().join("state");
    let cases = [
        (json!({"id": "x", "kind": "local", "path": "/etc"}), "path"),
        (json!({"id": "x", "kind": "local", "path": state}), "path"),
        (
            json!({"id": "x", "kind": "local", "path": dir.path().join("shares/../state")}),
            "path",
        ),
        (
            json!({"id": "x", "kind": "smb", "server": "h", "share": "s", "username": "u",
                   "password_file": dir.path().join("tributary.yaml")}),
            "password_file",
        ),
        (
            json!({"id": "x", "kind": "sharepoint", "tenant_id": "t", "client_id": "c",
                   "client_secret_file": dir.path().join("shares/none"), "site": "h:/sites/s",
                   "graph_url": "http://127.0.0.1:9/v1.0"}),
            "graph_url",
        ),
        // no secrets key: an inline secret cannot be stored
        (
            json!({"id": "x", "kind": "smb", "server": "h", "share": "s", "username": "u",
                   "password": SECRET}),
            "password",
        ),
    ];
    for (body, field) in cases {
        let (s, _, v) = send(&d, "POST", "/api/v1/connectors", Some(body.clone()), &[]).await;
        assert_eq!(s, 422, "{body}: {v}");
        assert!(
            fields(&v).iter().any(|(p, _)| p == field),
            "{body}: {field} not named in {v}"
        );
        assert!(!v.to_string().contains(SECRET));
    }
    let (_, _, v) = send(
        &d,
        "POST",
        "/api/v1/connectors",
        Some(json!({"id": "x", "kind": "smb", "server": "h", "share": "s", "username": "u", "password": SECRET})),
        &[],
    )
    .await;
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("secrets.key_file"),
        "{v}"
    );
    assert!(
        d.get("/api/v1/connectors").await["items"]
            .as_array()
            .unwrap()
            .len()
            == 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_adds_edits_tests_exports_and_deletes_api_connectors() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = admin_config(dir.path(), port, false);
    let data = dir.path().join("shares/team");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("a.txt"), b"alpha").unwrap();
    let d = Running::start(&cfg, port, &[]);
    let ctl = |args: &[&str], editor: &str| {
        let out = Command::new(BIN)
            .args(["ctl", "-c", cfg.to_str().unwrap()])
            .args(args)
            .env("TRIBUTARY_TOKEN", ADMIN)
            .env("EDITOR", editor)
            .env_remove("VISUAL")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let file = dir.path().join("team.yaml");
    std::fs::write(
        &file,
        format!(
            "id: team\nkind: local\npath: {}\nexclude: ['*.bak']\n",
            data.display()
        ),
    )
    .unwrap();
    let (ok, out) = ctl(&["test", "--file", file.to_str().unwrap()], "true");
    assert!(ok, "{out}");
    assert!(out.contains("\"ok\":true"), "{out}");
    let (ok, out) = ctl(&["add", file.to_str().unwrap()], "true");
    assert!(ok, "{out}");
    assert_eq!(d.get("/api/v1/connectors/team").await["source"], "api");
    let (ok, out) = ctl(&["test", "team"], "true");
    assert!(ok, "{out}");
    // an edit through $EDITOR replaces the connector at the revision it read
    let (ok, out) = ctl(&["edit", "team"], "sed -i -e s/bak/old/");
    assert!(ok, "{out}");
    let shown = d.get("/api/v1/connectors/team").await;
    assert_eq!(shown["exclude"], json!(["*.old"]), "{shown}");
    assert_eq!(shown["revision"], 2);
    let (ok, out) = ctl(&["edit", "team"], "false");
    assert!(!ok && out.contains("nothing was changed"), "{out}");
    let (ok, out) = ctl(&["edit", "docs"], "true");
    assert!(!ok && out.contains("tributary.yaml"), "{out}");
    // the export is a connectors section the file accepts
    let out = Command::new(BIN)
        .args(["connectors", "export", "-c", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let exported = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(exported.starts_with("connectors:\n"), "{exported}");
    assert!(
        exported.contains("id: team") && exported.contains("'*.old'"),
        "{exported}"
    );
    let (ok, out) = ctl(&["delete", "team"], "true");
    assert!(ok, "{out}");
    let (s, _, _) = d
        .call("GET", "/api/v1/connectors/team", Some(VIEWER), None)
        .await;
    assert_eq!(s, 404);
    let (ok, _) = ctl(&["delete", "team"], "true");
    assert!(!ok, "a second delete finds nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_connector_with_its_data_tombstones_it_behind_the_mass_delete_guard() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = admin_config(dir.path(), port, false);
    let share = dir.path().join("shares/archive");
    std::fs::create_dir_all(share.join("old")).unwrap();
    for i in 0..5 {
        std::fs::write(share.join(format!("old/{i}.txt")), format!("record {i}")).unwrap();
    }
    let d = Running::start(&cfg, port, &[]);
    d.latest_job("docs").await;
    let body = json!({"id": "archive", "kind": "local", "path": share, "target": "/archive"});
    let (s, _, v) = send(&d, "POST", "/api/v1/connectors", Some(body.clone()), &[]).await;
    assert_eq!(s, 201, "{v}");
    let job = d.run_and_wait("archive", "full").await;
    assert_eq!(job["progress"]["files_done"], 5, "{job}");
    let live = async || {
        d.get("/api/v1/items?connector=archive&status=completed")
            .await["meta"]["total"]
            .clone()
    };
    assert_eq!(live().await, 5);
    let feed_before = d.get("/api/v1/changes?limit=1000").await["items"]
        .as_array()
        .unwrap()
        .len();

    // all of it is more than max_delete_percent: held, and nothing changes
    let (s, h, v) = send(
        &d,
        "DELETE",
        "/api/v1/connectors/archive?data=delete",
        None,
        &[],
    )
    .await;
    assert_envelope(s, &h, &v.to_string(), "MASS_DELETE_HELD");
    assert_eq!(s, 409);
    assert_eq!(v["error"]["details"]["items"], 5, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("allow_mass_delete=true"),
        "{v}"
    );
    assert_eq!(d.get("/api/v1/connectors/archive").await["revision"], 1);
    assert_eq!(live().await, 5);
    let conflicts = d.get("/api/v1/conflicts").await;
    assert_eq!(conflicts["meta"]["total"], 0, "{conflicts}");
    // an operator may not delete; a bad value is a clear 400
    let (s, _, _) = d
        .call(
            "DELETE",
            "/api/v1/connectors/archive?data=delete&allow_mass_delete=true",
            Some(OPERATOR),
            None,
        )
        .await;
    assert_eq!(s, 403);
    let (s, _, v) = send(
        &d,
        "DELETE",
        "/api/v1/connectors/archive?data=delete&allow_mass_delete=yes",
        None,
        &[],
    )
    .await;
    assert_eq!(s, 400, "{v}");

    // confirmed: every item gets a tombstone through the commit path, then the
    // connector goes; the source is not touched
    let (s, _, v) = send(
        &d,
        "DELETE",
        "/api/v1/connectors/archive?data=delete&allow_mass_delete=true",
        None,
        &[("if-match", "\"1\"")],
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (&v["data"], &v["items_deleted"]),
        (&json!("delete"), &json!(5)),
        "{v}"
    );
    let (s, _, _) = d
        .call("GET", "/api/v1/connectors/archive", Some(VIEWER), None)
        .await;
    assert_eq!(s, 404);
    assert_eq!(live().await, 0);
    let deleted = d
        .get("/api/v1/items?connector=archive&status=deleted")
        .await;
    assert_eq!(deleted["meta"]["total"], 5, "{deleted}");
    let job = d.get(&format!("/api/v1/jobs/{}", v["job_id"])).await;
    assert_eq!(
        (
            job["status"].as_str(),
            job["trigger"].as_str(),
            job["requested_by"].as_str(),
            job["dry_run"].as_bool()
        ),
        (
            Some("succeeded"),
            Some("api-delete"),
            Some("a"),
            Some(false)
        ),
        "{job}"
    );
    let feed = d.get("/api/v1/changes?limit=1000").await;
    let deletes: Vec<&Value> = feed["items"].as_array().unwrap()[feed_before..]
        .iter()
        .collect();
    assert_eq!(deletes.len(), 5, "{feed}");
    assert!(deletes.iter().all(|c| c["op"] == "delete"), "{feed}");
    assert_eq!(std::fs::read_dir(share.join("old")).unwrap().count(), 5);

    // the same id made again starts afresh: unpaused, listing from nothing
    let (s, _, v) = send(&d, "POST", "/api/v1/connectors", Some(body), &[]).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["status"]["paused"], false, "{v}");
    let job = d.run_and_wait("archive", "full").await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(live().await, 5);
    assert!(!d.log().contains("panicked"), "{}", d.log());
}

/// The connector's usage as `/api/v1/usage` reports it.
async fn usage_of(d: &Running, id: &str, query: &str) -> Value {
    let all = d.get(&format!("/api/v1/usage{query}")).await;
    all["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["connector"] == id)
        .unwrap_or_else(|| panic!("no usage of {id}: {all}"))
        .clone()
}

/// Files and bytes of the connector's live items, counted from the item listing.
async fn recount(d: &Running, id: &str) -> (i64, i64) {
    let items = d
        .get(&format!(
            "/api/v1/items?connector={id}&status=completed&per_page=500"
        ))
        .await;
    let list = items["items"].as_array().unwrap();
    (
        list.len() as i64,
        list.iter().map(|i| i["size"].as_i64().unwrap()).sum(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_holds_what_would_pass_it_until_there_is_room_and_usage_agrees_with_a_recount() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = admin_config(dir.path(), port, false);
    // no retry job of the held files comes between the runs this test asks for
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "  watch_debounce: 300ms\n",
        "  watch_debounce: 300ms\n  retry_backoff: 1h\n",
    );
    std::fs::write(&cfg, text).unwrap();
    let share = dir.path().join("shares/capped");
    std::fs::create_dir_all(share.join("a")).unwrap();
    for i in 0..5 {
        std::fs::write(share.join(format!("a/{i}.txt")), vec![b'a' + i as u8; 100]).unwrap();
    }
    let d = Running::start(&cfg, port, &[]);
    d.latest_job("docs").await;
    let body = json!({"id": "capped", "kind": "local", "path": share, "target": "/capped",
                      "quota": {"max_files": 3}});
    let (s, _, v) = send(&d, "POST", "/api/v1/connectors", Some(body), &[]).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["quota"], json!({"max_files": 3}), "{v}");
    let bad = json!({"id": "bad", "kind": "local", "path": share, "quota": {"max_bytes": "lots", "max_dirs": 1}});
    let (s, _, v) = send(&d, "POST", "/api/v1/connectors", Some(bad), &[]).await;
    assert_eq!(s, 422, "{v}");

    // three files fit; two are held as item errors, and the job goes on
    let job = d.run_and_wait("capped", "full").await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(
        (&job["progress"]["files_done"], &job["error_count"]),
        (&json!(3), &json!(2)),
        "{job}"
    );
    let failed = d.get("/api/v1/items?connector=capped&status=failed").await;
    assert_eq!(failed["meta"]["total"], 2, "{failed}");
    for f in failed["items"].as_array().unwrap() {
        let e = f["last_error"].as_str().unwrap();
        assert!(
            e.starts_with(
                "QUOTA_EXCEEDED: quota.max_files of connector `capped` is 3 and it holds 3 file(s)"
            ),
            "{e}"
        );
    }
    let u = usage_of(&d, "capped", "").await;
    assert_eq!((&u["files"], &u["bytes"]), (&json!(3), &json!(300)), "{u}");
    assert_eq!(
        u["quota"],
        json!({"max_bytes": null, "max_files": 3}),
        "{u}"
    );
    assert_eq!(u["target"], "/capped");
    assert!(u["stored_bytes"].as_i64().unwrap() > 0, "{u}");
    assert_eq!(recount(&d, "capped").await, (3, 300));
    let again = usage_of(&d, "capped", "?recalculate=true").await;
    assert_eq!(
        (&again["files"], &again["bytes"], &again["stored_bytes"]),
        (&u["files"], &u["bytes"], &u["stored_bytes"])
    );
    assert!(again["calculated_at"].as_str() >= u["calculated_at"].as_str());
    let metrics = d.get_text("/api/v1/metrics").await;
    for line in [
        "tributary_connector_files{connector=\"capped\"} 3",
        "tributary_connector_bytes{connector=\"capped\"} 300",
        "tributary_connector_quota_files{connector=\"capped\"} 3",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }

    // raised: the held files are taken by the next run
    let (s, _, v) = send(
        &d,
        "PATCH",
        "/api/v1/connectors/capped",
        Some(json!({"quota": {"max_files": 10, "max_bytes": "1KiB"}})),
        &[],
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let job = d.run_and_wait("capped", "full").await;
    assert_eq!(
        (&job["progress"]["files_done"], &job["error_count"]),
        (&json!(2), &json!(0)),
        "{job}"
    );
    assert_eq!(
        d.get("/api/v1/items?connector=capped&status=failed").await["meta"]["total"],
        0
    );
    assert_eq!(recount(&d, "capped").await, (5, 500));
    let u = usage_of(&d, "capped", "").await;
    assert_eq!((&u["files"], &u["bytes"]), (&json!(5), &json!(500)), "{u}");

    // max_bytes: a file that would pass it is held; one that shrinks goes through
    std::fs::write(share.join("big.bin"), vec![7u8; 700]).unwrap();
    std::fs::write(share.join("a/0.txt"), b"0123456789").unwrap();
    let job = d.run_and_wait("capped", "full").await;
    assert_eq!(
        (&job["progress"]["files_done"], &job["error_count"]),
        (&json!(1), &json!(1)),
        "{job}"
    );
    let failed = d.get("/api/v1/items?connector=capped&status=failed").await;
    let e = failed["items"][0]["last_error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        e.contains("quota.max_bytes of connector `capped` is 1024 bytes and it holds 410 bytes")
            && e.contains("(700 bytes) would bring it to 1110"),
        "{e}"
    );
    assert_eq!(recount(&d, "capped").await, (5, 410));

    // deletes go through whatever the quota; the room they free is used by the next run
    std::fs::remove_file(share.join("a/1.txt")).unwrap();
    std::fs::remove_file(share.join("a/2.txt")).unwrap();
    let job = d.run_and_wait("capped", "full").await;
    assert_eq!(job["progress"]["files_deleted"], 2, "{job}");
    let job = d.run_and_wait("capped", "full").await;
    assert_eq!(
        (&job["progress"]["files_done"], &job["error_count"]),
        (&json!(1), &json!(0)),
        "{job}"
    );
    assert_eq!(recount(&d, "capped").await, (4, 910));
    let u = usage_of(&d, "capped", "").await;
    assert_eq!((&u["files"], &u["bytes"]), (&json!(4), &json!(910)), "{u}");
    let back = restore(&cfg, "/capped", dir.path());
    assert_eq!(std::fs::read(back.join("big.bin")).unwrap(), vec![7u8; 700]);
    assert!(!d.log().contains("panicked"), "{}", d.log());
}
