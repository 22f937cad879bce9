//! The SMB connector against a real Samba server on loopback: the conformance suite,
//! ingest through the daemon, names, conflicts and the errors a user sees.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use async_trait::async_trait;
use tributary_connector_smb::proto::Hello;
use tributary_connector_smb::{SmbConnector, SmbSettings};
use tributary_connectors::Connector;
use tributary_connectors::filter::Filter;
use tributary_testkit::samba::{self, Samba};
use tributary_testkit::tree;

use crate::common::*;

/// Moves every file's mtime an hour back: files written just before a job are read
/// again after the source's mtime granularity (1 s through libsmbclient), which would
/// only slow these tests down.
fn backdate(root: &Path) {
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                backdate_file(&e.path());
            }
        }
    }
}

/// One file's mtime an hour back.
fn backdate_file(path: &Path) {
    let past = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(past).unwrap();
}

fn hello(port: u16, password: &str, share: &str) -> Hello {
    Hello {
        server: "127.0.0.1".into(),
        port,
        share: share.into(),
        domain: "WORKGROUP".into(),
        username: samba::USER.into(),
        password: password.into(),
        min_protocol: "smb2".into(),
        timeout_ms: 10_000,
        native: true,
    }
}

fn connector(smb: &Samba, path: &str) -> SmbConnector {
    SmbConnector::new(
        "share".into(),
        SmbSettings {
            hello: hello(smb.port, samba::PASSWORD, samba::SHARE),
            path: path.into(),
            filter: Filter::all(),
            max_file_size: None,
            workers: 2,
            worker_exe: PathBuf::from(env!("CARGO_BIN_EXE_tributary-smb-worker")),
        },
    )
}

struct ShareFixture {
    root: PathBuf,
    c: SmbConnector,
}

