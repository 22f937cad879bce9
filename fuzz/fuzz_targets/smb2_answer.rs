//! What an SMB server sends, decrypted: compounds, headers, signatures, directory
//! entries, read and create answers, negotiate contexts, the NTLM challenge.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tributary_connector_smb::smb2_fuzz::answer(data);
});
