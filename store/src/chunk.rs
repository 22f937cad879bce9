//! The stored-chunk format, both halves: how a chunk's bytes become an object
//! (`encode` + [`put_chunk`]) and how an object becomes the chunk's bytes again
//! ([`get_chunk`]: key, retry, decompression, BLAKE3 check), and content made of
//! chunks read back whole or in part ([`read_range`], which restores, downloads and the
//! vectorizer all use).
//!
//! A chunk is stored under [`chunk_key`] of its BLAKE3 hash, either as it is or
//! zstd-compressed when that makes it smaller ([`Compression`]). Everything read back
//! is checked against the hash and plain size the catalog holds, so a tampered or
//! damaged object is an error, never wrong bytes.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};

use crate::crypt::Crypt;
use crate::pack::{Placed, pack_key};
use crate::retry::{RetryPolicy, with_retry};
use crate::{ErrorClass, ObjectStore, PutMode, StoreError};

/// A chunk's 32-byte BLAKE3 hash.
pub type ChunkHash = [u8; 32];

/// The object key of a chunk: `chunks/<first two hex digits>/<hex hash>`.
pub fn chunk_key(hash: &ChunkHash) -> String {
    let hex = hex::encode(hash);
    format!("chunks/{}/{hex}", &hex[..2])
}

/// The largest chunk the chunker makes (`pipeline.chunk_max_size` is at most this); a
/// size above it read from the catalog or a manifest is damage, not a chunk.
pub const MAX_CHUNK_SIZE: u64 = 16 << 20;

/// How a chunk's bytes are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// As they are.
    None,
    /// One zstd frame.
    Zstd,
}

impl Compression {
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Zstd => "zstd",
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Compression {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(Compression::None),
            "zstd" => Ok(Compression::Zstd),
            other => Err(format!("unknown chunk compression `{other}`")),
        }
    }
}

/// The bytes to store for chunk `id` and how they are stored: zstd at `level` when that
/// makes them smaller, else the chunk as it is (`level` `None`: never compressed); then,
/// in an encrypted store (`crypt`), sealed bound to the chunk's id. Runs on the blocking
/// pool.
pub async fn encode(
    level: Option<i32>,
    crypt: Option<Arc<Crypt>>,
    id: ChunkHash,
    data: Bytes,
) -> Result<(Bytes, Compression), String> {
    let small = data.len() < 64;
    let (data, compression) = match level {
        Some(level) if !small => {
            let crypt = crypt.clone();
            return tokio::task::spawn_blocking(move || {
                let (body, c) = encode_blocking(level, data);
                (seal_blob(crypt.as_deref(), &id, body), c)
            })
            .await
            .map_err(|e| format!("compression task: {e}"));
        }
        _ => (data, Compression::None),
    };
    match crypt {
        Some(c) if data.len() > 64 * 1024 => {
            tokio::task::spawn_blocking(move || (seal_blob(Some(&c), &id, data), compression))
                .await
                .map_err(|e| format!("encryption task: {e}"))
        }
        c => Ok((seal_blob(c.as_deref(), &id, data), compression)),
    }
}

fn seal_blob(crypt: Option<&Crypt>, id: &ChunkHash, body: Bytes) -> Bytes {
    match crypt {
        Some(c) => Bytes::from(c.seal(id, &body)),
        None => body,
    }
}

/// A chunk's id: its BLAKE3 hash, keyed in an encrypted store.
pub fn chunk_id(crypt: Option<&Crypt>, data: &[u8]) -> ChunkHash {
    match crypt {
        Some(c) => c.chunk_id(data),
        None => *blake3::hash(data).as_bytes(),
    }
}

fn encode_blocking(level: i32, data: Bytes) -> (Bytes, Compression) {
    if !looks_compressible(&data) {
        return (data, Compression::None);
    }
    match zstd::bulk::compress(&data, level) {
        Ok(c) if c.len() < data.len() => (Bytes::from(c), Compression::Zstd),
        _ => (data, Compression::None),
    }
}

/// A cheap probe before compressing a large chunk: zstd level 1 on a 32 KiB sample from
/// its middle. Media, archives and encrypted data (most bytes on a file share) save
/// less than 3% there, and then the chunk is stored as it is without a full pass.
fn looks_compressible(data: &[u8]) -> bool {
    const SAMPLE: usize = 32 * 1024;
    if data.len() < 4 * SAMPLE {
        return true;
    }
    let start = data.len() / 2 - SAMPLE / 2;
    let sample = &data[start..start + SAMPLE];
    match zstd::bulk::compress(sample, 1) {
        Ok(c) => c.len() * 100 < SAMPLE * 97,
        Err(_) => true,
    }
}

