//! A file that changes while it is read is never committed half-changed.

mod common;

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use async_trait::async_trait;
use common::{Backend, Harness, StoreKind, small_chunks};
use tokio::sync::mpsc;
use tributary_connectors::memory::MemoryConnector;
use tributary_connectors::{
    Change, Connector, ConnectorError, Entry, Fingerprint, ItemError, ListMode, ListOutcome,
    SourceFile,
};
use tributary_pipeline::JobStatus;
use tributary_testkit::tree;

/// A source whose file is rewritten halfway through each of its first `rewrites` reads.
struct Rewriting {
    mem: MemoryConnector,
    rewrites: u32,
    opened: Arc<AtomicU32>,
}

struct RewritingFile {
    inner: Box<dyn SourceFile>,
    mem: MemoryConnector,
    id: Vec<u8>,
    read: usize,
    rewrite: bool,
    generation: u32,
}

impl std::io::Read for RewritingFile {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let cap = buf.len().min(64 * 1024);
        let n = self.inner.read(&mut buf[..cap])?;
        self.read += n;
        if self.rewrite && self.read > 512 * 1024 {
            self.rewrite = false;
            self.mem.write(
                &self.id,
                &tree::random_bytes(100 + self.generation as u64, 1 << 20),
            );
        }
        Ok(n)
    }
}

impl SourceFile for RewritingFile {
    fn fingerprint(&mut self) -> std::io::Result<Fingerprint> {
        self.inner.fingerprint()
    }
}

#[async_trait]
impl Connector for Rewriting {
    fn id(&self) -> &str {
        "docs"
    }
    async fn list(
        &self,
        m: ListMode,
        cp: Option<String>,
        tx: mpsc::Sender<Vec<Change>>,
    ) -> Result<ListOutcome, ConnectorError> {
        self.mem.list(m, cp, tx).await
    }
    async fn stat(&self, id: &[u8]) -> Result<Option<Entry>, ItemError> {
        self.mem.stat(id).await
    }
    async fn open(&self, e: &Entry) -> Result<Box<dyn SourceFile>, ItemError> {
        let generation = self.opened.fetch_add(1, Ordering::SeqCst);
        Ok(Box::new(RewritingFile {
            inner: self.mem.open(e).await?,
            mem: self.mem.clone(),
            id: e.source_id.clone(),
            read: 0,
            rewrite: generation < self.rewrites,
            generation,
        }))
    }
    async fn check(&self) -> Result<String, ConnectorError> {
        self.mem.check().await
    }
}

