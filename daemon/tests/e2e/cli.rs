//! The `tributary` binary end to end: crash consistency (aborts at named points of the
//! commit path, then a rerun), rebuild-catalog from the object store alone, gc, and the
//! messages of `check`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use tributary_testkit::tree;

const BIN: &str = env!("CARGO_BIN_EXE_tributary");

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new(extra_pipeline: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("src")).unwrap();
        std::fs::write(
            dir.path().join("tributary.yaml"),
            format!(
                "version: 1\nstate_dir: state\npipeline:\n  chunk_min_size: 16KiB\n  chunk_avg_size: 64KiB\n  chunk_max_size: 256KiB\n  commit_batch_size: 5\n{extra_pipeline}connectors:\n  - id: docs\n    kind: local\n    path: src\n    target: /docs\n"
            ),
        )
        .unwrap();
        Env { dir }
    }
    fn src(&self) -> PathBuf {
        self.dir.path().join("src")
    }
    fn cfg(&self) -> PathBuf {
        self.dir.path().join("tributary.yaml")
    }
    fn tributary(&self, args: &[&str], fault: Option<&str>) -> Output {
        let mut c = Command::new(BIN);
        c.args(args).env_remove("RUST_LOG");
        if let Some(f) = fault {
            c.env("TRIBUTARY_FAULT_POINT", f);
        }
        c.output().unwrap()
    }
    fn once(&self, fault: Option<&str>) -> Output {
        self.tributary(
            &["once", "-c", self.cfg().to_str().unwrap(), "docs", "--json"],
            fault,
        )
    }
    fn ok(&self, args: &[&str]) -> String {
        let mut full: Vec<&str> = args.to_vec();
        let cfg = self.cfg();
        full.extend(["-c", cfg.to_str().unwrap()]);
        let out = self.tributary(&full, None);
        assert!(
            out.status.success(),
            "tributary {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
    /// Restores everything into a fresh folder and compares it with the source.
    fn assert_restores_source(&self) {
        let out = self
            .dir
            .path()
            .join(format!("restore-{:08x}", rand::random::<u32>()));
        self.ok(&["restore", "/docs", out.to_str().unwrap()]);
        let a = tree::snapshot(&self.src());
        let b = tree::snapshot(&out.join("docs"));
        assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
        assert!(a == b, "restored bytes differ from the source");
    }
    /// Deletes the catalog and rebuilds it from the bucket; returns the report.
    fn lose_catalog_and_rebuild(&self) -> serde_json::Value {
        let state = self.dir.path().join("state");
        for f in ["catalog.db", "catalog.db-wal", "catalog.db-shm"] {
            let _ = std::fs::remove_file(state.join(f));
        }
        serde_json::from_str(&self.ok(&["rebuild-catalog", "--json"])).unwrap()
    }
    fn verify_clean(&self) {
        let v: serde_json::Value = serde_json::from_str(&self.ok(&["verify", "--json"])).unwrap();
        assert_eq!(v["missing"], serde_json::json!([]), "{v}");
        assert_eq!(v["corrupt"], serde_json::json!([]), "{v}");
    }
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not json ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Changes the tree: appends to one file, adds a 2 MB file and 16 small ones, and
/// deletes one file every other round (enough for several commit batches).
fn mutate(src: &Path, round: u64) {
    let files: Vec<_> = tree::snapshot(src).into_keys().collect();
    let edit = &files[(round as usize * 7) % files.len()];
    let mut data = std::fs::read(src.join(edit)).unwrap();
    data.extend_from_slice(&tree::random_bytes(round, 70_000));
    std::fs::write(src.join(edit), data).unwrap();
    std::fs::write(
        src.join(format!("added-{round}.bin")),
        tree::random_bytes(1000 + round, 2_000_000),
    )
    .unwrap();
    for i in 0..16 {
        std::fs::write(
            src.join(format!("small-{round}-{i}.txt")),
            format!("round {round} file {i}"),
        )
        .unwrap();
    }
    if round.is_multiple_of(2) {
        let del = &files[(round as usize * 13 + 3) % files.len()];
        if del != edit {
            std::fs::remove_file(src.join(del)).unwrap();
        }
    }
}

#[test]
fn killed_at_any_commit_point_a_rerun_ends_consistent_and_the_bucket_rebuilds_the_catalog() {
    let env = Env::new("  pack_size: 1MiB\n");
    tree::generate(&env.src(), 5, 3 << 20);
    let points = [
        "pack.before_upload:1",
        "pack.after_upload:2",
        "commit.before_manifest:1",
        "commit.after_manifest:1",
        "commit.after_catalog:1",
        "commit.after_manifest:2",
        "commit.after_catalog:3",
        "pack.before_upload:2",
        "reconcile.before_commit:1",
        "commit.after_manifest:4",
    ];
    let mut first = true;
    for (round, point) in points.iter().enumerate() {
        if !first {
            mutate(&env.src(), round as u64);
        }
        first = false;
        let out = env.once(Some(point));
        assert!(
            out.status.code().is_none(),
            "{point}: the process was expected to abort, got {:?}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let out = env.once(None);
        let report = json(&out);
        assert_eq!(report["status"], "succeeded", "{point}: {report}");
        env.verify_clean();
        env.assert_restores_source();
        // a third run finds nothing to do: nothing was half-committed
        let again = json(&env.once(None));
        assert_eq!(again["stats"]["versions_committed"], 0, "{point}: {again}");
    }

    // what the crashes left (packs no committed version names, chunks copied twice)
    // is collectable, and collecting it harms nothing
    let gc: serde_json::Value =
        serde_json::from_str(&env.ok(&["gc", "--grace", "0s", "--json"])).unwrap();
    assert!(
        gc["packs_deleted"].as_u64().unwrap() + gc["packs_repacked"].as_u64().unwrap() > 0,
        "{gc}"
    );
    assert!(gc["errors"].as_array().unwrap().is_empty(), "{gc}");
    env.verify_clean();
    env.assert_restores_source();
    let again: serde_json::Value =
        serde_json::from_str(&env.ok(&["gc", "--grace", "0s", "--json"])).unwrap();
    assert_eq!(again["packs_deleted"], 0, "{again}");
    assert_eq!(
        again["packs_repacked"], 0,
        "a pack just rewritten is not rewritten again: {again}"
    );

    // the catalog is lost: rebuild it from the object store alone
    let r = env.lose_catalog_and_rebuild();
    assert!(r["versions"].as_u64().unwrap() > 0, "{r}");
    env.verify_clean();
    env.assert_restores_source();
    let again = json(&env.once(None));
    assert_eq!(
        again["stats"]["versions_committed"], 0,
        "the rebuilt catalog knows every file: {again}"
    );
    // rebuilding a non-empty catalog is refused
    let out = env.tributary(
        &["rebuild-catalog", "-c", env.cfg().to_str().unwrap()],
        None,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));
}

#[test]
fn gc_removes_only_old_unreferenced_objects() {
    let env = Env::new("");
    tree::generate(&env.src(), 9, 0);
    assert_eq!(json(&env.once(None))["status"], "succeeded");
    // an old and a fresh object that nothing references: a chunk of its own (format
    // v1) and a pack each
    let objects = env.dir.path().join("state/objects");
    let old = objects.join("chunks/ff").join("ff".repeat(32));
    let fresh = objects.join("chunks/fe").join("fe".repeat(32));
    let old_pack = objects.join("packs/ff").join("ff".repeat(32));
    let fresh_pack = objects.join("packs/fe").join("fe".repeat(32));
    for p in [&old, &fresh, &old_pack, &fresh_pack] {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b"orphan").unwrap();
    }
    for p in [&old, &old_pack] {
        std::fs::File::options()
            .write(true)
            .open(p)
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(7200))
            .unwrap();
    }
    let dry: serde_json::Value =
        serde_json::from_str(&env.ok(&["gc", "--grace", "1h", "--dry-run", "--json"])).unwrap();
    assert_eq!(dry["chunks_deleted"], 1, "{dry}");
    assert_eq!(dry["packs_deleted"], 1, "{dry}");
    assert!(
        old.exists() && old_pack.exists(),
        "a dry run deletes nothing"
    );
    let text = env.ok(&["gc", "--grace", "1h", "--dry-run"]);
    assert!(
        text.contains("dry run") && text.contains("1 would delete"),
        "{text}"
    );
    let r: serde_json::Value =
        serde_json::from_str(&env.ok(&["gc", "--grace", "1h", "--json"])).unwrap();
    assert_eq!(r["chunks_deleted"], 1, "{r}");
    assert_eq!(r["packs_deleted"], 1, "{r}");
    assert_eq!(
        r["packs_repacked"], 0,
        "the ingest's packs are all in use: {r}"
    );
    assert_eq!(r["kept_in_grace"], 2, "{r}");
    assert!(!old.exists() && fresh.exists());
    assert!(!old_pack.exists() && fresh_pack.exists());
    env.verify_clean();
    env.assert_restores_source();
}

