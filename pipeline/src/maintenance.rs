//! Operations over what the pipeline stored: restore, verify, gc, rebuild-catalog.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use futures::StreamExt;
use serde::Serialize;
use tributary_catalog::{Catalog, CommitBatch, Hash, NewVersion, now_ns};
use tributary_store::chunk::{chunk_key, get_chunk, read_range};
use tributary_store::{ErrorClass, ObjectStore};

use crate::manifest::{self, Manifest};

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
    let entries = catalog.restore_set(trimmed, at).await?;
    let mut report = RestoreReport::default();
    for e in entries {
        let segment_ok = trimmed.is_empty()
            || trimmed == b"/"
            || e.path.len() == trimmed.len()
            || e.path[trimmed.len()] == b'/';
        if !segment_ok {
            continue;
        }
        let result = match safe_relative(&e.path) {
            Ok(rel) => restore_file(store.clone(), &e, dest, &rel).await,
            Err(why) => Err(anyhow::anyhow!(
                "not restored: an unsafe path ({why}); the catalog or a manifest in the bucket names it"
            )),
        };
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
    Ok(report)
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
        let mut chunks = read_range(store.clone(), locs, 0, e.size, 8);
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

#[derive(Debug, Default, Serialize)]
pub struct VerifyReport {
    pub chunks_checked: u64,
    pub bytes_checked: u64,
    pub missing: Vec<String>,
    pub corrupt: Vec<String>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.missing.is_empty() && self.corrupt.is_empty()
    }
}

/// Reads back every chunk the catalog references and checks its hash.
pub async fn verify(
    catalog: &Catalog,
    store: Arc<dyn ObjectStore>,
) -> anyhow::Result<VerifyReport> {
    let mut report = VerifyReport::default();
    let mut after: Option<Hash> = None;
    loop {
        let page = catalog.chunks_page(after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.hash);
        let results: Vec<_> = futures::stream::iter(page)
            .map(|c| {
                let store = store.clone();
                async move {
                    let r = get_chunk(&*store, &c.hash, c.size, c.compression).await;
                    (c, r)
                }
            })
            .buffer_unordered(8)
            .collect()
            .await;
        for (c, r) in results {
            report.chunks_checked += 1;
            report.bytes_checked += c.size;
            if let Err(e) = r {
                if e.class == ErrorClass::NotFound {
                    report.missing.push(chunk_key(&c.hash));
                } else {
                    report.corrupt.push(e.to_string());
                }
            }
        }
    }
    Ok(report)
}

#[derive(Debug, Default, Serialize)]
pub struct GcReport {
    pub chunks_listed: u64,
    pub chunks_deleted: u64,
    pub bytes_deleted: u64,
    pub manifests_deleted: u64,
    pub kept_in_grace: u64,
}

/// Deletes chunks no committed version references, and manifests no committed version
/// names, when they are older than `grace` (fresh objects may belong to a running
/// ingest that has not committed yet). One gc at a time, through a catalog lease.
pub async fn gc(
    catalog: &Catalog,
    store: Arc<dyn ObjectStore>,
    grace: Duration,
    dry_run: bool,
) -> anyhow::Result<GcReport> {
    let holder = format!("gc-{}-{:08x}", std::process::id(), rand::random::<u32>());
    if !catalog
        .try_lock("gc", &holder, Duration::from_secs(3600))
        .await?
    {
        bail!("another gc is running (lease `gc` is held); try again later");
    }
    let result = gc_locked(catalog, &*store, grace, dry_run).await;
    catalog.unlock("gc", &holder).await?;
    result
}