#[async_trait]
impl tributary_connectors::testsuite::Fixture for ShareFixture {
    fn connector(&self) -> &dyn Connector {
        &self.c
    }
    async fn write(&self, rel: &[u8], data: &[u8]) {
        let p = self.root.join(std::str::from_utf8(rel).unwrap());
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
    async fn remove(&self, rel: &[u8]) {
        std::fs::remove_file(self.root.join(std::str::from_utf8(rel).unwrap())).unwrap();
    }
    fn supports_non_utf8(&self) -> bool {
        false // SMB names are UTF-16 on the wire
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_smb_connector_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let smb = Samba::start(dir.path());
    // a folder inside the share, as `path:` selects it
    let root = smb.share_dir().join("dept/finance");
    std::fs::create_dir_all(&root).unwrap();
    let fx = ShareFixture {
        root,
        c: connector(&smb, "dept/finance"),
    };
    tributary_connectors::testsuite::run(&fx).await;
}

fn smb_config(dir: &Path, smb_port: u16, api_port: u16, extra: &str) -> PathBuf {
    smb_config_for(samba::SHARE, dir, smb_port, api_port, extra)
}

fn smb_config_for(share: &str, dir: &Path, smb_port: u16, api_port: u16, extra: &str) -> PathBuf {
    let pw = dir.join("smb-password");
    std::fs::write(&pw, format!("{}\n", samba::PASSWORD)).unwrap();
    config(
        dir,
        api_port,
        "",
        &format!(
            "  - id: share\n    kind: smb\n    server: 127.0.0.1\n    port: {smb_port}\n    share: {share}\n    username: {}\n    password_file: {}\n    target: /share\n    directory_timeout: 5s\n{extra}",
            samba::USER,
            pw.display()
        ),
        "",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_share_is_ingested_incrementally_and_restores_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let smb = Samba::start(&dir.path().join("samba"));
    let share = smb.share_dir();
    tree::generate(&share, 7, 40);
    // a name that is not UTF-8 cannot be said in UTF-16: Samba does not list it at all
    // (see `smbclient ... ls`), so no SMB client can see it
    for e in std::fs::read_dir(share.join("odd")).unwrap() {
        let e = e.unwrap();
        if e.file_name().to_str().is_none() {
            std::fs::remove_file(e.path()).unwrap();
        }
    }
    std::fs::write(share.join("50% off?.txt"), b"percent and question mark").unwrap();
    std::fs::write(share.join("Cafe\u{301} menu.txt"), b"a Mac's NFD name").unwrap();
    let long = "l".repeat(120);
    std::fs::create_dir_all(share.join(format!("{long}/{long}"))).unwrap();
    std::fs::write(
        share.join(format!("{long}/{long}/{long}.txt")),
        b"a long path",
    )
    .unwrap();
    let deep: PathBuf = (0..30).map(|i| format!("level{i}")).collect();
    std::fs::create_dir_all(share.join(&deep)).unwrap();
    std::fs::write(share.join(deep.join("bottom.txt")), b"30 folders down").unwrap();
    // Office lock files and folder metadata are left out by default
    std::fs::write(share.join("~$report.docx"), b"lock").unwrap();
    std::fs::write(share.join("Thumbs.db"), b"thumbs").unwrap();
    backdate(&share);
    let port = free_port();
    let cfg = smb_config(dir.path(), smb.port, port, "");
    let d = Running::start(&cfg, port, &[]);
    let job = d.latest_job("share").await;
    assert_eq!(job["status"], "succeeded", "{job}");
    // `?` is invalid in SMB names: with name mangling off, the server serves the name
    // as it is but refuses to open it; that file fails alone, with a clear message
    assert_eq!(job["error_count"], 1, "{job}");
    assert!(
        job["last_error"]
            .as_str()
            .unwrap()
            .contains("refuses this name over SMB"),
        "{job}"
    );

    let out = restore(&cfg, "/share", dir.path());
    std::fs::remove_file(share.join("~$report.docx")).unwrap();
    std::fs::remove_file(share.join("Thumbs.db")).unwrap();
    std::fs::rename(share.join("50% off?.txt"), share.join("50% off.txt")).unwrap();
    assert!(!out.join("50% off?.txt").exists());
    std::fs::write(out.join("50% off.txt"), b"percent and question mark").unwrap();
    assert!(
        tree::snapshot(&share) == tree::snapshot(&out),
        "the restored tree is the share, byte for byte"
    );

    // an incremental run reads only what changed (and the renamed file, now legal)
    std::fs::write(share.join("Cafe\u{301} menu.txt"), b"NFD name, changed").unwrap();
    let job = d.run_and_wait("share", "full").await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["error_count"], 0, "{job}");
    assert_eq!(job["progress"]["files_done"], 2, "{job}");
    assert!(job["progress"]["files_unchanged"].as_u64().unwrap() > 10);
    let out = restore(&cfg, "/share", dir.path());
    assert_eq!(
        std::fs::read(out.join("Cafe\u{301} menu.txt")).unwrap(),
        b"NFD name, changed"
    );
    assert_eq!(
        std::fs::read(out.join("50% off.txt")).unwrap(),
        b"percent and question mark"
    );

    // names that differ only by case on this case-sensitive share: a name collision
    // (smb connectors are case-insensitive by default), neither overwrites the other
    std::fs::write(share.join("Budget.xlsx"), b"upper").unwrap();
    d.run_and_wait("share", "full").await;
    std::fs::write(share.join("budget.xlsx"), b"lower").unwrap();
    let job = d.run_and_wait("share", "full").await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let open = d.get("/api/v1/conflicts").await;
    let items = open["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{open}");
    assert_eq!(items[0]["kind"], "name_collision");
    let out = restore(&cfg, "/share", dir.path());
    assert_eq!(std::fs::read(out.join("Budget.xlsx")).unwrap(), b"upper");
    assert!(!out.join("budget.xlsx").exists());

    // deleted and renamed files and folders are reconciled
    std::fs::remove_file(share.join("Cafe\u{301} menu.txt")).unwrap();
    std::fs::rename(share.join("dups"), share.join("duplicates")).unwrap();
    std::fs::rename(share.join("empty.bin"), share.join("still-empty.bin")).unwrap();
    std::fs::remove_file(share.join("budget.xlsx")).unwrap();
    let job = d.run_and_wait("share", "full").await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(
        job["progress"]["bytes_uploaded"], 0,
        "renames upload nothing: {job}"
    );
    let out = restore(&cfg, "/share", dir.path());
    assert!(
        tree::snapshot(&share) == tree::snapshot(&out),
        "the restored tree follows deletes and renames"
    );
    assert!(
        d.get("/api/v1/conflicts").await["items"]
            .as_array()
            .unwrap()
            .is_empty(),
        "the case collision's claim was withdrawn with its file"
    );
    // nothing changed: nothing is read
    let job = d.run_and_wait("share", "full").await;
    assert_eq!(job["progress"]["bytes_read"], 0, "{job}");
    assert_eq!(job["progress"]["files_done"], 0, "{job}");
}

fn once(cfg: &Path) -> (i32, String) {
    let out = Command::new(BIN)
        .args(["once", "-c", cfg.to_str().unwrap(), "share"])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_unknown_share_and_dead_servers_fail_fast_and_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let smb = Samba::start(&dir.path().join("samba"));
    std::fs::write(smb.share_dir().join("a.txt"), b"a").unwrap();
    let wrong = "Wrong-pw-0042";
    let write = |name: &str, port: u16, share: &str, password: &str| {
        let cfg = dir.path().join(name);
        std::fs::write(
            &cfg,
            format!(
                "version: 1\nstate_dir: state-{name}\nconnectors:\n  - id: share\n    kind: smb\n    server: 127.0.0.1\n    port: {port}\n    share: {share}\n    username: {}\n    password: \"{password}\"\n    directory_timeout: 3s\n    workers: 4\n",
                samba::USER
            ),
        )
        .unwrap();
        cfg
    };
    let started = std::time::Instant::now();
    let (code, text) = once(&write("wrong-pw.yaml", smb.port, samba::SHARE, wrong));
    assert_eq!(code, 1, "{text}");
    // four worker processes, one log-on attempt: the others wait for its outcome
    // (domain accounts lock after a few failed log-ons)
    assert_eq!(smb.wrong_password_log_ons(), 1, "{text}");
    assert!(
        text.contains("log-on")
            && text.contains(&format!("127.0.0.1:{}/{}", smb.port, samba::SHARE)),
        "{text}"
    );
    assert!(!text.contains(wrong), "the password never shows: {text}");

    let (code, text) = once(&write("no-share.yaml", smb.port, "nope", samba::PASSWORD));
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("share `nope` not found"), "{text}");
    assert!(!text.contains(samba::PASSWORD));

    // `path:` naming a file instead of a folder
    let cfg = write("file-path.yaml", smb.port, samba::SHARE, samba::PASSWORD);
    let yaml = std::fs::read_to_string(&cfg).unwrap() + "    path: a.txt\n";
    std::fs::write(&cfg, yaml).unwrap();
    let (code, text) = once(&cfg);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains(&format!(
            "127.0.0.1:{}/{}/a.txt: a file, not a folder",
            smb.port,
            samba::SHARE
        )),
        "{text}"
    );

