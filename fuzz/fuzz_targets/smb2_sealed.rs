//! An SMB3 transform (encrypted) frame, opened with CCM and GCM, then parsed.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tributary_connector_smb::smb2_fuzz::sealed(data);
});
