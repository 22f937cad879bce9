//! Operations over what the pipeline stored: restore (here), [`verify`], [`gc`],
//! [`rebuild_catalog`] and [`migrate_store`].

mod gc;
mod lease;
mod migrate;
mod rebuild;
mod verify;

pub use gc::{GcOptions, GcReport, gc};
pub use migrate::{MigrateReport, migrate_store};
pub use rebuild::{RebuildReport, rebuild_catalog};
pub use verify::{VerifyReport, verify};

use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use futures::StreamExt;
use serde::Serialize;
use tributary_catalog::Catalog;
use tributary_store::ObjectStore;
use tributary_store::chunk::read_range;

#[derive(Debug, Default, Serialize)]
pub struct RestoreReport {
    pub files: u64,
    pub bytes: u64,
    pub errors: Vec<String>,
}

/// Writes every file under `prefix` (as of `at`, Unix ns) into `dest`, at
/// `dest/<path without the leading />`, byte-identical and with its mtime.
/// A prefix matches whole path segments: `/a` covers `/a` and `/a/…`, not `/ab`.
pub async fn restore(
    catalog: &Catalog,
    store: Arc<dyn ObjectStore>,
    prefix: &[u8],
    dest: &Path,
    at: Option<i64>,
) -> anyhow::Result<RestoreReport> {
    let trimmed: &[u8] = if prefix.len() > 1 && prefix.ends_with(b"/") {
        &prefix[..prefix.len() - 1]
    } else {
        prefix
    };
    let mut entries: Vec<_> = catalog
        .restore_set(trimmed, at)
        .await?
        .into_iter()
        .filter(|e| {
            trimmed.is_empty()
                || trimmed == b"/"
                || e.path.len() == trimmed.len()
                || e.path[trimmed.len()] == b'/'
        })
        .collect();
    // in the order their data lies in the store, a few files at a time: the reads of
    // files stored together go to the same pack, one after the other
    entries.sort_by_key(restore_order);
    let mut report = RestoreReport::default();
    let mut done = futures::stream::iter(entries)
        .map(|e| {
            let store = store.clone();
            async move {
                let result = match safe_relative(&e.path) {
                    Ok(rel) => restore_file(store, &e, dest, &rel).await,
                    Err(why) => Err(anyhow::anyhow!(
                        "not restored: an unsafe path ({why}); the catalog or a manifest in the bucket names it"
                    )),
                };
                (e, result)
            }
        })
        .buffer_unordered(RESTORE_FILES_AT_ONCE);
    while let Some((e, result)) = done.next().await {
        match result {
            Ok(()) => {
                report.files += 1;
                report.bytes += e.size;
            }
            Err(err) => report
                .errors
                .push(format!("{}: {err:#}", String::from_utf8_lossy(&e.path))),
        }
    }
    report.errors.sort();
    Ok(report)
}

/// Files a restore writes at the same time.
const RESTORE_FILES_AT_ONCE: usize = 8;

/// Where a file's data starts in the store: its first chunk's pack and offset (files
/// of chunks of their own, and empty ones, first).
fn restore_order(e: &tributary_catalog::RestoreEntry) -> (Option<[u8; 32]>, u64) {
    match e.chunks.first().and_then(|c| c.packed) {
        Some(p) => (Some(p.pack), p.offset),
        None => (None, 0),
    }
}

/// A catalog path (`/a/b/c`) as a path relative to a restore's destination, or why it
/// cannot be one: paths come from the catalog or from manifests in the bucket, which a
/// restore must not trust to stay inside the destination. Every component must be a
/// plain name: not empty (`//x`, `a//b`, a trailing `/`), not `.` or `..`, no NUL.
pub fn safe_relative(path: &[u8]) -> Result<PathBuf, String> {
    let rel = path.strip_prefix(b"/").unwrap_or(path);
    if rel.is_empty() {
        return Err("an empty path".into());
    }
    let mut out = PathBuf::new();
    for c in rel.split(|b| *b == b'/') {
        match c {
            b"" => return Err("an empty path component".into()),
            b"." | b".." => {
                return Err(format!("a `{}` component", String::from_utf8_lossy(c)));
            }
            c if c.contains(&0) => return Err("a NUL byte".into()),
            c => out.push(std::ffi::OsStr::from_bytes(c)),
        }
    }
    Ok(out)
}

