//! Dry runs: a job that lists and plans, stores nothing (no chunk, no version, no
//! checkpoint, no item error, no conflict) and reports what the real run then does.

mod common;

use std::path::Path;

use common::{Backend, Harness, StoreKind};
use tributary_catalog::Stats;
use tributary_pipeline::{JobReport, JobStatus};

/// Everything in the store: every object's key and bytes.
fn objects(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    tributary_testkit::tree::snapshot(&dir.join("objects"))
        .into_iter()
        .collect()
}

/// What the catalog holds that a job could change: live items, versions, chunks, the
/// checkpoint, item errors, conflicts and when the connector last succeeded.
async fn catalog_state(h: &Harness) -> String {
    let c = &h.pipeline.catalog;
    format!(
        "{:?} {:?} {:?} {:?} {:?}",
        c.counts().await.unwrap(),
        c.checkpoint("docs").await.unwrap(),
        c.failed_source_ids("docs").await.unwrap(),
        h.conflicts(true).await.len(),
        c.last_success("docs").await.unwrap(),
    )
}

async fn dry_run(h: &Harness, allow_mass_delete: bool) -> JobReport {
    let mut spec = h.spec();
    spec.dry_run = true;
    spec.allow_mass_delete = allow_mass_delete;
    h.run_with(h.connector(), spec).await
}

/// The numbers a dry run promises about the real run that follows it (`bytes_planned`
/// of a real run also counts the bytes of a file read again when it changed while
/// being read, so it is compared apart).
fn promised(s: &Stats) -> [u64; 10] {
    [
        s.files_seen,
        s.files_unchanged,
        s.files_planned,
        s.files_new,
        s.files_changed,
        s.files_relocated,
        s.files_deleted,
        s.conflicts,
        s.mass_delete_held as u64,
        s.files_delete_held,
    ]
}

async fn a_dry_run_stores_nothing_and_counts_what_the_real_run_does_on(backend: Backend) {
    let h = Harness::on(StoreKind::Local, backend, Default::default()).await;
    let src = h.src();
    std::fs::create_dir_all(src.join("sub")).unwrap();
    for i in 0..12 {
        std::fs::write(
            src.join(format!("sub/f{i}.txt")),
            format!("file {i} ").repeat(100 + i),
        )
        .unwrap();
    }
    let first = h.run().await;
    assert_eq!(first.stats.files_new, 12, "{:?}", first.stats);
    assert_eq!(first.stats.files_changed, 0);

    // since then: three new files, two changed, one deleted, one renamed (a local
    // folder names files by path: a new file and a delete)
    let big: Vec<u8> = (0..300_000u32).flat_map(|i| i.to_le_bytes()).collect();
    std::fs::write(src.join("big.bin"), &big).unwrap();
    std::fs::write(src.join("new1.txt"), "a new file").unwrap();
    std::fs::write(src.join("sub/new2.txt"), "another new file").unwrap();
    std::fs::write(src.join("sub/f0.txt"), "changed, and shorter").unwrap();
    std::fs::write(src.join("sub/f1.txt"), "changed ".repeat(500)).unwrap();
    std::fs::remove_file(src.join("sub/f2.txt")).unwrap();
    std::fs::rename(src.join("sub/f3.txt"), src.join("f3-moved.txt")).unwrap();
    let read_bytes = big.len() as u64
        + 10
        + 16
        + 20
        + "changed ".repeat(500).len() as u64
        + "file 3 ".repeat(103).len() as u64;

    let store_before = objects(h.dir.path());
    let catalog_before = catalog_state(&h).await;
    let dry = dry_run(&h, false).await;
    assert_eq!(dry.status, JobStatus::Succeeded, "{:?}", dry.error);
    assert!(dry.dry_run);
    let s = &dry.stats;
    assert_eq!(
        (
            s.files_planned,
            s.files_new,
            s.files_changed,
            s.bytes_planned
        ),
        (6, 4, 2, read_bytes),
        "{s:?}"
    );
    assert_eq!((s.files_relocated, s.files_deleted), (0, 2), "{s:?}");
    assert!(!s.mass_delete_held);
    assert_eq!(
        (
            s.files_done,
            s.bytes_read,
            s.bytes_uploaded,
            s.chunks_new,
            s.versions_committed
        ),
        (0, 0, 0, 0, 0),
        "a dry run reads and stores nothing: {s:?}"
    );
    assert_eq!(objects(h.dir.path()), store_before, "no object was written");
    assert_eq!(
        catalog_state(&h).await,
        catalog_before,
        "the catalog is as it was"
    );
    let row = h.pipeline.catalog.job(dry.job_id).await.unwrap().unwrap();
    assert!(row.dry_run, "the job row says it was a dry run");
    assert_eq!(row.status, "succeeded");
    let log = h.pipeline.catalog.job_log(dry.job_id).await.unwrap();
    assert!(
        log.iter()
            .any(|l| l.message.contains("a real run would read 6 file(s)")),
        "{log:?}"
    );

    // a second dry run sees the same: the first changed nothing
    assert_eq!(promised(&dry_run(&h, false).await.stats), promised(s));

    let real = h.run().await;
    assert_eq!(real.status, JobStatus::Succeeded, "{:?}", real.error);
    assert!(!real.dry_run);
    assert_eq!(
        promised(&real.stats),
        promised(s),
        "the real run did what the dry run said: {:?}",
        real.stats
    );
    assert!(real.stats.bytes_planned >= read_bytes, "{:?}", real.stats);
    assert!(real.stats.bytes_read >= read_bytes, "{:?}", real.stats);
    assert_ne!(objects(h.dir.path()), store_before);
    // and the real run's result restores
    common::assert_same_tree(&h.src(), &h.restore(None).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_stores_nothing_and_counts_what_the_real_run_does() {
    a_dry_run_stores_nothing_and_counts_what_the_real_run_does_on(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_stores_nothing_and_counts_what_the_real_run_does_with_a_postgres_catalog() {
    a_dry_run_stores_nothing_and_counts_what_the_real_run_does_on(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_says_the_mass_delete_guard_would_hold_and_opens_no_conflict() {
    let h = Harness::new(StoreKind::Local).await;
    for i in 0..10 {
        std::fs::write(h.src().join(format!("f{i}.txt")), format!("file {i}")).unwrap();
    }
    h.run().await;
    for i in 0..8 {
        std::fs::remove_file(h.src().join(format!("f{i}.txt"))).unwrap();
    }
    let catalog_before = catalog_state(&h).await;
    let dry = dry_run(&h, false).await;
    let s = &dry.stats;
    assert!(s.mass_delete_held, "{s:?}");
    assert_eq!(
        (s.files_deleted, s.files_delete_held, s.conflicts),
        (0, 8, 1),
        "{s:?}"
    );
    assert!(
        h.conflicts(true).await.is_empty(),
        "no conflict is recorded"
    );
    assert_eq!(catalog_state(&h).await, catalog_before);
    // with the operator's leave, the dry run would delete them all
    let allowed = dry_run(&h, true).await;
    assert!(!allowed.stats.mass_delete_held);
    assert_eq!(allowed.stats.files_deleted, 8);
    assert_eq!(
        catalog_state(&h).await,
        catalog_before,
        "and still deletes nothing"
    );

    let real = h.run().await;
    assert_eq!(promised(&real.stats), promised(s), "{:?}", real.stats);
    let open = h.conflicts(false).await;
    assert_eq!(
        (open.len(), open[0].kind.as_str()),
        (1, "mass_delete"),
        "the real run holds them"
    );
}
