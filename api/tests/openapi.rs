//! The OpenAPI document is valid OpenAPI 3.0 (checked by the reference validator from
//! PyPI, `openapi-spec-validator`, which `.ci/run` installs) and documents every route.

use std::path::PathBuf;
use std::process::Command;

fn validator() -> PathBuf {
    if let Ok(p) = std::env::var("TRIBUTARY_OPENAPI_VALIDATOR") {
        return PathBuf::from(p);
    }
    let p = PathBuf::from(std::env::var("HOME").unwrap_or_default())
        .join(".cache/tributary/venv/bin/openapi-spec-validator");
    assert!(
        p.exists(),
        "openapi-spec-validator not found: run `bash .ci/run` once or set TRIBUTARY_OPENAPI_VALIDATOR"
    );
    p
}

#[test]
fn the_openapi_document_validates_and_lists_every_route() {
    let doc = tributary_api::openapi::document();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    let out = Command::new(validator()).arg(&file).output().unwrap();
    assert!(
        out.status.success(),
        "invalid OpenAPI document:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut documented: Vec<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(p, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.to_uppercase(), p.clone()))
        })
        .collect();
    let mut served: Vec<(String, String)> = tributary_api::ROUTES
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect();
    documented.sort();
    served.sort();
    assert_eq!(documented, served);
    for (_, _, op) in doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(p, ops)| ops.as_object().unwrap().iter().map(move |(m, o)| (p, m, o)))
    {
        assert!(
            op["summary"].as_str().is_some_and(|s| !s.is_empty()),
            "every operation is described: {op}"
        );
        // a body over api.max_body_size is refused whatever its schema allows
        assert_eq!(
            op.get("requestBody").is_some(),
            op["responses"].get("413").is_some(),
            "an operation with a body documents 413: {op}"
        );
    }
}
