//! Connectors: where files come from.
//!
//! A [`Connector`] lists a source as a stream of [`Change`]s (upserts, deletes, listing
//! errors, checkpoints) into a bounded channel, in batches ([`ChangeTx`], [`Batch`]),
//! and opens entries for reading as a
//! blocking [`SourceFile`] (the pipeline reads on blocking threads, never on the async
//! reactor). Implementations: [`local::LocalConnector`] and the in-memory
//! [`memory::MemoryConnector`] used by pipeline tests. Every implementation passes
//! [`testsuite`] (feature `testsuite`).
//!
//! Paths are raw bytes, `/`-separated and relative to the source root, so names that
//! are not UTF-8 survive unchanged.

pub mod filter;
pub mod local;
pub mod memory;
mod prefetch;
#[cfg(feature = "testsuite")]
pub mod testsuite;

use std::io::Read;

use async_trait::async_trait;
use tokio::sync::mpsc;

/// One file as the source describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Stable identity in the source (the relative path where the source has no ids).
    pub source_id: Vec<u8>,
    /// Relative path, `/`-separated, raw bytes.
    pub rel_path: Vec<u8>,
    pub size: u64,
    pub mtime_ns: i64,
    pub inode: Option<i64>,
    /// A source change tag (cTag, hash) where the source has one.
    pub change_tag: Option<String>,
    /// Who may read the file, where the source says and the connector captures it
    /// (`user:<id>`, `group:<id>`, `anyone`, …); `None`: not captured.
    pub principals: Option<Vec<String>>,
}

impl Entry {
    /// The state that decides whether content changed.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint {
            size: self.size,
            mtime_ns: self.mtime_ns,
            inode: self.inode,
            change_tag: self.change_tag.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    pub size: u64,
    pub mtime_ns: i64,
    pub inode: Option<i64>,
    pub change_tag: Option<String>,
}

/// The job's end of a listing: changes in order, in batches (a folder's entries, a
/// page), so the job wakes once per batch rather than once per file.
pub type ChangeTx = mpsc::Sender<Vec<Change>>;

/// The most changes a [`Batch`] holds before it hands them over.
pub const MAX_BATCH: usize = 256;

/// Collects a listing's changes and hands them to the job in batches of at most
/// [`MAX_BATCH`]. Call `flush` at a natural boundary (the end of a folder or a page)
/// and always at the end: what is still buffered when a batch is dropped is lost.
pub struct Batch<'a> {
    tx: &'a ChangeTx,
    buf: Vec<Change>,
}

impl<'a> Batch<'a> {
    pub fn new(tx: &'a ChangeTx) -> Batch<'a> {
        Batch {
            tx,
            buf: Vec::new(),
        }
    }

    /// From a blocking thread. False when the job is gone.
    pub fn push_blocking(&mut self, c: Change) -> bool {
        self.buf.push(c);
        self.buf.len() < MAX_BATCH || self.flush_blocking()
    }

    /// From a blocking thread. False when the job is gone.
    pub fn flush_blocking(&mut self) -> bool {
        self.buf.is_empty() || self.tx.blocking_send(std::mem::take(&mut self.buf)).is_ok()
    }

    /// False when the job is gone.
    pub async fn push(&mut self, c: Change) -> bool {
        self.buf.push(c);
        self.buf.len() < MAX_BATCH || self.flush().await
    }

    /// False when the job is gone.
    pub async fn flush(&mut self) -> bool {
        self.buf.is_empty() || self.tx.send(std::mem::take(&mut self.buf)).await.is_ok()
    }
}

/// What a listing yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Upsert(Entry),
    Delete {
        source_id: Vec<u8>,
    },
    /// A file or folder that could not be listed. With `subtree`, nothing known under
    /// `rel_path` may be reconciled as deleted by this job.
    Error {
        rel_path: Vec<u8>,
        subtree: bool,
        message: String,
    },
    /// An entry left out on purpose (too large, a symlink, another file system).
    Skipped {
        rel_path: Vec<u8>,
        reason: SkipReason,
    },
    /// Everything before this point is covered by the given source position.
    Checkpoint(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    TooLarge,
    Symlink,
    OtherFileSystem,
    SymlinkLoop,
    Special,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::TooLarge => "larger than max_file_size",
            SkipReason::Symlink => "symbolic link (follow_symlinks is off)",
            SkipReason::OtherFileSystem => "on another file system",
            SkipReason::SymlinkLoop => "symbolic link loop",
            SkipReason::Special => "not a regular file",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListMode {
    /// Walk everything; the job reconciles what it did not see as deleted.
    Full,
    /// Only what changed since the checkpoint, where the source can tell.
    Incremental,
}

/// How a listing ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListOutcome {
    /// The listing covers the whole source (deletes may be reconciled from it).
    pub complete: bool,
}

/// A source failure that stops this connector's job.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    #[error("source unavailable: {0}")]
    Unavailable(String),
    #[error("access denied: {0}")]
    Auth(String),
    #[error("{0}")]
    Other(String),
}