/// Stores an encoded chunk under its key, retrying transient failures under `policy`
/// (`on_retry` sees each failed attempt).
pub async fn put_chunk(
    store: &dyn ObjectStore,
    hash: &ChunkHash,
    body: Bytes,
    policy: RetryPolicy,
    on_retry: impl FnMut(u32, &StoreError),
) -> Result<(), StoreError> {
    let key = chunk_key(hash);
    with_retry(policy, on_retry, || {
        store.put(&key, body.clone(), PutMode::Overwrite)
    })
    .await
}

/// A chunk of some content, as reading it back needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkLoc {
    pub hash: ChunkHash,
    /// Plain size.
    pub size: u64,
    /// Stored size (its length in its pack).
    pub stored_size: u64,
    pub compression: Compression,
    /// In a pack (format v2), or `None`: an object of its own (format v1).
    pub packed: Option<Placed>,
}

impl ChunkLoc {
    /// The object that holds it, for messages and listings.
    pub fn object_key(&self) -> String {
        match &self.packed {
            Some(p) => pack_key(&p.pack),
            None => chunk_key(&self.hash),
        }
    }
}

/// Reads a chunk back: fetches its bytes (retrying transient failures) from its pack or
/// its own object, undoes its compression and checks the result against its hash and
/// plain size. A damaged, truncated or substituted object is a
/// [`ErrorClass::Permanent`] error.
pub async fn get_chunk(store: &dyn ObjectStore, loc: &ChunkLoc) -> Result<Bytes, StoreError> {
    decode(store, loc, get_stored(store, loc).await?).await
}

/// A chunk's stored bytes as they are (compressed or not), fetched with retries from
/// its pack or its own object; [`decode`] checks them.
pub async fn get_stored(store: &dyn ObjectStore, loc: &ChunkLoc) -> Result<Bytes, StoreError> {
    let key = loc.object_key();
    with_retry(
        RetryPolicy::default(),
        |_, _| {},
        || async {
            match &loc.packed {
                Some(p) => store.get_range(&key, p.offset, loc.stored_size).await,
                None => store.get(&key).await,
            }
        },
    )
    .await
    .map_err(|e| StoreError::new(e.class, format!("fetch chunk {}: {e}", describe(loc))))
}

/// A packed chunk's stored bytes out of its whole pack's `body`; a pack too short to
/// hold them is damage.
pub fn stored_in(body: &Bytes, loc: &ChunkLoc) -> Result<Bytes, StoreError> {
    let offset = loc.packed.map_or(0, |p| p.offset);
    match offset.checked_add(loc.stored_size) {
        Some(end) if end <= body.len() as u64 => Ok(body.slice(offset as usize..end as usize)),
        _ => Err(StoreError::new(
            ErrorClass::Permanent,
            format!(
                "chunk {}: the pack is truncated ({} bytes)",
                describe(loc),
                body.len()
            ),
        )),
    }
}

/// A chunk named for messages: its object, and its place in a pack.
fn describe(loc: &ChunkLoc) -> String {
    match &loc.packed {
        Some(p) => format!(
            "{} in {} at {}",
            hex::encode(loc.hash),
            pack_key(&p.pack),
            p.offset
        ),
        None => chunk_key(&loc.hash),
    }
}

/// A chunk's plain bytes from its stored bytes in `store` (opened first when the
/// store is encrypted), checked against its id and size. Large chunks are decoded on
/// the blocking pool.
pub async fn decode(
    store: &dyn ObjectStore,
    loc: &ChunkLoc,
    raw: Bytes,
) -> Result<Bytes, StoreError> {
    let crypt = store.crypt().cloned();
    let loc = *loc;
    if raw.len() < 64 * 1024 {
        return decode_blocking(crypt.as_deref(), &loc, raw);
    }
    tokio::task::spawn_blocking(move || decode_blocking(crypt.as_deref(), &loc, raw))
        .await
        .map_err(|e| StoreError::new(ErrorClass::Permanent, format!("decode task: {e}")))?
}

