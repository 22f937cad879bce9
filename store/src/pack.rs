//! Pack objects, the chunk container of store format v2: chunks ("blobs", as stored:
//! compressed or not) appended one after another into objects of a target size, each
//! object carrying its own index so that the bucket alone says where every chunk is.
//!
//! Layout of `packs/<2 hex>/<64 hex>` (the name is random: it says nothing of the
//! content):
//!
//! ```text
//! blob 0 | blob 1 | … | blob n-1 | index | index length (u32 LE) | flags (u32 LE) | "TRBPACK2"
//! ```
//!
//! The index is zstd-compressed JSON ([`IndexEntry`] per blob: chunk id, offset, stored
//! length, plain size, compression). Flags: bit 0 ([`FLAG_SEALED`]) in an encrypted
//! store, where each blob is sealed on its own (bound to its chunk id, so that a ranged
//! read opens one blob) and the index is sealed bound to the pack's key; no other bit is
//! defined, and an unknown bit is refused, so a later format is never misread.
//! Everything read from a pack is untrusted: [`parse_trailer`] and [`parse_index`] check
//! every bound before use.
//!
//! [`PackWriter`] fills packs and uploads each when it reaches its target size or when a
//! caller needs its blobs durable ([`PackWriter::flush`], before a commit names them).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::chunk::{ChunkHash, Compression, MAX_CHUNK_SIZE};
use crate::crypt::{self, Crypt};
use crate::retry::{RetryPolicy, with_retry};
use crate::{ErrorClass, ObjectStore, PutMode, StoreError};

/// A pack's 32-byte random id.
pub type PackId = [u8; 32];

/// Where packs live in the bucket.
pub const PREFIX: &str = "packs/";

/// The last 8 bytes of every pack.
pub const MAGIC: &[u8; 8] = b"TRBPACK2";

/// Index length, flags and magic.
pub const TRAILER_LEN: u64 = 16;

/// The pack's blobs and index are sealed.
pub const FLAG_SEALED: u32 = 1;

/// The largest index a pack may carry, compressed or not (a bound on what a damaged or
/// hostile pack can make a reader allocate).
const MAX_INDEX_LEN: u64 = 64 << 20;

/// The object key of a pack.
pub fn pack_key(id: &PackId) -> String {
    let hex = hex::encode(id);
    format!("{PREFIX}{}/{hex}", &hex[..2])
}

/// The pack id a key names, if it is a well-formed pack key.
pub fn parse_pack_key(key: &str) -> Option<PackId> {
    let rest = key.strip_prefix(PREFIX)?;
    let (dir, name) = rest.split_once('/')?;
    let id: PackId = hex::decode(name).ok()?.try_into().ok()?;
    (dir.len() == 2 && name.starts_with(dir)).then_some(id)
}

/// A fresh random pack id.
pub fn new_pack_id() -> PackId {
    rand::random()
}

/// One blob of a pack, as its index lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    #[serde(with = "hex::serde")]
    pub id: ChunkHash,
    pub offset: u64,
    /// Stored length in the pack.
    pub length: u64,
    /// Plain size.
    pub size: u64,
    pub compression: Compression,
}

#[derive(Serialize, Deserialize)]
struct Index {
    format: u32,
    blobs: Vec<IndexEntry>,
}

/// The tail of a pack: the index and trailer that follow its blobs; in an encrypted
/// store (`crypt`) the index is sealed bound to the pack's key `key`.
pub fn encode_tail(
    entries: &[IndexEntry],
    crypt: Option<&Crypt>,
    key: &str,
) -> Result<Vec<u8>, String> {
    let json = serde_json::to_vec(&Index {
        format: 2,
        blobs: entries.to_vec(),
    })
    .map_err(|e| format!("encode pack index: {e}"))?;
    let mut out =
        zstd::bulk::compress(&json, 3).map_err(|e| format!("compress pack index: {e}"))?;
    let mut flags = 0;
    if let Some(c) = crypt {
        out = c.seal(key.as_bytes(), &out);
        flags |= FLAG_SEALED;
    }
    let len = u32::try_from(out.len()).map_err(|_| "pack index too large".to_string())?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(MAGIC);
    Ok(out)
}

/// Where a pack's index lies, as its trailer says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trailer {
    pub index_start: u64,
    pub index_len: u64,
    /// Blobs and index are sealed ([`FLAG_SEALED`]).
    pub sealed: bool,
}

