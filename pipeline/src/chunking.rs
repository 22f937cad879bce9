//! One streaming pass over a file: content-defined chunking (FastCDC 2020), a BLAKE3
//! hash per chunk and a BLAKE3 digest of the whole file. In an encrypted store the
//! chunker's gear table and the chunk ids are the store's own (keyed,
//! [`tributary_store::crypt::Crypt`]), so neither boundaries nor ids can be recognised.
//!
//! Memory is bounded by one buffer of at most 1.5 times the maximum chunk size (less
//! for small files) plus the chunks the caller holds, whatever the file size. Runs on a
//! blocking thread.

use std::io::Read;

use bytes::Bytes;
use fastcdc::v2020::{FastCDC, MASKS, Normalization, cut_gear, logarithm2};
use tributary_store::chunk::chunk_id;
use tributary_store::crypt::Crypt;

use crate::Hash;

#[derive(Debug, Clone, Copy)]
pub struct ChunkParams {
    pub min: u32,
    pub avg: u32,
    pub max: u32,
}

pub struct Chunk {
    pub hash: Hash,
    pub data: Bytes,
}

/// What a complete pass yields besides the chunks.
#[derive(Debug, Clone, Copy)]
pub struct Digest {
    pub digest: Hash,
    pub len: u64,
}

