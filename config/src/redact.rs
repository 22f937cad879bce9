//! The one redactor: every secret the configuration holds, scrubbed from text before it
//! is stored or written (job errors and logs, item errors, log lines).
//!
//! Every [`crate::Secret`] registers itself when it is made, so a secret added to the
//! configuration later cannot be forgotten here, and secrets of an earlier configuration
//! (before a reload) stay known. A server may echo a secret back in another encoding, so
//! each is also matched form-encoded (`+` for space), percent-encoded and JSON-escaped.
//! Values shorter than [`MIN_LEN`] are not matched: they would garble ordinary text and
//! are not worth guessing anyway.

use std::borrow::Cow;
use std::sync::{Arc, RwLock};

use aho_corasick::AhoCorasick;

/// What a secret is replaced with.
pub const MASK: &str = "[REDACTED]";
/// Shorter values are not redacted.
pub const MIN_LEN: usize = 4;

#[derive(Default)]
struct Known {
    patterns: Vec<String>,
    matcher: Option<Arc<AhoCorasick>>,
}

static KNOWN: RwLock<Known> = RwLock::new(Known {
    patterns: Vec::new(),
    matcher: None,
});

/// The forms a secret may take in an upstream server's error text.
fn forms(secret: &str) -> Vec<String> {
    let form: String = form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    let percent = percent_encoding::utf8_percent_encode(secret, percent_encoding::NON_ALPHANUMERIC)
        .to_string();
    let json = serde_json::to_string(secret).unwrap_or_default();
    let json = json
        .strip_prefix('"')
        .and_then(|j| j.strip_suffix('"'))
        .unwrap_or_default()
        .to_string();
    let mut v = vec![secret.to_string(), form, percent, json];
    v.sort();
    v.dedup();
    v
}

/// Makes `secret` known to [`redact`].
pub fn register(secret: &str) {
    // fuzzing the loader makes millions of configurations: their secrets are not kept
    if secret.len() < MIN_LEN || cfg!(fuzzing) {
        return;
    }
    let mut k = KNOWN.write().unwrap_or_else(|e| e.into_inner());
    let mut added = false;
    for f in forms(secret) {
        if !k.patterns.contains(&f) {
            k.patterns.push(f);
            added = true;
        }
    }
    if added {
        // longest first, so a secret that contains another is masked whole
        k.patterns.sort_by_key(|p| std::cmp::Reverse(p.len()));
        k.matcher = AhoCorasick::builder()
            .match_kind(aho_corasick::MatchKind::LeftmostLongest)
            .build(&k.patterns)
            .ok()
            .map(Arc::new);
    }
}

/// `text` with every known secret replaced by [`MASK`].
pub fn redact(text: &str) -> Cow<'_, str> {
    let matcher = KNOWN
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .matcher
        .clone();
    match matcher {
        Some(m) if m.is_match(text) => {
            Cow::Owned(m.replace_all(text, &vec![MASK; m.patterns_len()]))
        }
        _ => Cow::Borrowed(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_raw_and_as_a_server_may_echo_them() {
        let s = "p@ss w0rd+&\"x";
        register(s);
        register("abc"); // too short to mask
        let echoed = [
            format!("bad password {s}!"),
            "body: client_id=x&client_secret=p%40ss+w0rd%2B%26%22x&scope=y".to_string(),
            "url: /token?secret=p%40ss%20w0rd%2B%26%22x".to_string(),
            r#"{"error":"invalid","echo":"p@ss w0rd+&\"x"}"#.to_string(),
        ];
        for e in &echoed {
            let r = redact(e);
            assert!(r.contains(MASK), "{r}");
            assert!(!r.contains("w0rd"), "{r}");
        }
        assert_eq!(redact("abc and nothing else"), "abc and nothing else");
        assert!(matches!(redact("nothing here"), Cow::Borrowed(_)));
    }

    #[test]
    fn a_secret_containing_another_is_masked_whole() {
        register("inner-secret");
        register("outer-inner-secret-x");
        assert_eq!(redact("a outer-inner-secret-x b"), format!("a {MASK} b"));
        assert_eq!(redact("a inner-secret b"), format!("a {MASK} b"));
    }
}
