//! Text extraction of untrusted documents (in-process here; the daemon runs it in a
//! limited worker process). The first byte picks the format; PDF and XLSX are parsed by
//! third-party crates whose panics the worker process contains, and are left out.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((pick, bytes)) = data.split_first() else {
        return;
    };
    let names = ["a.docx", "a.pptx", "a.html", "a.md", "a.csv", "a.txt"];
    let name = names[usize::from(*pick) % names.len()];
    let limits = tributary_extract::Limits {
        max_text_bytes: 1 << 20,
        max_decompressed_bytes: 16 << 20,
    };
    let _ = tributary_extract::extract(name, bytes, &limits);
});
