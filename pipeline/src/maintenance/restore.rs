//! Restore: the files under a prefix, as of a time, written from the store into a
//! folder, checked and durable.

use std::ffi::OsStr;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use futures::StreamExt;
use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;
use serde::Serialize;
use tributary_catalog::{Catalog, RestoreEntry};
use tributary_store::chunk::{ChunkLoc, MAX_SPAN, decode_blocking, open_blocking, read_range};
use tributary_store::pack::pack_key;
use tributary_store::retry::{RetryPolicy, with_retry};
use tributary_store::{ObjectStore, StoreError};

use super::destination::{Destination, safe_relative};

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
    let destination = Arc::new(Destination::open(dest)?);
    let mut done = futures::stream::iter(restore_groups(entries))
        .map(|group| {
            // its own task: the hashing and writing of files run on every core
            tokio::spawn(restore_group(store.clone(), group, destination.clone()))
        })
        .buffer_unordered(RESTORE_GROUPS_AT_ONCE)
        .flat_map(|r| {
            futures::stream::iter(match r {
                Ok(done) => done,
                Err(e) => vec![(None, Err(anyhow::anyhow!("restore task: {e}")))],
            })
        });
    while let Some((e, result)) = done.next().await {
        match (e, result) {
            (Some(e), Ok(())) => {
                report.files += 1;
                report.bytes += e.size;
            }
            (Some(e), Err(err)) => report
                .errors
                .push(format!("{}: {err:#}", String::from_utf8_lossy(&e.path))),
            (None, Err(err)) => report.errors.push(format!("{err:#}")),
            (None, Ok(())) => {}
        }
    }
    report.errors.sort();
    // durable once, at the end (a file at a time would cost a disk flush each)
    sync_filesystem(dest).await?;
    Ok(report)
}

/// Flushes the file system that holds `dir` to disk (`syncfs`).
async fn sync_filesystem(dir: &Path) -> anyhow::Result<()> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let f = std::fs::File::open(&dir).with_context(|| format!("open {}", dir.display()))?;
        rustix::fs::syncfs(&f).with_context(|| format!("sync the file system of {}", dir.display()))
    })
    .await?
}

/// Groups of files ([`restore_groups`]) a restore works on at the same time: enough
/// ranged reads in flight to hide the store's latency (measured on the bench corpus,
/// encrypted, SeaweedFS reading from disk: 4 groups 4.7–5.3 s, 8 groups 4.3–4.5 s, 16
/// groups 3.8–4.3 s, 32 no better; peak RSS 127 MiB at 16).
const RESTORE_GROUPS_AT_ONCE: usize = 16;

/// Where a file's data starts in the store: its first chunk's pack and offset (files
/// of chunks of their own, and empty ones, first).
fn restore_order(e: &RestoreEntry) -> (Option<[u8; 32]>, u64) {
    match e.chunks.first().and_then(|c| c.packed) {
        Some(p) => (Some(p.pack), p.offset),
        None => (None, 0),
    }
}

type Restored = (Option<RestoreEntry>, anyhow::Result<()>);