/// From a pack's last [`TRAILER_LEN`] bytes and its size: where its index lies.
pub fn parse_trailer(trailer: &[u8], pack_size: u64) -> Result<Trailer, String> {
    if pack_size < TRAILER_LEN || trailer.len() as u64 != TRAILER_LEN {
        return Err(format!("{pack_size} bytes: too short for a pack"));
    }
    if &trailer[8..16] != MAGIC {
        return Err("not a pack (no TRBPACK2 trailer)".into());
    }
    let len = u32::from_le_bytes(trailer[0..4].try_into().expect("4 bytes")) as u64;
    let flags = u32::from_le_bytes(trailer[4..8].try_into().expect("4 bytes"));
    if flags & !FLAG_SEALED != 0 {
        return Err(format!(
            "pack flags {flags:#x} are not understood (written by a newer Tributary?)"
        ));
    }
    if len > MAX_INDEX_LEN || len > pack_size - TRAILER_LEN {
        return Err(format!(
            "index length {len} does not fit a {pack_size}-byte pack"
        ));
    }
    Ok(Trailer {
        index_start: pack_size - TRAILER_LEN - len,
        index_len: len,
        sealed: flags & FLAG_SEALED != 0,
    })
}

/// A pack's index from its stored bytes (opened, when sealed), checked against the
/// `data_len` bytes of blobs before it: every blob lies inside them, sizes are within a
/// chunk's, and a stored length agrees with its compression (and, when `sealed`, holds
/// a seal's overhead).
pub fn parse_index(raw: &[u8], data_len: u64, sealed: bool) -> Result<Vec<IndexEntry>, String> {
    let overhead = if sealed { crypt::OVERHEAD as u64 } else { 0 };
    let json = zstd::bulk::decompress(raw, MAX_INDEX_LEN as usize)
        .map_err(|e| format!("decompress pack index: {e}"))?;
    let index: Index =
        serde_json::from_slice(&json).map_err(|e| format!("parse pack index: {e}"))?;
    if index.format != 2 {
        return Err(format!("pack index format {} is not 2", index.format));
    }
    for b in &index.blobs {
        let inside = b
            .offset
            .checked_add(b.length)
            .is_some_and(|e| e <= data_len);
        let sized = b.size <= MAX_CHUNK_SIZE
            && match b.compression {
                Compression::None => b.length == b.size + overhead,
                // stored compressed only when that is smaller
                Compression::Zstd => b.length >= overhead && b.length < b.size + overhead,
            };
        if !inside || !sized {
            return Err(format!(
                "pack index entry {} (offset {}, length {}, size {}) is out of bounds",
                hex::encode(b.id),
                b.offset,
                b.length,
                b.size
            ));
        }
    }
    Ok(index.blobs)
}

/// Reads the index of the pack `key` of `size` bytes (two ranged reads), opening it
/// with the store's keys; a sealed pack in a clear store, or the other way round, is
/// refused (a store is never mixed).
pub async fn read_index(
    store: &dyn ObjectStore,
    key: &str,
    size: u64,
) -> Result<Vec<IndexEntry>, StoreError> {
    let corrupt =
        |why: String| StoreError::new(ErrorClass::Permanent, format!("pack {key}: {why}"));
    let retry = RetryPolicy::default();
    let trailer = with_retry(
        retry,
        |_, _| {},
        || store.get_range(key, size.saturating_sub(TRAILER_LEN), TRAILER_LEN.min(size)),
    )
    .await?;
    let t = parse_trailer(&trailer, size).map_err(corrupt)?;
    check_sealing(store, key, &t)?;
    let raw = with_retry(
        retry,
        |_, _| {},
        || store.get_range(key, t.index_start, t.index_len),
    )
    .await?;
    open_index(store, key, &t, &raw)
}

/// The index of the pack `key` from its whole `body` (for readers that fetched it
/// whole, as `verify` does).
pub fn index_in(
    store: &dyn ObjectStore,
    key: &str,
    body: &[u8],
) -> Result<Vec<IndexEntry>, StoreError> {
    let size = body.len() as u64;
    let trailer = &body[body.len().saturating_sub(TRAILER_LEN as usize)..];
    let t = parse_trailer(trailer, size)
        .map_err(|why| StoreError::new(ErrorClass::Permanent, format!("pack {key}: {why}")))?;
    check_sealing(store, key, &t)?;
    let raw = &body[t.index_start as usize..(t.index_start + t.index_len) as usize];
    open_index(store, key, &t, raw)
}