    let closed = free_port();
    let (code, text) = once(&write("closed.yaml", closed, samba::SHARE, samba::PASSWORD));
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains(&format!("cannot reach SMB server 127.0.0.1:{closed}")),
        "{text}"
    );

    // a server that accepts connections and never answers
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let (code, text) = once(&write(
        "silent.yaml",
        silent_port,
        samba::SHARE,
        samba::PASSWORD,
    ));
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("did not answer"), "{text}");
    drop(silent);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "each failure is fast, not retried file by file"
    );

    // a job over before its four workers have all logged on: they go quietly
    let good = write("good.yaml", smb.port, samba::SHARE, samba::PASSWORD);
    for _ in 0..3 {
        let (code, text) = once(&good);
        assert_eq!(code, 0, "{text}");
        assert!(!text.contains("smb worker"), "{text}");
    }

    // check --connect reports what it found
    let out = Command::new(BIN)
        .args(["check", "--connect", "-c", good.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "logged in as `{}`; 1 files and 0 folders at the top; listing and reading over native SMB 3.1.1",
            samba::USER
        )),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_and_a_killed_worker_cost_one_request_not_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let mut smb = Samba::start(&dir.path().join("samba"));
    for i in 0..20 {
        std::fs::write(
            smb.share_dir().join(format!("f{i}.bin")),
            tree::random_bytes(i, 200_000),
        )
        .unwrap();
    }
    let c = Arc::new(connector(&smb, ""));
    c.check().await.unwrap();
    // kill this test's worker processes (children of the test process; the daemons
    // of other tests have their own): the next request starts a new one
    let killed = Command::new("pkill")
        .args(["-P", &std::process::id().to_string(), "-f", "smb-worker"])
        .status()
        .unwrap();
    assert!(killed.success(), "a worker was running");
    smb.restart();
    c.check().await.expect("a new worker reconnects");
    let (tx, mut rx) = tokio::sync::mpsc::channel(100);
    let outcome = c
        .list(tributary_connectors::ListMode::Full, None, tx)
        .await
        .unwrap();
    assert!(outcome.complete);
    let mut n = 0;
    let mut changes = Vec::new();
    while let Some(batch) = rx.recv().await {
        changes.extend(batch);
    }
    for ch in changes {
        if let tributary_connectors::Change::Upsert(e) = ch {
            let mut f = c.open(&e).await.unwrap();
            let bytes = tokio::task::spawn_blocking(move || {
                let mut v = Vec::new();
                std::io::Read::read_to_end(&mut f, &mut v).unwrap();
                v
            })
            .await
            .unwrap();
            assert_eq!(bytes.len(), 200_000);
            n += 1;
        }
    }
    assert_eq!(n, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_file_fails_alone_and_is_stored_once_released() {
    let dir = tempfile::tempdir().unwrap();
    let smb = Samba::start(&dir.path().join("samba"));
    let share = smb.share_dir();
    std::fs::write(share.join("open-in-excel.xlsx"), b"locked bytes").unwrap();
    std::fs::write(share.join("free.txt"), b"free").unwrap();
    backdate(&share);
    // another client holds the file open and denies everyone else
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let port = smb.port;
    let holder = std::thread::spawn(move || {
        let client = pavao::SmbClient::new(
            pavao::SmbCredentials::default()
                .server(format!("smb://127.0.0.1:{port}"))
                .share(format!("/{}", samba::SHARE))
                .username(samba::USER)
                .password(samba::PASSWORD)
                .workgroup("WORKGROUP"),
            pavao::SmbOptions::default()
                .one_share_per_server(true)
                .open_share_mode(pavao::SmbShareMode::DenyAll),
        )
        .unwrap();
        let f = client
            .open_with(
                "/open-in-excel.xlsx",
                pavao::SmbOpenOptions::default().read(true).write(true),
            )
            .unwrap();
        locked_tx.send(()).unwrap();
        release_rx.recv().unwrap();
        drop(f);
    });
    locked_rx.recv().unwrap();
    let api = free_port();
    let cfg = smb_config(dir.path(), smb.port, api, "");
    let d = Running::start(&cfg, api, &[]);
    let job = d.latest_job("share").await;
    assert_eq!(
        job["status"], "succeeded",
        "one locked file does not fail the job: {job}"
    );
    assert_eq!(job["error_count"], 1, "{job}");
    let failed = d.get("/api/v1/items?status=failed").await;
    assert_eq!(
        failed["items"][0]["path"], "/share/open-in-excel.xlsx",
        "{failed}"
    );
    assert!(
        failed["items"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("locked by another client"),
        "{failed}"
    );
    release_tx.send(()).unwrap();
    holder.join().unwrap();
    // the item lifecycle retries it (here: the next run)
    let job = d.run_and_wait("share", "full").await;
    assert_eq!(job["error_count"], 0, "{job}");
    let out = restore(&cfg, "/share", dir.path());
    assert_eq!(
        std::fs::read(out.join("open-in-excel.xlsx")).unwrap(),
        b"locked bytes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_folder_or_file_fails_alone_and_known_files_are_kept() {
    use std::os::unix::fs::PermissionsExt;
    let mode =
        |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // the share's user must be able to walk down to the share's folder
    mode(dir.path(), 0o755);
    let smb = Samba::start(&dir.path().join("samba"));
    let share = smb.share_dir();
    std::fs::create_dir_all(share.join("hr/2026")).unwrap();
    std::fs::write(share.join("hr/contracts.pdf"), b"known contracts").unwrap();
    std::fs::write(share.join("hr/2026/reviews.docx"), b"known reviews").unwrap();
    std::fs::write(share.join("payroll.xlsx"), b"known payroll").unwrap();
    std::fs::write(share.join("notes.txt"), b"v1").unwrap();
    backdate(&share);
    let api = free_port();
    // this share applies the logged-on user's own permissions on the server
    let cfg = smb_config_for(samba::USER_SHARE, dir.path(), smb.port, api, "");
    let d = Running::start(&cfg, api, &[]);
    let job = d.latest_job("share").await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["error_count"], 0, "{job}");
    assert_eq!(
        d.get("/api/v1/items?status=completed").await["meta"]["total"],
        4
    );

    // the server now denies the folder and a changed file to the connector's user (a
    // mode change alone is no content change)
    std::fs::write(share.join("notes.txt"), b"v2, longer").unwrap();
    std::fs::write(share.join("payroll.xlsx"), b"payroll, edited").unwrap();
    backdate(&share);
    mode(&share.join("hr"), 0o000);
    mode(&share.join("payroll.xlsx"), 0o000);
    let job = d.run_and_wait("share", "full").await;
    assert_eq!(
        job["status"], "succeeded",
        "an unreadable folder and file do not fail the job: {job}"
    );
    assert_eq!(job["error_count"], 2, "{job}");
    let failed = d.get("/api/v1/items?status=failed").await;
    let errors: Vec<(String, String)> = failed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["path"].as_str().unwrap().to_owned(),
                i["last_error"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        errors
            .iter()
            .any(|(p, e)| p == "/share/hr" && e.contains("cannot be listed")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|(p, e)| p == "/share/payroll.xlsx" && e.contains("access denied")),
        "{errors:?}"
    );
    // nothing the folder held is taken for deleted, the readable change is stored
    assert_eq!(
        d.get("/api/v1/items?status=deleted").await["meta"]["total"],
        0
    );
    let out = restore(&cfg, "/share", dir.path());
    assert_eq!(
        std::fs::read(out.join("hr/2026/reviews.docx")).unwrap(),
        b"known reviews"
    );
    assert_eq!(
        std::fs::read(out.join("payroll.xlsx")).unwrap(),
        b"known payroll"
    );
    assert_eq!(std::fs::read(out.join("notes.txt")).unwrap(), b"v2, longer");

    // access granted again: the next run stores both and completes without errors
    mode(&share.join("hr"), 0o755);
    mode(&share.join("payroll.xlsx"), 0o644);
    std::fs::write(share.join("hr/2026/reviews.docx"), b"reviews, edited").unwrap();
    backdate(&share);
    let job = d.run_and_wait("share", "full").await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["error_count"], 0, "{job}");
    assert_eq!(
        d.get("/api/v1/items?status=failed").await["meta"]["total"],
        0
    );
    let log = d.get(&format!("/api/v1/jobs/{}/log", job["id"])).await;
    assert!(
        log["items"].as_array().unwrap().iter().any(|l| l["message"]
            .as_str()
            .unwrap()
            .contains("1 earlier item error(s) are over")),
        "the folder's error ends, and the job log says so: {log}"
    );
    let out = restore(&cfg, "/share", dir.path());
    assert!(
        tree::snapshot(&share) == tree::snapshot(&out),
        "the restored tree is the share again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stops_answering_costs_its_own_connector_only() {
    let dir = tempfile::tempdir().unwrap();
    let hung = Samba::start(&dir.path().join("samba-hung"));
    let fine = Samba::start(&dir.path().join("samba-fine"));
    for s in [&hung, &fine] {
        for i in 0..50 {
            let f = s.share_dir().join(format!("dir{}/file{i}.txt", i % 5));
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, format!("file {i}")).unwrap();
        }
        backdate(&s.share_dir());
    }
    let pw = dir.path().join("smb-password");
    std::fs::write(&pw, samba::PASSWORD).unwrap();
    let connector = |id: &str, port: u16, timeout: &str| {
        format!(
            "  - id: {id}\n    kind: smb\n    server: 127.0.0.1\n    port: {port}\n    share: {}\n    username: {}\n    password_file: {}\n    directory_timeout: {timeout}\n    workers: 2\n",
            samba::SHARE,
            samba::USER,
            pw.display()
        )
    };
    let api = free_port();
    let cfg = config(
        dir.path(),
        api,
        "",
        &(connector("hung", hung.port, "10s") + &connector("fine", fine.port, "10s")),
        "",
    );
    let d = Running::start(&cfg, api, &[]);
    for id in ["hung", "fine"] {
        let job = d.latest_job(id).await;
        assert_eq!(job["status"], "succeeded", "{job}");
    }

    // one server stops answering (its processes are stopped; it still accepts
    // connections); both connectors run
    for s in [&hung, &fine] {
        let f = s.share_dir().join("dir0/file0.txt");
        std::fs::write(&f, "changed").unwrap();
        // only this file gets a new mtime (not every file, as `backdate` would)
        backdate_file(&f);
    }
    hung.freeze();
    let ids = [
        d.queue_run("hung", None).await,
        d.queue_run("fine", None).await,
    ];
    let job = |id: i64| {
        let d = &d;
        async move { d.get(&format!("/api/v1/jobs/{id}")).await }
    };
    // the other connector's job runs at its usual pace, while the hung one still waits
    // for its server (10 s per call); the API answers all along
    d.wait_for("the other server's job", 8, async |_| {
        job(ids[1]).await["finished_at"].is_string()
    })
    .await;
    let other = job(ids[1]).await;
    assert_eq!(other["status"], "succeeded", "{other}");
    assert_eq!(other["progress"]["files_done"], 1, "{other}");
    let waiting = job(ids[0]).await;
    assert_eq!(waiting["status"], "running", "{waiting}");

    // the hung server's job fails with a clear error, not the daemon
    d.wait_for("the hung server's job", 90, async |_| {
        job(ids[0]).await["finished_at"].is_string()
    })
    .await;
    let failed = job(ids[0]).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    let error = failed["last_error"].as_str().unwrap();
    assert!(
        error.contains(&format!("127.0.0.1:{}", hung.port)) && error.contains("did not answer"),
        "{failed}"
    );
    assert!(!error.contains(samba::PASSWORD), "{failed}");
    assert_eq!(d.get("/api/v1/health").await["status"], "ok");

    // once it answers again, its next job completes
    hung.thaw();
    let job = d.run_and_wait("hung", "full").await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["error_count"], 0, "{job}");
    let out = restore(&cfg, "/hung", dir.path());
    assert_eq!(
        std::fs::read(out.join("dir0/file0.txt")).unwrap(),
        b"changed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_stopped_mid_run_fails_the_job_cleanly_and_the_next_run_completes() {
    let dir = tempfile::tempdir().unwrap();
    let mut smb = Samba::start(&dir.path().join("samba"));
    let share = smb.share_dir();
    // one folder of 10,000 files
    std::fs::create_dir_all(share.join("scans")).unwrap();
    for i in 0..10_000u32 {
        std::fs::write(
            share.join(format!("scans/page-{i:05}.txt")),
            format!("page {i}\n").repeat(20),
        )
        .unwrap();
    }
    backdate(&share);
    let api = free_port();
    let cfg = smb_config(dir.path(), smb.port, api, "    workers: 2\n");
    let d = Running::start(&cfg, api, &[]);
    // stop the server once the first files are committed
    d.wait_for("the first commits", 120, async |d| {
        let jobs = d.jobs("connector=share").await;
        jobs.first()
            .is_some_and(|j| j["progress"]["versions_committed"].as_u64().unwrap_or(0) > 0)
    })
    .await;
    smb.stop();
    let job = d.latest_job("share").await;
    assert_eq!(job["status"], "failed", "{job}");
    let err = job["last_error"].as_str().unwrap();
    assert!(
        err.contains(&format!("127.0.0.1:{}", smb.port)),
        "a clear error: {err}"
    );
    assert!(!err.contains(samba::PASSWORD));
    // whatever was committed is whole
    let out = restore(&cfg, "/share", dir.path());
    let mut restored = 0;
    if out.exists() {
        for e in std::fs::read_dir(out.join("scans")).unwrap() {
            let e = e.unwrap();
            assert_eq!(
                std::fs::read(e.path()).unwrap(),
                std::fs::read(share.join("scans").join(e.file_name())).unwrap()
            );
            restored += 1;
        }
    }
    assert!(
        restored < 10_000,
        "the run stopped part-way ({restored} files)"
    );
    // the server is back: the next run completes
    smb.restart();
    let job = d.run_and_wait("share", "full").await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let out = restore(&cfg, "/share", dir.path());
    assert_eq!(
        std::fs::read_dir(out.join("scans")).unwrap().count(),
        10_000
    );
    assert!(tree::snapshot(&share) == tree::snapshot(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_smb1_only_server_is_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let smb = Samba::start_with(
        &dir.path().join("samba"),
        "  server min protocol = NT1\n  server max protocol = NT1\n",
    );
    std::fs::write(smb.share_dir().join("old.txt"), b"from the nineties").unwrap();
    let cfg = dir.path().join("smb1.yaml");
    let write = |extra: &str| {
        std::fs::write(
            &cfg,
            format!(
                "version: 1\nstate_dir: state\nconnectors:\n  - id: share\n    kind: smb\n    server: 127.0.0.1\n    port: {}\n    share: {}\n    username: {}\n    password: \"{}\"\n    directory_timeout: 5s\n{extra}",
                smb.port,
                samba::SHARE,
                samba::USER,
                samba::PASSWORD
            ),
        )
        .unwrap();
    };
    write("");
    let (code, text) = once(&cfg);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("SMB1"), "{text}");
    // an SMB3 floor says so
    write("    protocol: smb3\n");
    let (code, text) = once(&cfg);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("offers no SMB3 dialect"), "{text}");
    write("    protocol: smb1\n");
    let (code, text) = once(&cfg);
    assert_eq!(code, 0, "{text}");
}

#[test]
fn a_missing_worker_program_is_a_clear_error() {
    // tributary installed without tributary-smb-worker next to it
    let dir = tempfile::tempdir().unwrap();
    let lonely = dir.path().join("tributary");
    if std::fs::hard_link(BIN, &lonely).is_err() {
        std::fs::copy(BIN, &lonely).unwrap();
    }
    let cfg = dir.path().join("tributary.yaml");
    std::fs::write(
        &cfg,
        format!(
            "version: 1\nstate_dir: {}\nconnectors:\n  - id: share\n    kind: smb\n    server: 127.0.0.1\n    share: {}\n    username: {}\n    password: \"{}\"\n",
            dir.path().join("state").display(),
            samba::SHARE,
            samba::USER,
            samba::PASSWORD
        ),
    )
    .unwrap();
    let out = Command::new(&lonely)
        .args(["once", "-c", cfg.to_str().unwrap(), "share"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let expected = format!(
        "connector `share`: the SMB worker program {} is missing",
        dir.path().join("tributary-smb-worker").display()
    );
    assert!(text.contains(&expected), "{text}");
    assert!(!text.contains(samba::PASSWORD), "{text}");
}

/// A worker process logged on to `share` (natively or not), as the daemon starts one:
/// the process, its pipes, and its account of how it lists and reads.
struct TestWorker {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    stdout: std::io::BufReader<std::process::ChildStdout>,
    lister: String,
}

impl TestWorker {
    fn start(port: u16, share: &str, floor: &str, native: bool) -> TestWorker {
        use std::process::Stdio;
        use tributary_connector_smb::proto::{self, Welcome};
        let mut child = Command::new(env!("CARGO_BIN_EXE_tributary-smb-worker"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut h = hello(port, samba::PASSWORD, share);
        h.min_protocol = floor.into();
        h.native = native;
        proto::write_json(&mut stdin, proto::HELLO, &h).unwrap();
        let (tag, body) = proto::read_frame(&mut stdout).unwrap().unwrap();
        assert_eq!(tag, proto::OK, "{}", String::from_utf8_lossy(&body));
        let welcome: Welcome = serde_json::from_slice(&body).unwrap();
        TestWorker {
            child,
            stdin,
            stdout,
            lister: welcome.lister,
        }
    }

    /// Closes its input (it exits) and waits for it.
    fn stop(self) {
        let TestWorker {
            mut child, stdin, ..
        } = self;
        drop(stdin);
        child.wait().unwrap();
    }
}

/// Every folder of `share` as one worker lists it for the walk, natively or through
/// libsmbclient: the worker's account of its lister, and one sorted line per entry
/// (`path dir size mtime`) or per folder the worker refused (`path ERR message`).
fn list_share(port: u16, share: &str, floor: &str, native: bool) -> (String, Vec<String>) {
    use tributary_connector_smb::proto::{self, Listing, PathReq, PathsReq};
    let mut w = TestWorker::start(port, share, floor, native);
    let (stdin, stdout) = (&mut w.stdin, &mut w.stdout);
    let mut lines = Vec::new();
    proto::write_json(
        stdin,
        proto::LIST,
        &PathReq {
            path: "/".into(),
            size: None,
        },
    )
    .unwrap();
    let mut answers = vec![(String::new(), proto::read_frame(stdout).unwrap().unwrap())];
    // then the rest four folders at a time, as the walk asks (listed side by side)
    let mut dirs = Vec::new();
    loop {
        for (dir, (tag, body)) in answers.drain(..) {
            if tag == proto::ERR {
                lines.push(format!("{dir} ERR {}", String::from_utf8_lossy(&body)));
                continue;
            }
            assert_eq!(tag, proto::OK);
            for e in Listing::parse(&body).unwrap() {
                let p = format!("{dir}/{}", e.name);
                lines.push(format!("{p} {} {} {}", e.dir, e.size, e.mtime_ns));
                if e.dir {
                    dirs.push(p);
                }
            }
        }
        if dirs.is_empty() {
            break;
        }
        let batch: Vec<String> = dirs.drain(..dirs.len().min(4)).collect();
        proto::write_json(
            stdin,
            proto::LIST_MANY,
            &PathsReq {
                paths: batch.clone(),
            },
        )
        .unwrap();
        for dir in batch {
            answers.push((dir, proto::read_frame(stdout).unwrap().unwrap()));
        }
    }
    let lister = w.lister.clone();
    w.stop();
    lines.sort();
    (lister, lines)
}

/// A tree with what tells listers apart: Unicode in both normal forms, `%` and `?`,
/// long and deep names, times before 1970 and in the far future, a sparse file past
/// 4 GiB, an empty folder, and a folder too large for one answer.
fn awkward_tree(root: &Path, big: usize) {
    let mut deep = root.join("deep");
    for i in 0..25 {
        deep = deep.join(format!("level {i:02} ünïcödé"));
    }
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::write(deep.join("bottom.txt"), b"deep").unwrap();
    std::fs::create_dir_all(root.join("empty")).unwrap();
    let names = [
        "Café.txt",
        "Cafe\u{301} (NFD).txt",
        "50% off?.txt",
        "日本語のファイル名.md",
        "emoji 🦀.txt",
        "spaces  and trailing dots..txt",
    ];
    for n in names {
        std::fs::write(root.join(n), n.as_bytes()).unwrap();
    }
    std::fs::write(root.join("x".repeat(240)), b"long").unwrap();
    let old = std::fs::File::create(root.join("before 1970.txt")).unwrap();
    old.set_modified(std::time::UNIX_EPOCH - std::time::Duration::from_secs(86_400))
        .unwrap();
    let future = std::fs::File::create(root.join("year 2200.txt")).unwrap();
    future
        .set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(7_258_118_400))
        .unwrap();
    let sparse = std::fs::File::create(root.join("sparse 5 GiB.bin")).unwrap();
    sparse.set_len(5 << 30).unwrap();
    let many = root.join("many");
    std::fs::create_dir_all(&many).unwrap();
    for i in 0..big {
        std::fs::write(
            many.join(format!("a rather long file name number {i:06}.txt")),
            b"",
        )
        .unwrap();
    }
}

#[test]
fn the_native_lister_lists_exactly_what_libsmbclient_lists() {
    let dir = tempfile::tempdir().unwrap();
    let smb = Samba::start(dir.path());
    // 30,000 entries of ~130 bytes: more than two 1 MiB answers
    awkward_tree(&smb.share_dir(), 30_000);
    let denied = smb.share_dir().join("no entry");
    std::fs::create_dir_all(denied.join("inside")).unwrap();
    std::fs::set_permissions(&denied, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    for share in [samba::SHARE, samba::USER_SHARE] {
        let (lister, native) = list_share(smb.port, share, "smb2", true);
        assert_eq!(lister, "native SMB 3.1.1");
        let (lister, old) = list_share(smb.port, share, "smb2", false);
        assert!(lister.starts_with("libsmbclient"), "{lister}");
        assert!(native.len() > 30_000, "{}", native.len());
        assert_eq!(native, old, "share {share}");
    }
    // the denied folder is an error there, worded as libsmbclient's
    let (_, lines) = list_share(smb.port, samba::USER_SHARE, "smb2", true);
    assert!(
        lines.iter().any(|l| l.starts_with("/no entry ERR")),
        "{:?}",
        lines
            .iter()
            .filter(|l| l.contains("no entry"))
            .collect::<Vec<_>>()
    );
    std::fs::set_permissions(&denied, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

#[test]
fn servers_that_require_signing_or_encryption_are_listed_right() {
    let dir = tempfile::tempdir().unwrap();
    let servers = [
        // SMB 2.0.2: one credit per request, 64 KiB answers
        (
            "  server min protocol = SMB2_02\n  server max protocol = SMB2_02\n  server signing = mandatory\n",
            "smb2",
            "native SMB 2.0.2, signed",
        ),
        // SMB 2.1 with HMAC-SHA256 signatures
        (
            "  server min protocol = SMB2_10\n  server max protocol = SMB2_10\n  server signing = mandatory\n",
            "smb2",
            "native SMB 2.1.0, signed",
        ),
        // SMB 3.0.2 with AES-CMAC signatures
        (
            "  server min protocol = SMB2_10\n  server max protocol = SMB3_02\n  server signing = mandatory\n",
            "smb3",
            "native SMB 3.0.2, signed",
        ),
        // SMB 3.1.1 (preauth integrity) with AES-CMAC signatures
        (
            "  server min protocol = SMB3_11\n  server signing = mandatory\n",
            "smb3",
            "native SMB 3.1.1, signed",
        ),
        // SMB 3.0.2 with AES-128-CCM encryption of every message
        (
            "  server min protocol = SMB2_10\n  server max protocol = SMB3_02\n  server smb encrypt = required\n",
            "smb2",
            "native SMB 3.0.2, encrypted",
        ),
        // SMB 3.1.1 with AES-128-GCM encryption
        (
            "  server min protocol = SMB2_10\n  server smb encrypt = required\n",
            "smb2",
            "native SMB 3.1.1, encrypted",
        ),
        // one share that requires encryption on a server that does not
        (
            "  server min protocol = SMB2_10\n",
            "smb3",
            "native SMB 3.1.1, encrypted",
        ),
    ];
    for (i, (global, floor, want)) in servers.into_iter().enumerate() {
        let sub = dir.path().join(format!("s{i}"));
        // the last server requires encryption for the share only
        let share = if i == 6 {
            "  smb encrypt = required\n"
        } else {
            ""
        };
        let smb = Samba::start_custom(&sub, global, share);
        // 1,000 entries: more than two 64 KiB answers
        awkward_tree(&smb.share_dir(), 1000);
        let (lister, native) = list_share(smb.port, samba::SHARE, floor, true);
        assert_eq!(lister, want);
        let (_, old) = list_share(smb.port, samba::SHARE, floor, false);
        assert!(native.len() > 1000, "{}", native.len());
        assert_eq!(native, old, "server {global}");
    }
}

/// A file streamed by a worker, natively or through libsmbclient: its bytes and the
/// state the worker reports after the read (`size mtime`), or the worker's error.
fn read_share_file(
    port: u16,
    floor: &str,
    native: bool,
    path: &str,
    size_hint: Option<u64>,
) -> Result<(Vec<u8>, String), String> {
    use tributary_connector_smb::proto::{self, PathReq, Stat};
    let mut w = TestWorker::start(port, samba::SHARE, floor, native);
    let (stdin, stdout) = (&mut w.stdin, &mut w.stdout);
    let req = PathReq {
        path: path.into(),
        size: size_hint,
    };
    proto::write_json(stdin, proto::READ, &req).unwrap();
    let mut data = Vec::new();
    let result = loop {
        let (tag, body) = proto::read_frame(stdout).unwrap().unwrap();
        match tag {
            proto::OK => {}
            proto::DATA => data.extend_from_slice(&body),
            proto::END => {
                let s: Stat = serde_json::from_slice(&body).unwrap();
                break Ok((data, format!("{} {}", s.size, s.mtime_ns)));
            }
            _ => break Err(String::from_utf8_lossy(&body).into_owned()),
        }
    };
    w.stop();
    result
}

#[test]
fn files_read_natively_are_byte_for_byte_what_libsmbclient_reads() {
    let dir = tempfile::tempdir().unwrap();
    let servers = [
        ("  server min protocol = SMB2_10\n", "smb2"),
        // 64 KiB reads, signed
        (
            "  server min protocol = SMB2_02\n  server max protocol = SMB2_02\n  server signing = mandatory\n",
            "smb2",
        ),
        // SMB 3.1.1, AES-128-GCM
        (
            "  server min protocol = SMB2_10\n  server smb encrypt = required\n",
            "smb3",
        ),
        // SMB 3.0.2, AES-128-CCM
        (
            "  server min protocol = SMB2_10\n  server max protocol = SMB3_02\n  server smb encrypt = required\n",
            "smb3",
        ),
    ];
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut noise = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect()
    };
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("empty.txt", Vec::new()),
        ("one byte.txt", b"x".to_vec()),
        ("exactly 1 MiB.bin", noise(1 << 20)),
        ("1 MiB and 1.bin", noise((1 << 20) + 1)),
        ("Ünïcode 9 MiB.bin", noise((9 << 20) + 7)),
    ];
    for (i, (global, floor)) in servers.into_iter().enumerate() {
        let smb = Samba::start_with(&dir.path().join(format!("s{i}")), global);
        for (name, data) in &files {
            std::fs::write(smb.share_dir().join(name), data).unwrap();
        }
        for (name, data) in &files {
            let path = format!("/{name}");
            let hint = Some(data.len() as u64);
            let native = read_share_file(smb.port, floor, true, &path, hint).unwrap();
            let old = read_share_file(smb.port, floor, false, &path, hint).unwrap();
            assert!(native.0 == *data, "{name} on server {i}: content differs");
            assert_eq!(native, old, "{name} on server {i}");
        }
        // a file that grew since it was listed: what was read, and its new size, so
        // the pipeline sees a torn read
        let (data, end) =
            read_share_file(smb.port, floor, true, "/Ünïcode 9 MiB.bin", Some(10)).unwrap();
        assert!(files[4].1.starts_with(&data), "server {i}");
        assert!(end.starts_with(&format!("{} ", files[4].1.len())), "{end}");
        // a file that is not there is libsmbclient's error, worded as ever
        let native = read_share_file(smb.port, floor, true, "/gone.txt", Some(1)).unwrap_err();
        let old = read_share_file(smb.port, floor, false, "/gone.txt", Some(1)).unwrap_err();
        assert_eq!(native, old);
        assert!(native.contains("not found"), "{native}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_smb_connector_made_over_the_api_is_tested_once_per_log_on_run_and_restored() {
    let dir = tempfile::tempdir().unwrap();
    let smb = Samba::start(&dir.path().join("samba"));
    let share = smb.share_dir();
    std::fs::create_dir_all(share.join("dept")).unwrap();
    std::fs::write(share.join("dept/plan.txt"), b"the plan").unwrap();
    std::fs::write(share.join("big.bin"), vec![3u8; 2_500_000]).unwrap();
    backdate(&share);
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    let secrets = secrets_key(dir.path());
    let port = free_port();
    let cfg = config(dir.path(), port, "", &local_connector(""), &secrets);
    let d = Running::start(&cfg, port, &[]);
    let body = |password: &str| {
        serde_json::json!({"id": "files", "kind": "smb", "server": "127.0.0.1", "port": smb.port,
                           "share": samba::SHARE, "username": samba::USER, "password": password,
                           "target": "/files", "workers": 3})
    };
    let admin = |method: &'static str, path: &'static str, body: Option<serde_json::Value>| {
        let d = &d;
        async move {
            let (s, _, b) = d.call(method, path, Some(ADMIN), body).await;
            (
                s,
                serde_json::from_str::<serde_json::Value>(&b).unwrap_or_default(),
            )
        }
    };
    // wrong credentials: one clear answer, one failed log-on at the server
    let wrong = "Wrong-pw-api-0042";
    let (s, v) = admin("POST", "/api/v1/connector-tests", Some(body(wrong))).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["error"]["code"], "ACCESS_DENIED", "{v}");
    assert!(!v.to_string().contains(wrong));
    assert_eq!(smb.wrong_password_log_ons(), 1);
    // the right ones: the share listed, nothing stored
    let (s, v) = admin(
        "POST",
        "/api/v1/connector-tests",
        Some(body(samba::PASSWORD)),
    )
    .await;
    assert_eq!((s, &v["ok"]), (200, &serde_json::json!(true)), "{v}");
    assert!(
        v["found"]
            .as_str()
            .unwrap()
            .contains("1 files and 1 folders"),
        "{v}"
    );
    assert_eq!(d.get("/api/v1/connectors").await["meta"]["total"], 1);
    // created, run and restored byte for byte
    let (s, v) = admin("POST", "/api/v1/connectors", Some(body(samba::PASSWORD))).await;
    assert_eq!(s, 201, "{v}");
    let job = d.run_and_wait("files", "full").await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let back = restore(&cfg, "/files", dir.path());
    assert_eq!(
        std::fs::read(back.join("dept/plan.txt")).unwrap(),
        b"the plan"
    );
    assert_eq!(
        std::fs::read(back.join("big.bin")).unwrap(),
        vec![3u8; 2_500_000]
    );
    let (s, v) = admin("POST", "/api/v1/connectors/files/test", None).await;
    assert_eq!((s, &v["ok"]), (200, &serde_json::json!(true)), "{v}");
    for t in [d.log(), d.get_text("/api/v1/connectors/files").await] {
        assert!(!t.contains(samba::PASSWORD) && !t.contains(wrong), "{t}");
    }
}
