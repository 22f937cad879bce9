//! The local-folder connector.
//!
//! The walk runs on a blocking thread and streams entries into the bounded channel (a
//! huge tree never sits in memory as one list). Symbolic links are not followed unless
//! asked; when they are, a folder already on the current path is a loop and is skipped.
//! A folder that cannot be read is reported as a subtree error (its known children are
//! kept); files that vanish mid-walk are simply not listed. Names are raw bytes.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use crate::filter::Filter;
use crate::prefetch::Prefetch;
use crate::{
    Batch, Change, ChangeTx, Connector, ConnectorError, Entry, Fingerprint, ItemError, ListMode,
    ListOutcome, SkipReason, SourceFile,
};

#[derive(Debug, Clone)]
pub struct LocalSettings {
    pub root: PathBuf,
    pub filter: Filter,
    pub max_file_size: Option<u64>,
    pub follow_symlinks: bool,
    pub one_file_system: bool,
}

pub struct LocalConnector {
    id: String,
    s: LocalSettings,
    /// The listing ahead that [`Connector::warm_up`] started, for the walk to take.
    warm: std::sync::Mutex<Option<Prefetch>>,
}

impl LocalConnector {
    pub fn new(id: impl Into<String>, settings: LocalSettings) -> LocalConnector {
        LocalConnector {
            id: id.into(),
            s: settings,
            warm: Default::default(),
        }
    }

    fn full_path(&self, rel: &[u8]) -> PathBuf {
        self.s.root.join(std::ffi::OsStr::from_bytes(rel))
    }
}

/// Lists the tree ahead of a walk of it (`root`: the root's metadata).
fn prefetch(s: &LocalSettings, root: &Metadata) -> Prefetch {
    Prefetch::start(
        s.root.clone(),
        s.filter.clone(),
        s.one_file_system.then_some(root.dev()),
    )
}

fn mtime_ns(md: &Metadata) -> i64 {
    md.mtime() * 1_000_000_000 + md.mtime_nsec()
}

fn fingerprint(md: &Metadata) -> Fingerprint {
    Fingerprint {
        size: md.len(),
        mtime_ns: mtime_ns(md),
        inode: Some(md.ino() as i64),
        change_tag: None,
    }
}

fn entry(rel: Vec<u8>, md: &Metadata) -> Entry {
    Entry {
        source_id: rel.clone(),
        rel_path: rel,
        size: md.len(),
        mtime_ns: mtime_ns(md),
        inode: Some(md.ino() as i64),
        change_tag: None,
        principals: None,
    }
}

pub(crate) fn join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    if parent.is_empty() {
        name.to_vec()
    } else {
        let mut v = Vec::with_capacity(parent.len() + 1 + name.len());
        v.extend_from_slice(parent);
        v.push(b'/');
        v.extend_from_slice(name);
        v
    }
}

struct Walker<'a> {
    s: &'a LocalSettings,
    batch: RefCell<Batch<'a>>,
    root_dev: u64,
    /// Lists the tree ahead of the walk, so the disk's waits overlap.
    prefetch: Prefetch,
}

impl Walker<'_> {
    /// False when the receiver is gone.
    fn send(&self, c: Change) -> bool {
        self.batch.borrow_mut().push_blocking(c)
    }

    /// Depth-first walk, entries sorted by name so listings are deterministic.
    fn walk(&self, dir: &Path, rel: &[u8], ancestors: &mut HashSet<(u64, u64)>) -> bool {
        let rd = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !rel.is_empty() => return true,
            Err(e) => {
                return self.send(Change::Error {
                    rel_path: rel.to_vec(),
                    subtree: true,
                    message: format!("cannot list folder: {e}"),
                });
            }
        };
        let mut names: Vec<_> = Vec::new();
        for e in rd {
            match e {
                Ok(e) => names.push(e.file_name()),
                Err(e) => {
                    // The folder became unreadable mid-listing: protect all of it.
                    return self.send(Change::Error {
                        rel_path: rel.to_vec(),
                        subtree: true,
                        message: format!("cannot list folder: {e}"),
                    });
                }
            }
        }
        self.prefetch.walked(names.len());
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            let child_rel = join(rel, name.as_bytes());
            let path = dir.join(&name);
            let lmd = match std::fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    if !self.send(Change::Error {
                        rel_path: child_rel,
                        subtree: true,
                        message: format!("cannot stat: {e}"),
                    }) {
                        return false;
                    }
                    continue;
                }
            };
            let md = if lmd.file_type().is_symlink() {
                if !self.s.follow_symlinks {
                    if !self.send(Change::Skipped {
                        rel_path: child_rel,
                        reason: SkipReason::Symlink,
                    }) {
                        return false;
                    }
                    continue;
                }
                match std::fs::metadata(&path) {
                    Ok(m) => m,
                    // dangling link
                    Err(_) => {
                        if !self.send(Change::Skipped {
                            rel_path: child_rel,
                            reason: SkipReason::Symlink,
                        }) {
                            return false;
                        }
                        continue;
                    }
                }
            } else {
                lmd
            };
            if md.is_dir() {
                if self.s.filter.excluded(&child_rel) {
                    continue;
                }
                if self.s.one_file_system && md.dev() != self.root_dev {
                    if !self.send(Change::Skipped {
                        rel_path: child_rel,
                        reason: SkipReason::OtherFileSystem,
                    }) {
                        return false;
                    }
                    continue;
                }
                let key = (md.dev(), md.ino());
                if !ancestors.insert(key) {
                    if !self.send(Change::Skipped {
                        rel_path: child_rel,
                        reason: SkipReason::SymlinkLoop,
                    }) {
                        return false;
                    }
                    continue;
                }
                let ok = self.walk(&path, &child_rel, ancestors);
                ancestors.remove(&key);
                if !ok {
                    return false;
                }
            } else if md.is_file() {
                if !self.s.filter.file_wanted(&child_rel) {
                    continue;
                }
                let change = match self.s.max_file_size {
                    Some(max) if md.len() > max => Change::Skipped {
                        rel_path: child_rel,
                        reason: SkipReason::TooLarge,
                    },
                    _ => Change::Upsert(entry(child_rel, &md)),
                };
                if !self.send(change) {
                    return false;
                }
            } else if self.s.filter.file_wanted(&child_rel)
                && !self.send(Change::Skipped {
                    rel_path: child_rel,
                    reason: SkipReason::Special,
                })
            {
                return false;
            }
        }
        true
    }
}

