//! The SMB connector: a share (or a folder in it) on a Windows file server, a NAS or
//! Samba, read through libsmbclient (pavao).
//!
//! libsmbclient is blocking and pavao puts every call of a process behind one lock, so
//! all SMB work of a connector runs in its own worker processes (`tributary-smb-worker`,
//! see [`worker`]), at most `workers` of them, spoken to over their pipes
//! with [`proto`]. A worker that does not answer within the timeout, or that dies, is
//! killed and replaced: that costs the request in flight (a file error or a folder
//! error), never the daemon nor another connector.
//!
//! Listing walks the share in batches of folders, which a worker lists side by side on
//! its native SMB2/3 sessions ([`smb2`]; libsmbclient's `list_dirplus` where those
//! cannot), and streams entries; a folder that times out or is denied becomes a
//! subtree error, so its known files are not reconciled as deleted. Reading streams the
//! file in 1 MiB frames through a leased worker (natively where it can); the size and
//! mtime the listing saw and the state after the read give the pipeline what it needs
//! to detect torn reads.

pub mod proto;
mod smb2;
#[doc(hidden)]
pub use smb2::fuzz as smb2_fuzz;
pub mod worker;

use std::collections::VecDeque;
use std::io::{self, BufReader, BufWriter, Read};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, sync_channel};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tributary_connectors::filter::Filter;
use tributary_connectors::{
    Batch, Change, ChangeTx, Connector, ConnectorError, Entry, Fingerprint, ItemError, ListMode,
    ListOutcome, SkipReason, SourceFile,
};

use crate::proto::{DirEntry, ErrKind, Hello, Listing, PathReq, Stat, WireError};

/// What an SMB connector needs.
#[derive(Clone)]
pub struct SmbSettings {
    pub hello: Hello,
    /// Folder inside the share, without leading or trailing `/` (empty: the root).
    pub path: String,
    pub filter: Filter,
    pub max_file_size: Option<u64>,
    pub workers: usize,
    /// The worker program (`tributary-smb-worker`, installed next to `tributary`).
    pub worker_exe: PathBuf,
}

pub struct SmbConnector {
    id: String,
    root: String,
    filter: Filter,
    max_file_size: Option<u64>,
    pool: Arc<Pool>,
}

impl SmbConnector {
    pub fn new(id: String, s: SmbSettings) -> SmbConnector {
        let root = if s.path.is_empty() {
            String::new()
        } else {
            format!("/{}", s.path)
        };
        let timeout = Duration::from_millis(s.hello.timeout_ms);
        SmbConnector {
            id,
            root,
            filter: s.filter,
            max_file_size: s.max_file_size,
            pool: Arc::new(Pool {
                hello: s.hello,
                exe: s.worker_exe,
                max: s.workers.max(1),
                // the worker's own per-call timeout fires first; this one catches a
                // worker that is stuck for good
                timeout: timeout + Duration::from_secs(5),
                state: Mutex::new(PoolState::default()),
                freed: Condvar::new(),
            }),
        }
    }

    fn full(&self, rel: &[u8]) -> String {
        let rel = String::from_utf8_lossy(rel);
        if rel.is_empty() {
            if self.root.is_empty() {
                "/".into()
            } else {
                self.root.clone()
            }
        } else {
            format!("{}/{rel}", self.root)
        }
    }

    fn target(&self) -> String {
        let h = &self.pool.hello;
        format!("//{}:{}/{}{}", h.server, h.port, h.share, self.root)
    }

