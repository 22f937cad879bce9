//! The audit trail through the real daemon: who changed what over the API (and was
//! refused), who ran which operator command of the CLI, listed by an admin with
//! filters and pages — and never a presented credential.

use std::process::Command;

use serde_json::Value;

use crate::common::*;

/// `GET /api/v1/audit?query` as the admin: (rows, total).
async fn audit(d: &Running, query: &str) -> (Vec<Value>, i64) {
    let (status, _, body) = d
        .call("GET", &format!("/api/v1/audit?{query}"), Some(ADMIN), None)
        .await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    (
        v["items"].as_array().unwrap().clone(),
        v["meta"]["total"].as_i64().unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_and_every_refusal_is_recorded_with_its_principal() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    std::fs::write(dir.path().join("src/a.txt"), b"alpha").unwrap();
    let port = free_port();
    let cfg = config(dir.path(), port, "", &local_connector(""), "");
    let d = Running::start(&cfg, port, &[]);
    let first = d.latest_job("docs").await;
    assert_eq!(first["status"], "succeeded", "{first}");
    assert_eq!(first["requested_by"], Value::Null, "the daemon started it");

    // an operator's run names the operator, in the job and in the trail
    let (s, h, b) = d
        .call(
            "POST",
            "/api/v1/connectors/docs/runs",
            Some(OPERATOR),
            Some(serde_json::json!({"kind": "incremental"})),
        )
        .await;
    assert_eq!(s, 202, "{b}");
    let run_request = h["x-request-id"].to_str().unwrap().to_string();
    let job = d.latest_job("docs").await;
    assert_eq!(job["requested_by"], "o", "{job}");
    for action in ["pause", "resume"] {
        let path = format!("/api/v1/connectors/docs/{action}");
        assert_eq!(d.call("POST", &path, Some(OPERATOR), None).await.0, 200);
    }
    // refused: a viewer's pause, a guessed token, an operator reading the trail; and
    // an error: a connector that does not exist
    let refused = [
        ("POST", "/api/v1/connectors/docs/pause", Some(VIEWER), 403),
        (
            "GET",
            "/api/v1/jobs",
            Some("guessed-secret-token-0042"),
            401,
        ),
        ("GET", "/api/v1/audit", Some(OPERATOR), 403),
        ("POST", "/api/v1/connectors/nope/pause", Some(OPERATOR), 404),
    ];
    for (method, path, token, expect) in refused {
        let (s, _, b) = d.call(method, path, token, None).await;
        assert_eq!(s, expect, "{method} {path}: {b}");
    }
    // reads that succeed are not recorded
    d.get("/api/v1/jobs").await;
    d.get("/api/v1/connectors/docs").await;

    let (rows, total) = audit(&d, "").await;
    assert_eq!(total, 7, "{rows:#?}");
    let text = serde_json::to_string(&rows).unwrap();
    assert!(
        !text.contains("guessed-secret-token") && !text.contains(OPERATOR),
        "no credential is recorded: {text}"
    );
    // newest first
    assert_eq!(rows[0]["resource"], "connectors/nope");
    assert_eq!(rows[0]["outcome"], "error");
    assert_eq!(rows[0]["status"], 404);
    let run = rows.last().unwrap();
    assert_eq!(run["action"], "connector.run", "{run}");
    assert_eq!(run["principal"], "o");
    assert_eq!(run["role"], "operator");
    assert_eq!(run["method"], "POST");
    assert_eq!(run["route"], "/api/v1/connectors/{id}/runs");
    assert_eq!(run["resource"], "connectors/docs");
    assert_eq!(run["outcome"], "success");
    assert_eq!(run["status"], 202);
    assert_eq!(run["client"], "127.0.0.1");
    assert_eq!(run["source"], "api");
    assert_eq!(run["request_id"], run_request.as_str());
    assert!(run["duration_ms"].as_f64().unwrap() >= 0.0);
    assert!(run["instance"].as_str().is_some_and(|i| !i.is_empty()));

    // filters, alone and together, and pages
    let denied = audit(&d, "outcome=permission_denied").await.0;
    let who: Vec<&Value> = denied.iter().map(|r| &r["principal"]).collect();
    assert_eq!(who, [&Value::from("o"), &Value::Null, &Value::from("v")]);
    assert_eq!(denied[1]["status"], 401);
    assert_eq!(denied[1]["action"], "job.list");
    assert_eq!(audit(&d, "principal=o").await.1, 5);
    assert_eq!(
        audit(&d, "action=connector.pause&resource=connectors/docs")
            .await
            .1,
        2
    );
    let (page, total) = audit(&d, "per_page=3&page=3").await;
    assert_eq!((page.len(), total), (1, 7));
    assert_eq!(page[0]["action"], "connector.run");
    assert_eq!(audit(&d, "since=2100-01-01T00:00:00Z").await.1, 0);
    assert_eq!(audit(&d, "until=2100-01-01T00:00:00Z").await.1, 7);
    let (s, h, b) = d
        .call("GET", "/api/v1/audit?outcome=maybe", Some(ADMIN), None)
        .await;
    assert_envelope(s, &h, &b, "INVALID_QUERY");

    // an operator command of the CLI, by the operating-system user who ran it
    let out = Command::new(BIN)
        .args([
            "prune",
            "-c",
            cfg.to_str().unwrap(),
            "--older-than",
            "3650d",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (cli, n) = audit(&d, "action=cli.prune").await;
    assert_eq!(n, 1, "{cli:#?}");
    assert_eq!(cli[0]["source"], "cli");
    assert_eq!(cli[0]["method"], "CLI");
    assert_eq!(cli[0]["route"], "tributary prune");
    assert_eq!(cli[0]["outcome"], "success");
    assert_eq!(cli[0]["client"], "local");
    assert!(
        cli[0]["principal"]
            .as_str()
            .is_some_and(|p| p.contains('@')),
        "{}",
        cli[0]
    );
    // a read-only command is not
    let out = Command::new(BIN)
        .args(["verify", "-c", cfg.to_str().unwrap()])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(audit(&d, "").await.1, 8);
}