/// A sealed pack in a clear store, or the other way round, is refused: a store is
/// never mixed.
fn check_sealing(store: &dyn ObjectStore, key: &str, t: &Trailer) -> Result<(), StoreError> {
    let why = match (t.sealed, store.crypt().is_some()) {
        (true, false) => "it is sealed and the store is in the clear",
        (false, true) => "it is in the clear and the store is encrypted",
        _ => return Ok(()),
    };
    Err(StoreError::new(
        ErrorClass::Permanent,
        format!("pack {key}: {why}"),
    ))
}

fn open_index(
    store: &dyn ObjectStore,
    key: &str,
    t: &Trailer,
    raw: &[u8],
) -> Result<Vec<IndexEntry>, StoreError> {
    let opened;
    let raw = match store.crypt() {
        Some(c) => {
            opened = c
                .open(key.as_bytes(), raw)
                .map_err(|_| crate::sealed::unauthentic(&format!("the index of {key}")))?;
            &opened[..]
        }
        None => raw,
    };
    parse_index(raw, t.index_start, t.sealed)
        .map_err(|why| StoreError::new(ErrorClass::Permanent, format!("pack {key}: {why}")))
}

/// Where [`PackWriter::add`] put a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placed {
    pub pack: PackId,
    pub offset: u64,
}

type Upload = Shared<BoxFuture<'static, Result<(), String>>>;

struct Open {
    id: PackId,
    data: Vec<u8>,
    index: Vec<IndexEntry>,
    /// The memory budget this pack's bytes hold until it is uploaded.
    permit: Option<OwnedSemaphorePermit>,
}

#[derive(Default)]
struct State {
    /// The open pack of each lane.
    open: HashMap<usize, Open>,
    /// Sealed packs: uploading, or uploaded and not yet flushed.
    uploads: HashMap<PackId, Upload>,
}

/// What a pack writer reports while it works: fault points (`pack.before_upload`,
/// `pack.after_upload`) and retried uploads.
pub trait PackEvents: Send + Sync + 'static {
    fn point(&self, _name: &'static str) {}
    fn retry(&self, _attempt: u32, _error: &StoreError) {}
}

/// No reporting.
pub struct NoEvents;
impl PackEvents for NoEvents {}

/// Appends blobs into packs of about `target` bytes and uploads each pack when it is
/// full or flushed. Blobs go into the open pack of their lane ([`with_lanes`]): a writer
/// per lane (one file at a time, its chunks in order) keeps each file's blobs back to
/// back, so that a restore reads a file with one ranged read per pack. Memory is
/// bounded: the bytes of the open packs and of the packs being uploaded hold a budget
/// of `target × (lanes + max_uploading)` plus one largest chunk, and
/// [`add`](Self::add) waits for room.
///
/// [`with_lanes`]: Self::with_lanes
pub struct PackWriter {
    store: Arc<dyn ObjectStore>,
    target: u64,
    max_uploading: usize,
    lanes: usize,
    policy: RetryPolicy,
    events: Arc<dyn PackEvents>,
    memory: Arc<Semaphore>,
    state: Mutex<State>,
}

/// Budget units: KiB.
fn units(len: u64) -> u32 {
    len.div_ceil(1024).max(1).min(u32::MAX as u64) as u32
}

/// The memory budget of a writer, in [`units`]: an open pack per lane (each under
/// `target` at rest: it is sealed when it reaches it) and `max_uploading` sealed packs,
/// plus one largest blob, so an add always finds room once uploads drain.
fn budget(target: u64, lanes: usize, max_uploading: usize) -> usize {
    let bytes = target * (lanes.max(1) + max_uploading.max(1)) as u64 + MAX_CHUNK_SIZE + 64 * 1024;
    units(bytes) as usize
}

impl PackWriter {
    pub fn new(
        store: Arc<dyn ObjectStore>,
        target: u64,
        max_uploading: usize,
        policy: RetryPolicy,
        events: Arc<dyn PackEvents>,
    ) -> PackWriter {
        let target = target.max(1);
        PackWriter {
            store,
            target,
            max_uploading,
            lanes: 1,
            policy,
            events,
            memory: Arc::new(Semaphore::new(budget(target, 1, max_uploading))),
            state: Mutex::new(State::default()),
        }
    }

