//! The workspace's structural invariants, checked on the source tree itself (so that a
//! change breaking one fails the suite rather than a review):
//!
//! 1. Layering: each workspace member depends only on members listed before it in the
//!    root `Cargo.toml` (no upward imports, no cycles).
//! 2. Only `daemon` wires configuration to implementations for the API and the
//!    vectorizer: `tributary-api` and `tributary-vectorize` do not depend on
//!    `tributary-pipeline`, and nothing but `daemon` depends on the heavy connector crates.
//! 3. Only `daemon` reads the process environment (tests and the test kit aside).
//! 4. Only `daemon` turns configuration into implementations: no other crate matches
//!    on the configuration's choice of catalog, store, source, embedder or vector
//!    store.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use tributary_testkit::tree::rust_sources;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn metadata() -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(root())
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Each member's name, folder, and the workspace members it depends on (normal
/// dependencies), in the order of the root manifest's `members`.
fn members() -> Vec<(String, PathBuf, Vec<String>)> {
    let meta = metadata();
    let packages = meta["packages"].as_array().unwrap();
    let names: Vec<&str> = packages
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let list = manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix("members = "))
        .expect("a one-line members list");
    let order: Vec<&str> = list
        .trim_matches(|c| c == '[' || c == ']')
        .split(',')
        .map(|s| s.trim().trim_matches('"'))
        .collect();
    order
        .iter()
        .map(|dir| {
            let p = packages
                .iter()
                .find(|p| {
                    Path::new(p["manifest_path"].as_str().unwrap()).parent()
                        == Some(&root().join(dir))
                })
                .unwrap_or_else(|| panic!("member {dir} has no package"));
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].is_null())
                .map(|d| d["name"].as_str().unwrap().to_string())
                .filter(|n| names.contains(&n.as_str()))
                .collect();
            (
                p["name"].as_str().unwrap().to_string(),
                root().join(dir),
                deps,
            )
        })
        .collect()
}

#[test]
fn members_depend_only_on_members_listed_before_them() {
    let members = members();
    for (i, (name, _, deps)) in members.iter().enumerate() {
        for d in deps {
            if d == name {
                continue;
            }
            let at = members.iter().position(|(n, _, _)| n == d).unwrap();
            assert!(
                at < i,
                "{name} depends on {d}, which the root Cargo.toml lists after it"
            );
        }
    }
}

#[test]
fn wiring_is_the_daemons_and_heavy_connectors_stay_in_it() {
    for (name, _, deps) in members() {
        let has = |d: &str| deps.iter().any(|x| x == d);
        if ["tributary-api", "tributary-vectorize"].contains(&name.as_str()) {
            assert!(!has("tributary-pipeline"), "{name} depends on the pipeline");
        }
        if name != "tributary" {
            for heavy in ["tributary-connector-sharepoint", "tributary-connector-smb"] {
                assert!(!has(heavy), "{name} depends on {heavy}");
            }
        }
    }
}

#[test]
fn only_the_daemon_reads_the_environment() {
    let mut offenders = Vec::new();
    for (name, dir, _) in members() {
        if name == "tributary" || name == "tributary-testkit" {
            continue;
        }
        for f in rust_sources(&dir.join("src")) {
            let text = std::fs::read_to_string(&f).unwrap();
            for needle in ["env::var(", "env::var_os(", "env::vars(", "env::vars_os("] {
                if text.contains(needle) {
                    offenders.push(format!("{}: {needle}", f.display()));
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "only daemon reads the environment: {offenders:#?}"
    );
}

#[test]
fn only_the_daemon_turns_configuration_into_implementations() {
    // the variants that choose an implementation: matching on one outside `config`
    // and `daemon` means a crate builds its own catalog, store, connector, embedder
    // or vector store instead of being handed one by `daemon/src/wiring.rs`
    let choices = [
        "CatalogConfig::",
        "ObjectStoreConfig::",
        "SourceConfig::",
        "EmbedderConfig::",
        "VectorStoreConfig::",
    ];
    let mut offenders = Vec::new();
    for (name, dir, _) in members() {
        if ["tributary", "tributary-config", "tributary-testkit"].contains(&name.as_str()) {
            continue;
        }
        for f in rust_sources(&dir.join("src")) {
            let text = std::fs::read_to_string(&f).unwrap();
            for needle in choices {
                if text.contains(needle) {
                    offenders.push(format!("{}: {needle}", f.display()));
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "configuration is wired to implementations in daemon/src/wiring.rs only: {offenders:#?}"
    );
}