#[test]
fn mass_delete_through_the_cli_is_held_with_a_clear_message() {
    let env = Env::new("");
    for i in 0..4 {
        std::fs::write(env.src().join(format!("f{i}")), format!("{i}")).unwrap();
    }
    env.once(None);
    for i in 0..4 {
        std::fs::remove_file(env.src().join(format!("f{i}"))).unwrap();
    }
    let out = env.tributary(&["once", "-c", env.cfg().to_str().unwrap(), "docs"], None);
    assert_eq!(out.status.code(), Some(3), "finished with an open conflict");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("mass delete held")
            && text.contains("--allow-mass-delete")
            && text.contains("1 open conflict"),
        "{text}"
    );
    let list = env.ok(&["conflicts"]);
    assert!(
        list.contains("mass_delete") && list.contains("4 of 4 live items"),
        "{list}"
    );
    let out = env.tributary(
        &[
            "once",
            "-c",
            env.cfg().to_str().unwrap(),
            "docs",
            "--allow-mass-delete",
        ],
        None,
    );
    assert!(out.status.success());
}

#[test]
fn check_reports_every_problem_and_exits_nonzero() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.yaml");
    std::fs::write(
        &cfg,
        "version: 1\nconnectors:\n  - id: a\n    kind: local\n    path: /x\n    schedule: \"every day\"\n  - id: a\n    kind: local\n    path: /y\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check", "-c", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<_> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(lines[0].ends_with("bad.yaml:6:15: connectors[0].schedule: invalid cron expression `every day`: expected 5 fields (minute hour day-of-month month day-of-week), 6 with seconds first, or a shorthand like `@daily`"), "{err}");
    assert!(
        lines[1].contains(
            "bad.yaml:7:9: connectors[1].id: duplicate connector id `a` (first defined at line 3)"
        ),
        "{err}"
    );

    let good = dir.path().join("good.yaml");
    std::fs::write(
        &good,
        "version: 1\nconnectors:\n  - id: a\n    kind: local\n    path: .\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check", "-c", good.to_str().unwrap(), "--connect"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let schema = Command::new(BIN)
        .args(["config", "schema"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&schema.stdout).unwrap();
    assert!(v["properties"]["connectors"].is_object());
    // the reference in docs/ is what the binary prints
    let reference = Command::new(BIN)
        .args(["config", "reference"])
        .output()
        .unwrap();
    assert!(reference.status.success());
    assert_eq!(
        String::from_utf8_lossy(&reference.stdout),
        include_str!("../../../docs/configuration.md")
    );
    let errors = crate::common::cli_ok(&["config", "errors"]);
    assert_eq!(
        String::from_utf8_lossy(&errors.stdout),
        include_str!("../../../docs/errors.md")
    );

    // a vectorized connector without its local model: said offline, with the command
    // that fetches it; with the model there, fine
    let vec = dir.path().join("vec.yaml");
    let models = dir.path().join("models/mini");
    std::fs::write(
        &vec,
        format!(
            "version: 1\nconnectors:\n  - id: a\n    kind: local\n    path: .\n    vectorize: true\nvectorize:\n  embedder: {{ kind: local, model_dir: {} }}\n",
            models.display()
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check", "-c", vec.to_str().unwrap()])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("lacks config.json, tokenizer.json, model.safetensors")
            && said.contains(&format!("scripts/fetch-model.sh {}", models.display())),
        "{said}"
    );
    std::fs::create_dir_all(models.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(crate::common::model_dir(), &models).unwrap();
    crate::common::cli_ok(&["check", "-c", vec.to_str().unwrap()]);
}

#[test]
fn version_retention_prunes_history_and_gc_frees_its_data_without_harming_the_present() {
    // one file worker: the first three files share its pack
    let env = Env::new("  file_concurrency: 1\n");
    std::fs::write(env.src().join("keep.bin"), tree::random_bytes(1, 600_000)).unwrap();
    std::fs::write(env.src().join("gone.bin"), tree::random_bytes(2, 600_000)).unwrap();
    // committed in the same manifest as the first versions of the others, and kept
    std::fs::write(env.src().join("stable.bin"), tree::random_bytes(3, 600_000)).unwrap();
    env.once(None);
    for round in 0..2u64 {
        std::fs::write(
            env.src().join("keep.bin"),
            tree::random_bytes(10 + round, 600_000),
        )
        .unwrap();
        env.once(None);
    }
    std::fs::remove_file(env.src().join("gone.bin")).unwrap();
    let r = json(&env.once(None));
    assert_eq!(r["stats"]["files_deleted"], 1, "{r}");
    std::thread::sleep(Duration::from_millis(50));
    let out = env.ok(&["prune", "--older-than", "0s"]);
    // keep.bin: two superseded versions; gone.bin: its version and tombstone
    assert!(
        out.contains("pruned 4 version(s) and 1 deleted item(s)"),
        "{out}"
    );
    let packs = env.dir.path().join("state/objects/packs");
    let before = tree_bytes(&packs);
    let gc: serde_json::Value =
        serde_json::from_str(&env.ok(&["gc", "--grace", "0s", "--json"])).unwrap();
    assert!(gc["chunks_deleted"].as_u64().unwrap() >= 3, "{gc}");
    // stable.bin shares a pack with pruned data: that pack is rewritten without it
    assert!(gc["packs_repacked"].as_u64().unwrap() >= 1, "{gc}");
    let after = tree_bytes(&packs);
    assert!(
        after + 3 * 600_000 <= before,
        "three pruned 600 kB files' data is gone from the bucket: {before} -> {after}"
    );
    env.verify_clean();
    env.assert_restores_source();
    // the bucket alone still rebuilds the present, leaving out pruned history
    let r = env.lose_catalog_and_rebuild();
    assert_eq!(
        r["missing_data_skipped"], 2,
        "the pruned versions sharing a manifest with stable.bin: {r}"
    );
    assert_eq!(r["versions"], 2, "{r}");
    env.verify_clean();
    env.assert_restores_source();
    let again = json(&env.once(None));
    assert_eq!(again["stats"]["versions_committed"], 0, "{again}");
}

#[test]
fn a_format_1_store_migrates_into_packs_resuming_after_a_kill_and_restores_byte_identical() {
    let env = Env::new("");
    // a store written before packs existed: its marker says format 1
    let objects = env.dir.path().join("state/objects");
    std::fs::create_dir_all(&objects).unwrap();
    std::fs::write(objects.join("tributary-store.json"), br#"{"format":1}"#).unwrap();
    tree::generate(&env.src(), 7, 2 << 20);
    assert_eq!(json(&env.once(None))["status"], "succeeded");
    let loose = tree_files(&objects.join("chunks"));
    assert!(loose > 5, "one object per chunk: {loose}");
    assert!(!objects.join("packs").exists(), "format 1 writes no packs");
    let check = env.ok(&["check", "--connect"]);
    assert!(
        check.contains("(format 1, one object per chunk: `tributary migrate-store`"),
        "{check}"
    );

    // killed with its packs uploaded but not yet named; then killed again once the
    // catalog names them but the old objects are still there
    for point in ["migrate.before_move:1", "migrate.after_move:1"] {
        let cfg = env.cfg();
        let out = env.tributary(&["migrate-store", "-c", cfg.to_str().unwrap()], Some(point));
        assert!(
            out.status.code().is_none(),
            "{point}: expected to abort: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        env.verify_clean();
        env.assert_restores_source();
    }
    let r: serde_json::Value = serde_json::from_str(&env.ok(&["migrate-store", "--json"])).unwrap();
    assert_eq!(r["from_format"], 2, "the first run marked the store: {r}");
    assert_eq!(r["errors"], serde_json::json!([]), "{r}");
    let marker = std::fs::read_to_string(objects.join("tributary-store.json")).unwrap();
    assert!(marker.contains("\"format\":2"), "{marker}");
    let check = env.ok(&["check", "--connect"]);
    assert!(check.contains("(format 2, packs)"), "{check}");
    env.verify_clean();
    env.assert_restores_source();
    // what the kills left — the old objects, the packs of the first run — is garbage
    let gc: serde_json::Value =
        serde_json::from_str(&env.ok(&["gc", "--grace", "0s", "--json"])).unwrap();
    assert_eq!(gc["chunks_deleted"], loose as u64, "{gc}");
    assert!(gc["packs_deleted"].as_u64().unwrap() >= 1, "{gc}");
    assert_eq!(tree_files(&objects.join("chunks")), 0);
    env.verify_clean();
    env.assert_restores_source();
    // and the next ingest writes packs, committing nothing again
    std::fs::write(env.src().join("new.txt"), "after the migration").unwrap();
    let r = json(&env.once(None));
    assert_eq!(r["stats"]["versions_committed"], 1, "{r}");
    assert_eq!(
        tree_files(&objects.join("chunks")),
        0,
        "no object of its own any more"
    );
    env.assert_restores_source();
}

#[test]
fn a_repack_killed_before_or_after_the_catalog_moves_its_chunks_loses_nothing() {
    let env = Env::new("  pack_size: 1MiB\n  file_concurrency: 1\n");
    // one file worker: each file's versions share packs with the others'; rewriting half of them and
    // pruning the old versions leaves every pack half wasted
    for i in 0..6u64 {
        std::fs::write(
            env.src().join(format!("f{i}.bin")),
            tree::random_bytes(i, 300_000),
        )
        .unwrap();
    }
    env.once(None);
    for i in (0..6u64).step_by(2) {
        std::fs::write(
            env.src().join(format!("f{i}.bin")),
            tree::random_bytes(100 + i, 300_000),
        )
        .unwrap();
    }
    env.once(None);
    std::thread::sleep(Duration::from_millis(20));
    env.ok(&["prune", "--older-than", "0s"]);
    let dry: serde_json::Value =
        serde_json::from_str(&env.ok(&["gc", "--grace", "0s", "--dry-run", "--json"])).unwrap();
    assert!(dry["packs_repacked"].as_u64().unwrap() >= 1, "{dry}");
    let cfg = env.cfg();
    for point in ["gc.before_move:1", "gc.after_move:1"] {
        let out = env.tributary(
            &["gc", "-c", cfg.to_str().unwrap(), "--grace", "0s"],
            Some(point),
        );
        assert!(
            out.status.code().is_none(),
            "{point}: expected to abort: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // the killed gc's lease does not block the next command
        env.verify_clean();
        env.assert_restores_source();
    }
    let gc: serde_json::Value =
        serde_json::from_str(&env.ok(&["gc", "--grace", "0s", "--json"])).unwrap();
    assert!(gc["errors"].as_array().unwrap().is_empty(), "{gc}");
    let again: serde_json::Value =
        serde_json::from_str(&env.ok(&["gc", "--grace", "0s", "--json"])).unwrap();
    assert_eq!(
        (&again["packs_repacked"], &again["packs_deleted"]),
        (&serde_json::json!(0), &serde_json::json!(0)),
        "{again}"
    );
    env.verify_clean();
    env.assert_restores_source();
    // the bucket alone still rebuilds the catalog, chunks placed where they now are
    let r = env.lose_catalog_and_rebuild();
    assert_eq!(r["unreadable_packs"], serde_json::json!([]), "{r}");
    env.verify_clean();
    env.assert_restores_source();
}

/// How many files there are under `dir` and their bytes (none if it does not exist).
fn tree_stats(dir: &Path) -> (usize, u64) {
    let (mut files, mut bytes) = (0, 0);
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let md = e.metadata().unwrap();
            if md.is_dir() {
                dirs.push(e.path());
            } else {
                files += 1;
                bytes += md.len();
            }
        }
    }
    (files, bytes)
}

fn tree_files(dir: &Path) -> usize {
    tree_stats(dir).0
}

fn tree_bytes(dir: &Path) -> u64 {
    tree_stats(dir).1
}

/// Every stored manifest of the local object store under `state`.
fn manifests(state: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![state.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.to_string_lossy().contains("/manifests/")
                && p.to_string_lossy().ends_with(".json.zst")
            {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn a_tampered_manifest_or_a_planted_link_never_makes_restore_write_outside_its_destination() {
    let env = Env::new("");
    std::fs::create_dir_all(env.src().join("sub")).unwrap();
    std::fs::write(env.src().join("a.txt"), b"alpha").unwrap();
    std::fs::write(env.src().join("sub/b.txt"), b"bravo").unwrap();
    assert_eq!(json(&env.once(None))["status"], "succeeded");
    // a bucket whose manifests name paths that climb out, or are absolute
    let state = env.dir.path().join("state");
    let outside = env.dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let escapes = [
        "/docs/../../outside/climbed.txt".to_string(),
        format!("/{}/absolute.txt", outside.display()),
        "/docs/./dot.txt".to_string(),
    ];
    let files = manifests(&state);
    assert!(!files.is_empty());
    for f in &files {
        let key = f.to_string_lossy().to_string();
        let mut m = tributary_pipeline::manifest::decode(&key, &std::fs::read(f).unwrap()).unwrap();
        let Some(template) = m.versions.iter().find(|v| !v.deleted).cloned() else {
            continue;
        };
        for (i, p) in escapes.iter().enumerate() {
            let mut v = template.clone();
            v.path = p.clone().into_bytes();
            v.source_id = format!("tampered-{i}").into_bytes();
            m.versions.push(v);
        }
        std::fs::write(f, tributary_pipeline::manifest::encode(&m).unwrap()).unwrap();
        break;
    }
    for f in ["catalog.db", "catalog.db-wal", "catalog.db-shm"] {
        let _ = std::fs::remove_file(state.join(f));
    }
    env.ok(&["rebuild-catalog", "--json"]);
    let dest = env.dir.path().join("dest");
    let cfg = env.cfg();
    let out = env.tributary(
        &[
            "restore",
            "-c",
            cfg.to_str().unwrap(),
            "/",
            dest.to_str().unwrap(),
        ],
        None,
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{text}");
    for p in &escapes {
        assert!(
            text.contains(&format!("{p}: not restored: an unsafe path")),
            "{p} is refused by name: {text}"
        );
    }
    assert!(
        std::fs::read_dir(&outside).unwrap().next().is_none(),
        "nothing was written outside the destination"
    );
    assert_eq!(
        std::fs::read(dest.join("docs/a.txt")).expect(&text),
        b"alpha"
    );
    assert_eq!(
        std::fs::read(dest.join("docs/sub/b.txt")).unwrap(),
        b"bravo"
    );
    // a link planted in the destination is not followed
    let dest2 = env.dir.path().join("dest2");
    std::fs::create_dir_all(dest2.join("docs")).unwrap();
    std::os::unix::fs::symlink(&outside, dest2.join("docs/sub")).unwrap();
    std::os::unix::fs::symlink(outside.join("linked.txt"), dest2.join("docs/a.txt")).unwrap();
    let out = env.tributary(
        &[
            "restore",
            "-c",
            cfg.to_str().unwrap(),
            "/docs",
            dest2.to_str().unwrap(),
        ],
        None,
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("docs/sub is a symbolic link; not followed"),
        "{text}"
    );
    assert!(
        std::fs::read_dir(&outside).unwrap().next().is_none(),
        "nothing was written through the links: {text}"
    );
    // the file's own name was a link: replaced by the file, the link's target untouched
    let a = dest2.join("docs/a.txt");
    assert!(
        !std::fs::symlink_metadata(&a)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(std::fs::read(&a).unwrap(), b"alpha");
}