/// Restores a group of files ([`restore_groups`]). A group whose data lies in one pack
/// (one file or several) is read with one ranged read, then decoded,
/// checked and written in one blocking task (a hand-off per group, not per chunk);
/// any other file is streamed through [`read_range`].
async fn restore_group(
    store: Arc<dyn ObjectStore>,
    group: Vec<RestoreEntry>,
    dest: Arc<Destination>,
) -> Vec<Restored> {
    let Some((pack, offset, len)) = group_span(&group) else {
        let mut out = Vec::with_capacity(group.len());
        for e in group {
            let locs = e.chunks.iter().map(|c| c.loc()).collect();
            let data = read_range(store.clone(), locs, 0, e.size, 3);
            let r = write_streamed(&e, &dest, data).await;
            out.push((Some(e), r));
        }
        return out;
    };
    let key = pack_key(&pack);
    let fetched = with_retry(
        RetryPolicy::default(),
        |_, _| {},
        || store.get_range(&key, offset, len),
    )
    .await;
    let span = match fetched {
        Ok(span) => span,
        Err(err) => {
            let why = format!("fetch {key} at {offset}: {err}");
            return group
                .into_iter()
                .map(|e| (Some(e), Err(anyhow::anyhow!("{why}"))))
                .collect();
        }
    };
    let crypt = store.crypt().cloned();
    let work = tokio::task::spawn_blocking(move || {
        let mut out = Vec::with_capacity(group.len());
        for e in group {
            // one hash of the content where a digest is recorded (the file's), the
            // chunk ids' own where not; a damaged chunk is named either way
            let r = if e.digest.is_some() {
                let opened = span_pieces(&e, &span, offset, &key, |loc, raw| {
                    open_blocking(crypt.as_deref(), loc, raw)
                });
                write_checked(&e, &dest, opened).map_err(|err| {
                    // a chunk that failed its own checks is named already
                    if !err.is::<DigestMismatch>() {
                        return err;
                    }
                    match span_pieces(&e, &span, offset, &key, |loc, raw| {
                        decode_blocking(crypt.as_deref(), loc, raw)
                    })
                    .find_map(Result::err)
                    {
                        Some(damage) => anyhow::Error::new(damage).context(format!("{err:#}")),
                        None => err,
                    }
                })
            } else {
                let checked = span_pieces(&e, &span, offset, &key, |loc, raw| {
                    decode_blocking(crypt.as_deref(), loc, raw)
                });
                write_checked(&e, &dest, checked)
            };
            out.push((Some(e), r));
        }
        out
    });
    match work.await {
        Ok(out) => out,
        Err(e) => vec![(None, Err(anyhow::anyhow!("restore task: {e}")))],
    }
}

/// A file's chunks, decoded by `decode` from `span` (the bytes of pack `key` read from
/// `offset`), in order. Each file is taken from its own place in the span: one that
/// fails before reading its chunks (a planted link in its folder) must not shift the
/// next ones.
fn span_pieces<'a>(
    e: &'a RestoreEntry,
    span: &'a bytes::Bytes,
    offset: u64,
    key: &'a str,
    decode: impl Fn(&ChunkLoc, bytes::Bytes) -> Result<bytes::Bytes, StoreError> + 'a,
) -> impl Iterator<Item = Result<bytes::Bytes, StoreError>> + 'a {
    let mut at = extent(e).map_or(usize::MAX, |(_, start, _)| {
        usize::try_from(start.saturating_sub(offset)).unwrap_or(usize::MAX)
    });
    e.chunks.iter().map(move |c| {
        let loc = c.loc();
        let end = at.saturating_add(loc.stored_size as usize);
        let Some(raw) = span.get(at..end).map(|_| span.slice(at..end)) else {
            return Err(StoreError::new(
                tributary_store::ErrorClass::Permanent,
                format!("{key}: the catalog places a chunk past the range read"),
            ));
        };
        at = end;
        decode(&loc, raw)
    })
}

/// The pack, first offset and end of a file's stored data, if it lies back to back in
/// one pack.
fn extent(e: &RestoreEntry) -> Option<([u8; 32], u64, u64)> {
    let first = e.chunks.first()?.packed?;
    let mut end = first.offset;
    for c in &e.chunks {
        let p = c.packed?;
        if p.pack != first.pack || p.offset != end {
            return None;
        }
        end += c.stored_size;
    }
    Some((first.pack, first.offset, end))
}

/// Groups files (in the order [`restore_order`] gives) whose data lies in one pack
/// within [`MAX_SPAN`] bytes of the group's first: each group is read with one ranged
/// read, as restic reads the blobs it needs from a pack in one request. What lies
/// between them (files not restored, older versions) is read and skipped; copies of the
/// same content share their bytes. A file whose data is not back to back in one pack is
/// a group of its own.
pub fn restore_groups(entries: Vec<RestoreEntry>) -> Vec<Vec<RestoreEntry>> {
    let mut groups: Vec<Vec<RestoreEntry>> = Vec::new();
    let mut open: Option<([u8; 32], u64, u64)> = None; // pack, start, end of the last group
    for e in entries {
        match (extent(&e), open) {
            (Some((pack, start, end)), Some((gp, gs, ge)))
                if pack == gp && start >= gs && end.max(ge) - gs <= MAX_SPAN =>
            {
                groups.last_mut().expect("an open group").push(e);
                open = Some((gp, gs, end.max(ge)));
            }
            (x, _) => {
                open = x;
                groups.push(vec![e]);
            }
        }
    }
    groups
}