/// Reads `src` to the end, calling `emit` for each chunk in order. `emit` returning
/// false stops the pass (the consumer is gone); the result is then `Ok(None)`.
pub fn chunk_stream(
    src: &mut dyn Read,
    params: ChunkParams,
    size_hint: u64,
    crypt: Option<&Crypt>,
    mut emit: impl FnMut(Chunk) -> bool,
) -> std::io::Result<Option<Digest>> {
    let max = params.max as usize;
    let limit = max + max / 2;
    let cap = limit.min(size_hint as usize + 1).max(64 * 1024);
    let mut buf = vec![0u8; cap];
    let (mut start, mut len, mut eof) = (0usize, 0usize, false);
    let mut file_hasher = blake3::Hasher::new();
    let mut total = 0u64;
    loop {
        // Fill until a whole maximum-size chunk is buffered, or the end is reached.
        while !eof && len - start < max {
            if len == buf.len() {
                if start > 0 {
                    buf.copy_within(start..len, 0);
                    len -= start;
                    start = 0;
                } else {
                    // size hint was too small (the file grew): grow the buffer
                    let new = (buf.len() * 2).min(limit).max(buf.len() + 1);
                    buf.resize(new, 0);
                }
            }
            match src.read(&mut buf[len..]) {
                Ok(0) => eof = true,
                Ok(n) => len += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let avail = &buf[start..len];
        if avail.is_empty() {
            break;
        }
        let n = cut(avail, params, crypt);
        let data = &avail[..n];
        file_hasher.update(data);
        total += n as u64;
        let chunk = Chunk {
            hash: chunk_id(crypt, data),
            data: Bytes::copy_from_slice(data),
        };
        start += n;
        if !emit(chunk) {
            return Ok(None);
        }
    }
    Ok(Some(Digest {
        digest: *file_hasher.finalize().as_bytes(),
        len: total,
    }))
}

/// Where the first chunk of `avail` ends: FastCDC 2020 (normalization level 1) with
/// its published gear table, or with the store's own.
fn cut(avail: &[u8], params: ChunkParams, crypt: Option<&Crypt>) -> usize {
    if avail.len() <= params.min as usize {
        return avail.len();
    }
    let Some(crypt) = crypt else {
        return FastCDC::new(avail, params.min, params.avg, params.max)
            .cut(0, avail.len())
            .1;
    };
    // the masks FastCDC::new chooses, with the store's gear table
    let bits = logarithm2(params.avg);
    let level = Normalization::Level1.bits();
    let (mask_s, mask_l) = (
        MASKS[(bits + level) as usize],
        MASKS[(bits - level) as usize],
    );
    let (gear, gear_ls) = crypt.gear();
    cut_gear(
        avail,
        params.min as usize,
        params.avg as usize,
        params.max as usize,
        mask_s,
        mask_l,
        mask_s << 1,
        mask_l << 1,
        gear,
        gear_ls,
    )
    .1
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: ChunkParams = ChunkParams {
        min: 16 * 1024,
        avg: 64 * 1024,
        max: 256 * 1024,
    };

    fn chunks_of(data: &[u8], hint: u64) -> (Vec<(Hash, usize)>, Digest) {
        keyed_chunks_of(data, hint, None)
    }

    fn keyed_chunks_of(
        data: &[u8],
        hint: u64,
        crypt: Option<&Crypt>,
    ) -> (Vec<(Hash, usize)>, Digest) {
        let mut out = Vec::new();
        let d = chunk_stream(&mut &data[..], P, hint, crypt, |c| {
            out.push((c.hash, c.data.len()));
            true
        })
        .unwrap()
        .unwrap();
        (out, d)
    }

    /// A reader that returns at most 1000 bytes per call, like a slow network source.
    struct Dribble<'a>(&'a [u8]);
    impl Read for Dribble<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(1000).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn boundaries_are_content_defined_and_independent_of_reads() {
        let data = tributary_testkit::tree::random_bytes(1, 3_000_000);
        let (a, da) = chunks_of(&data, data.len() as u64);
        let (b, _) = chunks_of(&data, 10); // wrong size hint
        let mut c = Vec::new();
        chunk_stream(&mut Dribble(&data), P, 0, None, |ch| {
            c.push((ch.hash, ch.data.len()));
            true
        })
        .unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(a.iter().map(|x| x.1).sum::<usize>(), data.len());
        assert!(a.iter().all(|x| x.1 <= 256 * 1024));
        assert_eq!(da.digest, *blake3::hash(&data).as_bytes());
        // an insert in the middle changes only the chunks around it
        let mut edited = data.clone();
        edited.insert(1_500_000, 0x42);
        let (e, _) = chunks_of(&edited, 0);
        let old: std::collections::HashSet<_> = a.iter().map(|x| x.0).collect();
        let new = e.iter().filter(|x| !old.contains(&x.0)).count();
        assert!(new <= 2, "{new} chunks changed for a one-byte insert");
    }

    #[test]
    fn an_encrypted_store_cuts_and_names_chunks_its_own_way() {
        use tributary_store::crypt::DataKey;
        let data = tributary_testkit::tree::random_bytes(2, 3_000_000);
        let (one, two) = (
            Crypt::new(DataKey::generate()),
            Crypt::new(DataKey::generate()),
        );
        let (clear, _) = chunks_of(&data, 0);
        let (a, da) = keyed_chunks_of(&data, 0, Some(&one));
        let (again, _) = keyed_chunks_of(&data, 7, Some(&one));
        let (b, _) = keyed_chunks_of(&data, 0, Some(&two));
        assert_eq!(
            a, again,
            "the same store cuts the same content the same way"
        );
        let sizes = |c: &[(Hash, usize)]| c.iter().map(|x| x.1).collect::<Vec<_>>();
        assert_ne!(
            sizes(&a),
            sizes(&clear),
            "boundaries are not the published table's"
        );
        assert_ne!(sizes(&a), sizes(&b), "nor another store's");
        assert!(a.iter().all(|x| x.1 <= 256 * 1024));
        assert!(
            (10..=120).contains(&a.len()),
            "about 3 MB / 64 KiB chunks: {}",
            a.len()
        );
        assert_eq!(a[0].0, one.chunk_id(&data[..a[0].1]), "keyed ids");
        assert_eq!(da.digest, *blake3::hash(&data).as_bytes());
        // still content-defined: an insert changes only the chunks around it
        let mut edited = data.clone();
        edited.insert(1_500_000, 0x42);
        let (e, _) = keyed_chunks_of(&edited, 0, Some(&one));
        let old: std::collections::HashSet<_> = a.iter().map(|x| x.0).collect();
        assert!(e.iter().filter(|x| !old.contains(&x.0)).count() <= 2);
    }

    #[test]
    fn empty_and_tiny_inputs() {
        let (a, d) = chunks_of(b"", 0);
        assert!(a.is_empty());
        assert_eq!(d.len, 0);
        assert_eq!(d.digest, *blake3::hash(b"").as_bytes());
        let (b, _) = chunks_of(b"tiny", 4);
        assert_eq!(b.len(), 1);
    }
}
