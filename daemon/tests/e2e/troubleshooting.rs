//! docs/troubleshooting.md is organised by the message an operator sees: each heading
//! that quotes a message must quote one the code really produces. Every quoted part
//! of a heading (its text between backticks, split at `…` where the message has a
//! variable part) is looked up in the sources' text; parts that come from elsewhere
//! (the operating system, Entra ID, S3 servers, commands to type) are named below.

use std::path::Path;

use tributary_testkit::tree::rust_sources;

/// Words of quoted messages that other programs produce (removed before the lookup).
const FROM_ELSEWHERE: &[&str] = &[
    "Address already in use",
    "AADSTS7000215",
    "401 Unauthorized",
    "403 Forbidden",
    "accessDenied",
    "invalid_client",
    "HTTP 403 InvalidAccessKeyId",
    "HTTP 403 RequestTimeTooSkewed",
    "HTTP 400 BadDigest",
    "SignatureDoesNotMatch",
    "NoSuchBucket",
    "XAmzContentChecksumMismatch",
    "tributary.yaml:LINE:COL: key.path:",
    "systemctl status tributary",
    "tributary search",
    "GET /api/v1/queue",
    "/api/v1/changes",
];

/// The quoted parts of a Markdown heading that a reader would search for: its
/// backticked spans split at `…`, without what comes from elsewhere, of at least 12
/// characters with a space.
fn quoted_parts(heading: &str) -> Vec<String> {
    let mut parts = Vec::new();
    for (i, span) in heading.split('`').enumerate() {
        if i % 2 == 0 {
            continue;
        }
        let mut span = span.to_string();
        for w in FROM_ELSEWHERE {
            span = span.replace(w, "…");
        }
        for piece in span.split('…') {
            let piece = piece.trim_matches(|c: char| c == ' ' || c == ':' || c == ',');
            if piece.chars().count() >= 12 && piece.contains(' ') {
                parts.push(piece.to_string());
            }
        }
    }
    parts
}

#[test]
fn quoted_parts_are_split_at_variables_and_outside_words() {
    assert_eq!(
        quoted_parts("### SMB: `log-on to …/… failed (denied) for user `…` in domain `…``"),
        ["failed (denied) for user"]
    );
    assert_eq!(
        quoted_parts("### `listen on … (api.listen): Address already in use`"),
        Vec::<String>::new()
    );
    assert_eq!(
        quoted_parts("### `mass delete held: this job would delete … of …`"),
        ["mass delete held: this job would delete"]
    );
}

#[test]
fn every_message_troubleshooting_quotes_is_one_the_code_produces() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let page = std::fs::read_to_string(root.join("docs/troubleshooting.md")).unwrap();
    let mut files = Vec::new();
    for krate in [
        "config",
        "retry",
        "store",
        "catalog",
        "connectors",
        "connectors/smb",
        "connectors/sharepoint",
        "connectors/sharepoint/delta",
        "pipeline",
        "vectorize",
        "vectorize/extract",
        "vectorize/local",
        "api",
        "daemon",
    ] {
        files.extend(rust_sources(&root.join(krate).join("src")));
    }
    // the sources' text with Rust's line continuations joined
    let mut text = String::new();
    for f in &files {
        let src = std::fs::read_to_string(f).unwrap();
        let mut joined = String::with_capacity(src.len());
        let mut lines = src.lines().peekable();
        while let Some(l) = lines.next() {
            if let Some(head) = l.strip_suffix('\\') {
                joined.push_str(head);
                while let Some(next) = lines.peek() {
                    if next.trim_start().is_empty() {
                        lines.next();
                    } else {
                        break;
                    }
                }
                if let Some(next) = lines.next() {
                    joined.push_str(next.trim_start());
                    joined.push('\n');
                }
            } else {
                joined.push_str(l);
                joined.push('\n');
            }
        }
        text.push_str(&joined);
    }
    let mut checked = 0;
    let mut missing = Vec::new();
    for heading in page.lines().filter(|l| l.starts_with("### ")) {
        for part in quoted_parts(heading) {
            checked += 1;
            if !text.contains(&part) {
                missing.push(format!("{part:?} (in {heading})"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "troubleshooting.md quotes messages the code does not produce:\n{}",
        missing.join("\n")
    );
    assert!(checked >= 15, "only {checked} quoted messages found");
}