    /// Walks the share: threads take folders from one queue, a few at a time, and lease
    /// a worker process for each batch, so a share splits across the connector's
    /// processes, and a worker lists a batch's folders side by side on its native
    /// sessions (about [`LIST_CONNECTIONS`] per connector in all). There are twice as
    /// many threads as processes: a thread gives its worker back as soon as the
    /// listings have arrived, and while it turns them into changes, another thread
    /// has the worker list the next batch.
    fn walk(&self, tx: &ChangeTx) -> Result<ListOutcome, ConnectorError> {
        struct Queue {
            dirs: VecDeque<Vec<u8>>,
            busy: usize,
            stop: Option<Result<ListOutcome, ConnectorError>>,
        }
        let q = Mutex::new(Queue {
            dirs: VecDeque::from([Vec::new()]),
            busy: 0,
            stop: None,
        });
        let more = Condvar::new();
        let batch = (2 * LIST_CONNECTIONS).div_ceil(self.pool.max).max(1);
        std::thread::scope(|s| {
            // the other workers start and log on while the first lists the top folder,
            // once the first log-on has succeeded (an error here shows again where a
            // folder needs the worker)
            for _ in 1..self.pool.max {
                s.spawn(|| drop(self.pool.lease()));
            }
            for _ in 0..self.pool.max * 2 {
                s.spawn(|| {
                    loop {
                        let dirs: Vec<Vec<u8>> = {
                            let mut g = q.lock().unwrap();
                            loop {
                                if g.stop.is_some() {
                                    return;
                                }
                                if !g.dirs.is_empty() {
                                    let n = g.dirs.len().min(batch);
                                    g.busy += 1;
                                    break g.dirs.drain(..n).collect();
                                }
                                if g.busy == 0 {
                                    more.notify_all();
                                    return;
                                }
                                g = more.wait(g).unwrap();
                            }
                        };
                        let r = self.walk_dirs(&dirs, tx);
                        let mut g = q.lock().unwrap();
                        g.busy -= 1;
                        match r {
                            Ok(subdirs) => g.dirs.extend(subdirs),
                            Err(stop) => {
                                g.stop.get_or_insert(stop);
                            }
                        }
                        more.notify_all();
                    }
                });
            }
        });
        q.into_inner()
            .unwrap()
            .stop
            .unwrap_or(Ok(ListOutcome { complete: true }))
    }

    /// Lists a batch of folders on one worker, then [`Self::walk_dir`] each; returns
    /// their subfolders.
    fn walk_dirs(
        &self,
        dirs: &[Vec<u8>],
        tx: &ChangeTx,
    ) -> Result<Vec<Vec<u8>>, Result<ListOutcome, ConnectorError>> {
        let paths: Vec<String> = dirs.iter().map(|d| self.full(d)).collect();
        // the worker is given back before the listings are turned into changes
        let frames = match self.pool.run(|l| l.list_many(&paths)) {
            Ok((_, frames)) => frames,
            Err(e) => dirs.iter().map(|_| Err(e.clone())).collect(),
        };
        let mut subdirs = Vec::new();
        for (dir, frame) in dirs.iter().zip(frames) {
            subdirs.extend(self.walk_dir(dir, frame, tx)?);
        }
        Ok(subdirs)
    }

    /// Turns one folder's listing into changes: sends its files (one batch), returns
    /// its subfolders. `Err` stops the walk: a fatal error, or `Ok(incomplete)` when
    /// the receiver is gone.
    fn walk_dir(
        &self,
        dir: &[u8],
        listed: Result<Vec<u8>, WireError>,
        tx: &ChangeTx,
    ) -> Result<Vec<Vec<u8>>, Result<ListOutcome, ConnectorError>> {
        let gone = || Err(Ok(ListOutcome { complete: false }));
        let frame = match listed {
            Ok(f) => f,
            Err(e) if dir.is_empty() => {
                return Err(Err(match e.kind {
                    ErrKind::NotFound => ConnectorError::Other(format!(
                        "folder `{}` not found in share `{}`",
                        self.root, self.pool.hello.share
                    )),
                    ErrKind::Auth
                    | ErrKind::Unavailable
                    | ErrKind::TimedOut
                    | ErrKind::NoShare
                    | ErrKind::Protocol => fatal(e),
                    // the folder `path:` names, whatever is wrong with it
                    _ => ConnectorError::Other(format!("{}: {}", self.target(), e.message)),
                }));
            }
            Err(e) if matches!(e.kind, ErrKind::Auth | ErrKind::Unavailable) => {
                return Err(Err(fatal(e)));
            }
            Err(e) => {
                let change = Change::Error {
                    rel_path: dir.to_vec(),
                    subtree: true,
                    message: e.message,
                };
                return if tx.blocking_send(vec![change]).is_err() {
                    gone()
                } else {
                    Ok(Vec::new())
                };
            }
        };
        let mut entries = match Listing::parse(&frame) {
            Ok(e) => e,
            Err(e) => return Err(Err(ConnectorError::Other(format!("SMB worker: {e}")))),
        };
        entries.sort_unstable_by(|a, b| a.name.cmp(b.name));
        let mut subdirs = Vec::new();
        let mut batch = Batch::new(tx);
        for e in entries {
            let mut rel = Vec::with_capacity(dir.len() + 1 + e.name.len());
            rel.extend_from_slice(dir);
            if !rel.is_empty() {
                rel.push(b'/');
            }
            rel.extend_from_slice(e.name.as_bytes());
            if e.dir {
                if !self.filter.excluded(&rel) {
                    subdirs.push(rel);
                }
                continue;
            }
            if !self.filter.file_wanted(&rel) {
                continue;
            }
            let change = if self.max_file_size.is_some_and(|m| e.size > m) {
                Change::Skipped {
                    rel_path: rel,
                    reason: SkipReason::TooLarge,
                }
            } else {
                Change::Upsert(entry(rel, &e))
            };
            if !batch.push_blocking(change) {
                return gone();
            }
        }
        if !batch.flush_blocking() {
            return gone();
        }
        Ok(subdirs)
    }
}

