//! Live job counters, shared with whoever displays them (a progress bar, the API).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tributary_catalog::{LogLine, Stats, now_ns};

#[derive(Debug, Default)]
pub struct Progress {
    pub files_seen: AtomicU64,
    pub files_unchanged: AtomicU64,
    pub files_planned: AtomicU64,
    pub bytes_planned: AtomicU64,
    pub files_done: AtomicU64,
    pub files_failed: AtomicU64,
    pub files_skipped: AtomicU64,
    pub files_deleted: AtomicU64,
    pub bytes_read: AtomicU64,
    pub bytes_uploaded: AtomicU64,
    pub bytes_deduplicated: AtomicU64,
    pub chunks_new: AtomicU64,
    pub chunks_reused: AtomicU64,
    pub upload_retries: AtomicU64,
    pub torn_reads: AtomicU64,
    /// Conflicts this job met (opened, updated or decided by policy).
    pub conflicts: AtomicU64,
    /// Versions committed but kept aside by a conflict.
    pub files_held: AtomicU64,
    /// Files moved, renamed or changed in metadata only: committed without a read.
    pub files_relocated: AtomicU64,
    pub versions_committed: AtomicU64,
    pub listing_done: AtomicU64,
    /// Files planned for a read because the catalog does not know them.
    pub files_new: AtomicU64,
    /// Files planned for a read because they changed.
    pub files_changed: AtomicU64,
    /// Set when the mass-delete guard held the job's deletes.
    pub mass_delete_held: AtomicU64,
    /// The deletes it held.
    pub files_delete_held: AtomicU64,
    errors: Mutex<Vec<String>>,
    log: Mutex<(Vec<LogLine>, u64)>,
    /// What happened to single items, for the daemon's event stream: taken by
    /// [`Progress::take_notices`]; past [`MAX_NOTICES`] untaken, counted instead.
    notices: Mutex<(Vec<Notice>, u64)>,
}

/// Something that happened to one item in a job, worth an event of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A file failed (it is retried with backoff).
    ItemFailed { path: String, error: String },
    /// A file that had failed before was stored.
    ItemRecovered { path: String },
    /// A conflict that waits for an operator.
    ConflictOpened {
        kind: String,
        path: String,
        note: String,
    },
}

/// Notices kept between two takes; more are counted.
pub const MAX_NOTICES: usize = 10_000;

/// Kept per job: the first errors, like the head of a job's stderr.
const MAX_ERRORS_KEPT: usize = 200;
/// Log lines kept per job; later ones are counted, not kept.
const MAX_LOG_LINES: usize = 1000;

impl Progress {
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    /// An item error: kept in the error list and the log.
    pub fn error(&self, msg: String) {
        let msg = tributary_config::redact::redact(&msg).into_owned();
        self.log("error", msg.clone());
        let mut e = self.errors.lock().unwrap();
        if e.len() < MAX_ERRORS_KEPT {
            e.push(msg);
        }
    }

    /// A line of the job's log (`info`, `warn`, `error`).
    pub fn log(&self, level: &str, message: String) {
        let mut l = self.log.lock().unwrap();
        if l.0.len() < MAX_LOG_LINES {
            l.0.push(LogLine {
                at: now_ns(),
                level: level.to_string(),
                message: tributary_config::redact::redact(&message).into_owned(),
            });
        } else {
            l.1 += 1;
        }
    }

    /// The log so far, with a last line saying how many were dropped.
    pub fn log_lines(&self) -> Vec<LogLine> {
        let l = self.log.lock().unwrap();
        let mut out = l.0.clone();
        if l.1 > 0 {
            out.push(LogLine {
                at: now_ns(),
                level: "warn".into(),
                message: format!("{} more log lines were dropped", l.1),
            });
        }
        out
    }

    /// Hands a notice to whoever shows the job live.
    pub fn notice(&self, n: Notice) {
        let mut q = self.notices.lock().unwrap();
        if q.0.len() < MAX_NOTICES {
            q.0.push(n);
        } else {
            q.1 += 1;
        }
    }

    /// The notices since the last take, and how many more were dropped.
    pub fn take_notices(&self) -> (Vec<Notice>, u64) {
        std::mem::take(&mut *self.notices.lock().unwrap())
    }

    pub fn errors(&self) -> Vec<String> {
        self.errors.lock().unwrap().clone()
    }

    pub fn snapshot(&self) -> Stats {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            files_seen: g(&self.files_seen),
            files_unchanged: g(&self.files_unchanged),
            files_planned: g(&self.files_planned),
            bytes_planned: g(&self.bytes_planned),
            files_done: g(&self.files_done),
            files_failed: g(&self.files_failed),
            files_skipped: g(&self.files_skipped),
            files_deleted: g(&self.files_deleted),
            bytes_read: g(&self.bytes_read),
            bytes_uploaded: g(&self.bytes_uploaded),
            bytes_deduplicated: g(&self.bytes_deduplicated),
            chunks_new: g(&self.chunks_new),
            chunks_reused: g(&self.chunks_reused),
            upload_retries: g(&self.upload_retries),
            torn_reads: g(&self.torn_reads),
            conflicts: g(&self.conflicts),
            files_held: g(&self.files_held),
            files_relocated: g(&self.files_relocated),
            versions_committed: g(&self.versions_committed),
            listing_done: g(&self.listing_done) != 0,
            files_new: g(&self.files_new),
            files_changed: g(&self.files_changed),
            mass_delete_held: g(&self.mass_delete_held) != 0,
            files_delete_held: g(&self.files_delete_held),
        }
    }
}
