//! Encrypted stores end to end, through the `tributary` binary: what the bucket
//! reveals (nothing of the content or the names, on the local store and on SeaweedFS),
//! what tampering does (flipped, truncated, swapped objects are named by `verify` and
//! refused by `restore`), missing and wrong keys, and the key commands (add, rotate,
//! remove).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tributary_store::ObjectStore;
use tributary_testkit::{tree, weed};

const BIN: &str = env!("CARGO_BIN_EXE_tributary");

/// A string planted in the source; it must appear in no object of an encrypted store.
const MARKER: &[u8] = b"TRIBUTARY-CANARY-5d41402abc4b2a76";
/// A file name planted in the source, likewise.
const NAME: &str = "Board-Minutes-Confidential-Zebra.txt";

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(out.status.success(), "tributary {args:?}: {}", text(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// One installation: a config over `store` (YAML lines under `object_store:`) with the
/// source `src`.
struct Install {
    cfg: PathBuf,
}

impl Install {
    fn new(dir: &Path, name: &str, src: &Path, store: &str) -> Install {
        let cfg = dir.join(format!("{name}.yaml"));
        std::fs::write(
            &cfg,
            format!(
                "version: 1\nstate_dir: state-{name}\nobject_store:\n{store}pipeline:\n  chunk_min_size: 16KiB\n  chunk_avg_size: 64KiB\n  chunk_max_size: 256KiB\n  pack_size: 1MiB\n  commit_batch_size: 5\nconnectors:\n  - id: docs\n    kind: local\n    path: {}\n    target: /docs\n",
                src.display()
            ),
        )
        .unwrap();
        Install { cfg }
    }
    fn c(&self) -> &str {
        self.cfg.to_str().unwrap()
    }
    fn once(&self) -> Output {
        run(&["once", "-c", self.c(), "docs", "--json"])
    }
    fn ingest(&self) {
        let out = self.once();
        let r: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
        assert_eq!(r["status"], "succeeded", "{r}");
    }
    fn verify(&self) -> serde_json::Value {
        let out = run(&["verify", "-c", self.c(), "--json"]);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
    }
    fn verify_clean(&self) {
        let v = self.verify();
        assert_eq!(v["missing"], serde_json::json!([]), "{v}");
        assert_eq!(v["corrupt"], serde_json::json!([]), "{v}");
    }
    fn restore(&self, dest: &Path) -> Output {
        run(&["restore", "-c", self.c(), "/docs", dest.to_str().unwrap()])
    }
    fn assert_restores(&self, src: &Path) {
        let dest = self
            .cfg
            .with_file_name(format!("restore-{:08x}", rand::random::<u32>()));
        let out = self.restore(&dest);
        assert!(out.status.success(), "{}", text(&out));
        assert!(
            tree::snapshot(src) == tree::snapshot(&dest.join("docs")),
            "restored bytes differ from the source"
        );
    }
}

/// A source with the planted marker and name among generated files: the marker in
/// text (stored compressed) and inside random bytes (stored as it is).
fn source(dir: &Path) -> PathBuf {
    let src = dir.join("src");
    tree::generate(&src, 11, 1 << 20);
    let mut text = Vec::new();
    for i in 0..2_000 {
        text.extend_from_slice(format!("line {i} of the minutes, ").as_bytes());
        if i % 100 == 0 {
            text.extend_from_slice(MARKER);
        }
    }
    std::fs::write(src.join(NAME), &text).unwrap();
    let mut noise = tree::random_bytes(3, 600_000);
    noise[300_000..300_000 + MARKER.len()].copy_from_slice(MARKER);
    std::fs::write(src.join("noise-with-marker.bin"), noise).unwrap();
    src
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Every file under `root`, relative path → bytes.
fn objects(root: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    tree::snapshot(root)
}

/// What an object store holds that reveals the source: the marker, the planted name
/// (in an object's bytes or its key), the source's longer file names.
fn revealed(objects: &[(String, Vec<u8>)], src: &Path) -> Vec<String> {
    let names: Vec<String> = tree::snapshot(src)
        .keys()
        .filter_map(|p| p.file_name()?.to_str().map(str::to_string))
        .filter(|n| n.len() >= 12)
        .collect();
    let mut out = Vec::new();
    for (key, body) in objects {
        if contains(body, MARKER) {
            out.push(format!("{key}: the marker"));
        }
        for n in &names {
            if key.contains(n.as_str()) || contains(body, n.as_bytes()) {
                out.push(format!("{key}: the name {n}"));
            }
        }
    }
    out
}

fn local_objects(root: &Path) -> Vec<(String, Vec<u8>)> {
    objects(root)
        .into_iter()
        .map(|(k, v)| (k.to_string_lossy().into_owned(), v))
        .collect()
}

fn keygen(path: &Path) -> String {
    let out = ok(&["key", "generate", "--out", path.to_str().unwrap()]);
    assert!(out.contains("mode 0600"), "{out}");
    out.split_whitespace().nth(2).unwrap().to_string()
}

fn packs(objects: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = tree::snapshot(&objects.join("packs"))
        .into_keys()
        .map(|k| objects.join("packs").join(k))
        .collect();
    out.sort();
    out
}

#[test]
fn an_encrypted_local_store_reveals_nothing_and_catches_every_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let src = source(d);
    std::fs::create_dir_all(d.join("keys")).unwrap();
    let key_a = keygen(&d.join("keys/a.key"));
    let store = |key: &str| {
        format!("  kind: local\n  path: objects-enc\n  encryption:\n    key_file: keys/{key}\n")
    };
    let enc = Install::new(d, "enc", &src, &store("a.key"));
    enc.ingest();
    let check = ok(&["check", "--connect", "-c", enc.c()]);
    assert!(
        check.contains(&format!(
            "(format 2, packs, encrypted, opened by key {key_a})"
        )),
        "{check}"
    );

    // the same source in the clear shows what the check below looks for
    let clear = Install::new(d, "clear", &src, "  kind: local\n  path: objects-clear\n");
    clear.ingest();
    let shown = revealed(&local_objects(&d.join("objects-clear")), &src);
    assert!(shown.iter().any(|s| s.contains("the marker")), "{shown:?}");
    let root = d.join("objects-enc");
    let stored = local_objects(&root);
    assert!(stored.len() > 5);
    assert_eq!(revealed(&stored, &src), Vec::<String>::new());
    let marker = std::fs::read_to_string(root.join("tributary-store.json")).unwrap();
    assert!(marker.contains("xchacha20-poly1305"), "{marker}");
    assert!(root.join(format!("keys/{key_a}")).is_file());

    // a second installation with its own key: other names, other chunks
    let key_b = keygen(&d.join("keys/b.key"));
    let other = Install::new(
        d,
        "other",
        &src,
        "  kind: local\n  path: objects-other\n  encryption:\n    key_file: keys/b.key\n",
    );
    other.ingest();
    let names = |root: &Path| -> std::collections::BTreeSet<PathBuf> {
        objects(root).into_keys().collect()
    };
    let (mine, theirs) = (names(&root), names(&d.join("objects-other")));
    assert_eq!(
        mine.intersection(&theirs).collect::<Vec<_>>(),
        [Path::new("tributary-store.json")],
        "no object name in common but the marker's"
    );

    enc.verify_clean();
    enc.assert_restores(&src);

    // tampering: each is named by verify and refused by restore, never garbage
    let all = packs(&root);
    assert!(all.len() >= 3, "{all:?}");
    let (p0, p1) = (&all[0], &all[1]);
    let (b0, b1) = (std::fs::read(p0).unwrap(), std::fs::read(p1).unwrap());
    let name0 = p0
        .strip_prefix(&root)
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let flip = |b: &[u8], at: usize| {
        let mut b = b.to_vec();
        b[at] ^= 0x01;
        b
    };
    // (what, the first pack's new bytes, the second's, whether a restore reads the damage)
    type Case<'a> = (&'a str, Vec<u8>, Option<Vec<u8>>, bool);
    let cases: Vec<Case> = vec![
        ("a flipped byte in a blob", flip(&b0, 100), None, true),
        // (the index serves rebuild-catalog: verify checks it, a restore never reads it)
        (
            "a flipped byte in the index",
            flip(&b0, b0.len() - 30),
            None,
            false,
        ),
        ("a truncated pack", b0[..b0.len() / 2].to_vec(), None, true),
        ("two packs swapped", b1.clone(), Some(b0.clone()), true),
    ];
    for (what, new0, new1, read) in cases {
        std::fs::write(p0, &new0).unwrap();
        if let Some(n1) = &new1 {
            std::fs::write(p1, n1).unwrap();
        }
        let v = enc.verify();
        let corrupt = v["corrupt"].to_string();
        assert!(corrupt.contains(&name0), "{what}: {v}");
        if read {
            let dest = d.join(format!("tampered-{}", rand::random::<u32>()));
            let out = enc.restore(&dest);
            assert!(!out.status.success(), "{what}: restore succeeded");
            let said = text(&out);
            assert!(
                said.contains("fails authentication") || said.contains("truncated"),
                "{what}: {said}"
            );
        } else {
            assert!(corrupt.contains("fails authentication"), "{what}: {v}");
            enc.assert_restores(&src);
        }
        std::fs::write(p0, &b0).unwrap();
        std::fs::write(p1, &b1).unwrap();
    }
    enc.verify_clean();

    // a manifest swapped with another fails authentication when the catalog is rebuilt
    let manifests: Vec<PathBuf> = objects(&root.join("manifests"))
        .into_keys()
        .map(|k| root.join("manifests").join(k))
        .collect();
    assert!(manifests.len() >= 2, "{manifests:?}");
    let (m0, m1) = (
        std::fs::read(&manifests[0]).unwrap(),
        std::fs::read(&manifests[1]).unwrap(),
    );
    std::fs::write(&manifests[0], &m1).unwrap();
    let state = d.join("state-enc");
    std::fs::rename(state.join("catalog.db"), state.join("catalog.db.keep")).unwrap();
    for f in ["catalog.db-wal", "catalog.db-shm"] {
        let _ = std::fs::remove_file(state.join(f));
    }
    let out = run(&["rebuild-catalog", "-c", enc.c()]);
    assert!(!out.status.success(), "rebuilt from a swapped manifest");
    assert!(
        text(&out).contains("fails authentication"),
        "{}",
        text(&out)
    );
    std::fs::write(&manifests[0], &m0).unwrap();
    let _ = std::fs::remove_file(state.join("catalog.db"));
    ok(&["rebuild-catalog", "-c", enc.c()]);
    enc.verify_clean();
    enc.assert_restores(&src);

    // wrong key: one clear message, before anything is written
    let before = names(&root);
    let wrong = Install::new(d, "wrong", &src, &store("b.key"));
    std::fs::create_dir_all(d.join("state-wrong")).unwrap();
    for out in [run(&["check", "--connect", "-c", wrong.c()]), wrong.once()] {
        assert!(!out.status.success());
        let said = text(&out);
        assert!(
            said.contains(&format!("key {key_b}")) && said.contains("does not open the store"),
            "{said}"
        );
        assert!(said.contains(&key_a), "the store's keys are named: {said}");
    }
    assert_eq!(names(&root), before, "nothing written");
    // no key at all
    let bare = Install::new(d, "bare", &src, "  kind: local\n  path: objects-enc\n");
    let said = text(&bare.once());
    assert!(
        said.contains("is encrypted") && said.contains("object_store.encryption.key_file"),
        "{said}"
    );
    // a key file that is not there
    let gone = Install::new(d, "gone", &src, &store("nope.key"));
    let out = run(&["check", "-c", gone.c()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("object_store.encryption.key_file"),
        "{}",
        text(&out)
    );

    // a recovery key added opens the store; rotation replaces the configured key
    let add = ok(&[
        "key",
        "add",
        "-c",
        enc.c(),
        "--new-key-file",
        d.join("keys/recovery.key").to_str().unwrap(),
    ]);
    assert!(add.contains("now opens the store"), "{add}");
    let list = ok(&["key", "list", "-c", enc.c(), "--json"]);
    let ids: Vec<String> = serde_json::from_str::<serde_json::Value>(&list)
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 2, "{list}");
    let recovery = Install::new(d, "recovery", &src, &store("recovery.key"));
    std::fs::create_dir_all(d.join("state-recovery")).unwrap();
    // a copy of a WAL-mode database takes its write-ahead log with it
    for f in ["catalog.db", "catalog.db-wal"] {
        if state.join(f).exists() {
            std::fs::copy(state.join(f), d.join("state-recovery").join(f)).unwrap();
        }
    }
    recovery.assert_restores(&src);

    let rotated = ok(&[
        "key",
        "rotate",
        "-c",
        enc.c(),
        "--new-key-file",
        d.join("keys/c.key").to_str().unwrap(),
    ]);
    assert!(
        rotated.contains(&format!("key {key_a} no longer opens it")),
        "{rotated}"
    );
    let said = text(&run(&["check", "--connect", "-c", enc.c()]));
    assert!(
        said.contains("does not open the store"),
        "the old key is out: {said}"
    );
    let enc_c = Install::new(d, "enc", &src, &store("c.key"));
    enc_c.verify_clean();
    enc_c.assert_restores(&src);
    std::fs::write(src.join("after-rotation.txt"), "written under the new key").unwrap();
    enc_c.ingest();
    enc_c.assert_restores(&src);

    // the last key is never removed
    let c_id = std::fs::read_to_string(d.join("keys/c.key")).unwrap();
    let c_id = c_id
        .split_whitespace()
        .nth(4)
        .unwrap()
        .trim_end_matches('.')
        .to_string();
    let recovery_id = ids.iter().find(|i| **i != key_a).unwrap().clone();
    ok(&["key", "remove", "-c", enc_c.c(), &recovery_id]);
    let out = run(&["key", "remove", "-c", enc_c.c(), &c_id]);
    assert!(!out.status.success());
    assert!(text(&out).contains("last key"), "{}", text(&out));
    enc_c.assert_restores(&src);

    // pruned history: gc deletes and repacks sealed packs (blobs move as they are),
    // and the bucket alone still rebuilds the catalog
    std::fs::remove_file(src.join("noise-with-marker.bin")).unwrap();
    std::fs::remove_file(src.join("dups/a/copy1.dat")).unwrap();
    std::fs::remove_file(src.join("dups/b/copy2.dat")).unwrap();
    enc_c.ingest();
    std::thread::sleep(std::time::Duration::from_millis(50));
    ok(&["prune", "-c", enc_c.c(), "--older-than", "0s"]);
    let gc: serde_json::Value = serde_json::from_str(&ok(&[
        "gc",
        "-c",
        enc_c.c(),
        "--grace",
        "0s",
        "--max-unused",
        "1%",
        "--json",
    ]))
    .unwrap();
    assert!(gc["chunks_deleted"].as_u64().unwrap() >= 3, "{gc}");
    assert!(
        gc["packs_repacked"].as_u64().unwrap() + gc["packs_deleted"].as_u64().unwrap() >= 1,
        "{gc}"
    );
    assert_eq!(gc["errors"], serde_json::json!([]), "{gc}");
    enc_c.verify_clean();
    enc_c.assert_restores(&src);
    let _ = std::fs::remove_file(state.join("catalog.db"));
    for f in ["catalog.db-wal", "catalog.db-shm"] {
        let _ = std::fs::remove_file(state.join(f));
    }
    ok(&["rebuild-catalog", "-c", enc_c.c()]);
    enc_c.verify_clean();
    enc_c.assert_restores(&src);
}

/// The daemon over an encrypted store: content downloads with `Range` across packs,
/// and documents extracted, embedded and found by meaning, all read through sealed
/// blobs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_serves_ranges_and_search_from_an_encrypted_store() {
    use crate::common::*;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("src")).unwrap();
    keygen(&d.join("store.key"));
    let big = tree::random_bytes(21, 3_000_000);
    std::fs::write(d.join("src/big.bin"), &big).unwrap();
    std::fs::write(
        d.join("src/bread.txt"),
        "Feed the sourdough starter with flour and water the night before, then knead the dough, let it rise and bake the loaf in a hot oven.",
    )
    .unwrap();
    let port = free_port();
    let store = "object_store:\n  kind: local\n  path: objects\n  encryption:\n    key_file: store.key\npipeline:\n  chunk_min_size: 16KiB\n  chunk_avg_size: 64KiB\n  chunk_max_size: 256KiB\n  pack_size: 1MiB\n";
    let cfg = config(
        d,
        port,
        store,
        &local_connector("    vectorize: true\n"),
        &format!(
            "vectorize:\n  embedder: {{ kind: local, model_dir: {} }}\n  extract_timeout: 20s\n",
            model_dir().display()
        ),
    );
    let daemon = Running::start(&cfg, port, &[]);
    daemon
        .wait_for("the vectorization queue to drain", 240, async |d| {
            let q = d.get("/api/v1/queue").await;
            let items = d.get("/api/v1/items?status=completed").await;
            q["state"] == "ready" && q["pending"] == 0 && items["meta"]["total"] == 2
        })
        .await;
    let items = daemon.get("/api/v1/items?prefix=/docs/big.bin").await;
    let id = items["items"][0]["id"].as_i64().unwrap();
    let part = daemon
        .http
        .get(daemon.url(&format!("/api/v1/items/{id}/content")))
        .bearer_auth(VIEWER)
        .header("Range", "bytes=900000-2199999")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(
        part.bytes().await.unwrap().as_ref(),
        &big[900_000..2_200_000],
        "a range across packs"
    );
    let hits = daemon
        .get("/api/v1/search?q=making%20bread%20with%20a%20starter&k=1")
        .await;
    assert_eq!(hits["items"][0]["path"], "/docs/bread.txt", "{hits}");
    let stored = local_objects(&d.join("objects"));
    assert!(stored.len() > 3);
    assert!(
        !stored.iter().any(|(_, b)| contains(b, b"sourdough")),
        "the text is sealed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_bucket_on_seaweedfs_reveals_nothing_and_refuses_a_flipped_byte() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let src = source(d);
    keygen(&d.join("s3.key"));
    let w = weed::shared();
    let prefix = format!("enc-{:08x}/", rand::random::<u32>());
    let store = format!(
        "  kind: s3\n  endpoint: {}\n  bucket: {}\n  prefix: {prefix}\n  access_key_id: {}\n  secret_access_key: {}\n  encryption:\n    key_file: s3.key\n",
        w.endpoint(),
        weed::BUCKET,
        weed::ACCESS_KEY,
        weed::SECRET_KEY
    );
    let s3 = Install::new(d, "s3", &src, &store);
    let out = tokio::task::spawn_blocking({
        let c = s3.cfg.clone();
        move || run(&["once", "-c", c.to_str().unwrap(), "docs", "--json"])
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", text(&out));

    let bucket = tributary_store::s3::S3Store::new(tributary_store::s3::S3Settings {
        endpoint: Some(w.endpoint()),
        bucket: weed::BUCKET.into(),
        prefix: prefix.clone(),
        region: "us-east-1".into(),
        path_style: true,
        credentials: Some((weed::ACCESS_KEY.into(), weed::SECRET_KEY.into())),
        sse: None,
        request_timeout: std::time::Duration::from_secs(30),
    })
    .await;
    let mut stored = Vec::new();
    for m in bucket.list("").await.unwrap() {
        let body = bucket.get(&m.key).await.unwrap();
        stored.push((m.key, body.to_vec()));
    }
    assert!(
        stored.iter().any(|(k, _)| k.starts_with("packs/")),
        "{}",
        stored.len()
    );
    assert!(stored.iter().any(|(k, _)| k.starts_with("manifests/")));
    assert_eq!(revealed(&stored, &src), Vec::<String>::new());

    let s3c = s3.cfg.clone();
    let srcc = src.clone();
    tokio::task::spawn_blocking(move || {
        let s3 = Install { cfg: s3c };
        s3.verify_clean();
        s3.assert_restores(&srcc);
    })
    .await
    .unwrap();

    let (key, body) = stored
        .iter()
        .find(|(k, _)| k.starts_with("packs/"))
        .unwrap();
    let mut flipped = body.clone();
    flipped[body.len() / 3] ^= 0x40;
    bucket
        .put(key, flipped.into(), tributary_store::PutMode::Overwrite)
        .await
        .unwrap();
    let s3c = s3.cfg.clone();
    let key2 = key.clone();
    tokio::task::spawn_blocking(move || {
        let s3 = Install { cfg: s3c };
        let v = s3.verify();
        assert!(v["corrupt"].to_string().contains(&key2), "{v}");
    })
    .await
    .unwrap();
}

fn run_with_fault(args: &[&str], point: &str) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .env("TRIBUTARY_FAULT_POINT", point)
        .output()
        .unwrap()
}

#[test]
fn migrate_store_encrypt_seals_a_clear_store_in_place_resuming_after_kills() {
    // a format 1 store (one object per chunk) and a format 2 one (clear packs)
    for format in [1, 2] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let src = source(d);
        let objects = d.join("objects");
        if format == 1 {
            std::fs::create_dir_all(&objects).unwrap();
            std::fs::write(objects.join("tributary-store.json"), br#"{"format":1}"#).unwrap();
        }
        let clear = Install::new(d, "mig", &src, "  kind: local\n  path: objects\n");
        clear.ingest();
        // history: an older version of a file, and a deleted one
        std::fs::write(
            src.join("dir0-0/file0.txt"),
            "rewritten after the first ingest",
        )
        .unwrap();
        std::fs::remove_file(src.join("dir1-0/dir1-1/file1.txt")).unwrap();
        clear.ingest();
        let shown = revealed(&local_objects(&objects), &src);
        assert!(
            shown.iter().any(|s| s.contains("the marker")),
            "{format}: {shown:?}"
        );

        keygen(&d.join("m.key"));
        let enc = Install::new(
            d,
            "mig",
            &src,
            "  kind: local\n  path: objects\n  encryption:\n    key_file: m.key\n",
        );
        let said = text(&enc.once());
        assert!(said.contains("migrate-store --encrypt"), "{format}: {said}");

        // killed with a page's packs uploaded and not committed, then after a commit
        for point in ["encrypt.before_commit:1", "encrypt.after_commit:1"] {
            let out = run_with_fault(&["migrate-store", "--encrypt", "-c", enc.c()], point);
            assert!(
                out.status.code().is_none(),
                "{format} {point}: expected to abort: {}",
                text(&out)
            );
            let said = text(&enc.once());
            assert!(
                said.contains("is being encrypted"),
                "{format} {point}: {said}"
            );
        }
        let r: serde_json::Value = serde_json::from_str(&ok(&[
            "migrate-store",
            "--encrypt",
            "-c",
            enc.c(),
            "--json",
        ]))
        .unwrap();
        assert_eq!(r["errors"], serde_json::json!([]), "{format}: {r}");
        assert!(
            r["manifests_rewritten"].as_u64().unwrap() >= 2,
            "{format}: {r}"
        );
        assert!(
            r["cleanup"]["bytes_deleted"].as_u64().unwrap() > 0,
            "{format}: {r}"
        );

        assert_eq!(
            revealed(&local_objects(&objects), &src),
            Vec::<String>::new()
        );
        assert!(
            !objects.join("chunks").exists() || tree::snapshot(&objects.join("chunks")).is_empty()
        );
        let check = ok(&["check", "--connect", "-c", enc.c()]);
        assert!(
            check.contains("encrypted, opened by key"),
            "{format}: {check}"
        );
        enc.verify_clean();
        enc.assert_restores(&src);
        let again = ok(&["migrate-store", "--encrypt", "-c", enc.c()]);
        assert!(again.contains("encrypted already"), "{again}");

        // the sealed bucket alone rebuilds the catalog, history included
        let state = d.join("state-mig");
        for f in ["catalog.db", "catalog.db-wal", "catalog.db-shm"] {
            let _ = std::fs::remove_file(state.join(f));
        }
        let rebuilt: serde_json::Value =
            serde_json::from_str(&ok(&["rebuild-catalog", "-c", enc.c(), "--json"])).unwrap();
        assert!(
            rebuilt["versions"].as_u64().unwrap() >= 40,
            "{format}: {rebuilt}"
        );
        enc.verify_clean();
        enc.assert_restores(&src);
        std::fs::write(src.join("after.txt"), "written sealed from the start").unwrap();
        enc.ingest();
        enc.assert_restores(&src);
        assert_eq!(
            revealed(&local_objects(&objects), &src),
            Vec::<String>::new()
        );
    }
}