fn entry(rel: Vec<u8>, e: &DirEntry) -> Entry {
    Entry {
        source_id: rel.clone(),
        rel_path: rel,
        size: e.size,
        mtime_ns: e.mtime_ns,
        inode: None,
        change_tag: None,
        principals: None,
    }
}

fn fingerprint(s: &Stat) -> Fingerprint {
    Fingerprint {
        size: s.size,
        mtime_ns: s.mtime_ns,
        inode: None,
        change_tag: None,
    }
}

/// Native listing connections per connector, about: a worker lists a batch of twice
/// this many folders (divided by the number of workers) side by side, a connection for
/// every two, so a server gets to use more than one core for a walk even with
/// `workers: 1`.
const LIST_CONNECTIONS: usize = 4;

/// A failure that stops the job: log-on, share, server, protocol.
fn fatal(e: WireError) -> ConnectorError {
    match e.kind {
        ErrKind::Auth => ConnectorError::Auth(e.message),
        ErrKind::Unavailable | ErrKind::TimedOut => ConnectorError::Unavailable(e.message),
        _ => ConnectorError::Other(e.message),
    }
}

fn item_error(e: WireError) -> ItemError {
    match e.kind {
        ErrKind::Auth | ErrKind::Unavailable | ErrKind::NoShare | ErrKind::Protocol => {
            ItemError::SourceUnavailable(e.message)
        }
        ErrKind::NotFound => ItemError::Vanished,
        ErrKind::AccessDenied => ItemError::PermissionDenied(e.message),
        _ => ItemError::Io(e.message),
    }
}

#[async_trait]
impl Connector for SmbConnector {
    fn id(&self) -> &str {
        &self.id
    }

    /// pavao passes modification times in whole seconds.
    fn mtime_granularity(&self) -> Duration {
        Duration::from_secs(1)
    }

    /// Starts the worker processes and logs them on while the caller sets up the job.
    fn warm_up(&self) {
        for _ in 0..self.pool.max {
            let pool = self.pool.clone();
            std::thread::spawn(move || drop(pool.lease()));
        }
    }

    async fn list(
        &self,
        _mode: ListMode,
        _checkpoint: Option<String>,
        tx: ChangeTx,
    ) -> Result<ListOutcome, ConnectorError> {
        let me = self.clone_handle();
        tokio::task::spawn_blocking(move || me.walk(&tx))
            .await
            .map_err(|e| ConnectorError::Other(format!("listing task: {e}")))?
    }

    async fn stat(&self, source_id: &[u8]) -> Result<Option<Entry>, ItemError> {
        let (pool, path) = (self.pool.clone(), self.full(source_id));
        let rel = source_id.to_vec();
        tokio::task::spawn_blocking(move || {
            let (_, stat) = pool.run(|l| l.stat(&path)).map_err(item_error)?;
            Ok(stat.filter(|s| !s.dir).map(|s| {
                entry(
                    rel,
                    &DirEntry {
                        name: "",
                        dir: false,
                        size: s.size,
                        mtime_ns: s.mtime_ns,
                    },
                )
            }))
        })
        .await
        .map_err(|e| ItemError::Io(format!("stat task: {e}")))?
    }

