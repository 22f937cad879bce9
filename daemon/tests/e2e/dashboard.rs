//! The dashboard in a real headless Chromium: this test starts the daemon (a folder to
//! run, two connectors in conflict, vectorization with the real model), then runs
//! `daemon/tests/browser/dashboard.mjs` (playwright-core driving Debian's `chromium`),
//! which signs in, watches a run to its end live, reads the job's log, resolves the
//! conflict, searches and opens a hit, browses items, checks what a viewer sees (on a
//! phone-sized screen) and that forged changes are refused, with no console error on
//! any page. Screenshots of each page go to `<target>/tmp/dashboard/`.

use std::path::PathBuf;

use tributary_testkit::tree;

use crate::common::*;

fn browser_modules() -> PathBuf {
    std::env::var_os("TRIBUTARY_BROWSER_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/tributary/browser")
        })
        .join("node_modules")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_works_in_a_real_browser() {
    let chromium =
        std::env::var("TRIBUTARY_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "Chromium not found at {chromium}: run `bash .ci/run` once (it installs Debian's chromium) or set TRIBUTARY_CHROMIUM"
    );
    let modules = browser_modules();
    assert!(
        modules.join("playwright-core").exists(),
        "playwright-core not found in {}: run `bash .ci/run` once or set TRIBUTARY_BROWSER_DIR",
        modules.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(
        src.join("pumps.md"),
        "# Pumps\n\nClean the filter every month. Replace the seal once a year.\n",
    )
    .unwrap();
    for (id, body) in [("a", Some("report from a")), ("b", None)] {
        let d = dir.path().join(format!("src-{id}"));
        std::fs::create_dir_all(&d).unwrap();
        if let Some(b) = body {
            std::fs::write(d.join("report.txt"), b).unwrap();
        }
    }
    let port = free_port();
    let connectors = format!(
        "{}  - id: a\n    kind: local\n    path: src-a\n    target: /shared\n  - id: b\n    kind: local\n    path: src-b\n    target: /shared\n",
        local_connector("    vectorize: true\n")
    );
    let vectorize = format!(
        "vectorize:\n  embedder: {{ kind: local, model_dir: {} }}\n",
        model_dir().display()
    );
    let cfg = config(dir.path(), port, "", &connectors, &vectorize);
    let idp = tributary_testkit::oidc::OidcProvider::start();
    add_api_lines(
        &cfg,
        &format!(
            "  rate_limits: {{ client: off, read: off, write: off }}\n  oidc:\n    issuer: {}\n    audience: api://tributary\n    sign_in: {{ client_id: dashboard, scopes: [openid, profile, api] }}\n",
            idp.issuer()
        ),
    );
    let d = Running::start(&cfg, port, &[]);
    for c in ["docs", "a", "b"] {
        let job = d.latest_job(c).await;
        assert_eq!(job["status"], "succeeded", "{job}");
    }
    // a conflict for an operator: b claims a path a holds
    std::fs::write(dir.path().join("src-b/report.txt"), "report from b").unwrap();
    let job = d.queue_run("b", Some("full")).await;
    d.wait_for("b's job", 60, async |d| {
        d.get(&format!("/api/v1/jobs/{job}")).await["finished_at"].is_string()
    })
    .await;
    assert_eq!(
        d.get("/api/v1/conflicts").await["meta"]["total"],
        1,
        "one open conflict"
    );
    // new files for the run the browser starts: enough that it runs for a few seconds
    // (many small files: per-file work), and some larger ones
    for i in 0..10 {
        std::fs::write(
            src.join(format!("data-{i}.bin")),
            tree::random_bytes(100 + i, 2 << 20),
        )
        .unwrap();
    }
    for i in 0..3000 {
        let sub = src.join(format!("many/{}", i % 30));
        std::fs::create_dir_all(&sub).unwrap();
        // not text: the vectorizer skips them (the search below stays about pumps.md)
        std::fs::write(
            sub.join(format!("f-{i}.bin")),
            tree::random_bytes(10_000 + i, 2048),
        )
        .unwrap();
    }
    d.wait_for("search to be ready", 180, async |d| {
        let (s, _, b) = d
            .call("GET", "/api/v1/search?q=pump+filter", Some(VIEWER), None)
            .await;
        s == 200 && b.contains("pumps.md")
    })
    .await;

    // the page, its assets and the API reference need no token
    for (path, kind) in [
        ("/", "text/html"),
        ("/assets/app.js", "text/javascript"),
        ("/assets/app.css", "text/css"),
        ("/api/v1/docs", "text/html"),
    ] {
        let (s, h, _) = d.call("GET", path, None, None).await;
        assert_eq!(s, 200, "{path}");
        assert!(
            h["content-type"].to_str().unwrap().starts_with(kind),
            "{path}"
        );
        assert!(h.contains_key("content-security-policy"), "{path}");
    }
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/dashboard.mjs");
    let run = tokio::process::Command::new("node")
        .arg(script)
        .env("BASE", d.url(""))
        .env("OPERATOR", OPERATOR)
        .env("VIEWER", VIEWER)
        .env("IDP", idp.issuer())
        .env("OUT", &out)
        .env("CHROMIUM", &chromium)
        .env("NODE_MODULES_DIR", &modules)
        .output();
    let run = tokio::time::timeout(std::time::Duration::from_secs(300), run)
        .await
        .expect("the browser test ended within 5 minutes")
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    println!("{stdout}");
    assert!(
        run.status.success(),
        "the browser test failed:\n{stdout}\n{stderr}\ndaemon log:\n{}",
        d.log()
    );
    assert!(stdout.contains("dashboard: all checks passed"), "{stdout}");
    for page in [
        "signin",
        "overview",
        "connector",
        "job",
        "conflicts",
        "search",
        "item",
        "api-docs",
        "overview-phone",
        "signed-in-with-idp",
        "signin-failed",
    ] {
        assert!(
            out.join(format!("{page}.png")).exists(),
            "screenshot of {page}"
        );
    }
    // the conflict was resolved in the browser, through the public API
    assert_eq!(d.get("/api/v1/conflicts").await["meta"]["total"], 0);
}