    /// A writer with `lanes` open packs ([`add_in`](Self::add_in)), its memory budget
    /// grown to match. Set before the first blob.
    pub fn with_lanes(mut self, lanes: usize) -> PackWriter {
        self.lanes = lanes.max(1);
        self.memory = Arc::new(Semaphore::new(budget(
            self.target,
            self.lanes,
            self.max_uploading,
        )));
        self
    }

    /// [`add_in`](Self::add_in) lane 0.
    pub async fn add(
        &self,
        id: ChunkHash,
        body: Bytes,
        size: u64,
        compression: Compression,
    ) -> Result<Placed, StoreError> {
        self.add_in(0, id, body, size, compression).await
    }

    /// Appends a blob (the stored bytes of chunk `id`, of plain `size`) to the open pack
    /// of `lane` (taken modulo the writer's lanes); uploads the pack once it reaches its
    /// target size. Blobs added to one lane one after another lie back to back. The blob
    /// is durable only after a [`flush`](Self::flush) of its pack succeeds.
    pub async fn add_in(
        &self,
        lane: usize,
        id: ChunkHash,
        body: Bytes,
        size: u64,
        compression: Compression,
    ) -> Result<Placed, StoreError> {
        let lane = lane % self.lanes;
        let permit = self
            .memory
            .clone()
            .acquire_many_owned(units(body.len() as u64))
            .await
            .map_err(|_| StoreError::new(ErrorClass::Permanent, "pack writer closed"))?;
        let mut st = self.state.lock().unwrap();
        let open = st.open.entry(lane).or_insert_with(|| Open {
            id: new_pack_id(),
            data: Vec::with_capacity(self.target as usize + 64 * 1024),
            index: Vec::new(),
            permit: None,
        });
        let placed = Placed {
            pack: open.id,
            offset: open.data.len() as u64,
        };
        open.data.extend_from_slice(&body);
        open.index.push(IndexEntry {
            id,
            offset: placed.offset,
            length: body.len() as u64,
            size,
            compression,
        });
        match &mut open.permit {
            Some(p) => p.merge(permit),
            None => open.permit = Some(permit),
        }
        if open.data.len() as u64 >= self.target {
            self.seal(&mut st, lane);
        }
        Ok(placed)
    }

    /// Seals the open pack of `lane` and starts its upload.
    fn seal(&self, st: &mut State, lane: usize) {
        let Some(open) = st.open.remove(&lane) else {
            return;
        };
        let id = open.id;
        let (store, policy, events) = (self.store.clone(), self.policy, self.events.clone());
        let task = tokio::spawn(async move {
            let Open {
                mut data,
                index,
                permit,
                ..
            } = open;
            let key = pack_key(&id);
            data.extend_from_slice(&encode_tail(&index, store.crypt().map(|c| &**c), &key)?);
            let body = Bytes::from(data);
            events.point("pack.before_upload");
            let put = with_retry(
                policy,
                |attempt, e| events.retry(attempt, e),
                || store.put(&key, body.clone(), PutMode::Overwrite),
            )
            .await;
            drop(permit);
            put.map_err(|e| format!("upload pack {key} to {}: {e}", store.describe()))?;
            events.point("pack.after_upload");
            Ok(())
        });
        let upload = async move { task.await.map_err(|e| format!("pack upload task: {e}"))? }
            .boxed()
            .shared();
        st.uploads.insert(id, upload);
    }

    /// Makes the blobs of `packs` durable: seals the open packs among them and waits
    /// for their uploads. An upload that failed (after its retries) is the error.
    pub async fn flush(&self, packs: impl IntoIterator<Item = PackId>) -> Result<(), String> {
        let waits: Vec<(PackId, Upload)> = {
            let mut st = self.state.lock().unwrap();
            let mut out = Vec::new();
            for id in packs {
                let lane = st.open.iter().find(|(_, o)| o.id == id).map(|(l, _)| *l);
                if let Some(lane) = lane {
                    self.seal(&mut st, lane);
                }
                if let Some(u) = st.uploads.get(&id) {
                    out.push((id, u.clone()));
                }
            }
            out
        };
        for (id, upload) in waits {
            upload.await?;
            self.state.lock().unwrap().uploads.remove(&id);
        }
        Ok(())
    }

