//! The daemon <-> SMB worker pipe: frames, listings, JSON answers.
#![no_main]
use tributary_connector_smb::proto;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut r = data;
    while let Ok(Some((tag, payload))) = proto::read_frame(&mut r) {
        if tag == proto::DATA || tag == proto::OK {
            let _ = proto::Listing::parse(&payload);
        }
        let _ = serde_json::from_slice::<serde_json::Value>(&payload);
    }
});
