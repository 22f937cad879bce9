//! Vectorization, the pipeline's last stage: committed versions of connectors with
//! `vectorize: true` are extracted (in worker processes), split into passages,
//! embedded in batches across items and stored with the catalog; search answers
//! semantic queries over them.
//!
//! The queue is the catalog itself: a version waits while it is the current, visible
//! content of a vectorized item and has no index state ([`tributary_catalog::vectors`]).
//! Content is read back from the object store, never from the source (design
//! invariant 4). A version whose digest was indexed before (a copy, a rename) reuses
//! those passages without extraction or embedding. Nothing here blocks content storage:
//! an embedder that is down leaves versions waiting, and a file that breaks an
//! extractor fails only its own index state.

pub mod embed;
pub mod extractor;
pub mod index;
mod search;
pub mod split;
pub mod store;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use std::time::{Duration, Instant};
use tributary_catalog::pgvector::StoredVector;

use futures::StreamExt;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tributary_catalog::Catalog;
use tributary_catalog::vectors::{IndexTask, NewPassage};
use tributary_config::VectorizeConfig;
use tributary_extract::{ExtractError, Limits};
use tributary_store::ObjectStore;

pub use embed::{EmbedError, Embedder};
pub use extractor::Extractor;
pub use index::VectorIndex;
pub use search::{Hit, SearchError};
pub use store::{MemoryStore, PgStore, VectorStore};

/// The embedder and the vector store a [`Vectorizer`] works with.
pub struct Backends {
    pub embedder: Arc<dyn Embedder>,
    pub store: Arc<dyn VectorStore>,
}

/// Opens the configured [`Backends`]: the seam between configuration and
/// implementations, which the daemon's wiring fills (design invariant 1). Called at
/// start and again every 30 s while it fails (a model not yet fetched, a pgvector
/// server down).
#[async_trait::async_trait]
pub trait OpenBackends: Send + Sync {
    async fn open(&self) -> Result<Backends, String>;
}

/// Tasks taken from the queue per round; their passages are embedded together.
const ROUND: i64 = 16;

/// How long a round's claims keep other instances off its items (an instance that
/// dies mid-round leaves them for at most this long).
const CLAIM_TTL: Duration = Duration::from_secs(600);

enum Phase {
    Starting,
    Ready(Backends),
    Failed(String),
}

#[derive(Default)]
struct Counters {
    indexed: AtomicU64,
    failed: AtomicU64,
    skipped: AtomicU64,
    reused: AtomicU64,
    passages: AtomicU64,
    embed_seconds_ms: AtomicU64,
    extract_seconds_ms: AtomicU64,
}

/// The vectorization service of a daemon.
pub struct Vectorizer {
    catalog: Catalog,
    store: Arc<dyn ObjectStore>,
    cfg: VectorizeConfig,
    backends: Box<dyn OpenBackends>,
    connectors: RwLock<Vec<String>>,
    extractor: Extractor,
    phase: RwLock<Arc<Phase>>,
    wake: tokio::sync::Notify,
    counters: Counters,
    busy: AtomicU64,
}

/// Queue depth and progress for `/api/v1/queue` and `/metrics`.
#[derive(Debug, Clone, Serialize)]
pub struct QueueStatus {
    pub state: String,
    pub error: Option<String>,
    pub embedder: Option<String>,
    pub dim: Option<usize>,
    pub connectors: Vec<String>,
    pub pending: i64,
    pub indexed: i64,
    pub failed: i64,
    pub skipped: i64,
    pub passages: i64,
    pub index_vectors: usize,
    pub index_memory_bytes: usize,
    pub totals: QueueTotals,
}

#[derive(Debug, Clone, Serialize)]
pub struct QueueTotals {
    pub indexed: u64,
    pub failed: u64,
    pub skipped: u64,
    pub reused: u64,
    pub passages_embedded: u64,
    pub embed_seconds: f64,
    pub extract_seconds: f64,
}