    async fn open(&self, e: &Entry) -> Result<Box<dyn SourceFile>, ItemError> {
        let (pool, path, size) = (self.pool.clone(), self.full(&e.rel_path), e.size);
        // the state the listing saw stands for the state at the open
        let header = Stat {
            dir: false,
            size: e.size,
            mtime_ns: e.mtime_ns,
        };
        tokio::task::spawn_blocking(move || {
            let (lease, ()) = pool
                .run(|l| l.start_read(&path, size))
                .map_err(item_error)?;
            Ok(Box::new(SmbFile {
                lease,
                header,
                end: None,
                buf: Vec::new(),
                pos: 0,
            }) as Box<dyn SourceFile>)
        })
        .await
        .map_err(|e| ItemError::Io(format!("open task: {e}")))?
    }

    async fn check(&self) -> Result<String, ConnectorError> {
        let (pool, root, target) = (self.pool.clone(), self.full(b""), self.target());
        let user = self.pool.hello.username.clone();
        tokio::task::spawn_blocking(move || {
            let mut lease = pool.lease().map_err(fatal)?;
            let frame = lease.list(&root).map_err(fatal)?;
            let entries = Listing::parse(&frame)
                .map_err(|e| ConnectorError::Other(format!("SMB worker: {e}")))?;
            let dirs = entries.iter().filter(|e| e.dir).count();
            let lister = pool.state.lock().unwrap().lister.clone();
            Ok(format!(
                "{target}: logged in as `{user}`; {} files and {dirs} folders at the top; listing and reading over {lister}",
                entries.len() - dirs
            ))
        })
        .await
        .map_err(|e| ConnectorError::Other(format!("check task: {e}")))?
    }
}

impl SmbConnector {
    fn clone_handle(&self) -> SmbConnector {
        SmbConnector {
            id: self.id.clone(),
            root: self.root.clone(),
            filter: self.filter.clone(),
            max_file_size: self.max_file_size,
            pool: self.pool.clone(),
        }
    }
}

/// A file streamed by a leased worker.
struct SmbFile {
    lease: Lease,
    header: Stat,
    end: Option<Stat>,
    buf: Vec<u8>,
    pos: usize,
}

