//! Row decoding and SQL fragments shared by the catalog's areas. Rows are decoded by
//! column name (`sqlx::FromRow`); a record whose columns need checking (a hash of 32
//! bytes, a known compression) converts into the public type with `try_into`.

use crate::{CatalogError, ChunkRef, Hash, Result};
use tributary_store::pack::Placed;

/// `($first, …)`: the `IN` list of `n` bound values numbered from `first` (every list the
/// catalog binds is written through this one).
pub(crate) fn in_list(first: usize, n: usize) -> String {
    let v: Vec<String> = (first..first + n).map(|i| format!("${i}")).collect();
    format!("({})", v.join(", "))
}

/// The statement that gives back the chunk references of the versions listed in
/// `list` (an [`in_list`] of their ids from `$2` on), in one statement whatever their
/// number: each chunk loses as many references as those versions make to it, and one
/// left with none is orphaned at `$1` (for gc). Their `version_chunks` rows are the
/// caller's to delete afterwards.
pub(crate) fn release_chunks_sql(list: &str) -> String {
    format!(
        "UPDATE chunks SET refcount = chunks.refcount - d.n,
           orphaned_at = CASE WHEN chunks.refcount - d.n <= 0 THEN $1 ELSE chunks.orphaned_at END
         FROM (SELECT hash, COUNT(*) AS n FROM version_chunks WHERE version_id IN {list} GROUP BY hash) AS d
         WHERE chunks.hash = d.hash"
    )
}

/// The columns of a stored chunk.
pub(crate) const CHUNK_COLUMNS: &str = "hash, size, stored_size, compression, pack, pack_offset";

/// A row of `chunks`, as stored.
#[derive(sqlx::FromRow)]
pub(crate) struct ChunkRecord {
    hash: Vec<u8>,
    size: i64,
    stored_size: i64,
    compression: String,
    pack: Option<Vec<u8>>,
    pack_offset: Option<i64>,
}

impl TryFrom<ChunkRecord> for ChunkRef {
    type Error = CatalogError;
    fn try_from(r: ChunkRecord) -> Result<ChunkRef> {
        Ok(ChunkRef {
            hash: to_hash(&r.hash)?,
            size: r.size as u64,
            stored_size: r.stored_size as u64,
            compression: r.compression.parse().map_err(CatalogError::Corrupt)?,
            packed: match (r.pack, r.pack_offset) {
                (Some(pack), Some(offset)) if offset >= 0 => Some(Placed {
                    pack: to_hash(&pack)?,
                    offset: offset as u64,
                }),
                (None, None) => None,
                _ => {
                    return Err(CatalogError::Corrupt(
                        "a chunk row with half a pack location".into(),
                    ));
                }
            },
        })
    }
}

pub(crate) fn to_hash(b: &[u8]) -> Result<Hash> {
    b.try_into()
        .map_err(|_| CatalogError::Corrupt(format!("hash of {} bytes, expected 32", b.len())))
}

/// `[lo, hi)` bounds of all byte strings starting with `prefix`; `hi` is `None` when
/// there is no upper bound (prefix all 0xff or empty).
pub(crate) fn prefix_range(prefix: &[u8]) -> (Vec<u8>, Option<Vec<u8>>) {
    let mut hi = prefix.to_vec();
    while let Some(last) = hi.pop() {
        if last < 0xff {
            hi.push(last + 1);
            return (prefix.to_vec(), Some(hi));
        }
    }
    (prefix.to_vec(), None)
}

pub(crate) mod hex_hash {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(h: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(h))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        hex::FromHex::from_hex(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

pub(crate) mod opt_hex_hash {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(h: &Option<[u8; 32]>, s: S) -> Result<S::Ok, S::Error> {
        match h {
            Some(h) => super::hex_hash::serialize(h, s),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<[u8; 32]>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| hex::FromHex::from_hex(s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

pub(crate) mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(b))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        hex::decode(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_lists_number_their_placeholders_from_first() {
        assert_eq!(in_list(1, 3), "($1, $2, $3)");
        assert_eq!(in_list(5, 1), "($5)");
    }

    #[test]
    fn prefix_ranges() {
        assert_eq!(prefix_range(b"/a"), (b"/a".to_vec(), Some(b"/b".to_vec())));
        assert_eq!(
            prefix_range(&[0x61, 0xff]),
            (vec![0x61, 0xff], Some(vec![0x62]))
        );
        assert_eq!(prefix_range(b""), (vec![], None));
    }
}
