//! docs/api.md's examples work as written: every `sh` block of the page is run, in
//! order, with bash, curl and jq against a real daemon (its `API=` and `TOKEN=` lines
//! are replaced by this daemon's address and an admin token), and what they print is
//! what a reader is promised — a finished job, a resolved conflict, the change feed
//! and a search hit.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// The `sh` blocks of a Markdown page, in order, without lines assigning `API` or
/// `TOKEN` (the caller provides both).
fn sh_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(String::new()),
            (Some(b), "```") => {
                blocks.push(std::mem::take(b));
                current = None;
            }
            (Some(b), l) if !(l.starts_with("API=") || l.starts_with("TOKEN=")) => {
                b.push_str(l);
                b.push('\n');
            }
            _ => {}
        }
    }
    assert!(current.is_none(), "an unclosed sh block");
    blocks
}

#[test]
fn sh_blocks_are_found_in_order_without_the_callers_variables() {
    let md =
        "text\n```sh\nAPI=x\nTOKEN=$(y)\nAUTH=z\n```\n```text\nnot run\n```\n```sh\necho 2\n```\n";
    assert_eq!(sh_blocks(md), ["AUTH=z\n", "echo 2\n"]);
}

fn tool(name: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .unwrap()
        .status
        .success();
    assert!(
        found,
        "{name} is needed to run docs/api.md's examples (.ci/run installs it)"
    );
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), text).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_pages_examples_work_as_written() {
    tool("curl");
    tool("jq");
    let page =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/api.md")).unwrap();
    let blocks = sh_blocks(&page);
    assert!(blocks.len() >= 8, "{} sh blocks", blocks.len());

    let dir = tempfile::tempdir().unwrap();
    let scans = dir.path().join("scans");
    write(
        &scans,
        "pumps.txt",
        "Pump maintenance. The pump filter is cleaned every three months; the gasket is replaced once a year.",
    );
    write(
        &scans,
        "bread.txt",
        "Sourdough bread needs a lively starter, flour, water and salt, and a long slow rise.",
    );
    write(
        &scans,
        "volcanoes.txt",
        "Volcanoes erupt when molten rock, called magma, rises to the surface as lava.",
    );
    let archive = dir.path().join("archive");
    for i in 0..4 {
        write(
            &archive,
            &format!("old-{i}.txt"),
            &format!("archived record {i}"),
        );
    }
    let model = model_dir();
    let port = free_port();
    let cfg = config(
        dir.path(),
        port,
        "",
        "  - id: scans\n    kind: local\n    path: scans\n    vectorize: true\n  - id: archive\n    kind: local\n    path: archive\n",
        &format!(
            "vectorize:\n  embedder: {{ kind: local, model_dir: {} }}\n",
            model.display()
        ),
    );
    let d = Running::start(&cfg, port, &[]);
    assert_eq!(d.latest_job("scans").await["status"], "succeeded");
    assert_eq!(d.latest_job("archive").await["status"], "succeeded");
    // a held mass delete for the page's conflict section
    for i in 0..4 {
        std::fs::remove_file(archive.join(format!("old-{i}.txt"))).unwrap();
    }
    d.run_and_wait("archive", "full").await;
    let open = d.get("/api/v1/conflicts?kind=mass_delete").await;
    assert_eq!(open["items"].as_array().unwrap().len(), 1, "{open}");

    let script = blocks.concat();
    let mut child = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .env("API", d.url("/api/v1"))
        .env("TOKEN", ADMIN)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "docs/api.md's examples did not finish in 180 s: {}",
                d.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (mut out, mut err) = (String::new(), String::new());
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(
        status.success(),
        "the examples failed ({status}):\n{out}\n{err}"
    );

    // what each section promises
    assert!(out.contains("scans\tlocal\t"), "the connector list:\n{out}");
    let job = out
        .lines()
        .find_map(|l| l.strip_prefix("queued job "))
        .expect("a queued job")
        .to_string();
    assert!(
        out.contains(&format!("job {job} succeeded")),
        "the job followed to its end:\n{out}"
    );
    assert!(
        out.contains("\tmass_delete\tarchive\t"),
        "the open conflict listed:\n{out}"
    );
    assert!(out.contains("allow,reject"), "with its resolutions:\n{out}");
    assert!(
        out.contains(r#""kind":"mass_delete","status":"resolved","resolution":"allow""#),
        "the conflict resolved:\n{out}"
    );
    let feed = |op: &str, path: &str| {
        out.lines().any(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            f.len() == 4 && f[0].parse::<i64>().is_ok() && f[1] == op && f[3] == path
        })
    };
    for path in ["/scans/pumps.txt", "/scans/bread.txt", "/archive/old-0.txt"] {
        assert!(feed("upsert", path), "the change feed names {path}:\n{out}");
    }
    assert!(out.contains("up to date at cursor "), "{out}");
    let downloaded = std::fs::read_to_string(dir.path().join("first-file")).unwrap();
    assert!(
        ["pumps.txt", "bread.txt", "volcanoes.txt"]
            .iter()
            .any(|f| std::fs::read_to_string(scans.join(f)).unwrap() == downloaded),
        "the download is one of the files: {downloaded:?}"
    );
    let first_hit = out
        .lines()
        .find(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            f.len() == 3 && f[0].contains('.') && f[0].parse::<f64>().is_ok()
        })
        .expect("a search hit");
    assert!(
        first_hit.contains("/scans/pumps.txt"),
        "the best hit is the pump manual:\n{out}"
    );
    assert!(
        out.contains(r#""paused":true"#) && out.contains(r#""paused":false"#),
        "{out}"
    );
    // the conflict is resolved for the API too
    let after = d.get("/api/v1/conflicts?kind=mass_delete").await;
    assert_eq!(after["items"].as_array().unwrap().len(), 0, "{after}");
}