async fn gc_locked(
    catalog: &Catalog,
    store: &dyn ObjectStore,
    grace: Duration,
    dry_run: bool,
) -> anyhow::Result<GcReport> {
    let mut report = GcReport::default();
    let cutoff = now_ns() - grace.as_nanos() as i64;
    // orphan manifests first: a manifest names chunks, so it must not outlive them
    let manifests = store.list(manifest::PREFIX).await?;
    for batch in manifests.chunks(500) {
        let keys: Vec<String> = batch.iter().map(|m| m.key.clone()).collect();
        let known = catalog.known_manifests(&keys).await?;
        for m in batch {
            if known.contains(&m.key) {
                continue;
            }
            if m.modified_ns > cutoff {
                report.kept_in_grace += 1;
                continue;
            }
            if !dry_run {
                store.delete(&m.key).await?;
            }
            report.manifests_deleted += 1;
        }
    }
    let objects = store.list("chunks/").await?;
    report.chunks_listed = objects.len() as u64;
    for batch in objects.chunks(500) {
        let parsed: Vec<(Hash, &tributary_store::ObjectMeta)> = batch
            .iter()
            .filter_map(|m| {
                let name = m.key.rsplit('/').next()?;
                let bytes = hex::decode(name).ok()?;
                Some((bytes.try_into().ok()?, m))
            })
            .collect();
        let hashes: Vec<Hash> = parsed.iter().map(|(h, _)| *h).collect();
        let states = catalog.chunk_states(&hashes).await?;
        for (h, m) in parsed {
            // the grace period runs from the upload (no row: an ingest may not have
            // committed yet) or from the moment the last reference was pruned
            let since = match states.get(&h) {
                Some((refs, _)) if *refs > 0 => continue,
                Some((_, orphaned)) => orphaned.unwrap_or(0).max(m.modified_ns),
                None => m.modified_ns,
            };
            if since > cutoff {
                report.kept_in_grace += 1;
                continue;
            }
            // re-check just before deleting: an ingest may have committed it meanwhile
            if catalog.chunk_referenced(&h).await? {
                continue;
            }
            if !dry_run {
                store.delete(&m.key).await?;
                catalog.forget_chunk(&h).await?;
            }
            report.chunks_deleted += 1;
            report.bytes_deleted += m.size;
        }
    }
    Ok(report)
}

#[derive(Debug, Default, Serialize)]
pub struct RebuildReport {
    pub manifests: u64,
    pub versions: u64,
    pub duplicates_skipped: u64,
    /// Versions left out because their chunks are gone (pruned by retention).
    pub missing_data_skipped: u64,
}

/// Rebuilds an empty catalog from the manifests in the object store.
///
/// Manifests are applied in commit order. A manifest whose catalog transaction never
/// happened (a crash between the two) is applied too: its data was uploaded first, so
/// it is valid; a version identical to the item's previous one is skipped, so a batch
/// redone after such a crash does not appear twice.
pub async fn rebuild_catalog(
    catalog: &Catalog,
    store: Arc<dyn ObjectStore>,
) -> anyhow::Result<RebuildReport> {
    if !catalog.is_empty().await? {
        bail!(
            "the catalog is not empty; rebuild-catalog only fills an empty catalog (move the old one away first)"
        );
    }
    let mut keys = store.list(manifest::PREFIX).await?;
    let mut loaded: Vec<(String, Manifest)> = Vec::new();
    for m in keys.drain(..) {
        let body = store.get(&m.key).await?;
        let parsed: Manifest = manifest::decode(&m.key, &body).map_err(anyhow::Error::msg)?;
        loaded.push((m.key, parsed));
    }
    loaded.sort_by(|a, b| (a.1.committed_at, &a.0).cmp(&(b.1.committed_at, &b.0)));
    // versions whose data is no longer in the store (pruned by retention and gc) are
    // left out rather than rebuilt as dangling
    let present: std::collections::HashSet<String> = store
        .list("chunks/")
        .await?
        .into_iter()
        .map(|m| m.key)
        .collect();
    let mut last: HashMap<(String, Vec<u8>), NewVersion> = HashMap::new();
    let mut report = RebuildReport::default();
    for (key, m) in loaded {
        report.manifests += 1;
        let mut fresh = Vec::new();
        for v in m.versions {
            let connector = v.connector.clone().unwrap_or_else(|| m.connector.clone());
            let id = (connector, v.source_id.clone());
            let same = last.get(&id).is_some_and(|p| {
                p.deleted == v.deleted
                    && p.digest == v.digest
                    && p.size == v.size
                    && p.mtime_ns == v.mtime_ns
                    && p.path == v.path
                    && p.held == v.held
                    && p.displaced == v.displaced
            });
            let dead_tombstone = v.deleted && last.get(&id).is_none_or(|p| p.deleted);
            if same || dead_tombstone {
                report.duplicates_skipped += 1;
                continue;
            }
            if !v
                .chunks
                .iter()
                .all(|c| present.contains(&chunk_key(&c.hash)))
            {
                report.missing_data_skipped += 1;
                continue;
            }
            last.insert(id, v.clone());
            fresh.push(v);
        }
        report.versions += fresh.len() as u64;
        catalog
            .commit_batch(&CommitBatch {
                connector: &m.connector,
                job_id: None,
                versions: &fresh,
                checkpoint: m.checkpoint.as_deref(),
                manifest: Some(&key),
                conflicts: &[],
            })
            .await?;
    }
    Ok(report)
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