    /// Seals the open pack and waits for every upload.
    pub async fn finish(&self) -> Result<(), String> {
        let all: Vec<PackId> = {
            let st = self.state.lock().unwrap();
            st.open
                .values()
                .map(|o| o.id)
                .chain(st.uploads.keys().copied())
                .collect()
        };
        self.flush(all).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::LocalStore;
    use std::path::Path;

    fn entry(id: u8, offset: u64, length: u64, size: u64, c: Compression) -> IndexEntry {
        IndexEntry {
            id: [id; 32],
            offset,
            length,
            size,
            compression: c,
        }
    }

    #[test]
    fn pack_keys_round_trip_and_others_are_not_packs() {
        let id = new_pack_id();
        assert_eq!(parse_pack_key(&pack_key(&id)), Some(id));
        let hex = hex::encode(id);
        for bad in [
            format!("packs/zz/{hex}"),
            format!("packs/{hex}"),
            format!("chunks/{}/{hex}", &hex[..2]),
            format!("packs/{}/{}", &hex[..2], &hex[..10]),
        ] {
            assert_eq!(parse_pack_key(&bad), None, "{bad}");
        }
    }

    #[test]
    fn the_tail_round_trips_and_damage_is_refused() {
        let entries = vec![
            entry(1, 0, 100, 100, Compression::None),
            entry(2, 100, 40, 900, Compression::Zstd),
        ];
        let mut pack = vec![7u8; 140];
        pack.extend_from_slice(&encode_tail(&entries, None, "k").unwrap());
        let size = pack.len() as u64;
        let t = parse_trailer(&pack[pack.len() - 16..], size).unwrap();
        assert_eq!((t.index_start, t.sealed), (140, false));
        let (start, len) = (t.index_start, t.index_len);
        let got = parse_index(&pack[start as usize..(start + len) as usize], start, false).unwrap();
        assert_eq!(got, entries);

        let mut bad = pack[pack.len() - 16..].to_vec();
        bad[15] ^= 1;
        assert!(
            parse_trailer(&bad, size)
                .unwrap_err()
                .contains("not a pack")
        );
        let mut flagged = pack[pack.len() - 16..].to_vec();
        flagged[4] = 2;
        assert!(parse_trailer(&flagged, size).unwrap_err().contains("flags"));
        let mut long = pack[pack.len() - 16..].to_vec();
        long[0..4].copy_from_slice(&(size as u32).to_le_bytes());
        assert!(
            parse_trailer(&long, size)
                .unwrap_err()
                .contains("does not fit")
        );
        assert!(parse_trailer(&pack[..10], 10).is_err());
        // an entry outside the blobs, or whose sizes disagree with its compression
        for e in [
            entry(3, 100, 41, 900, Compression::Zstd),
            entry(3, u64::MAX, 2, 2, Compression::None),
            entry(3, 0, 10, 11, Compression::None),
            entry(3, 0, 10, MAX_CHUNK_SIZE + 1, Compression::Zstd),
        ] {
            let tail = encode_tail(&[e], None, "k").unwrap();
            let raw = &tail[..tail.len() - 16];
            assert!(
                parse_index(raw, 140, false)
                    .unwrap_err()
                    .contains("out of bounds"),
                "{e:?}"
            );
        }
        assert!(parse_index(b"not zstd", 140, false).is_err());
    }

    #[test]
    fn a_sealed_index_opens_only_for_its_pack_and_sizes_count_the_seal() {
        let crypt = Crypt::new(crypt::DataKey::generate());
        let o = crypt::OVERHEAD as u64;
        let entries = vec![
            entry(1, 0, 100 + o, 100, Compression::None),
            entry(2, 100 + o, 40 + o, 900, Compression::Zstd),
        ];
        let data = 140 + 2 * o;
        let tail = encode_tail(&entries, Some(&crypt), "packs/aa/aa1").unwrap();
        let t = parse_trailer(&tail[tail.len() - 16..], data + tail.len() as u64).unwrap();
        assert!(t.sealed);
        let raw = &tail[..t.index_len as usize];
        assert!(
            crypt.open(b"packs/bb/bb2", raw).is_err(),
            "bound to its pack"
        );
        let opened = crypt.open(b"packs/aa/aa1", raw).unwrap();
        assert_eq!(parse_index(&opened, data, true).unwrap(), entries);
        let e = parse_index(&opened, data, false).unwrap_err();
        assert!(
            e.contains("out of bounds"),
            "a clear reading refuses seal-sized blobs: {e}"
        );
    }

    /// A local store and a writer of 10,000-byte packs into it.
    fn local_writer(dir: &Path) -> (Arc<dyn ObjectStore>, PackWriter) {
        let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(dir).unwrap());
        let w = PackWriter::new(
            store.clone(),
            10_000,
            2,
            RetryPolicy::default(),
            Arc::new(NoEvents),
        );
        (store, w)
    }