impl Read for SmbFile {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            if self.end.is_some() {
                return Ok(0);
            }
            match self.lease.next_frame()? {
                (proto::DATA, data) => {
                    self.buf = data;
                    self.pos = 0;
                }
                (proto::END, body) => {
                    self.end = Some(serde_json::from_slice(&body).map_err(io::Error::other)?);
                    self.lease.idle = true;
                }
                (proto::ERR, body) => {
                    self.lease.idle = true;
                    let e: WireError = serde_json::from_slice(&body).map_err(io::Error::other)?;
                    let kind = match e.kind {
                        ErrKind::NotFound => io::ErrorKind::NotFound,
                        ErrKind::AccessDenied => io::ErrorKind::PermissionDenied,
                        _ => io::ErrorKind::Other,
                    };
                    return Err(io::Error::new(kind, e.message));
                }
                (t, _) => return Err(io::Error::other(format!("unexpected frame {t}"))),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl SourceFile for SmbFile {
    fn fingerprint(&mut self) -> io::Result<Fingerprint> {
        Ok(fingerprint(self.end.as_ref().unwrap_or(&self.header)))
    }
}

// ---- worker processes ----------------------------------------------------------------

struct Pool {
    hello: Hello,
    exe: PathBuf,
    max: usize,
    timeout: Duration,
    state: Mutex<PoolState>,
    freed: Condvar,
}

#[derive(Default)]
struct PoolState {
    idle: Vec<Worker>,
    live: usize,
    /// Until a worker has logged on, one log-on at a time: the others start their
    /// process and wait for its outcome, so a wrong password costs one failed log-on,
    /// not one per worker (account lockout).
    logged_on: bool,
    logging_on: bool,
    /// How the last worker to log on lists folders (its [`proto::Welcome`]).
    lister: String,
    /// The server's last refusal (log-on, share, protocol), answered without asking it
    /// again for [`REFUSAL_MEMORY`].
    refused: Option<(Instant, WireError)>,
}

/// How long a refused log-on is remembered (a job retried at once fails at once).
const REFUSAL_MEMORY: Duration = Duration::from_secs(30);

struct Worker {
    child: Child,
    stdin: BufWriter<ChildStdin>,
    frames: Receiver<io::Result<(u8, Vec<u8>)>>,
}

impl Worker {
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Pool {
    /// A worker for one request (or one file): an idle one, a new one while fewer than
    /// `max` live, or the next one freed.
    fn lease(self: &Arc<Self>) -> Result<Lease, WireError> {
        let mut st = self.state.lock().unwrap();
        loop {
            if let Some(mut w) = st.idle.pop() {
                if matches!(w.child.try_wait(), Ok(None)) {
                    let mut lease = self.leased(w);
                    lease.reused = true;
                    return Ok(lease);
                }
                // it exited while idle: replace it
                st.live -= 1;
                let _ = w.child.wait();
                continue;
            }
            if let Some((at, e)) = &st.refused {
                if at.elapsed() < REFUSAL_MEMORY {
                    return Err(e.clone());
                }
                st.refused = None;
            }
            if st.live < self.max {
                st.live += 1;
                let gated = !st.logged_on;
                let leader = gated && !st.logging_on;
                st.logging_on |= leader;
                drop(st);
                let started = self.start();
                if gated && !leader {
                    // the process starts meanwhile; the log-on waits for the leader's
                    let mut st = self.state.lock().unwrap();
                    while st.logging_on {
                        st = self.freed.wait(st).unwrap();
                    }
                    if let Some((_, e)) = &st.refused {
                        let e = e.clone();
                        st.live -= 1;
                        drop(st);
                        if let Ok(w) = started {
                            w.kill();
                        }
                        self.freed.notify_all();
                        return Err(e);
                    }
                }
                let r = started.and_then(|w| self.log_on(w));
                let mut st = self.state.lock().unwrap();
                if leader {
                    st.logging_on = false;
                }
                let r = match r {
                    Ok(w) => {
                        st.logged_on = true;
                        Ok(self.leased(w))
                    }
                    Err(e) => {
                        st.live -= 1;
                        if matches!(e.kind, ErrKind::Auth | ErrKind::NoShare | ErrKind::Protocol) {
                            st.refused = Some((Instant::now(), e.clone()));
                            st.logged_on = false;
                        }
                        Err(e)
                    }
                };
                drop(st);
                self.freed.notify_all();
                return r;
            }
            st = self.freed.wait(st).unwrap();
        }
    }

    fn leased(self: &Arc<Self>, w: Worker) -> Lease {
        Lease {
            pool: self.clone(),
            worker: Some(w),
            idle: true,
            reused: false,
        }
    }

    /// Runs `f` on a leased worker. When a reused worker finds the server unreachable,
    /// its connection (and that of every idle worker) may be to a server instance that
    /// restarted since: they are all retired and `f` runs once more on a fresh worker,
    /// which connects anew. Returns the lease with the result.
    fn run<T>(
        self: &Arc<Self>,
        mut f: impl FnMut(&mut Lease) -> Result<T, WireError>,
    ) -> Result<(Lease, T), WireError> {
        let mut lease = self.lease()?;
        match f(&mut lease) {
            Ok(v) => Ok((lease, v)),
            Err(e) if e.kind == ErrKind::Unavailable && lease.reused => {
                lease.idle = false; // killed on drop
                drop(lease);
                let stale: Vec<Worker> = {
                    let mut st = self.state.lock().unwrap();
                    let v: Vec<Worker> = st.idle.drain(..).collect();
                    st.live -= v.len();
                    // the server may be another one now: log on one at a time again
                    st.logged_on = false;
                    v
                };
                for w in stale {
                    w.kill();
                }
                self.freed.notify_all();
                let mut lease = self.lease()?;
                let v = f(&mut lease)?;
                Ok((lease, v))
            }
            Err(e) => Err(e),
        }
    }

    /// Starts a worker process (not yet logged on).
    fn start(&self) -> Result<Worker, WireError> {
        let mut child = Command::new(&self.exe)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| broken(&format!("start {}", self.exe.display()), &e))?;
        let stdout = child.stdout.take().expect("piped");
        widen_pipe(&stdout);
        let stdin = BufWriter::new(child.stdin.take().expect("piped"));
        let (tx, frames) = sync_channel(2);
        std::thread::Builder::new()
            .name("smb-worker-reader".into())
            .spawn(move || {
                let mut r = BufReader::with_capacity(1 << 20, stdout);
                loop {
                    let f = match proto::read_frame(&mut r) {
                        Ok(Some(f)) => Ok(f),
                        Ok(None) => Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the SMB worker process exited",
                        )),
                        Err(e) => Err(e),
                    };
                    let end = f.is_err();
                    if tx.send(f).is_err() || end {
                        break;
                    }
                }
            })
            .map_err(|e| broken("reader thread", &e))?;
        Ok(Worker {
            child,
            stdin,
            frames,
        })
    }

