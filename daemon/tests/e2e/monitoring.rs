//! The monitoring kit in `packaging/monitoring/`: the alert rules pass `promtool check
//! rules` and their unit tests (`promtool test rules`), and every metric the rules and
//! the Grafana dashboard query is one a live daemon (with a vectorized connector)
//! really exports.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

fn kit() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/monitoring")
}

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(kit())
        .output()
        .expect("promtool (Debian's prometheus package; `bash .ci/run` installs it)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {}: {said}", args.join(" "));
    said
}

/// The `tributary_*` metric names a text names.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("tributary_") {
        let name: String = rest[i..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        rest = &rest[i + name.len()..];
        out.insert(name);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alert_rules_pass_promtool_and_every_query_names_an_exported_metric() {
    assert!(
        promtool(&["check", "rules", "tributary.rules.yml"]).contains("SUCCESS: 9 rules found")
    );
    assert!(promtool(&["test", "rules", "tributary.rules_test.yml"]).contains("SUCCESS"));

    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    std::fs::write(
        dir.path().join("src/a.txt"),
        "pumps need their filters cleaned",
    )
    .unwrap();
    let port = free_port();
    let cfg = config(
        dir.path(),
        port,
        "",
        &local_connector("    vectorize: true\n"),
        &format!(
            "vectorize:\n  embedder: {{ kind: local, model_dir: {} }}\n",
            model_dir().display()
        ),
    );
    let d = Running::start(&cfg, port, &[]);
    d.wait_for("the vectorizer to be ready", 120, async |d| {
        d.get("/api/v1/queue").await["state"] == "ready"
    })
    .await;
    let (s, _, exported) = d.call("GET", "/api/v1/metrics", Some(VIEWER), None).await;
    assert_eq!(s, 200);
    let exported: BTreeSet<String> = exported
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect();
    for file in ["tributary.rules.yml", "grafana-dashboard.json"] {
        let text = std::fs::read_to_string(kit().join(file)).unwrap();
        let queried = metric_names(&text);
        assert!(queried.len() >= 5, "{file}: {queried:?}");
        let unknown: Vec<&String> = queried.difference(&exported).collect();
        assert!(
            unknown.is_empty(),
            "{file} queries metrics the daemon does not export: {unknown:?}\nexported: {exported:?}"
        );
    }
    // the dashboard is JSON Grafana imports: panels, each with a query
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(kit().join("grafana-dashboard.json")).unwrap(),
    )
    .unwrap();
    let panels = dash["panels"].as_array().unwrap();
    assert!(panels.len() >= 10);
    assert!(panels.iter().all(|p| p["targets"][0]["expr"].is_string()));
}