/// [`decode`] on the calling thread, for callers that already work off the runtime
/// (a restore decodes, checks and writes a group of files in one blocking task).
pub fn decode_blocking(
    crypt: Option<&Crypt>,
    loc: &ChunkLoc,
    raw: Bytes,
) -> Result<Bytes, StoreError> {
    let data = open_blocking(crypt, loc, raw)?;
    if chunk_id(crypt, &data) != loc.hash {
        return Err(StoreError::new(
            ErrorClass::Permanent,
            format!(
                "chunk {} is corrupt: content does not match its hash",
                describe(loc)
            ),
        ));
    }
    Ok(data)
}

/// [`decode_blocking`] but for the check of the chunk's content against its id: its
/// size is checked, and an encrypted chunk is authenticated, but its id is not hashed
/// again. Only for a reader that checks the content another way: a restore checks each
/// file against its recorded digest (one hash of the content instead of two) and, when
/// that check fails, decodes the file's chunks again with [`decode_blocking`] to name
/// the damaged one.
pub fn open_blocking(
    crypt: Option<&Crypt>,
    loc: &ChunkLoc,
    raw: Bytes,
) -> Result<Bytes, StoreError> {
    let corrupt = |why: String| StoreError::new(ErrorClass::Permanent, why);
    let size = loc.size;
    let raw = match crypt {
        Some(c) => Bytes::from(
            c.open(&loc.hash, &raw)
                .map_err(|_| crate::sealed::unauthentic(&format!("chunk {}", describe(loc))))?,
        ),
        None => raw,
    };
    let data = match loc.compression {
        Compression::None => raw,
        Compression::Zstd => {
            // a size beyond any chunk's is damage: never allocate for it
            if size > MAX_CHUNK_SIZE {
                return Err(corrupt(format!(
                    "chunk {}: size {size} is beyond any chunk's",
                    describe(loc)
                )));
            }
            Bytes::from(
                decompress(&raw, size as usize)
                    .map_err(|e| corrupt(format!("decompress chunk {}: {e}", describe(loc))))?,
            )
        }
    };
    if data.len() as u64 != size {
        return Err(corrupt(format!(
            "chunk {} is corrupt: {} bytes where its size is {size}",
            describe(loc),
            data.len()
        )));
    }
    Ok(data)
}

/// At most `capacity` bytes decompressed from `raw`, with this thread's decompression
/// context: made once per thread, not once per chunk (making one allocates its window
/// buffers; per chunk that cost 2 % of a restore's CPU on the bench corpus).
fn decompress(raw: &[u8], capacity: usize) -> std::io::Result<Vec<u8>> {
    thread_local! {
        static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    DECOMPRESSOR.with(|d| {
        let mut d = d.borrow_mut();
        let d = match &mut *d {
            Some(d) => d,
            none => none.insert(zstd::bulk::Decompressor::new()?),
        };
        d.decompress(raw, capacity)
    })
}

/// Which chunks of content made of chunks of `sizes` (in order) hold the bytes
/// `[start, end)`, each with the part of it to keep: `(index, from, to)`.
pub fn pieces(
    sizes: impl IntoIterator<Item = u64>,
    start: u64,
    end: u64,
) -> Vec<(usize, u64, u64)> {
    let mut out = Vec::new();
    if start >= end {
        return out;
    }
    let mut off = 0u64;
    for (i, size) in sizes.into_iter().enumerate() {
        let (cs, ce) = (off, off.saturating_add(size));
        off = ce;
        if ce <= start || cs >= end || cs == ce {
            continue;
        }
        out.push((i, start.saturating_sub(cs), end.min(ce) - cs));
    }
    out
}

/// The largest span of a pack one ranged read fetches for several chunks.
pub const MAX_SPAN: u64 = 4 << 20;

/// The most bytes between two wanted chunks of one pack that one read takes in and
/// skips rather than asking for the second apart: an S3 request costs its server about
/// what a megabyte of its bytes does (SeaweedFS on the bench corpus: 3.3 s of its CPU
/// for a restore in 1,180 reads, 1.5 s for restic's in a few dozen).
pub const MAX_GAP: u64 = 256 << 10;

/// One ranged read planned by [`plan_reads`]: `len` bytes of a pack from `offset`, or
/// (`pack` None) the loose chunk `item` of its window, whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedRead {
    pub pack: Option<crate::pack::PackId>,
    pub offset: u64,
    pub len: u64,
    pub item: usize,
}