/// The pack, first offset and length of the one read that holds a group's files, if
/// one read does ([`restore_groups`]).
fn group_span(group: &[RestoreEntry]) -> Option<([u8; 32], u64, u64)> {
    let (pack, mut start, mut end) = extent(group.first()?)?;
    for e in group {
        let (p, s, t) = extent(e)?;
        if p != pack {
            return None;
        }
        start = start.min(s);
        end = end.max(t);
    }
    (end - start <= MAX_SPAN).then_some((pack, start, end - start))
}

/// Reserves a restored file's blocks before it is written, as restic does: on ext4 a
/// buffered write into reserved blocks costs a tenth of the kernel time of one that
/// allocates as it goes (measured: 1 GiB in 1 MiB writes, 2.5 s of system time without,
/// 0.17 s with). Only an optimisation: a file system that cannot (tmpfs, some network
/// ones) is written as before.
fn preallocate(f: &std::fs::File, size: u64) {
    if size > 0 {
        let _ = rustix::fs::fallocate(f, rustix::fs::FallocateFlags::empty(), 0, size);
    }
}

/// Starts writing a restored file's pages to disk now, without waiting for them: the
/// disk works while the next files are decoded, and the flush at the end of the
/// restore (`syncfs`) waits only for what is left (measured on the bench corpus: 0.6 s
/// of that wait, a sixth of the restore). On Linux `POSIX_FADV_DONTNEED` starts the
/// writeback of dirty pages; only an optimisation, so its failure is ignored.
fn start_writeback(f: &std::fs::File) {
    let _ = rustix::fs::fadvise(f, 0, None, rustix::fs::Advice::DontNeed);
}

/// A restored file's content differs from its recorded digest: the one failure that
/// needs its chunks checked again to name the damaged one.
#[derive(Debug)]
struct DigestMismatch;

impl std::fmt::Display for DigestMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("restored content does not match the recorded digest")
    }
}

impl std::error::Error for DigestMismatch {}

/// A restored file being written, checked against the recorded size and digest and
/// given its mtime by [`Restoring::finish`]. Where its name is free it is written in
/// place, created new (`O_EXCL`: never an existing file, nor through a link planted in
/// its name), as restic and `cp` write; where something is there already, it is written
/// to a new temp file beside it and renamed over it at the end (so a link in its name is
/// replaced, not written through). Removed if it is dropped unfinished: a file that
/// fails its checks is never left behind. An interrupted process (SIGKILL, power loss)
/// can leave the files it was writing incomplete under their names; the next restore
/// replaces them.
struct Restoring<'a> {
    e: &'a RestoreEntry,
    file: Option<std::fs::File>,
    dir: Arc<OwnedFd>,
    name: &'a OsStr,
    /// the temp file's name, when the file's own name was taken
    tmp: Option<String>,
    finished: bool,
    shown: PathBuf,
    hasher: blake3::Hasher,
    written: u64,
}