    /// Sends the connection settings; the worker logs on and says how that went.
    fn log_on(&self, mut w: Worker) -> Result<Worker, WireError> {
        proto::write_json(&mut w.stdin, proto::HELLO, &self.hello)
            .map_err(|e| broken("send settings", &e))?;
        match w.frames.recv_timeout(self.timeout) {
            Ok(Ok((proto::OK, body))) => {
                let welcome: proto::Welcome = serde_json::from_slice(&body).unwrap_or_default();
                tracing::debug!(
                    server = %self.hello.server,
                    share = %self.hello.share,
                    "SMB worker logged on; folders are listed by {}",
                    welcome.lister
                );
                self.state.lock().unwrap().lister = welcome.lister;
                Ok(w)
            }
            Ok(Ok((proto::ERR, body))) => {
                w.kill();
                Err(serde_json::from_slice(&body).unwrap_or_else(|e| broken("reply", &e)))
            }
            other => {
                w.kill();
                Err(match other {
                    Err(_) => WireError {
                        kind: ErrKind::Unavailable,
                        message: format!(
                            "SMB server {}:{} did not answer within {:?}",
                            self.hello.server, self.hello.port, self.timeout
                        ),
                    },
                    Ok(Err(e)) => broken("start-up", &e),
                    Ok(Ok((t, _))) => broken("start-up", &format!("unexpected frame {t}")),
                })
            }
        }
    }
}