struct LocalFile {
    file: File,
    path: PathBuf,
}

impl Read for LocalFile {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.file.read(buf)
    }
}

impl SourceFile for LocalFile {
    fn fingerprint(&mut self) -> std::io::Result<Fingerprint> {
        let by_handle = fingerprint(&self.file.metadata()?);
        // A file replaced by rename keeps its old handle; the path tells.
        let by_path = fingerprint(&std::fs::metadata(&self.path)?);
        if by_path != by_handle {
            return Ok(by_path);
        }
        Ok(by_handle)
    }
}

#[async_trait]
impl Connector for LocalConnector {
    fn id(&self) -> &str {
        &self.id
    }

    /// Starts listing the tree ahead of the walk while the caller opens the catalog
    /// and the store: with the tree out of the cache, the disk's waits overlap them.
    fn warm_up(&self) {
        if let Ok(md) = std::fs::metadata(&self.s.root)
            && md.is_dir()
        {
            *self.warm.lock().unwrap() = Some(prefetch(&self.s, &md));
        }
    }

    async fn list(
        &self,
        _mode: ListMode,
        _checkpoint: Option<String>,
        tx: ChangeTx,
    ) -> Result<ListOutcome, ConnectorError> {
        let s = self.s.clone();
        // the listing ahead that `warm_up` started, if it did (one walk takes it)
        let warm = self.warm.lock().unwrap().take();
        tokio::task::spawn_blocking(move || {
            let md = std::fs::metadata(&s.root).map_err(|e| {
                ConnectorError::Unavailable(format!("folder {}: {e}", s.root.display()))
            })?;
            if !md.is_dir() {
                return Err(ConnectorError::Unavailable(format!(
                    "{} is not a folder",
                    s.root.display()
                )));
            }
            let w = Walker {
                s: &s,
                batch: RefCell::new(Batch::new(&tx)),
                root_dev: md.dev(),
                prefetch: warm.unwrap_or_else(|| prefetch(&s, &md)),
            };
            let mut ancestors = HashSet::from([(md.dev(), md.ino())]);
            let complete =
                w.walk(&s.root, b"", &mut ancestors) && w.batch.borrow_mut().flush_blocking();
            Ok(ListOutcome { complete })
        })
        .await
        .map_err(|e| ConnectorError::Other(format!("walk task failed: {e}")))?
    }

    async fn stat(&self, source_id: &[u8]) -> Result<Option<Entry>, ItemError> {
        let path = self.full_path(source_id);
        let rel = source_id.to_vec();
        let follow = self.s.follow_symlinks;
        tokio::task::spawn_blocking(move || {
            let md = if follow {
                std::fs::metadata(&path)
            } else {
                std::fs::symlink_metadata(&path)
            };
            match md {
                Ok(md) if md.is_file() => Ok(Some(entry(rel, &md))),
                Ok(_) => Ok(None),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(ItemError::from_io(e)),
            }
        })
        .await
        .map_err(|e| ItemError::Io(e.to_string()))?
    }

    async fn open(&self, entry: &Entry) -> Result<Box<dyn SourceFile>, ItemError> {
        let path = self.full_path(&entry.rel_path);
        tokio::task::spawn_blocking(move || {
            let file = File::open(&path).map_err(ItemError::from_io)?;
            Ok(Box::new(LocalFile { file, path }) as Box<dyn SourceFile>)
        })
        .await
        .map_err(|e| ItemError::Io(e.to_string()))?
    }

    async fn check(&self) -> Result<String, ConnectorError> {
        let root = self.s.root.clone();
        tokio::task::spawn_blocking(move || {
            std::fs::read_dir(&root)
                .map(|d| {
                    format!(
                        "folder {}: {} entries at the top",
                        root.display(),
                        d.count()
                    )
                })
                .map_err(|e| ConnectorError::Unavailable(format!("folder {}: {e}", root.display())))
        })
        .await
        .map_err(|e| ConnectorError::Other(e.to_string()))?
    }
}