impl<'a> Restoring<'a> {
    fn create(
        e: &'a RestoreEntry,
        rel: &'a Path,
        dest: &Destination,
    ) -> anyhow::Result<Restoring<'a>> {
        let name = rel.file_name().expect("a safe path ends in a name");
        let dir = dest.folder(rel.parent().unwrap_or(Path::new("")))?;
        let shown = dest.root.join(rel);
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC;
        let mode = Mode::from_raw_mode(0o666);
        let (fd, tmp) = match rustix::fs::openat(&dir, name, flags, mode) {
            Ok(fd) => (fd, None),
            Err(Errno::EXIST) => {
                let tmp = format!(".tributary-restore-{:016x}", rand::random::<u64>());
                let fd = rustix::fs::openat(&dir, tmp.as_str(), flags, mode)
                    .map_err(std::io::Error::from)
                    .with_context(|| format!("create a temp file beside {}", shown.display()))?;
                (fd, Some(tmp))
            }
            Err(e) => {
                return Err(std::io::Error::from(e))
                    .with_context(|| format!("create {}", shown.display()));
            }
        };
        let file = std::fs::File::from(fd);
        preallocate(&file, e.size);
        Ok(Restoring {
            e,
            file: Some(file),
            dir,
            name,
            tmp,
            finished: false,
            shown,
            hasher: blake3::Hasher::new(),
            written: 0,
        })
    }

    fn write(&mut self, data: &[u8]) -> anyhow::Result<()> {
        self.hasher.update(data);
        let f = self.file.as_mut().expect("an open file");
        f.write_all(data).context("write restored file")?;
        self.written += data.len() as u64;
        Ok(())
    }

    fn finish(mut self) -> anyhow::Result<()> {
        let e = self.e;
        if self.written != e.size {
            bail!(
                "restored {} bytes, the catalog records {}",
                self.written,
                e.size
            );
        }
        if let Some(d) = e.digest
            && *self.hasher.finalize().as_bytes() != d
        {
            return Err(DigestMismatch.into());
        }
        let f = self.file.take().expect("an open file");
        let mtime = std::time::UNIX_EPOCH + Duration::from_nanos(e.mtime_ns.max(0) as u64);
        f.set_modified(mtime).context("set mtime")?;
        start_writeback(&f);
        drop(f);
        if let Some(tmp) = &self.tmp {
            // rename replaces a link in the file's name, it does not write through it
            rustix::fs::renameat(&self.dir, tmp.as_str(), &self.dir, self.name)
                .map_err(std::io::Error::from)
                .with_context(|| format!("rename into {}", self.shown.display()))?;
        }
        self.finished = true;
        Ok(())
    }
}

impl Drop for Restoring<'_> {
    fn drop(&mut self) {
        if !self.finished {
            let written: &OsStr = match &self.tmp {
                Some(tmp) => OsStr::new(tmp),
                None => self.name,
            };
            let _ = rustix::fs::unlinkat(&self.dir, written, AtFlags::empty());
        }
    }
}

/// A restored file's path under the destination, or why it is not restored.
fn restore_path(e: &RestoreEntry) -> anyhow::Result<PathBuf> {
    safe_relative(&e.path).map_err(|why| {
        anyhow::anyhow!(
            "not restored: an unsafe path ({why}); the catalog or a manifest in the bucket names it"
        )
    })
}

/// Writes one restored file from its decoded pieces, on the calling thread.
fn write_checked(
    e: &RestoreEntry,
    dest: &Destination,
    pieces: impl IntoIterator<Item = Result<bytes::Bytes, tributary_store::StoreError>>,
) -> anyhow::Result<()> {
    let rel = restore_path(e)?;
    let mut f = Restoring::create(e, &rel, dest)?;
    for data in pieces {
        f.write(&data?)?;
    }
    f.finish()
}