/// Creates the folders of `rel` under `dest` one by one, refusing to pass through a
/// symbolic link (one planted inside the destination must not lead a restore out of it);
/// returns the folder the file goes in.
fn safe_parent(dest: &Path, rel: &Path) -> anyhow::Result<PathBuf> {
    // the destination itself is the operator's to name, link or not
    std::fs::create_dir_all(dest).with_context(|| format!("create {}", dest.display()))?;
    let mut dir = dest.to_path_buf();
    let mut parts: Vec<_> = rel.components().collect();
    parts.pop();
    for p in parts {
        dir.push(p);
        match std::fs::symlink_metadata(&dir) {
            Ok(md) if md.file_type().is_symlink() => {
                bail!("{} is a symbolic link; not followed", dir.display())
            }
            Ok(md) if md.is_dir() => {}
            Ok(_) => bail!("{} is a file, not a folder", dir.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match std::fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    if !std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir()) {
                        bail!("{} appeared as something else than a folder", dir.display());
                    }
                }
                Err(e) => return Err(e).with_context(|| format!("create {}", dir.display())),
            },
            Err(e) => return Err(e).with_context(|| format!("inspect {}", dir.display())),
        }
    }
    Ok(dir)
}

async fn restore_file(
    store: Arc<dyn ObjectStore>,
    e: &tributary_catalog::RestoreEntry,
    dest: &Path,
    rel: &Path,
) -> anyhow::Result<()> {
    let dir = safe_parent(dest, rel)?;
    let out = dest.join(rel);
    let tmp: PathBuf = dir.join(format!(".tributary-restore-{:016x}", rand::random::<u64>()));
    let result = async {
        // a new file, never one that is there (or a link planted in its name)
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .with_context(|| format!("create {}", tmp.display()))?;
        let mut hasher = blake3::Hasher::new();
        let locs = e.chunks.iter().map(|c| c.loc()).collect();
        let mut chunks = read_range(store.clone(), locs, 0, e.size, 3);
        while let Some(data) = chunks.next().await {
            let data = data?;
            hasher.update(&data);
            f.write_all(&data).context("write restored file")?;
        }
        if let Some(d) = e.digest
            && *hasher.finalize().as_bytes() != d
        {
            bail!("restored content does not match the recorded digest");
        }
        f.sync_all().context("fsync restored file")?;
        let mtime = std::time::UNIX_EPOCH + Duration::from_nanos(e.mtime_ns.max(0) as u64);
        f.set_modified(mtime).context("set mtime")?;
        drop(f);
        // rename replaces a link in the file's name, it does not write through it
        std::fs::rename(&tmp, &out).with_context(|| format!("rename into {}", out.display()))?;
        Ok(())
    }
    .await;
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_make_a_restore_path() {
        let ok = |p: &str| safe_relative(p.as_bytes()).unwrap();
        assert_eq!(ok("/docs/a/b.txt"), PathBuf::from("docs/a/b.txt"));
        assert_eq!(ok("docs/..x/.y"), PathBuf::from("docs/..x/.y"));
        assert_eq!(ok("/a\\b"), PathBuf::from("a\\b"));
        let bad = |p: &[u8]| safe_relative(p).unwrap_err();
        assert!(bad(b"/docs/../../etc/passwd").contains("`..`"));
        assert!(bad(b"//etc/x").contains("empty path component"));
        assert!(bad(b"/docs//x").contains("empty path component"));
        assert!(bad(b"/docs/x/").contains("empty path component"));
        assert!(bad(b"/docs/./x").contains("`.`"));
        assert!(bad(b"/").contains("empty path"));
        assert!(bad(b"").contains("empty path"));
        assert!(bad(b"/a\0b").contains("NUL"));
        // whatever passes stays below the destination
        for p in ["/x", "/a/b/c", "/...", "/a b/c"] {
            let rel = ok(p);
            assert!(rel.is_relative());
            assert!(
                rel.components()
                    .all(|c| matches!(c, std::path::Component::Normal(_)))
            );
        }
    }

    #[test]
    fn folders_are_made_without_passing_through_a_link() {
        let dest = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dest.path().join("docs")).unwrap();
        let e = safe_parent(dest.path(), Path::new("docs/sub/f.txt")).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert!(std::fs::read_dir(outside.path()).unwrap().next().is_none());
        let d = safe_parent(dest.path(), Path::new("new/sub/f.txt")).unwrap();
        assert_eq!(d, dest.path().join("new/sub"));
        assert!(d.is_dir());
    }
}