async fn a_file_rewritten_during_the_read_is_read_again_and_committed_whole_on(backend: Backend) {
    let h = Harness::on(StoreKind::Local, backend, small_chunks()).await;
    let mem = MemoryConnector::new("docs");
    mem.write(b"doc.bin", &tree::random_bytes(1, 1 << 20));
    let c = Rewriting {
        mem: mem.clone(),
        rewrites: 2,
        opened: Arc::new(AtomicU32::new(0)),
    };
    let r = h.run_with(Arc::new(c), h.spec()).await;
    assert_eq!(r.status, JobStatus::Succeeded);
    assert_eq!(r.stats.torn_reads, 2);
    assert_eq!(r.stats.files_done, 1);
    // progress counts the bytes read again as planned too: it never passes 100 %
    assert!(
        r.stats.bytes_read <= r.stats.bytes_planned && r.stats.bytes_read > 2 << 20,
        "{} read of {} planned",
        r.stats.bytes_read,
        r.stats.bytes_planned
    );
    // what was committed is the final content, whole
    let out = h.restore(None).await;
    assert_eq!(
        std::fs::read(out.join("doc.bin")).unwrap(),
        tree::random_bytes(101, 1 << 20)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_rewritten_during_the_read_is_read_again_and_committed_whole() {
    a_file_rewritten_during_the_read_is_read_again_and_committed_whole_on(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_rewritten_during_the_read_is_read_again_and_committed_whole_with_a_postgres_catalog()
 {
    a_file_rewritten_during_the_read_is_read_again_and_committed_whole_on(Backend::Postgres).await;
}

async fn a_file_that_never_holds_still_fails_that_item_only_on(backend: Backend) {
    let h = Harness::on(StoreKind::Local, backend, small_chunks()).await;
    let mem = MemoryConnector::new("docs");
    mem.write(b"busy.bin", &tree::random_bytes(1, 1 << 20));
    mem.write(b"calm.txt", b"calm");
    let c = Rewriting {
        mem: mem.clone(),
        rewrites: u32::MAX,
        opened: Arc::new(AtomicU32::new(0)),
    };
    let r = h.run_with(Arc::new(c), h.spec()).await;
    assert_eq!(
        r.status,
        JobStatus::Succeeded,
        "one restless file does not fail the job"
    );
    assert_eq!(r.stats.files_failed, 1);
    assert_eq!(r.stats.files_done, 1, "the calm file is stored");
    assert_eq!(r.stats.torn_reads, 4, "first read + 3 retries");
    assert!(
        r.item_errors[0].contains("changed while being read"),
        "{:?}",
        r.item_errors
    );
    let job = h.pipeline.catalog.job(r.job_id).await.unwrap().unwrap();
    assert_eq!(job.error_count, 1);
    let out = h.restore(None).await;
    assert!(
        !out.join("busy.bin").exists(),
        "nothing half-read was committed"
    );
    // it became a torn_read conflict: later jobs do not loop on it
    let open = h.conflicts(false).await;
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0].kind, "torn_read");
    assert_eq!(open[0].path, "/docs/busy.bin");
    assert!(
        r.conflicts.iter().any(|c| c.contains("torn_read")),
        "{:?}",
        r.conflicts
    );
    let opened = Arc::new(AtomicU32::new(0));
    let c = Rewriting {
        mem: mem.clone(),
        rewrites: u32::MAX,
        opened: opened.clone(),
    };
    mem.write(b"busy.bin", &tree::random_bytes(2, 1 << 20));
    let r = h.run_with(Arc::new(c), h.spec()).await;
    assert_eq!(r.status, JobStatus::Succeeded);
    assert_eq!(
        opened.load(Ordering::SeqCst),
        0,
        "the blocked file is not read"
    );
    assert_eq!(r.stats.files_skipped, 1);
    // the operator asks for another try; the writer has stopped by then
    let resolved =
        tributary_pipeline::resolve_conflict(&h.pipeline, open[0].id, "keep_source", "test")
            .await
            .unwrap();
    assert_eq!(resolved.status, "resolved");
    assert!(matches!(
        tributary_pipeline::resolve_conflict(&h.pipeline, open[0].id, "keep_source", "test").await,
        Err(tributary_pipeline::ResolveFailure::Resolve(
            tributary_catalog::ResolveError::AlreadyResolved(_)
        ))
    ));
    let r = h.run_with(Arc::new(mem.clone()), h.spec()).await;
    assert_eq!(r.stats.files_done, 1, "{:?}", r.stats);
    let out = h.restore(None).await;
    assert_eq!(
        std::fs::read(out.join("busy.bin")).unwrap(),
        tree::random_bytes(2, 1 << 20)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_never_holds_still_fails_that_item_only() {
    a_file_that_never_holds_still_fails_that_item_only_on(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_never_holds_still_fails_that_item_only_with_a_postgres_catalog() {
    a_file_that_never_holds_still_fails_that_item_only_on(Backend::Postgres).await;
}

async fn a_real_file_appended_to_during_ingest_is_never_committed_mixed_on(backend: Backend) {
    let h = Harness::on(StoreKind::Local, backend, small_chunks()).await;
    let path = h.src().join("log.bin");
    std::fs::write(&path, tree::random_bytes(3, 8 << 20)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, path) = (stop.clone(), path.clone());
        std::thread::spawn(move || {
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .unwrap();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                f.write_all(&tree::random_bytes(1000 + i, 4096)).unwrap();
                i += 1;
                std::thread::sleep(std::time::Duration::from_micros(300));
            }
        })
    };
    let mut committed = 0;
    for _ in 0..3 {
        let r = h.run().await;
        assert_eq!(r.status, JobStatus::Succeeded);
        committed += r.stats.files_done;
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let final_bytes = std::fs::read(&path).unwrap();
    // whatever was committed (if anything) is exactly a prefix the file really had
    if committed > 0 {
        let out = h.restore(None).await;
        let got = std::fs::read(out.join("log.bin")).unwrap();
        assert!(got.len() >= 8 << 20);
        assert!(
            final_bytes.starts_with(&got),
            "the committed version is a real state of the file"
        );
    }
    // a file that never held still became a torn_read conflict and is left alone
    // until an operator asks for another try
    let open = h.conflicts(false).await;
    for c in &open {
        assert_eq!(c.kind, "torn_read");
        tributary_pipeline::resolve_conflict(&h.pipeline, c.id, "keep_source", "test")
            .await
            .unwrap();
    }
    // once it holds still, the next job commits it whole
    let r = h.run().await;
    assert_eq!(r.stats.files_failed, 0);
    let out = h.restore(None).await;
    assert_eq!(std::fs::read(out.join("log.bin")).unwrap(), final_bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_file_appended_to_during_ingest_is_never_committed_mixed() {
    a_real_file_appended_to_during_ingest_is_never_committed_mixed_on(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_file_appended_to_during_ingest_is_never_committed_mixed_with_a_postgres_catalog() {
    a_real_file_appended_to_during_ingest_is_never_committed_mixed_on(Backend::Postgres).await;
}
