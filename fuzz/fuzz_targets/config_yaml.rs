//! The configuration loader: interpolation, YAML, positions, validation.
#![no_main]
use std::collections::HashMap;
use std::path::Path;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let env: HashMap<String, String> = [("HOME".to_string(), "/nonexistent".to_string())].into();
    let _ = tributary_config::load_str(Path::new("/nonexistent/fuzz.yaml"), text, &env);
});