/// Writes one restored file from a stream of its pieces (a file too large, or stored too
/// scattered, to be read at once).
async fn write_streamed(
    e: &RestoreEntry,
    dest: &Destination,
    data: impl futures::Stream<Item = Result<bytes::Bytes, tributary_store::StoreError>>,
) -> anyhow::Result<()> {
    let rel = restore_path(e)?;
    let mut f = Restoring::create(e, &rel, dest)?;
    let mut chunks = std::pin::pin!(data);
    while let Some(data) = chunks.next().await {
        f.write(&data?)?;
    }
    f.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, chunks: &[(u8, u64, u64)]) -> RestoreEntry {
        RestoreEntry {
            path: name.as_bytes().to_vec(),
            size: chunks.iter().map(|c| c.2).sum(),
            mtime_ns: 0,
            digest: None,
            chunks: chunks
                .iter()
                .map(|&(pack, offset, len)| tributary_catalog::ChunkRef {
                    hash: [0; 32],
                    size: len,
                    stored_size: len,
                    compression: tributary_catalog::Compression::None,
                    packed: (pack > 0).then_some(tributary_store::pack::Placed {
                        pack: [pack; 32],
                        offset,
                    }),
                })
                .collect(),
        }
    }

    #[test]
    fn files_of_one_pack_are_restored_from_one_read_across_gaps_and_copies() {
        let names = |groups: Vec<Vec<RestoreEntry>>| -> Vec<Vec<String>> {
            groups
                .into_iter()
                .map(|g| {
                    g.into_iter()
                        .map(|e| String::from_utf8(e.path).unwrap())
                        .collect()
                })
                .collect()
        };
        let entries = vec![
            entry("loose", &[(0, 0, 10)]),
            entry("empty", &[]),
            entry("a", &[(1, 0, 10), (1, 10, 5)]),
            entry("a-copy", &[(1, 0, 10), (1, 10, 5)]),
            entry("b", &[(1, 15, 20)]),
            entry("after-a-gap", &[(1, 40, 5)]),
            entry("c", &[(1, 45, 5)]),
            entry("torn", &[(1, 50, 5), (2, 0, 5)]),
            entry("d", &[(2, 5, 5)]),
            entry("big", &[(2, 10, MAX_SPAN)]),
            entry("far", &[(3, 0, 5)]),
            entry("too-far", &[(3, MAX_SPAN, 5)]),
        ];
        let groups = restore_groups(entries);
        assert_eq!(
            names(groups.clone()),
            [
                vec!["loose"],
                vec!["empty"],
                vec!["a", "a-copy", "b", "after-a-gap", "c"],
                vec!["torn"],
                vec!["d"],
                vec!["big"],
                vec!["far"],
                vec!["too-far"],
            ]
        );
        // one read from the group's first byte to its last
        let spans: Vec<_> = groups
            .iter()
            .map(|g| group_span(g).map(|(p, s, l)| (p[0], s, l)))
            .collect();
        assert_eq!(
            spans,
            [
                None,
                None,
                Some((1, 0, 50)),
                None,
                Some((2, 5, 5)),
                Some((2, 10, MAX_SPAN)),
                Some((3, 0, 5)),
                Some((3, MAX_SPAN, 5)),
            ]
        );
    }

    fn file_entry(path: &str, content: &[u8]) -> RestoreEntry {
        RestoreEntry {
            path: path.as_bytes().to_vec(),
            size: content.len() as u64,
            mtime_ns: 1_600_000_000_000_000_000,
            digest: Some(*blake3::hash(content).as_bytes()),
            chunks: Vec::new(),
        }
    }

    fn pieces(parts: &[&[u8]]) -> Vec<Result<bytes::Bytes, tributary_store::StoreError>> {
        parts
            .iter()
            .map(|p| Ok(bytes::Bytes::copy_from_slice(p)))
            .collect()
    }

    /// What a folder holds: its names, sorted.
    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_restored_file_is_written_checked_and_dated_or_not_at_all() {
        let dest = tempfile::tempdir().unwrap();
        let d = Destination::open(dest.path()).unwrap();
        let e = file_entry("/docs/a.txt", b"alpha bravo");
        write_checked(&e, &d, pieces(&[b"alpha ", b"bravo"])).unwrap();
        let out = dest.path().join("docs/a.txt");
        assert_eq!(std::fs::read(&out).unwrap(), b"alpha bravo");
        let mtime = std::fs::metadata(&out).unwrap().modified().unwrap();
        assert_eq!(
            mtime,
            std::time::UNIX_EPOCH + Duration::from_nanos(e.mtime_ns as u64)
        );
        // content that fails its digest, or falls short, leaves nothing behind
        let bad = file_entry("/docs/b.txt", b"charlie");
        let err = write_checked(&bad, &d, pieces(&[b"charlix"])).unwrap_err();
        assert!(
            err.to_string()
                .contains("does not match the recorded digest"),
            "{err}"
        );
        let err = write_checked(&bad, &d, pieces(&[b"char"])).unwrap_err();
        assert!(
            err.to_string()
                .contains("restored 4 bytes, the catalog records 7"),
            "{err}"
        );
        assert_eq!(names_in(&dest.path().join("docs")), ["a.txt"]);
        // over a file that is there: replaced when the new one checks out, kept as it
        // was when it does not
        let e2 = file_entry("/docs/a.txt", b"delta");
        let err = write_checked(&e2, &d, pieces(&[b"delts"])).unwrap_err();
        assert!(err.to_string().contains("digest"), "{err}");
        assert_eq!(std::fs::read(&out).unwrap(), b"alpha bravo");
        write_checked(&e2, &d, pieces(&[b"delta"])).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"delta");
        assert_eq!(names_in(&dest.path().join("docs")), ["a.txt"]);
        // a link in the file's own name is replaced by the file, never written through
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().join("target.txt");
        std::os::unix::fs::symlink(&target, dest.path().join("docs/l.txt")).unwrap();
        write_checked(&file_entry("/docs/l.txt", b"echo"), &d, pieces(&[b"echo"])).unwrap();
        assert!(!target.exists());
        let l = dest.path().join("docs/l.txt");
        assert!(
            !std::fs::symlink_metadata(&l)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read(&l).unwrap(), b"echo");
    }

    /// Files stored in one pack of a real (local) store, with another file's bytes
    /// between them, and a copy sharing the first's chunks: restored by one ranged read.
    /// The chunk ids are not hashed again where the file digest covers the content, and
    /// a damaged chunk is still named, its file not left.
    #[tokio::test]
    async fn a_damaged_chunk_is_named_and_its_file_not_restored() {
        use tributary_store::ObjectStore;
        let objects = tempfile::tempdir().unwrap();
        let store: Arc<dyn ObjectStore> =
            Arc::new(tributary_store::local::LocalStore::new(objects.path()).unwrap());
        // the pack's own header, then the chunks, one not restored (in the gap)
        let parts: [&[u8]; 4] = [b"first file, ", b"its end", b"not restored", b"second file"];
        let pack = [7u8; 32];
        let mut at = 16;
        let mut chunks = Vec::new();
        for p in parts {
            chunks.push(tributary_catalog::ChunkRef {
                hash: *blake3::hash(p).as_bytes(),
                size: p.len() as u64,
                stored_size: p.len() as u64,
                compression: tributary_catalog::Compression::None,
                packed: Some(tributary_store::pack::Placed { pack, offset: at }),
            });
            at += p.len() as u64;
        }
        let file =
            |path: &str, content: &[u8], chunks: &[tributary_catalog::ChunkRef]| RestoreEntry {
                path: path.as_bytes().to_vec(),
                size: content.len() as u64,
                mtime_ns: 0,
                digest: Some(*blake3::hash(content).as_bytes()),
                chunks: chunks.to_vec(),
            };
        let one = file("/d/one.txt", b"first file, its end", &chunks[..2]);
        let copy = file("/d/copy.txt", b"first file, its end", &chunks[..2]);
        let two = file("/d/two.txt", b"second file", &chunks[3..]);
        let mut bytes = vec![0u8; 16];
        for p in parts {
            bytes.extend_from_slice(p);
        }
        let put = |b: Vec<u8>| {
            let store = store.clone();
            async move {
                store
                    .put(
                        &pack_key(&pack),
                        b.into(),
                        tributary_store::PutMode::Overwrite,
                    )
                    .await
                    .unwrap()
            }
        };
        let restore = |dest: &Path| {
            let (store, dest) = (store.clone(), Destination::open(dest).unwrap());
            let group = restore_groups(vec![one.clone(), copy.clone(), two.clone()]);
            assert_eq!(group.len(), 1, "one read for all three");
            let group = group.into_iter().next().unwrap();
            async move { restore_group(store, group, Arc::new(dest)).await }
        };

        put(bytes.clone()).await;
        let dest = tempfile::tempdir().unwrap();
        for (e, r) in restore(dest.path()).await {
            assert!(r.is_ok(), "{:?}: {r:?}", e.map(|e| e.path));
        }
        for (name, content) in [
            ("one.txt", &b"first file, its end"[..]),
            ("copy.txt", b"first file, its end"),
            ("two.txt", b"second file"),
        ] {
            assert_eq!(
                std::fs::read(dest.path().join("d").join(name)).unwrap(),
                content
            );
        }

        // a flipped byte in the first file's second chunk
        let mut damaged = bytes.clone();
        damaged[16 + parts[0].len() + 2] ^= 0x20;
        put(damaged).await;
        let dest = tempfile::tempdir().unwrap();
        let out = restore(dest.path()).await;
        for damaged in [&out[0], &out[1]] {
            let err = format!("{:#}", damaged.1.as_ref().unwrap_err());
            assert!(err.contains("does not match the recorded digest"), "{err}");
            assert!(
                err.contains(&format!(
                    "chunk {} in {} at {} is corrupt",
                    hex::encode(chunks[1].hash),
                    pack_key(&pack),
                    16 + parts[0].len()
                )),
                "{err}"
            );
        }
        assert!(out[2].1.is_ok(), "{:?}", out[2].1);
        assert_eq!(names_in(&dest.path().join("d")), ["two.txt"]);
    }
}