/// A run of consecutive wanted chunks (`items`, indexes into `wanted`) and the reads
/// that fetch them: item `k` starts `from[k - items.start].1` bytes into read
/// `from[k - items.start].0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadWindow {
    pub items: std::ops::Range<usize>,
    pub reads: Vec<PlannedRead>,
    pub from: Vec<(usize, u64)>,
}

/// Plans the reads of `wanted` chunks (in order) window by window: consecutive chunks
/// of at most `window` stored bytes (one at least), and for each window the fewest
/// ranged reads that hold them: the window's chunks of one pack, in pack order, are
/// read together while the next starts within `max_gap` bytes of the read so far and
/// the read stays within `max_span` bytes (a chunk alone may be larger). A file whose
/// chunks other files share, or that a later version rewrote in part, lies in pieces
/// across packs: its pieces in one pack are still read at once.
pub fn plan_reads(
    chunks: &[ChunkLoc],
    wanted: &[usize],
    window: u64,
    max_span: u64,
    max_gap: u64,
) -> Vec<ReadWindow> {
    let mut out = Vec::new();
    let mut k = 0;
    while k < wanted.len() {
        let start = k;
        let mut bytes = 0u64;
        while k < wanted.len() && (k == start || bytes + chunks[wanted[k]].stored_size <= window) {
            bytes += chunks[wanted[k]].stored_size;
            k += 1;
        }
        let mut reads = Vec::new();
        let mut from = vec![(0usize, 0u64); k - start];
        let mut placed = Vec::new();
        for item in start..k {
            let c = &chunks[wanted[item]];
            match c.packed {
                Some(p) => placed.push((p.pack, p.offset, p.offset + c.stored_size, item)),
                None => {
                    from[item - start] = (reads.len(), 0);
                    reads.push(PlannedRead {
                        pack: None,
                        offset: 0,
                        len: c.stored_size,
                        item,
                    });
                }
            }
        }
        placed.sort_unstable();
        let mut open: Option<usize> = None; // the read being extended
        for (pack, offset, end, item) in placed {
            if let Some(r) = open.map(|r| &mut reads[r])
                && r.pack == Some(pack)
                && offset <= r.offset + r.len + max_gap
                && end.max(r.offset + r.len) - r.offset <= max_span
            {
                r.len = end.max(r.offset + r.len) - r.offset;
                from[item - start] = (open.expect("an open read"), offset - r.offset);
                continue;
            }
            open = Some(reads.len());
            from[item - start] = (reads.len(), 0);
            reads.push(PlannedRead {
                pack: Some(pack),
                offset,
                len: end - offset,
                item,
            });
        }
        out.push(ReadWindow {
            items: start..k,
            reads,
            from,
        });
    }
    out
}

/// The chunks `locs` of a window ([`plan_reads`]), each decoded and checked, in order:
/// its reads are made at the same time; a failed read fails the chunks it holds.
async fn fetch_window(
    store: &dyn ObjectStore,
    w: &ReadWindow,
    locs: &[ChunkLoc],
) -> Vec<Result<Bytes, StoreError>> {
    let fetched = futures::future::join_all(w.reads.iter().map(|r| async move {
        let Some(pack) = r.pack else {
            return get_stored(store, &locs[r.item - w.items.start]).await;
        };
        let key = pack_key(&pack);
        with_retry(
            RetryPolicy::default(),
            |_, _| {},
            || store.get_range(&key, r.offset, r.len),
        )
        .await
        .map_err(|e| {
            StoreError::new(
                e.class,
                format!("fetch chunks of {key} at {}: {e}", r.offset),
            )
        })
    }))
    .await;
    let mut out = Vec::with_capacity(locs.len());
    for (loc, &(r, at)) in locs.iter().zip(&w.from) {
        let raw = match &fetched[r] {
            Err(e) => Err(StoreError::new(e.class, e.to_string())),
            Ok(body) => match (at as usize).checked_add(loc.stored_size as usize) {
                Some(end) if end <= body.len() => Ok(body.slice(at as usize..end)),
                _ => Err(StoreError::new(
                    ErrorClass::Permanent,
                    format!(
                        "chunk {}: the pack is truncated (a read of {} bytes)",
                        describe(loc),
                        body.len()
                    ),
                )),
            },
        };
        out.push(match raw {
            Ok(raw) => decode(store, loc, raw).await,
            Err(e) => Err(e),
        });
    }
    out
}