    #[tokio::test]
    async fn packs_fill_rotate_and_flush_and_their_index_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let (store, w) = local_writer(dir.path());
        let mut placed = Vec::new();
        for i in 0..25u8 {
            let body = Bytes::from(vec![i; 1_000]);
            let p = w
                .add([i; 32], body, 1_000, Compression::None)
                .await
                .unwrap();
            placed.push(p);
        }
        // 10 blobs fill a pack: two are sealed, the third is open
        let packs: std::collections::BTreeSet<PackId> = placed.iter().map(|p| p.pack).collect();
        assert_eq!(packs.len(), 3);
        assert_eq!(placed[10].offset, 0, "a new pack after a full one");
        w.flush([placed[24].pack]).await.unwrap();
        w.finish().await.unwrap();
        let listed = store.list(PREFIX).await.unwrap();
        assert_eq!(listed.len(), 3);
        for m in listed {
            let id = parse_pack_key(&m.key).unwrap();
            let index = read_index(&*store, &m.key, m.size).await.unwrap();
            for e in &index {
                let p = placed[e.id[0] as usize];
                assert_eq!((p.pack, p.offset), (id, e.offset));
                let blob = store.get_range(&m.key, e.offset, e.length).await.unwrap();
                assert_eq!(blob, vec![e.id[0]; 1_000]);
            }
        }
        // a pack cut short has no trailer any more
        let m = &store.list(PREFIX).await.unwrap()[0];
        let whole = store.get(&m.key).await.unwrap();
        store
            .put(&m.key, whole.slice(..whole.len() - 3), PutMode::Overwrite)
            .await
            .unwrap();
        let e = read_index(&*store, &m.key, m.size - 3).await.unwrap_err();
        assert_eq!(e.class, ErrorClass::Permanent, "{e}");
    }

    #[tokio::test]
    async fn blobs_of_one_lane_lie_back_to_back_whatever_the_other_lanes_add() {
        let dir = tempfile::tempdir().unwrap();
        let (store, w) = local_writer(dir.path());
        let w = w.with_lanes(3);
        // three files written at the same time, their blobs added in turns
        let mut placed: Vec<Vec<Placed>> = vec![Vec::new(); 3];
        for i in 0..12u8 {
            for (lane, blobs) in placed.iter_mut().enumerate() {
                let id = [lane as u8 * 16 + i; 32];
                let p = w
                    .add_in(
                        lane,
                        id,
                        Bytes::from(vec![i; 1_000]),
                        1_000,
                        Compression::None,
                    )
                    .await
                    .unwrap();
                blobs.push(p);
            }
        }
        for (lane, blobs) in placed.iter().enumerate() {
            // ten blobs fill a pack: the lane's first ten back to back in one pack of
            // its own, the rest in the lane's next
            assert!(
                blobs[..10].iter().all(|p| p.pack == blobs[0].pack),
                "lane {lane}"
            );
            let offsets: Vec<u64> = blobs.iter().map(|p| p.offset).collect();
            assert_eq!(
                offsets[..10],
                (0..10).map(|k| k * 1_000).collect::<Vec<_>>()[..]
            );
            assert_eq!(offsets[10..], [0, 1_000]);
            for other in &placed[lane + 1..] {
                assert!(
                    other
                        .iter()
                        .all(|p| p.pack != blobs[0].pack && p.pack != blobs[10].pack)
                );
            }
        }
        // a flush names the packs it needs; the other lanes' open packs stay open
        let full = placed.iter().map(|b| b[0].pack);
        w.flush(full.chain([placed[1][11].pack])).await.unwrap();
        assert_eq!(store.list(PREFIX).await.unwrap().len(), 3 + 1);
        w.finish().await.unwrap();
        assert_eq!(store.list(PREFIX).await.unwrap().len(), 6);
    }
}
