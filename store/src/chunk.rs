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

/// The bytes to store for a chunk and how they are stored: zstd at `level` when that
/// makes them smaller, else the chunk as it is (`level` `None`: never compressed).
/// Runs the compression on the blocking pool.
pub async fn encode(level: Option<i32>, data: Bytes) -> Result<(Bytes, Compression), String> {
    let Some(level) = level else {
        return Ok((data, Compression::None));
    };
    if data.len() < 64 {
        return Ok((data, Compression::None));
    }
    tokio::task::spawn_blocking(move || encode_blocking(level, data))
        .await
        .map_err(|e| format!("compression task: {e}"))
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

/// Reads a chunk back: fetches its object (retrying transient failures), undoes its
/// compression and checks the result against `hash` and the plain `size`. A damaged,
/// truncated or substituted object is a [`ErrorClass::Permanent`] error.
pub async fn get_chunk(
    store: &dyn ObjectStore,
    hash: &ChunkHash,
    size: u64,
    compression: Compression,
) -> Result<Bytes, StoreError> {
    let key = chunk_key(hash);
    let raw = with_retry(RetryPolicy::default(), |_, _| {}, || store.get(&key))
        .await
        .map_err(|e| StoreError::new(e.class, format!("fetch chunk {key}: {e}")))?;
    let corrupt = |why: String| StoreError::new(ErrorClass::Permanent, why);
    let data = match compression {
        Compression::None => raw,
        Compression::Zstd => {
            // a size beyond any chunk's is damage: never allocate for it
            if size > MAX_CHUNK_SIZE {
                return Err(corrupt(format!(
                    "chunk {key}: size {size} is beyond any chunk's"
                )));
            }
            let size = size as usize;
            let plain = tokio::task::spawn_blocking(move || zstd::bulk::decompress(&raw, size))
                .await
                .map_err(|e| corrupt(format!("decompression task: {e}")))?
                .map_err(|e| corrupt(format!("decompress chunk {key}: {e}")))?;
            Bytes::from(plain)
        }
    };
    if data.len() as u64 != size || *blake3::hash(&data).as_bytes() != *hash {
        return Err(corrupt(format!(
            "chunk {key} is corrupt: content does not match its hash"
        )));
    }
    Ok(data)
}

/// A chunk of some content, as reading it back needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkLoc {
    pub hash: ChunkHash,
    /// Plain size.
    pub size: u64,
    pub compression: Compression,
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

/// The bytes `[start, end)` of content made of `chunks` (in order), as a stream of
/// pieces in order, fetching up to `ahead` chunks at a time. Every chunk is checked as
/// [`get_chunk`] checks it: a damaged one is an error item, never bytes.
pub fn read_range(
    store: Arc<dyn ObjectStore>,
    chunks: Vec<ChunkLoc>,
    start: u64,
    end: u64,
    ahead: usize,
) -> impl Stream<Item = Result<Bytes, StoreError>> + Send + 'static {
    let wanted = pieces(chunks.iter().map(|c| c.size), start, end);
    futures::stream::iter(wanted)
        .map(move |(i, from, to)| {
            let (store, c) = (store.clone(), chunks[i]);
            async move {
                let data = get_chunk(&*store, &c.hash, c.size, c.compression).await?;
                Ok(data.slice(from as usize..to as usize))
            }
        })
        .buffered(ahead.max(1))
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

    #[tokio::test]
    async fn ranges_are_read_across_chunk_boundaries_and_damage_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(dir.path()).unwrap());
        let content: Vec<u8> = (0..50_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut chunks = Vec::new();
        for part in content.chunks(7_000) {
            let data = Bytes::copy_from_slice(part);
            let (body, compression) = encode(Some(3), data.clone()).await.unwrap();
            put_chunk(
                &*store,
                &hash(part),
                body,
                RetryPolicy::default(),
                |_, _| {},
            )
            .await
            .unwrap();
            chunks.push(ChunkLoc {
                hash: hash(part),
                size: part.len() as u64,
                compression,
            });
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
                "{start}..{end}"
            );
        }
        // a chunk whose object was replaced by other bytes fails the read
        store
            .put(
                &chunk_key(&chunks[2].hash),
                Bytes::from_static(b"garbage"),
                PutMode::Overwrite,
            )
            .await
            .unwrap();
        let results: Vec<Result<Bytes, StoreError>> =
            read_range(store.clone(), chunks.clone(), 0, 50_000, 2)
                .collect()
                .await;
        assert!(results[..2].iter().all(Result::is_ok));
        assert!(
            results[2].is_err(),
            "the damaged chunk is an error, never bytes"
        );
    }

    fn hash(data: &[u8]) -> ChunkHash {
        *blake3::hash(data).as_bytes()
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
        let (body, c) = encode(Some(3), text.clone()).await.unwrap();
        assert_eq!(c, Compression::Zstd);
        assert!(body.len() < text.len() / 10);
        let noise = Bytes::from(tributary_testkit::tree::random_bytes(7, 300_000));
        let (body, c) = encode(Some(3), noise.clone()).await.unwrap();
        assert_eq!((c, &body), (Compression::None, &noise));
        let tiny = Bytes::from_static(b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
        assert_eq!(
            encode(Some(3), tiny.clone()).await.unwrap().1,
            Compression::None
        );
        assert_eq!(encode(None, text).await.unwrap().1, Compression::None);
    }

    #[tokio::test]
    async fn chunks_read_back_byte_exact_and_tampering_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path()).unwrap();
        let data = Bytes::from("a chunk of text, ".repeat(500));
        let h = hash(&data);
        let (body, c) = encode(Some(3), data.clone()).await.unwrap();
        put_chunk(&store, &h, body, RetryPolicy::default(), |_, _| {})
            .await
            .unwrap();
        let len = data.len() as u64;
        assert_eq!(get_chunk(&store, &h, len, c).await.unwrap(), data);
        // wrong size, wrong compression, substituted object: errors, never bytes
        for (size, comp) in [(len - 1, c), (len, Compression::None)] {
            let e = get_chunk(&store, &h, size, comp).await.unwrap_err();
            assert_eq!(e.class, ErrorClass::Permanent, "{e}");
        }
        let other = encode(Some(3), Bytes::from("something else ".repeat(500)))
            .await
            .unwrap()
            .0;
        store
            .put(&chunk_key(&h), other, PutMode::Overwrite)
            .await
            .unwrap();
        let e = get_chunk(&store, &h, len, c).await.unwrap_err();
        assert!(e.message.contains("corrupt"), "{e}");
        let missing = hash(b"never stored");
        let e = get_chunk(&store, &missing, 3, Compression::None)
            .await
            .unwrap_err();
        assert_eq!(e.class, ErrorClass::NotFound, "{e}");
    }
}