/// A file streams in 1 MiB frames: with the default 64 KiB pipe each frame would take
/// 16 writes and 16 wake-ups of the reader; a pipe the size of a frame passes it in one
/// (Linux allows unprivileged pipes up to `/proc/sys/fs/pipe-max-size`, 1 MiB by
/// default; if that is lower, the pipe keeps its size).
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn widen_pipe(pipe: &std::process::ChildStdout) {
    use std::os::fd::AsRawFd;
    // SAFETY: F_SETPIPE_SZ on a pipe descriptor we own; it only changes the pipe's
    // capacity and fails harmlessly (EPERM, EBUSY) when it cannot.
    unsafe {
        libc::fcntl(
            pipe.as_raw_fd(),
            libc::F_SETPIPE_SZ,
            proto::FRAME_DATA as libc::c_int,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn widen_pipe(_: &std::process::ChildStdout) {}

fn bad_reply(e: serde_json::Error) -> WireError {
    WireError {
        kind: ErrKind::Io,
        message: format!("SMB worker reply: {e}"),
    }
}

fn broken(what: &str, e: &dyn std::fmt::Display) -> WireError {
    WireError {
        kind: ErrKind::Io,
        message: format!("SMB worker process: {what}: {e}"),
    }
}

/// One worker, checked out. Returned to the pool when dropped between requests; killed
/// (and later replaced) when it failed or is dropped in the middle of one.
struct Lease {
    pool: Arc<Pool>,
    worker: Option<Worker>,
    /// No request is in flight.
    idle: bool,
    /// The worker served earlier requests: its connection may be to a server instance
    /// that has gone (restarted) since.
    reused: bool,
}

impl Lease {
    fn send(&mut self, tag: u8, path: &str) -> Result<(), WireError> {
        self.send_req(
            tag,
            &PathReq {
                path: path.to_string(),
                size: None,
            },
        )
    }

    fn send_req(&mut self, tag: u8, req: &impl serde::Serialize) -> Result<(), WireError> {
        let w = self.worker.as_mut().expect("leased");
        self.idle = false;
        proto::write_json(&mut w.stdin, tag, req).map_err(|e| WireError {
            kind: ErrKind::Io,
            message: format!("SMB worker process: {e}"),
        })
    }

    fn next_frame(&mut self) -> io::Result<(u8, Vec<u8>)> {
        let w = self.worker.as_mut().expect("leased");
        match w.frames.recv_timeout(self.pool.timeout) {
            Ok(f) => f,
            Err(RecvTimeoutError::Timeout) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the SMB worker for {}:{} did not answer within {:?}; it was restarted",
                    self.pool.hello.server, self.pool.hello.port, self.pool.timeout
                ),
            )),
            Err(RecvTimeoutError::Disconnected) => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the SMB worker process exited",
            )),
        }
    }

    /// The next frame of an answer (a worker that does not answer in time: `TimedOut`).
    fn answer(&mut self) -> Result<(u8, Vec<u8>), WireError> {
        self.next_frame().map_err(|e| WireError {
            kind: if e.kind() == io::ErrorKind::TimedOut {
                ErrKind::TimedOut
            } else {
                ErrKind::Io
            },
            message: e.to_string(),
        })
    }

    /// One request, one answer: the OK frame's payload, or the error it carries.
    fn call_raw(&mut self, tag: u8, path: &str) -> Result<Vec<u8>, WireError> {
        self.send(tag, path)?;
        self.reply_raw()
    }

    /// The answer to the request just sent: the OK frame's payload, or the error.
    fn reply_raw(&mut self) -> Result<Vec<u8>, WireError> {
        let r = self.next_answer()?;
        self.idle = true;
        r
    }

    /// The next answer: the OK frame's payload or the error an ERR frame carries; `Err`
    /// when the worker failed or sent another frame (the lease then stays busy: the
    /// worker is killed on drop).
    fn next_answer(&mut self) -> Result<Result<Vec<u8>, WireError>, WireError> {
        let (t, body) = self.answer()?;
        match t {
            proto::OK => Ok(Ok(body)),
            proto::ERR => Ok(Err(serde_json::from_slice(&body).unwrap_or_else(bad_reply))),
            t => Err(WireError {
                kind: ErrKind::Io,
                message: format!("SMB worker: unexpected frame {t}"),
            }),
        }
    }

    /// One request, one JSON answer.
    fn call<T: serde::de::DeserializeOwned>(
        &mut self,
        tag: u8,
        path: &str,
    ) -> Result<T, WireError> {
        self.send(tag, path)?;
        self.reply()
    }

    /// The JSON answer to the request just sent.
    fn reply<T: serde::de::DeserializeOwned>(&mut self) -> Result<T, WireError> {
        let body = self.reply_raw()?;
        serde_json::from_slice(&body).map_err(bad_reply)
    }

    /// A folder's listing frame ([`Listing`]).
    fn list(&mut self, path: &str) -> Result<Vec<u8>, WireError> {
        self.call_raw(proto::LIST, path)
    }

    /// Several folders' listing frames, or each one's error. `Err` when the worker
    /// failed (it is then killed on drop).
    fn list_many(
        &mut self,
        paths: &[String],
    ) -> Result<Vec<Result<Vec<u8>, WireError>>, WireError> {
        self.send_req(
            proto::LIST_MANY,
            &proto::PathsReq {
                paths: paths.to_vec(),
            },
        )?;
        let out = paths
            .iter()
            .map(|_| self.next_answer())
            .collect::<Result<Vec<_>, _>>()?;
        self.idle = true;
        Ok(out)
    }

    fn stat(&mut self, path: &str) -> Result<Option<Stat>, WireError> {
        self.call(proto::STAT, path)
    }

    /// Starts streaming a file (of about `size` bytes, as listed).
    fn start_read(&mut self, path: &str, size: u64) -> Result<(), WireError> {
        self.send_req(
            proto::READ,
            &PathReq {
                path: path.to_string(),
                size: Some(size),
            },
        )?;
        let serde::de::IgnoredAny = self.reply()?;
        self.idle = false; // data frames follow
        Ok(())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(w) = self.worker.take() else { return };
        let mut st = self.pool.state.lock().unwrap();
        if self.idle {
            st.idle.push(w);
        } else {
            st.live -= 1;
            drop(st);
            w.kill();
        }
        self.pool.freed.notify_one();
    }
}

impl Drop for Pool {
    /// All idle workers are signalled first and reaped after, so they exit side by side
    /// (an exit unmaps libsmbclient's hundred-odd libraries, a few ms each).
    fn drop(&mut self) {
        let mut idle = std::mem::take(&mut self.state.get_mut().unwrap().idle);
        for w in &mut idle {
            let _ = w.child.kill();
        }
        for mut w in idle {
            let _ = w.child.wait();
        }
    }
}