impl Vectorizer {
    /// A service for `connectors` (those with `vectorize: true`) that embeds and stores
    /// with what `backends` opens; `exe` is the binary whose `extract-worker`
    /// subcommand extracts text.
    pub fn new(
        catalog: Catalog,
        store: Arc<dyn ObjectStore>,
        cfg: VectorizeConfig,
        backends: Box<dyn OpenBackends>,
        connectors: Vec<String>,
        exe: std::path::PathBuf,
    ) -> Arc<Vectorizer> {
        let extractor = Extractor {
            exe,
            limits: Limits {
                max_text_bytes: cfg.max_text_bytes,
                max_decompressed_bytes: cfg.max_decompressed_bytes,
            },
            memory_bytes: cfg.extract_memory,
            timeout: cfg.extract_timeout,
        };
        Arc::new(Vectorizer {
            catalog,
            store,
            cfg,
            backends,
            connectors: RwLock::new(connectors),
            extractor,
            phase: RwLock::new(Arc::new(Phase::Starting)),
            wake: tokio::sync::Notify::new(),
            counters: Counters::default(),
            busy: AtomicU64::new(0),
        })
    }

    /// Something was committed: look at the queue now.
    pub fn notify(&self) {
        self.wake.notify_one();
    }

    /// The vectorized connectors changed (a reload).
    pub fn set_connectors(&self, connectors: Vec<String>) {
        *self.connectors.write().expect("lock") = connectors;
        self.notify();
    }

    fn connectors(&self) -> Vec<String> {
        self.connectors.read().expect("lock").clone()
    }

    fn phase(&self) -> Arc<Phase> {
        self.phase.read().expect("lock").clone()
    }

    /// `Ok` when searches can be answered; otherwise why not.
    pub fn ready(&self) -> Result<(), String> {
        match &*self.phase() {
            Phase::Ready(_) => Ok(()),
            Phase::Starting => Err("the embedder is loading".into()),
            Phase::Failed(e) => Err(e.clone()),
        }
    }