/// A failure that concerns one item only.
#[derive(Debug, thiserror::Error)]
pub enum ItemError {
    #[error("vanished before it could be read")]
    Vanished,
    /// The source says for certain that the item was deleted after it was listed (a
    /// 404 from an API that reports deletes): it is deleted, not failed.
    #[error("deleted at the source after it was listed")]
    Deleted,
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// The whole source became unreachable: the job stops rather than failing every
    /// remaining file.
    #[error("{0}")]
    SourceUnavailable(String),
    #[error("{0}")]
    Io(String),
}

impl ItemError {
    pub fn from_io(e: std::io::Error) -> ItemError {
        match e.kind() {
            std::io::ErrorKind::NotFound => ItemError::Vanished,
            std::io::ErrorKind::PermissionDenied => ItemError::PermissionDenied(e.to_string()),
            _ => ItemError::Io(e.to_string()),
        }
    }
}

/// An open file, read on a blocking thread.
pub trait SourceFile: Read + Send {
    /// The file's state now (through the open handle where possible), to detect a
    /// change during the read.
    fn fingerprint(&mut self) -> std::io::Result<Fingerprint>;
}

#[async_trait]
pub trait Connector: Send + Sync + 'static {
    fn id(&self) -> &str;
    /// Sends the listing into `tx` (through a [`Batch`]); stops early (Ok) when the
    /// receiver is gone.
    /// `checkpoint` is the last one the connector sent and the job committed (a delta
    /// link, a cursor); sources that walk everything each time ignore it.
    async fn list(
        &self,
        mode: ListMode,
        checkpoint: Option<String>,
        tx: ChangeTx,
    ) -> Result<ListOutcome, ConnectorError>;
    /// Starts connecting in the background for a job that follows at once (worker
    /// processes, log-ons), so that it overlaps the caller's own set-up. A failure
    /// here is left for the job to report.
    fn warm_up(&self) {}
    /// The entry's current state, `None` if it no longer exists.
    async fn stat(&self, source_id: &[u8]) -> Result<Option<Entry>, ItemError>;
    /// Opens an entry for reading.
    async fn open(&self, entry: &Entry) -> Result<Box<dyn SourceFile>, ItemError>;
    /// Checks that the source is reachable (for `tributary check --connect`); returns
    /// what it found, in a line.
    async fn check(&self) -> Result<String, ConnectorError>;
    /// The coarsest step of the source's modification times: a file modified within
    /// this long before its read is read again once it has passed (a same-size rewrite
    /// inside one step would not show in size and mtime).
    fn mtime_granularity(&self) -> std::time::Duration {
        std::time::Duration::from_millis(20)
    }

    /// Noteworthy events since the last call (a server that asked us to wait, …),
    /// for the job log.
    fn take_notes(&self) -> Vec<String> {
        Vec::new()
    }
}