/// The bytes `[start, end)` of content made of `chunks` (in order), as a stream of
/// pieces in order, with up to `ahead` windows of reads in flight ([`plan_reads`]: a
/// file's chunks in one pack are fetched by one ranged read). Every chunk is checked as
/// [`get_chunk`] checks it: a damaged one is an error item, never bytes.
pub fn read_range(
    store: Arc<dyn ObjectStore>,
    chunks: Vec<ChunkLoc>,
    start: u64,
    end: u64,
    ahead: usize,
) -> impl Stream<Item = Result<Bytes, StoreError>> + Send + 'static {
    let wanted = pieces(chunks.iter().map(|c| c.size), start, end);
    let idx: Vec<usize> = wanted.iter().map(|w| w.0).collect();
    let windows = plan_reads(&chunks, &idx, MAX_SPAN, MAX_SPAN, MAX_GAP);
    futures::stream::iter(windows)
        .map(move |w| {
            let store = store.clone();
            let locs: Vec<ChunkLoc> = w.items.clone().map(|k| chunks[idx[k]]).collect();
            let cuts: Vec<(u64, u64)> =
                wanted[w.items.clone()].iter().map(|w| (w.1, w.2)).collect();
            async move {
                fetch_window(&*store, &w, &locs)
                    .await
                    .into_iter()
                    .zip(cuts)
                    .map(|(d, (from, to))| d.map(|d| d.slice(from as usize..to as usize)))
                    .collect::<Vec<_>>()
            }
        })
        .buffered(ahead.max(1))
        .flat_map(futures::stream::iter)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::LocalStore;

    #[test]
    fn pieces_of_a_range() {
        let sizes = [4u64, 0, 3, 5]; // bytes 0-3, (none), 4-6, 7-11
        assert_eq!(
            pieces(sizes, 0, 12),
            [(0, 0, 4), (2, 0, 3), (3, 0, 5)],
            "all of it; an empty chunk holds nothing"
        );
        assert_eq!(pieces(sizes, 3, 8), [(0, 3, 4), (2, 0, 3), (3, 0, 1)]);
        assert_eq!(pieces(sizes, 4, 7), [(2, 0, 3)], "exactly one chunk");
        assert_eq!(pieces(sizes, 5, 6), [(2, 1, 2)], "inside one chunk");
        assert!(pieces(sizes, 12, 20).is_empty(), "past the end");
        assert!(pieces(sizes, 6, 6).is_empty(), "empty range");
        assert_eq!(
            pieces(sizes, 10, 100),
            [(3, 3, 5)],
            "end beyond the content"
        );
    }

    fn loose(hash: ChunkHash, size: u64, stored: u64, compression: Compression) -> ChunkLoc {
        ChunkLoc {
            hash,
            size,
            stored_size: stored,
            compression,
            packed: None,
        }
    }

    #[test]
    fn the_chunks_of_a_pack_are_read_together_across_small_gaps_and_other_packs() {
        let at = |pack: u8, offset: u64, stored: u64| ChunkLoc {
            packed: Some(Placed {
                pack: [pack; 32],
                offset,
            }),
            ..loose([0; 32], stored, stored, Compression::None)
        };
        let chunks = [
            at(1, 0, 10),
            at(1, 10, 10),
            at(2, 0, 10), // shared with another file, in another pack
            at(1, 20, 10),
            at(1, 35, 10),                           // a small gap before it
            loose([9; 32], 5, 5, Compression::None), // an object of its own
            at(1, 200, 10),                          // too far
            at(1, 5_000, 10),                        // too far
            at(2, 10, 10),
        ];
        let all: Vec<usize> = (0..chunks.len()).collect();
        let read = |pack: Option<u8>, offset, len, item| PlannedRead {
            pack: pack.map(|p| [p; 32]),
            offset,
            len,
            item,
        };
        let plan = plan_reads(&chunks, &all, 1_000, 100, 20);
        assert_eq!(plan.len(), 1, "one window");
        let w = &plan[0];
        assert_eq!(
            w.reads,
            [
                read(None, 0, 5, 5),
                read(Some(1), 0, 45, 0),
                read(Some(1), 200, 10, 6),
                read(Some(1), 5_000, 10, 7),
                read(Some(2), 0, 20, 2),
            ]
        );
        assert_eq!(
            w.from,
            [
                (1, 0),
                (1, 10),
                (4, 0),
                (1, 20),
                (1, 35),
                (0, 0),
                (2, 0),
                (3, 0),
                (4, 10)
            ]
        );
        // a read stops at its size bound; windows at theirs
        let plan = plan_reads(&chunks, &all, 1_000, 25, 20);
        assert_eq!(plan[0].reads[1], read(Some(1), 0, 20, 0));
        assert_eq!(plan[0].reads[2], read(Some(1), 20, 25, 3));
        let plan = plan_reads(&chunks, &all, 30, 100, 20);
        let items: Vec<_> = plan.iter().map(|w| w.items.clone()).collect();
        assert_eq!(items, [0..3, 3..6, 6..9]);
        // only the wanted chunks, and the same chunk twice is one place read
        let plan = plan_reads(&chunks, &[3, 3, 8], 1_000, 100, 20);
        assert_eq!(
            plan[0].reads,
            [read(Some(1), 20, 10, 0), read(Some(2), 10, 10, 2)]
        );
        assert_eq!(plan[0].from, [(0, 0), (0, 0), (1, 0)]);
        assert!(plan_reads(&chunks, &[], 1_000, 100, 20).is_empty());
    }

    /// `content` stored in chunks of `step` bytes: loose, or in packs of `pack` bytes.
    async fn store_content(
        store: &Arc<dyn ObjectStore>,
        content: &[u8],
        step: usize,
        pack: Option<u64>,
    ) -> Vec<ChunkLoc> {
        let writer = pack.map(|target| {
            crate::pack::PackWriter::new(
                store.clone(),
                target,
                2,
                RetryPolicy::default(),
                Arc::new(crate::pack::NoEvents),
            )
        });
        let mut chunks = Vec::new();
        for part in content.chunks(step) {
            let data = Bytes::copy_from_slice(part);
            let crypt = store.crypt().cloned();
            let id = chunk_id(crypt.as_deref(), part);
            let (body, compression) = encode(Some(3), crypt, id, data.clone()).await.unwrap();
            let mut loc = loose(id, part.len() as u64, body.len() as u64, compression);
            match &writer {
                Some(w) => {
                    loc.packed = Some(w.add(loc.hash, body, loc.size, compression).await.unwrap())
                }
                None => put_chunk(
                    &**store,
                    &hash(part),
                    body,
                    RetryPolicy::default(),
                    |_, _| {},
                )
                .await
                .unwrap(),
            }
            chunks.push(loc);
        }
        if let Some(w) = writer {
            w.finish().await.unwrap();
        }
        chunks
    }

    #[tokio::test]
    async fn ranges_are_read_across_chunk_and_pack_boundaries_and_damage_is_an_error() {
        for (pack, sealed) in [(None, false), (Some(1_000), false), (Some(1_000), true)] {
            let dir = tempfile::tempdir().unwrap();
            let mut store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(dir.path()).unwrap());
            if sealed {
                let crypt = Crypt::new(crate::crypt::DataKey::generate());
                store = Arc::new(crate::sealed::SealedStore::new(store, Arc::new(crypt)));
            }
            let content: Vec<u8> = (0..50_000u32).map(|i| (i * 7 % 251) as u8).collect();
            let chunks = store_content(&store, &content, 7_000, pack).await;
            if pack.is_some() {
                let packs: std::collections::HashSet<_> =
                    chunks.iter().map(|c| c.packed.unwrap().pack).collect();
                assert!(packs.len() > 1, "the content spans several packs");
            }
            for (start, end) in [
                (0, 50_000),
                (6_999, 7_001),
                (13_000, 40_123),
                (49_999, 50_000),
            ] {
                let got: Vec<Bytes> = read_range(store.clone(), chunks.clone(), start, end, 3)
                    .map(|r| r.unwrap())
                    .collect()
                    .await;
                assert_eq!(
                    got.concat(),
                    content[start as usize..end as usize],
                    "{pack:?} {start}..{end}"
                );
            }
            // a chunk whose stored bytes were replaced fails the read, never bytes
            let mut bad = chunks.clone();
            match pack {
                // its place in its pack now holds another chunk's bytes
                Some(_) => bad[2].packed = bad[3].packed,
                None => store
                    .put(
                        &chunk_key(&bad[2].hash),
                        Bytes::from_static(b"garbage"),
                        PutMode::Overwrite,
                    )
                    .await
                    .unwrap(),
            }
            let results: Vec<Result<Bytes, StoreError>> =
                read_range(store.clone(), bad, 0, 50_000, 2).collect().await;
            assert!(results[..2].iter().all(Result::is_ok), "{pack:?}");
            assert!(results.iter().any(Result::is_err), "{pack:?}");
            let e = results.into_iter().find_map(Result::err).unwrap();
            assert_eq!(e.class, ErrorClass::Permanent, "{e}");
        }
    }

    fn hash(data: &[u8]) -> ChunkHash {
        *blake3::hash(data).as_bytes()
    }

    #[test]
    fn a_damaged_frame_leaves_the_threads_decompressor_fit_for_the_next_chunk() {
        let text = b"the same words again and again, ".repeat(400);
        let good = zstd::bulk::compress(&text, 3).unwrap();
        assert_eq!(decompress(&good, text.len()).unwrap(), text);
        let mut bad = good.clone();
        let mid = bad.len() / 2;
        bad[mid] ^= 0xff;
        bad.truncate(bad.len() - 3);
        assert!(decompress(&bad, text.len()).is_err());
        // more than the size recorded is an error, never a larger buffer
        assert!(decompress(&good, text.len() - 1).is_err());
        assert_eq!(decompress(&good, text.len()).unwrap(), text);
    }

    #[test]
    fn compression_names_round_trip_and_unknown_ones_are_refused() {
        for c in [Compression::None, Compression::Zstd] {
            assert_eq!(c.as_str().parse::<Compression>(), Ok(c));
            assert_eq!(serde_json::to_string(&c).unwrap(), format!("\"{c}\""));
        }
        assert!("lz4".parse::<Compression>().unwrap_err().contains("lz4"));
    }

    #[test]
    fn the_probe_skips_random_data_and_keeps_text() {
        let random = tributary_testkit::tree::random_bytes(5, 1 << 20);
        assert!(!looks_compressible(&random));
        let text: Vec<u8> = b"quarterly budget forecast meeting minutes ".repeat(30_000);
        assert!(looks_compressible(&text));
        assert!(
            looks_compressible(&random[..1000]),
            "small chunks are simply compressed"
        );
    }

    #[tokio::test]
    async fn text_is_compressed_noise_and_tiny_chunks_are_not() {
        let text = Bytes::from("all work and no play ".repeat(10_000));
        let (body, c) = encode(Some(3), None, [0; 32], text.clone()).await.unwrap();
        assert_eq!(c, Compression::Zstd);
        assert!(body.len() < text.len() / 10);
        let noise = Bytes::from(tributary_testkit::tree::random_bytes(7, 300_000));
        let (body, c) = encode(Some(3), None, [0; 32], noise.clone()).await.unwrap();
        assert_eq!((c, &body), (Compression::None, &noise));
        let tiny = Bytes::from_static(b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
        assert_eq!(
            encode(Some(3), None, [0; 32], tiny.clone())
                .await
                .unwrap()
                .1,
            Compression::None
        );
        assert_eq!(
            encode(None, None, [0; 32], text).await.unwrap().1,
            Compression::None
        );
    }

    #[tokio::test]
    async fn chunks_read_back_byte_exact_and_tampering_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path()).unwrap();
        let data = Bytes::from("a chunk of text, ".repeat(500));
        let h = hash(&data);
        let (body, c) = encode(Some(3), None, h, data.clone()).await.unwrap();
        let stored = body.len() as u64;
        put_chunk(&store, &h, body, RetryPolicy::default(), |_, _| {})
            .await
            .unwrap();
        let len = data.len() as u64;
        assert_eq!(
            get_chunk(&store, &loose(h, len, stored, c)).await.unwrap(),
            data
        );
        // wrong size, wrong compression, substituted object: errors, never bytes
        for (size, comp) in [(len - 1, c), (len, Compression::None)] {
            let e = get_chunk(&store, &loose(h, size, stored, comp))
                .await
                .unwrap_err();
            assert_eq!(e.class, ErrorClass::Permanent, "{e}");
        }
        let other = encode(Some(3), None, h, Bytes::from("something else ".repeat(500)))
            .await
            .unwrap()
            .0;
        store
            .put(&chunk_key(&h), other, PutMode::Overwrite)
            .await
            .unwrap();
        let e = get_chunk(&store, &loose(h, len, stored, c))
            .await
            .unwrap_err();
        assert!(e.message.contains("corrupt"), "{e}");
        let missing = hash(b"never stored");
        let e = get_chunk(&store, &loose(missing, 3, 3, Compression::None))
            .await
            .unwrap_err();
        assert_eq!(e.class, ErrorClass::NotFound, "{e}");
    }
}
