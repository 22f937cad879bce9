//! A directory as object store: the embedded default.
//!
//! Writes are atomic: the bytes go to a temporary file in the destination folder, are
//! fsynced, then renamed (or hard-linked, for conditional puts) into place, and the folder
//! is fsynced. Temporary files start with `.tmp-` and are never listed.

use std::io::Write;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;

use crate::{ErrorClass, ObjectMeta, ObjectStore, PutMode, Result, StoreError, truncated};

pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    /// Creates the directory if needed.
    pub fn new(root: impl Into<PathBuf>) -> Result<LocalStore> {
        let root = root.into();
        std::fs::create_dir_all(&root).map_err(|e| io_err(&root, "create store directory", e))?;
        Ok(LocalStore { root })
    }

    fn path(&self, key: &str) -> Result<PathBuf> {
        if key.is_empty()
            || key.starts_with('/')
            || key
                .split('/')
                .any(|s| s.is_empty() || s == "." || s == ".." || s.starts_with(".tmp-"))
        {
            return Err(StoreError::new(
                ErrorClass::Permanent,
                format!("invalid object key `{key}`"),
            ));
        }
        Ok(self.root.join(key))
    }
}

fn io_err(path: &Path, what: &str, e: std::io::Error) -> StoreError {
    let class = match e.kind() {
        std::io::ErrorKind::NotFound => ErrorClass::NotFound,
        std::io::ErrorKind::AlreadyExists => ErrorClass::AlreadyExists,
        std::io::ErrorKind::PermissionDenied => ErrorClass::Auth,
        _ => ErrorClass::Permanent,
    };
    StoreError::new(class, format!("{what} {}: {e}", path.display()))
}

fn mtime_ns(md: &std::fs::Metadata) -> i64 {
    md.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

fn put_blocking(path: &Path, data: &[u8], mode: PutMode) -> Result<()> {
    let dir = path.parent().expect("key has a parent");
    std::fs::create_dir_all(dir).map_err(|e| io_err(dir, "create directory", e))?;
    if mode == PutMode::IfAbsent && path.exists() {
        return Err(StoreError::new(
            ErrorClass::AlreadyExists,
            format!("object {} already exists", path.display()),
        ));
    }
    let tmp = dir.join(format!(".tmp-{:016x}", rand::random::<u64>()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp).map_err(|e| io_err(&tmp, "create", e))?;
        f.write_all(data).map_err(|e| io_err(&tmp, "write", e))?;
        f.sync_all().map_err(|e| io_err(&tmp, "fsync", e))?;
        drop(f);
        match mode {
            PutMode::Overwrite => {
                std::fs::rename(&tmp, path).map_err(|e| io_err(path, "rename into", e))
            }
            PutMode::IfAbsent => {
                std::fs::hard_link(&tmp, path).map_err(|e| io_err(path, "link into", e))
            }
        }?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_err(dir, "fsync directory", e))
    })();
    let _ = std::fs::remove_file(&tmp);
    result
}

fn list_blocking(root: &Path, prefix: &str) -> Result<Vec<ObjectMeta>> {
    // Start at the deepest folder the prefix names completely.
    let start_rel = match prefix.rfind('/') {
        Some(i) => &prefix[..i],
        None => "",
    };
    let start = if start_rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(start_rel)
    };
    let mut out = Vec::new();
    let mut stack = vec![start];
    while let Some(dir) = stack.pop() {
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err(&dir, "list", e)),
        };
        for entry in rd {
            let entry = entry.map_err(|e| io_err(&dir, "list", e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with(".tmp-") {
                continue;
            }
            let path = entry.path();
            let md = match entry.metadata() {
                Ok(md) => md,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err(&path, "stat", e)),
            };
            let key = path
                .strip_prefix(root)
                .expect("under root")
                .to_string_lossy()
                .replace(std::path::MAIN_SEPARATOR, "/");
            if md.is_dir() {
                if prefix.starts_with(&format!("{key}/"))
                    || key.starts_with(prefix)
                    || prefix.starts_with(&key)
                {
                    stack.push(path);
                }
            } else if key.starts_with(prefix) {
                out.push(ObjectMeta {
                    key,
                    size: md.len(),
                    modified_ns: mtime_ns(&md),
                });
            }
        }
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::new(ErrorClass::Permanent, format!("store task failed: {e}")))?
}

#[async_trait]
impl ObjectStore for LocalStore {
    fn describe(&self) -> String {
        format!("local directory {}", self.root.display())
    }

    async fn check(&self) -> Result<()> {
        let root = self.root.clone();
        blocking(move || {
            let md =
                std::fs::metadata(&root).map_err(|e| io_err(&root, "stat store directory", e))?;
            if !md.is_dir() {
                return Err(StoreError::new(
                    ErrorClass::Permanent,
                    format!("{} is not a directory", root.display()),
                ));
            }
            let probe = root.join(format!(".tmp-probe-{:08x}", rand::random::<u32>()));
            std::fs::write(&probe, b"probe")
                .map_err(|e| io_err(&root, "write to store directory", e))?;
            let _ = std::fs::remove_file(&probe);
            Ok(())
        })
        .await
    }

    async fn put(&self, key: &str, data: Bytes, mode: PutMode) -> Result<()> {
        let path = self.path(key)?;
        blocking(move || put_blocking(&path, &data, mode)).await
    }

    async fn get(&self, key: &str) -> Result<Bytes> {
        let path = self.path(key)?;
        blocking(move || {
            std::fs::read(&path)
                .map(Bytes::from)
                .map_err(|e| io_err(&path, "read", e))
        })
        .await
    }

    async fn get_range(&self, key: &str, start: u64, len: u64) -> Result<Bytes> {
        let path = self.path(key)?;
        let key = key.to_string();
        blocking(move || {
            use std::io::{Read, Seek, SeekFrom};
            let mut f = std::fs::File::open(&path).map_err(|e| io_err(&path, "open", e))?;
            let size = f.metadata().map_err(|e| io_err(&path, "stat", e))?.len();
            if start.checked_add(len).is_none_or(|end| end > size) {
                return Err(truncated(&key, start, len, size));
            }
            f.seek(SeekFrom::Start(start))
                .map_err(|e| io_err(&path, "seek", e))?;
            let mut buf = vec![0u8; len as usize];
            f.read_exact(&mut buf)
                .map_err(|e| io_err(&path, "read", e))?;
            Ok(Bytes::from(buf))
        })
        .await
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>> {
        let path = self.path(key)?;
        let key = key.to_string();
        blocking(move || match std::fs::metadata(&path) {
            Ok(md) if md.is_file() => Ok(Some(ObjectMeta {
                key,
                size: md.len(),
                modified_ns: mtime_ns(&md),
            })),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&path, "stat", e)),
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let root = self.root.clone();
        let prefix = prefix.to_string();
        blocking(move || list_blocking(&root, &prefix)).await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key)?;
        blocking(move || match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(&path, "delete", e)),
        })
        .await
    }
}
