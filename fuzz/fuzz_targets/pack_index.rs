//! What a bucket holds, read back: a pack object's trailer and index (store format 2),
//! which anyone who can write the bucket controls. Whatever the bytes, parsing returns
//! an error or entries that lie inside the pack's blobs — never a panic, never an
//! entry a reader would follow out of bounds.
#![no_main]
use tributary_store::pack::{TRAILER_LEN, parse_index, parse_trailer};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let size = data.len() as u64;
    let tail = &data[data.len().saturating_sub(TRAILER_LEN as usize)..];
    if let Ok(t) = parse_trailer(tail, size) {
        let (start, len) = (t.index_start, t.index_len);
        assert!(start + len + TRAILER_LEN == size);
        let raw = &data[start as usize..(start + len) as usize];
        // (a sealed index is opened before parsing; what it holds is parsed the same)
        if let Ok(entries) = parse_index(raw, start, t.sealed) {
            for e in entries {
                assert!(e.offset + e.length <= start, "{e:?} outside {start} bytes of blobs");
            }
        }
    }
    // an index on its own, as if the blobs before it were as long as could be
    let _ = parse_index(data, u64::MAX, false);
    let _ = parse_index(data, u64::MAX, true);
});
