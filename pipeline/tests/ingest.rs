//! End-to-end ingest behaviour against the local store and a real S3 server (SeaweedFS).

mod common;

use std::os::unix::fs::MetadataExt;
use std::sync::Arc;

use common::{Backend, Harness, StoreKind, assert_same_tree, open_catalog, small_chunks};
use tributary_connectors::memory::MemoryConnector;
use tributary_pipeline::{JobStatus, maintenance};
use tributary_testkit::tree;

const MIB: usize = 1 << 20;

async fn roundtrip(kind: StoreKind, backend: Backend) {
    let h = Harness::on(kind, backend, Default::default()).await;
    let files = tree::generate(&h.src(), 7, 100 * MIB);
    let r = h.run().await;
    assert_eq!(r.status, JobStatus::Succeeded, "{:?}", r.error);
    assert_eq!(r.stats.files_done as usize, files.len());
    assert_eq!(r.stats.files_failed, 0, "{:?}", r.item_errors);
    // the duplicate files were stored once
    assert!(
        r.stats.bytes_deduplicated >= 3 * MIB as u64,
        "{:?}",
        r.stats
    );

    let out = h.restore(None).await;
    assert_same_tree(&h.src(), &out);
    // mtimes come back too
    for f in &files {
        let a = std::fs::metadata(h.src().join(f)).unwrap();
        let b = std::fs::metadata(out.join(f)).unwrap();
        assert_eq!(
            (a.mtime(), a.mtime_nsec()),
            (b.mtime(), b.mtime_nsec()),
            "mtime of {}",
            f.display()
        );
    }

    // a second run reads and uploads nothing
    let r2 = h.run().await;
    assert_eq!(r2.status, JobStatus::Succeeded);
    assert_eq!(r2.stats.files_unchanged as usize, files.len());
    assert_eq!(
        (
            r2.stats.bytes_read,
            r2.stats.bytes_uploaded,
            r2.stats.chunks_new,
            r2.stats.versions_committed
        ),
        (0, 0, 0, 0)
    );

    let v = maintenance::verify(&h.pipeline.catalog, h.pipeline.store.clone())
        .await
        .unwrap();
    assert!(v.ok() && v.chunks_checked > 100, "{v:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_store_roundtrip_is_byte_identical_and_rerun_is_free() {
    roundtrip(StoreKind::Local, Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_store_roundtrip_is_byte_identical_and_rerun_is_free() {
    roundtrip(StoreKind::S3, Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_store_roundtrip_is_byte_identical_and_rerun_is_free_with_a_postgres_catalog() {
    roundtrip(StoreKind::S3, Backend::Postgres).await;
}

/// Many small files: chunks go into packs, so the store receives a few objects, not one
/// per file (each object is a request, and on S3 a per-request charge).
async fn small_files_make_few_objects(kind: StoreKind) {
    let h = Harness::new(kind).await;
    let n = 2_000;
    for i in 0..n {
        let dir = h.src().join(format!("d{}", i % 17));
        std::fs::create_dir_all(&dir).unwrap();
        let body = tree::random_bytes(i as u64, 3_000 + (i * 37) % 5_000);
        std::fs::write(dir.join(format!("f{i}.bin")), body).unwrap();
    }
    let r = h.run().await;
    assert_eq!(r.status, JobStatus::Succeeded, "{:?}", r.error);
    assert_eq!(r.stats.files_done, n as u64);
    let objects = h.pipeline.store.list("").await.unwrap();
    let packs = objects
        .iter()
        .filter(|o| o.key.starts_with("packs/"))
        .count();
    assert!(packs >= 1);
    assert!(
        objects.len() <= n / 20,
        "{} objects ({packs} packs) for {n} files",
        objects.len()
    );
    assert!(
        !objects.iter().any(|o| o.key.starts_with("chunks/")),
        "no chunk is an object of its own"
    );
    let out = h.restore(None).await;
    assert_same_tree(&h.src(), &out);
    let v = maintenance::verify(&h.pipeline.catalog, h.pipeline.store.clone())
        .await
        .unwrap();
    assert!(v.ok() && v.chunks_checked == n as u64, "{v:?}");
    assert_eq!(v.packs_checked as usize, packs, "{v:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_files_make_few_objects_in_a_local_store() {
    small_files_make_few_objects(StoreKind::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_files_make_few_objects_on_s3() {
    small_files_make_few_objects(StoreKind::S3).await;
}

/// Files read at the same time still each lie back to back in a pack, in order: a
/// restore (or a download) reads a file with one request per pack it is in, not one per
/// chunk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_file_lies_back_to_back_in_its_pack_however_many_are_read_at_once() {
    let h = Harness::with_settings(StoreKind::Local, small_chunks()).await;
    for i in 0..8u64 {
        let body = tree::random_bytes(1_000 + i, 500_000 + i as usize * 20_000);
        std::fs::write(h.src().join(format!("f{i}.bin")), body).unwrap();
    }
    let r = h.run().await;
    assert_eq!(r.status, JobStatus::Succeeded, "{:?}", r.error);
    let files = h.pipeline.catalog.restore_set(b"", None).await.unwrap();
    assert_eq!(files.len(), 8);
    for f in &files {
        let name = String::from_utf8_lossy(&f.path);
        assert!(f.chunks.len() > 3, "{name}: {} chunks", f.chunks.len());
        // each chunk follows the one before it, or (its lane's pack sealed under it, by
        // a commit or by filling up) begins the next pack
        let mut last: Option<(tributary_store::pack::Placed, u64)> = None;
        for (k, c) in f.chunks.iter().enumerate() {
            let p = c.packed.expect("packed");
            let follows =
                last.is_some_and(|(q, len)| q.pack == p.pack && q.offset + len == p.offset);
            let begins = p.offset == 0 && last.is_none_or(|(q, _)| q.pack != p.pack);
            assert!(
                follows || begins || (k == 0),
                "{name}: chunk {k} out of place: {p:?}"
            );
            last = Some((p, c.stored_size));
        }
        let packs: std::collections::HashSet<_> =
            f.chunks.iter().map(|c| c.packed.unwrap().pack).collect();
        assert!(packs.len() <= 2, "{name}: in {} packs", packs.len());
    }
    assert_same_tree(&h.src(), &h.restore(None).await);
}

/// History pruned: gc rewrites the packs it wasted and frees the space, the present
/// reads back whole, and the bucket alone rebuilds a catalog that restores it too.
async fn gc_repacks_and_the_bucket_rebuilds_the_catalog(kind: StoreKind, backend: Backend) {
    let mut settings = small_chunks();
    settings.pack_size = 1 << 20;
    let h = Harness::on(kind, backend, settings).await;
    for i in 0..8u64 {
        let body = tree::random_bytes(i, 200_000 + i as usize * 10_000);
        std::fs::write(h.src().join(format!("f{i}.bin")), body).unwrap();
    }
    assert_eq!(h.run().await.status, JobStatus::Succeeded);
    for i in (0..8u64).step_by(2) {
        std::fs::write(
            h.src().join(format!("f{i}.bin")),
            tree::random_bytes(50 + i, 150_000),
        )
        .unwrap();
    }
    assert_eq!(h.run().await.status, JobStatus::Succeeded);
    let (catalog, store) = (&h.pipeline.catalog, h.pipeline.store.clone());
    let stored = |objects: &[tributary_store::ObjectMeta]| -> u64 {
        objects
            .iter()
            .filter(|o| o.key.starts_with("packs/"))
            .map(|o| o.size)
            .sum()
    };
    let before = stored(&store.list("").await.unwrap());
    catalog
        .prune_versions(tributary_catalog::now_ns())
        .await
        .unwrap();
    let opts = maintenance::GcOptions {
        grace: std::time::Duration::ZERO,
        pack_size: 1 << 20,
        ..Default::default()
    };
    let r = maintenance::gc(catalog, store.clone(), opts).await.unwrap();
    assert!(
        r.packs_repacked + r.packs_deleted >= 1 && r.errors.is_empty(),
        "{r:?}"
    );
    let after = stored(&store.list("").await.unwrap());
    // four old versions of about 200 kB each are gone from the bucket
    assert!(after + 4 * 200_000 <= before, "{before} -> {after}: {r:?}");
    assert_same_tree(&h.src(), &h.restore(None).await);
    let v = maintenance::verify(catalog, store.clone()).await.unwrap();
    assert!(v.ok(), "{v:?}");

    let rebuilt = h.dir.path().join("rebuilt");
    std::fs::create_dir_all(&rebuilt).unwrap();
    let fresh = open_catalog(backend, &rebuilt).await;
    let rb = maintenance::rebuild_catalog(&fresh, store.clone())
        .await
        .unwrap();
    assert!(rb.unreadable_packs.is_empty() && rb.packs >= 1, "{rb:?}");
    let out = h.dir.path().join("from-rebuilt");
    let rr = maintenance::restore(&fresh, store.clone(), b"/docs", &out, None)
        .await
        .unwrap();
    assert!(rr.errors.is_empty(), "{rr:?}");
    assert_same_tree(&h.src(), &out.join("docs"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_repacks_and_the_bucket_rebuilds_the_catalog_in_a_local_store() {
    gc_repacks_and_the_bucket_rebuilds_the_catalog(StoreKind::Local, Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_repacks_and_the_bucket_rebuilds_the_catalog_on_s3() {
    gc_repacks_and_the_bucket_rebuilds_the_catalog(StoreKind::S3, Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_repacks_and_the_bucket_rebuilds_a_postgres_catalog_on_s3() {
    gc_repacks_and_the_bucket_rebuilds_the_catalog(StoreKind::S3, Backend::Postgres).await;
}

async fn one_byte_insert_in_50_mib_uploads_at_most_3_chunks_on(backend: Backend) {
    let h = Harness::on(StoreKind::S3, backend, Default::default()).await;
    let mut data = tree::random_bytes(11, 50 * MIB);
    std::fs::write(h.src().join("big.bin"), &data).unwrap();
    let r1 = h.run().await;
    assert!(r1.stats.chunks_new >= 20, "{:?}", r1.stats);
    data.insert(25 * MIB + 12345, 0xAB);
    std::fs::write(h.src().join("big.bin"), &data).unwrap();
    let r2 = h.run().await;
    assert_eq!(r2.status, JobStatus::Succeeded);
    assert!(
        r2.stats.chunks_new <= 3,
        "one-byte insert uploaded {} chunks",
        r2.stats.chunks_new
    );
    assert!(r2.stats.chunks_new >= 1);
    assert_eq!(
        std::fs::read(h.restore(None).await.join("big.bin")).unwrap(),
        data
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_byte_insert_in_50_mib_uploads_at_most_3_chunks() {
    one_byte_insert_in_50_mib_uploads_at_most_3_chunks_on(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_byte_insert_in_50_mib_uploads_at_most_3_chunks_with_a_postgres_catalog() {
    one_byte_insert_in_50_mib_uploads_at_most_3_chunks_on(Backend::Postgres).await;
}

async fn deletes_become_tombstones_and_change_rows_and_restore_at_sees_the_past_on(
    backend: Backend,
) {
    let h = Harness::on(StoreKind::Local, backend, small_chunks()).await;
    for i in 0..10 {
        std::fs::write(h.src().join(format!("f{i}.txt")), format!("file {i}")).unwrap();
    }
    h.run().await;
    let before = h.pipeline.catalog.changes(0, 1000).await.unwrap();
    assert_eq!(before.len(), 10);
    assert!(before.iter().all(|c| c.op == "upsert"));
    let t_between = tributary_catalog::now_ns();
    std::fs::remove_file(h.src().join("f3.txt")).unwrap();
    std::fs::remove_file(h.src().join("f7.txt")).unwrap();
    let r = h.run().await;
    assert_eq!(r.status, JobStatus::Succeeded);
    assert_eq!(r.stats.files_deleted, 2);
    let after = h
        .pipeline
        .catalog
        .changes(before.last().unwrap().seq, 1000)
        .await
        .unwrap();
    let mut deleted: Vec<_> = after
        .iter()
        .map(|c| (c.op.as_str(), String::from_utf8_lossy(&c.path).into_owned()))
        .collect();
    deleted.sort();
    assert_eq!(
        deleted,
        vec![
            ("delete", "/docs/f3.txt".to_string()),
            ("delete", "/docs/f7.txt".to_string())
        ]
    );
    // now: 8 files; as of before the delete: all 10
    assert_same_tree(&h.src(), &h.restore(None).await);
    let past = h.restore(Some(t_between)).await;
    assert_eq!(tree::snapshot(&past).len(), 10);
    assert_eq!(std::fs::read(past.join("f3.txt")).unwrap(), b"file 3");
    // a file that comes back is live again
    std::fs::write(h.src().join("f3.txt"), "file 3 again").unwrap();
    h.run().await;
    assert_same_tree(&h.src(), &h.restore(None).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_become_tombstones_and_change_rows_and_restore_at_sees_the_past() {
    deletes_become_tombstones_and_change_rows_and_restore_at_sees_the_past_on(Backend::Sqlite)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_become_tombstones_and_change_rows_and_restore_at_sees_the_past_with_a_postgres_catalog()
 {
    deletes_become_tombstones_and_change_rows_and_restore_at_sees_the_past_on(Backend::Postgres)
        .await;
}

async fn mass_delete_is_held_until_allowed_on(backend: Backend) {
    let h = Harness::on(StoreKind::Local, backend, Default::default()).await;
    for i in 0..10 {
        std::fs::write(h.src().join(format!("f{i}.txt")), format!("file {i}")).unwrap();
    }
    h.run().await;
    // the share "mounts empty": every file is gone
    for i in 0..10 {
        std::fs::remove_file(h.src().join(format!("f{i}.txt"))).unwrap();
    }
    let r = h.run().await;
    assert_eq!(
        r.status,
        JobStatus::Succeeded,
        "the rest of the job goes on"
    );
    assert_eq!(r.stats.files_deleted, 0);
    assert_eq!(r.stats.conflicts, 1);
    assert_eq!(
        h.pipeline.catalog.counts().await.unwrap().0,
        10,
        "nothing was deleted"
    );
    let open = h.conflicts(false).await;
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].kind, "mass_delete");
    let e = open[0].detail.clone().unwrap();
    assert!(
        e.contains("mass delete held")
            && e.contains("10 of 10")
            && e.contains("--allow-mass-delete"),
        "{e}"
    );
    // a second job updates the same conflict rather than opening another
    let r = h.run().await;
    assert_eq!(r.stats.files_deleted, 0);
    let again = h.conflicts(false).await;
    assert_eq!((again[0].id, again.len()), (open[0].id, 1));
    assert!(again[0].last_seen > open[0].last_seen);
    // an operator allows it
    let mut spec = h.spec();
    spec.allow_mass_delete = true;
    let r = h.run_with(h.connector(), spec).await;
    assert_eq!(r.status, JobStatus::Succeeded);
    assert_eq!(r.stats.files_deleted, 10);
    assert_eq!(h.pipeline.catalog.counts().await.unwrap().0, 0);
    let closed = h.conflicts(true).await;
    assert_eq!(
        (closed[0].status.as_str(), closed[0].resolution.as_deref()),
        ("resolved", Some("allow")),
        "the allowed job closed the conflict"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mass_delete_is_held_until_allowed() {
    mass_delete_is_held_until_allowed_on(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mass_delete_is_held_until_allowed_with_a_postgres_catalog() {
    mass_delete_is_held_until_allowed_on(Backend::Postgres).await;
}

async fn unreadable_and_vanishing_files_fail_alone_on(backend: Backend) {
    let h = Harness::on(StoreKind::Local, backend, Default::default()).await;
    std::fs::write(h.src().join("ok.txt"), "fine").unwrap();
    let locked = h.src().join("locked.txt");
    std::fs::write(&locked, "secret").unwrap();
    let sub = h.src().join("closed");
    std::fs::create_dir(&sub).unwrap();
    std::fs::write(sub.join("inside.txt"), "x").unwrap();
    // A connector whose file vanishes between listing and reading.
    let mem = MemoryConnector::new("docs");
    mem.write(b"a.txt", b"a");
    let r = h.run().await;
    assert_eq!(r.stats.files_done, 3);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o000)).unwrap();
    std::fs::write(h.src().join("ok.txt"), "changed").unwrap();
    let running_as_root = std::fs::read(&locked).is_ok();
    let r = h.run().await;
    std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(r.status, JobStatus::Succeeded, "{:?}", r.error);
    if !running_as_root {
        assert!(r.stats.files_failed >= 1, "{:?}", r.stats);
        // the folder we could not list keeps its known file
        assert_eq!(h.pipeline.catalog.counts().await.unwrap().0, 3);
    }
    let out = h.restore(None).await;
    assert_eq!(std::fs::read(out.join("ok.txt")).unwrap(), b"changed");

    // vanished between listing and reading
    struct Vanishing(MemoryConnector);
    #[async_trait::async_trait]
    impl tributary_connectors::Connector for Vanishing {
        fn id(&self) -> &str {
            "docs"
        }
        async fn list(
            &self,
            m: tributary_connectors::ListMode,
            cp: Option<String>,
            tx: tributary_connectors::ChangeTx,
        ) -> Result<tributary_connectors::ListOutcome, tributary_connectors::ConnectorError>
        {
            self.0.list(m, cp, tx).await
        }
        async fn stat(
            &self,
            id: &[u8],
        ) -> Result<Option<tributary_connectors::Entry>, tributary_connectors::ItemError> {
            self.0.stat(id).await
        }
        async fn open(
            &self,
            e: &tributary_connectors::Entry,
        ) -> Result<Box<dyn tributary_connectors::SourceFile>, tributary_connectors::ItemError>
        {
            self.0.remove(&e.source_id);
            self.0.open(e).await
        }
        async fn check(&self) -> Result<String, tributary_connectors::ConnectorError> {
            self.0.check().await
        }
    }
    let h2 = Harness::on(StoreKind::Local, backend, Default::default()).await;
    mem.write(b"b.txt", b"b");
    let r = h2.run_with(Arc::new(Vanishing(mem)), h2.spec()).await;
    assert_eq!(r.status, JobStatus::Succeeded);
    assert_eq!(r.stats.files_failed, 2);
    assert!(
        r.item_errors.iter().all(|e| e.contains("vanished")),
        "{:?}",
        r.item_errors
    );
    let errs = h2.pipeline.catalog.item_errors("docs").await.unwrap();
    assert_eq!(errs.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_and_vanishing_files_fail_alone() {
    unreadable_and_vanishing_files_fail_alone_on(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_and_vanishing_files_fail_alone_with_a_postgres_catalog() {
    unreadable_and_vanishing_files_fail_alone_on(Backend::Postgres).await;
}