    /// Loads the embedder and the index, then works the queue until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            match self.start().await {
                Ok(()) => break,
                Err(e) => {
                    tracing::error!("vectorizer: {e}");
                    *self.phase.write().expect("lock") = Arc::new(Phase::Failed(e));
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(30)) => {}
                    }
                }
            }
        }
        // The stale sweep scans every index state: once per wake-up, not per round.
        // The queue is read from a cursor over item ids, so a long backlog is not
        // rescanned from its start every round; it wraps around when it runs dry.
        let mut sweep = true;
        let mut cursor = 0i64;
        loop {
            let worked = match self.round(&shutdown, sweep, &mut cursor).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!("vectorizer: {e:#}");
                    0
                }
            };
            sweep = false;
            if shutdown.is_cancelled() {
                return;
            }
            if worked == 0 {
                if cursor > 0 {
                    // the end of the items: look once more from the start
                    cursor = 0;
                    continue;
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(self.cfg.retry_backoff.min(Duration::from_secs(60))) => {}
                }
                sweep = true;
            }
        }
    }

    /// Loads the embedder and the index, then indexes what waits for this vectorizer's
    /// connectors until nothing does (or `shutdown`): `tributary once` after its job.
    /// Returns the versions handled (indexed, skipped or failed: [`Vectorizer::status`]
    /// says which).
    pub async fn index_pending(&self, shutdown: &CancellationToken) -> Result<usize, String> {
        self.start().await?;
        let (mut total, mut cursor, mut sweep, mut wrapped) = (0, 0i64, true, false);
        loop {
            let n = self
                .round(shutdown, sweep, &mut cursor)
                .await
                .map_err(|e| format!("{e:#}"))?;
            sweep = false;
            total += n;
            if shutdown.is_cancelled() {
                return Ok(total);
            }
            match n {
                0 if cursor > 0 && !wrapped => {
                    // the end of the items: look once more from the start
                    cursor = 0;
                    wrapped = true;
                }
                0 => return Ok(total),
                _ => wrapped = false,
            }
        }
    }

    async fn start(&self) -> Result<(), String> {
        let Backends { embedder, store } = self.backends.open().await?;
        let id = embedder.id();
        let stored = self
            .catalog
            .vector_meta("embedder")
            .await
            .map_err(|e| e.to_string())?;
        let stored_dim: Option<usize> = self
            .catalog
            .vector_meta("dim")
            .await
            .map_err(|e| e.to_string())?
            .and_then(|d| d.parse().ok());
        let dim = embedder.dim();
        match stored {
            Some(s) if s != id => {
                return Err(format!(
                    "the vector index was built by `{s}`{}, but the configured embedder is `{id}`{}: \
                     vectors of different models cannot be compared. Run `tributary reindex` to \
                     drop the index and embed everything again with the configured embedder",
                    stored_dim
                        .map(|d| format!(" ({d} dimensions)"))
                        .unwrap_or_default(),
                    dim.map(|d| format!(" ({d} dimensions)"))
                        .unwrap_or_default(),
                ));
            }
            Some(_) => {}
            None => {
                self.catalog
                    .reset_vectors(&id, dim.or(stored_dim).unwrap_or(0))
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        let vectors = store
            .sync(&self.catalog, dim.or(stored_dim).unwrap_or(0))
            .await
            .map_err(|e| format!("{}: {e}", store.describe()))?;
        tracing::info!(embedder = %id, store = %store.describe(), vectors, "vectorizer ready");
        *self.phase.write().expect("lock") = Arc::new(Phase::Ready(Backends { embedder, store }));
        Ok(())
    }

    /// One round: drop what went stale, then index up to [`ROUND`] waiting versions.
    /// Returns the number of versions handled.
    async fn round(
        &self,
        shutdown: &CancellationToken,
        sweep: bool,
        cursor: &mut i64,
    ) -> anyhow::Result<usize> {
        let phase = self.phase();
        let Phase::Ready(Backends { embedder, store }) = &*phase else {
            return Ok(0);
        };
        let connectors = self.connectors();
        let stale = if sweep {
            self.catalog.stale_indexed(&connectors).await?
        } else {
            Vec::new()
        };
        if !stale.is_empty() {
            let n = self.catalog.drop_passages(&stale).await?;
            store.remove_versions(&stale).await?;
            tracing::debug!(
                versions = stale.len(),
                passages = n,
                "vectorizer: dropped stale passages"
            );
        }
        let retry_before = tributary_catalog::now_ns() - self.cfg.retry_backoff.as_nanos() as i64;
        let tasks = self
            .catalog
            .index_queue(
                &connectors,
                self.cfg.max_attempts as i64,
                retry_before,
                *cursor,
                ROUND,
            )
            .await?;
        if let Some(last) = tasks.last() {
            *cursor = last.item_id;
        }
        if tasks.is_empty() {
            return Ok(0);
        }
        // instances sharing the catalog: index only what this one holds the claim on
        let listed = tasks.len();
        let tasks = self.catalog.claim_index_tasks(tasks, CLAIM_TTL).await?;
        if tasks.is_empty() {
            return Ok(listed); // others index these; go on after them
        }
        let items: Vec<i64> = tasks.iter().map(|t| t.item_id).collect();
        let done = self.index_tasks(tasks, embedder, store, shutdown).await;
        if let Err(e) = self.catalog.release_index_claims(&items).await {
            tracing::debug!("vectorizer: give back claims: {e}");
        }
        done
    }

    /// Extracts, embeds and stores `tasks` (claimed); returns how many were handled.
    async fn index_tasks(
        &self,
        tasks: Vec<IndexTask>,
        embedder: &Arc<dyn Embedder>,
        store: &Arc<dyn VectorStore>,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<usize> {
        self.busy.store(tasks.len() as u64, Ordering::Relaxed);
        let n = tasks.len();
        // Extract (in parallel, bounded), then embed every passage of the round in
        // batches, then store item by item.
        let sizer = embedder.sizer();
        let prepared: Vec<(IndexTask, Prepared)> = futures::stream::iter(tasks)
            .map(|t| {
                let sizer = sizer.clone();
                async move {
                    let p = self.prepare(&t, sizer).await;
                    (t, p)
                }
            })
            .buffer_unordered(self.cfg.extract_workers.max(1))
            .collect()
            .await;
        if shutdown.is_cancelled() {
            return Ok(0);
        }
        let mut texts = Vec::new();
        for (_, p) in &prepared {
            if let Prepared::Passages { passages, .. } = p {
                texts.extend(passages.iter().map(|x| x.text.clone()));
            }
        }
        let started = Instant::now();
        let mut vectors: Result<Vec<Vec<f32>>, EmbedError> = Ok(Vec::with_capacity(texts.len()));
        for batch in texts.chunks(embedder.batch_size().max(1)) {
            match embedder.embed(batch.to_vec()).await {
                Ok(v) => {
                    if let Ok(all) = &mut vectors {
                        all.extend(v)
                    }
                }
                Err(e) => {
                    vectors = Err(e);
                    break;
                }
            }
        }
        self.counters
            .embed_seconds_ms
            .fetch_add(started.elapsed().as_millis() as u64, Ordering::Relaxed);
        let mut offset = 0;
        for (task, p) in prepared {
            match p {
                Prepared::Skip(reason) => {
                    self.catalog
                        .set_index_state(&task, "skipped", Some(&reason), None)
                        .await?;
                    self.counters.skipped.fetch_add(1, Ordering::Relaxed);
                }
                Prepared::Fail(reason, format) => {
                    tracing::warn!(
                        connector = %task.connector,
                        path = %String::from_utf8_lossy(&task.path),
                        "vectorize failed: {reason}"
                    );
                    self.catalog
                        .set_index_state(&task, "failed", Some(&reason), format.as_deref())
                        .await?;
                    self.counters.failed.fetch_add(1, Ordering::Relaxed);
                }
                Prepared::Reuse(format, passages) => {
                    self.commit(
                        store,
                        &task,
                        &format,
                        passages,
                        Some("passages reused from identical content"),
                    )
                    .await?;
                    self.counters.reused.fetch_add(1, Ordering::Relaxed);
                }
                Prepared::Passages {
                    format,
                    passages,
                    truncated,
                } => {
                    let count = passages.len();
                    match &vectors {
                        Ok(all) => {
                            let mine = &all[offset..offset + count];
                            let rows = passages
                                .into_iter()
                                .zip(mine)
                                .map(|(p, v)| NewPassage {
                                    location: p.location,
                                    text: p.text,
                                    embedding: v.clone(),
                                })
                                .collect();
                            let note = truncated.then_some("text cut at max_text_size");
                            self.commit(store, &task, &format, rows, note).await?;
                            self.counters
                                .passages
                                .fetch_add(count as u64, Ordering::Relaxed);
                        }
                        Err(e) => {
                            // Unavailable: the version waits without using an attempt.
                            let mut t = task.clone();
                            if matches!(e, EmbedError::Unavailable(_)) {
                                t.attempts -= 1;
                            }
                            self.catalog
                                .set_index_state(
                                    &t,
                                    "failed",
                                    Some(&format!("embedder: {e}")),
                                    Some(&format),
                                )
                                .await?;
                            self.counters.failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    offset += count;
                }
            }
        }
        self.busy.store(0, Ordering::Relaxed);
        if let Err(e) = &vectors {
            tracing::warn!("vectorizer: embedder: {e}");
            if matches!(e, EmbedError::Unavailable(_)) {
                // Let the provider recover before the next round.
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                }
            }
        }
        Ok(n)
    }

    async fn commit(
        &self,
        store: &Arc<dyn VectorStore>,
        task: &IndexTask,
        format: &str,
        passages: Vec<NewPassage>,
        note: Option<&str>,
    ) -> anyhow::Result<()> {
        let Some((ids, replaced)) = self
            .catalog
            .store_passages(task, format, &passages, note)
            .await?
        else {
            return Ok(()); // superseded meanwhile; the next round takes the new version
        };
        let mut gone = replaced;
        gone.push(task.version_id);
        store.remove_versions(&gone).await?;
        let rows = ids
            .into_iter()
            .zip(passages)
            .map(|(id, p)| StoredVector {
                id,
                item_id: task.item_id,
                version_id: task.version_id,
                connector: task.connector.clone(),
                embedding: p.embedding,
            })
            .collect();
        store.add(rows).await?;
        self.counters.indexed.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn prepare(&self, task: &IndexTask, sizer: Arc<dyn split::Sizer>) -> Prepared {
        if task.size > self.cfg.max_file_size {
            return Prepared::Skip(format!(
                "larger than vectorize.max_file_size ({} bytes)",
                self.cfg.max_file_size
            ));
        }
        if let Some(d) = &task.digest {
            match self.catalog.passages_by_digest(d, task.version_id).await {
                Ok(Some((format, passages))) => return Prepared::Reuse(format, passages),
                Ok(None) => {}
                Err(e) => return Prepared::Fail(format!("catalog: {e}"), None),
            }
        }
        let bytes = match self.read_version(task.version_id).await {
            Ok(b) => b,
            Err(e) => return Prepared::Fail(format!("reading the stored content: {e:#}"), None),
        };
        let name = String::from_utf8_lossy(&task.path)
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let started = Instant::now();
        let result = self.extractor.extract(&name, &bytes).await;
        self.counters
            .extract_seconds_ms
            .fetch_add(started.elapsed().as_millis() as u64, Ordering::Relaxed);
        drop(bytes);
        match result {
            Err(ExtractError::Unsupported(why)) => Prepared::Skip(why),
            Err(ExtractError::Failed(why)) => Prepared::Fail(why, None),
            Ok(x) => {
                let (tokens, overlap) = (self.cfg.passage_tokens, self.cfg.passage_overlap);
                let sections = x.sections;
                let passages = tokio::task::spawn_blocking(move || {
                    split::split(&sections, sizer.as_ref(), tokens, overlap)
                })
                .await
                .unwrap_or_default();
                if passages.is_empty() {
                    return Prepared::Skip(format!("no text in this {} file", x.format));
                }
                Prepared::Passages {
                    format: x.format,
                    passages,
                    truncated: x.truncated,
                }
            }
        }
    }

    async fn read_version(&self, version_id: i64) -> anyhow::Result<Vec<u8>> {
        let entry = self
            .catalog
            .version_content(version_id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("version {version_id} has no content"))?;
        let locs = entry.chunks.iter().map(|c| c.loc()).collect();
        let mut pieces =
            tributary_store::chunk::read_range(self.store.clone(), locs, 0, entry.size, 4);
        let mut out = Vec::with_capacity(entry.size as usize);
        while let Some(piece) = pieces.next().await {
            out.extend_from_slice(&piece?);
        }
        Ok(out)
    }

    pub async fn status(&self) -> Result<QueueStatus, tributary_catalog::CatalogError> {
        let connectors = self.connectors();
        let counts = self.catalog.index_counts(&connectors).await?;
        let phase = self.phase();
        let (state, error, embedder, dim, vectors, memory) = match &*phase {
            Phase::Starting => ("starting", None, None, None, 0, 0),
            Phase::Failed(e) => ("failed", Some(e.clone()), None, None, 0, 0),
            Phase::Ready(Backends { embedder, store }) => {
                let (vectors, memory) = store.size().await;
                let dim = match embedder.dim() {
                    Some(d) => Some(d),
                    None => self
                        .catalog
                        .vector_meta("dim")
                        .await?
                        .and_then(|d| d.parse().ok())
                        .filter(|d: &usize| *d > 0),
                };
                ("ready", None, Some(embedder.id()), dim, vectors, memory)
            }
        };
        let c = &self.counters;
        Ok(QueueStatus {
            state: state.into(),
            error,
            embedder,
            dim,
            connectors,
            pending: counts.pending,
            indexed: counts.indexed,
            failed: counts.failed,
            skipped: counts.skipped,
            passages: counts.passages,
            index_vectors: vectors,
            index_memory_bytes: memory,
            totals: QueueTotals {
                indexed: c.indexed.load(Ordering::Relaxed),
                failed: c.failed.load(Ordering::Relaxed),
                skipped: c.skipped.load(Ordering::Relaxed),
                reused: c.reused.load(Ordering::Relaxed),
                passages_embedded: c.passages.load(Ordering::Relaxed),
                embed_seconds: c.embed_seconds_ms.load(Ordering::Relaxed) as f64 / 1000.0,
                extract_seconds: c.extract_seconds_ms.load(Ordering::Relaxed) as f64 / 1000.0,
            },
        })
    }
}

enum Prepared {
    Skip(String),
    Fail(String, Option<String>),
    Reuse(String, Vec<NewPassage>),
    Passages {
        format: String,
        passages: Vec<split::Passage>,
        truncated: bool,
    },
}

/// `tributary reindex`: drops every passage and index state, empties `store` and
/// records `embedder`; a daemon started afterwards embeds everything again.
pub async fn reindex(catalog: &Catalog, backends: Backends) -> Result<(String, u64), String> {
    let Backends { embedder, store } = backends;
    let dim = match embedder.dim() {
        Some(d) => d,
        None => embedder
            .embed(vec!["dimension probe".into()])
            .await
            .map_err(|e| e.to_string())?
            .first()
            .map(Vec::len)
            .unwrap_or(0),
    };
    let id = embedder.id();
    store
        .clear()
        .await
        .map_err(|e| format!("{}: {e}", store.describe()))?;
    let n = catalog
        .reset_vectors(&id, dim)
        .await
        .map_err(|e| e.to_string())?;
    Ok((id, n))
}
