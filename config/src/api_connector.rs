//! Connectors written by an API caller: the same connector as in the file, checked by
//! the same validator, plus what a remote caller may not do.
//!
//! A body is the connector exactly as written in YAML, as JSON. Its inline secrets
//! ([`SECRET_KEYS`]) are write-only: [`spec_of`] shows them as `{"set": true}`, and a
//! body that sends that marker back keeps the stored secret ([`split_secrets`]). An API
//! connector is configuration from a remote caller, so [`validate`] also refuses what
//! would turn it into a way to read the daemon's own files or reach other endpoints
//! ([`ApiPolicy`]).

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::raw::RawConnector;
use crate::{ConnectorConfig, Origin};

/// Keys that hold a secret inline; each also has a `<key>_file` form (a path).
pub const SECRET_KEYS: &[&str] = &["password", "client_secret"];

/// Keys of a connector as the API shows it that are not settings: a body may carry them
/// (a GET edited and sent back) and they are dropped.
pub const READ_ONLY_KEYS: &[&str] = &[
    "source",
    "revision",
    "file",
    "status",
    "created_at",
    "created_by",
    "updated_at",
    "updated_by",
];

/// Keys holding a path the daemon reads.
const PATH_KEYS: &[&str] = &[
    "password_file",
    "client_secret_file",
    "certificate_file",
    "private_key_file",
];

/// One bad field of a body: its key path (`schedule`, `include[2]`) and what is wrong,
/// in the words of the file's errors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

impl FieldError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// What connectors written over the API may point at.
#[derive(Debug, Clone, Default)]
pub struct ApiPolicy {
    /// `api.connector_roots`: local paths and `*_file` keys must lie under one.
    pub roots: Vec<PathBuf>,
    /// `api.allow_endpoint_overrides`.
    pub allow_endpoint_overrides: bool,
    /// Paths an API connector may neither read nor contain: the state directory, the
    /// configuration file, key files.
    pub protected: Vec<PathBuf>,
}

/// The connector as written (its YAML form, as JSON), without unset keys and with every
/// inline secret shown as `{"set": true}`.
pub fn spec_of(rc: &RawConnector) -> Value {
    let mut v = serde_json::to_value(rc).unwrap_or_else(|_| json!({}));
    if let Value::Object(m) = &mut v {
        m.retain(|_, x| !(x.is_null() || x.as_array().is_some_and(|a| a.is_empty())));
        for k in SECRET_KEYS {
            if let Some(x) = m.get_mut(*k) {
                *x = json!({"set": true});
            }
        }
    }
    v
}

/// A body split: its settings without secrets, and its secrets by key.
pub type Split = (Map<String, Value>, BTreeMap<String, String>);

/// Whether `v` is the marker a GET shows for a secret that is set.
fn is_set_marker(v: &Value) -> bool {
    v.as_object()
        .is_some_and(|m| m.len() == 1 && m.get("set") == Some(&Value::Bool(true)))
}

/// A body's settings without its read-only keys and inline secrets, and those secrets:
/// a secret given as a string is new; `{"set": true}` keeps the one in `stored` (an
/// error when there is none); a secret left out or `null` is dropped.
pub fn split_secrets(
    body: &Value,
    stored: &BTreeMap<String, String>,
) -> Result<Split, Vec<FieldError>> {
    let Value::Object(m) = body else {
        return Err(vec![FieldError::new(
            "",
            "expected a JSON object: the connector as written in YAML",
        )]);
    };
    let mut spec = m.clone();
    for k in READ_ONLY_KEYS {
        spec.remove(*k);
    }
    let mut secrets = BTreeMap::new();
    let mut errors = Vec::new();
    for k in SECRET_KEYS {
        match spec.remove(*k) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => {
                secrets.insert(k.to_string(), s);
            }
            Some(v) if is_set_marker(&v) => match stored.get(*k) {
                Some(s) => {
                    secrets.insert(k.to_string(), s.clone());
                }
                None => errors.push(FieldError::new(
                    *k,
                    "no stored secret to keep: give the secret itself",
                )),
            },
            Some(_) => errors.push(FieldError::new(
                *k,
                "expected the secret as a string, or {\"set\": true} to keep the stored one",
            )),
        }
    }
    if errors.is_empty() {
        Ok((spec, secrets))
    } else {
        Err(errors)
    }
}

/// Validates a connector written over the API: `spec` (no secrets) with `secrets`
/// merged in, checked by the file's validator, then by `policy`. `origin_name` names
/// it in messages.
pub fn validate(
    spec: &Map<String, Value>,
    secrets: &BTreeMap<String, String>,
    policy: &ApiPolicy,
    revision: i64,
) -> Result<ConnectorConfig, Vec<FieldError>> {
    let mut full = spec.clone();
    for (k, v) in secrets {
        full.insert(k.clone(), Value::String(v.clone()));
    }
    let rc: RawConnector = serde_path_to_error::deserialize(Value::Object(full)).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        vec![FieldError::new(
            path,
            crate::plain_types(&e.into_inner().to_string()),
        )]
    })?;
    let mut errors = policy_errors(&rc, policy);
    let mut rc = rc;
    if !errors.is_empty() {
        // a path the caller may not read is not read, not even to check it
        rc.password_file = None;
        rc.client_secret_file = None;
        rc.certificate_file = None;
        rc.private_key_file = None;
    }
    let c = match crate::validate::validate_one(&rc) {
        Ok(c) => Some(c),
        Err(errs) => {
            let refused: Vec<String> = errors.iter().map(|e| e.path.clone()).collect();
            let emptied = |p: &str| {
                refused.iter().any(|r| {
                    r.strip_suffix("_file")
                        .is_some_and(|k| p == k || p.starts_with(&format!("{k}_")))
                })
            };
            errors.extend(errs.into_iter().filter(|e| !emptied(&e.path)));
            None
        }
    };
    match c {
        Some(mut c) if errors.is_empty() => {
            c.origin = Origin::Api { revision };
            Ok(c)
        }
        _ => {
            errors.sort_by(|a, b| a.path.cmp(&b.path));
            errors.dedup();
            Err(errors)
        }
    }
}

/// `p` without `.` and `..` (resolved lexically), when it is absolute.
fn normalized(p: &Path) -> Option<PathBuf> {
    if !p.is_absolute() {
        return None;
    }
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            c => out.push(c),
        }
    }
    Some(out)
}

/// Whether `p` may be read by an API connector: absolute, under a root (as written and
/// with its symbolic links resolved, when it exists), neither inside nor around a
/// protected path. `Err`: why not.
pub fn readable_path(p: &str, policy: &ApiPolicy) -> Result<(), String> {
    let Some(norm) = normalized(Path::new(p)) else {
        return Err(format!("`{p}`: expected an absolute path"));
    };
    if policy.roots.is_empty() {
        return Err(
            "connectors created over the API may not read local files: list the folders they may read in `api.connector_roots`"
                .into(),
        );
    }
    let real = std::fs::canonicalize(&norm).unwrap_or_else(|_| norm.clone());
    let roots: Vec<PathBuf> = policy
        .roots
        .iter()
        .flat_map(|r| [r.clone(), std::fs::canonicalize(r).unwrap_or(r.clone())])
        .collect();
    for candidate in [&norm, &real] {
        if !roots.iter().any(|r| candidate.starts_with(r)) {
            let list: Vec<String> = policy
                .roots
                .iter()
                .map(|r| r.display().to_string())
                .collect();
            return Err(format!(
                "`{}` is not under a folder of `api.connector_roots` ({})",
                candidate.display(),
                list.join(", ")
            ));
        }
        for prot in &policy.protected {
            let prot_real = std::fs::canonicalize(prot).unwrap_or(prot.clone());
            for pr in [prot, &prot_real] {
                if candidate.starts_with(pr) || pr.starts_with(candidate) {
                    return Err(format!(
                        "`{p}` reaches the daemon's own files ({}): connectors created over the API may not read them",
                        pr.display()
                    ));
                }
            }
        }
    }
    Ok(())
}

/// What the API refuses that the file allows.
fn policy_errors(rc: &RawConnector, policy: &ApiPolicy) -> Vec<FieldError> {
    let mut out = Vec::new();
    if rc.kind == crate::ConnectorKind::Local
        && let Some(p) = &rc.path
        && let Err(m) = readable_path(p, policy)
    {
        out.push(FieldError::new("path", m));
    }
    if rc.follow_symlinks == Some(true) {
        out.push(FieldError::new(
            "follow_symlinks",
            "connectors created over the API do not follow symbolic links: a link inside the folder could lead anywhere on the host",
        ));
    }
    let files = [
        &rc.password_file,
        &rc.client_secret_file,
        &rc.certificate_file,
        &rc.private_key_file,
    ];
    for (key, v) in PATH_KEYS.iter().zip(files) {
        if let Some(p) = v
            && let Err(m) = readable_path(p, policy)
        {
            out.push(FieldError::new(*key, m));
        }
    }
    if !policy.allow_endpoint_overrides {
        for (key, set) in [
            ("graph_url", rc.graph_url.is_some()),
            ("token_url", rc.token_url.is_some()),
        ] {
            if set {
                out.push(FieldError::new(
                    key,
                    "connectors created over the API reach Microsoft's endpoints only (`api.allow_endpoint_overrides: true` lets them set another)",
                ));
            }
        }
    }
    out
}

/// The OpenAPI 3.0 schema of a connector body, generated from the type the validator
/// reads ([`RawConnector`]), and the schemas it refers to (under
/// `#/components/schemas/`). Secrets also take `{"set": true}` (keep the stored one);
/// the read-only keys a GET adds are accepted and ignored.
pub fn body_schema() -> (Value, Map<String, Value>) {
    let mut generator = schemars::generate::SchemaSettings::openapi3().into_generator();
    let root = generator.root_schema_for::<RawConnector>();
    let mut body = serde_json::to_value(root).unwrap_or_else(|_| json!({}));
    let mut defs = Map::new();
    if let Value::Object(m) = &mut body {
        for k in ["$schema", "title", "components", "$defs", "definitions"] {
            if let Some(Value::Object(d)) = m.remove(k) {
                // openapi3 settings put the definitions under components.schemas
                let d = match d.get("schemas") {
                    Some(Value::Object(inner)) => inner.clone(),
                    _ => d,
                };
                defs.extend(d);
            }
        }
    }
    if let Some(props) = body.get_mut("properties").and_then(Value::as_object_mut) {
        for k in SECRET_KEYS {
            if let Some(p) = props.get_mut(*k) {
                let description = p.get("description").cloned().unwrap_or(json!(""));
                *p = json!({
                    "description": description,
                    "nullable": true,
                    "oneOf": [
                        {"type": "string"},
                        {"type": "object", "required": ["set"], "additionalProperties": false,
                         "properties": {"set": {"type": "boolean", "enum": [true]}},
                         "description": "keep the stored secret"},
                    ],
                });
            }
        }
        for k in READ_ONLY_KEYS {
            props.insert(
                k.to_string(),
                json!({"description": "shown by GET; ignored in a body", "readOnly": true}),
            );
        }
    }
    openapi30(&mut body);
    for d in defs.values_mut() {
        openapi30(d);
    }
    (body, defs)
}

/// What JSON Schema says that OpenAPI 3.0 cannot: `const` becomes a one-value `enum`,
/// a `null` among the types or the `anyOf` choices becomes `nullable`.
fn openapi30(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if let Some(c) = m.remove("const") {
                m.insert("enum".into(), json!([c]));
            }
            let null = json!("null");
            if let Some(Value::Array(types)) = m.get("type").cloned()
                && types.contains(&null)
            {
                let rest: Vec<Value> = types.into_iter().filter(|t| *t != null).collect();
                match rest.as_slice() {
                    [one] => m.insert("type".into(), one.clone()),
                    _ => m.insert("type".into(), Value::Array(rest)),
                };
                m.insert("nullable".into(), json!(true));
            }
            if let Some(Value::Array(choices)) = m.get("anyOf").cloned() {
                let is_null = |c: &Value| c.get("type") == Some(&null);
                if choices.iter().any(is_null) {
                    let rest: Vec<Value> = choices.into_iter().filter(|c| !is_null(c)).collect();
                    m.remove("anyOf");
                    let key = if rest.len() == 1 { "allOf" } else { "anyOf" };
                    m.insert(key.into(), Value::Array(rest));
                    m.insert("nullable".into(), json!(true));
                }
            }
            m.values_mut().for_each(openapi30);
        }
        Value::Array(a) => a.iter_mut().for_each(openapi30),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(root: &Path) -> ApiPolicy {
        ApiPolicy {
            roots: vec![root.to_path_buf()],
            allow_endpoint_overrides: false,
            protected: vec![root.join("var")],
        }
    }

    fn check(body: Value, policy: &ApiPolicy) -> Result<ConnectorConfig, Vec<FieldError>> {
        let (spec, secrets) = split_secrets(&body, &BTreeMap::new())?;
        validate(&spec, &secrets, policy, 1)
    }

    #[test]
    fn a_body_is_checked_by_the_files_validator_with_one_entry_per_field() {
        let dir = tempfile::tempdir().unwrap();
        let p = policy(dir.path());
        let errs = check(
            json!({"id": "Bad Id", "kind": "local", "path": dir.path().join("data"),
                   "schedule": "every day", "include": ["a", "[x"]}),
            &p,
        )
        .unwrap_err();
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["id", "include[1]", "schedule"], "{errs:?}");
        assert!(errs[0].message.contains("invalid connector id `Bad Id`"));
        // a type error names its field
        let errs = check(json!({"id": "x", "kind": "local", "watch": "yes"}), &p).unwrap_err();
        assert_eq!(errs[0].path, "watch");
        assert!(
            errs[0].message.contains("expected true or false"),
            "{errs:?}"
        );
        let errs = check(json!({"id": "x", "kind": "ftp"}), &p).unwrap_err();
        assert_eq!(errs[0].path, "kind");
        let errs = check(json!({"id": "x", "kind": "local", "colour": 1}), &p).unwrap_err();
        assert!(
            errs[0].message.contains("unknown field `colour`"),
            "{errs:?}"
        );
        let ok = check(
            json!({"id": "docs", "kind": "local", "path": dir.path().join("data"),
                   "schedule": "0 3 * * *", "source": "api", "revision": 4}),
            &p,
        )
        .unwrap();
        assert_eq!(ok.origin, Origin::Api { revision: 1 });
        assert_eq!(ok.target, "/docs");
    }

    #[test]
    fn api_connectors_read_only_under_the_roots_and_never_the_daemons_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = policy(dir.path());
        let local = |path: &str| check(json!({"id": "x", "kind": "local", "path": path}), &p);
        let under = dir.path().join("share");
        assert!(local(under.to_str().unwrap()).is_ok());
        for bad in [
            "/etc".to_string(),
            "relative/dir".to_string(),
            format!("{}/share/../../etc", dir.path().display()),
            format!("{}/var/catalog", dir.path().display()),
            // a folder holding the state directory
            dir.path().display().to_string(),
        ] {
            let errs = local(&bad).unwrap_err();
            assert_eq!(errs[0].path, "path", "{bad}: {errs:?}");
        }
        // a symbolic link under a root that leads out of it
        std::os::unix::fs::symlink("/etc", dir.path().join("etc-link")).unwrap();
        let errs = local(dir.path().join("etc-link").to_str().unwrap()).unwrap_err();
        assert!(errs[0].message.contains("/etc"), "{errs:?}");
        // a link inside the folder is not followed
        let errs = check(
            json!({"id": "x", "kind": "local", "path": under, "follow_symlinks": true}),
            &p,
        )
        .unwrap_err();
        assert_eq!(errs[0].path, "follow_symlinks", "{errs:?}");
        // without roots, no local file at all
        let none = ApiPolicy::default();
        let errs = check(json!({"id": "x", "kind": "local", "path": under}), &none).unwrap_err();
        assert!(errs[0].message.contains("api.connector_roots"));
        // a secret file is a local file too
        let errs = check(
            json!({"id": "s", "kind": "smb", "server": "h", "share": "d", "username": "u",
                   "password_file": "/etc/shadow"}),
            &p,
        )
        .unwrap_err();
        assert_eq!(errs[0].path, "password_file", "{errs:?}");
    }

    #[test]
    fn endpoint_overrides_need_the_operators_consent() {
        let sp = json!({"id": "sp", "kind": "sharepoint", "tenant_id": "t", "client_id": "c",
                        "client_secret": "s3cr3t", "site": "h:/sites/x",
                        "graph_url": "http://127.0.0.1:1/v1.0", "token_url": "http://127.0.0.1:1/token"});
        let errs = check(sp.clone(), &ApiPolicy::default()).unwrap_err();
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["graph_url", "token_url"]);
        let open = ApiPolicy {
            allow_endpoint_overrides: true,
            ..Default::default()
        };
        assert!(check(sp, &open).is_ok());
    }

    #[test]
    fn the_body_schema_is_the_validators_type_with_write_only_secrets() {
        let (body, defs) = body_schema();
        let props = body["properties"].as_object().unwrap();
        assert!(props.contains_key("schedule") && props.contains_key("share"));
        assert_eq!(body["additionalProperties"], json!(false));
        assert_eq!(body["required"], json!(["id", "kind"]));
        assert!(props["password"]["oneOf"].is_array());
        assert_eq!(props["status"]["readOnly"], json!(true));
        // every reference resolves among the definitions
        let text = body.to_string() + &Value::Object(defs.clone()).to_string();
        for part in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = &part[..part.find('"').unwrap()];
            assert!(defs.contains_key(name), "{name} is not defined");
        }
        assert!(!text.contains("\"$defs\"") && !text.contains("#/$defs"));
        assert!(!text.contains("\"const\""), "OpenAPI 3.0 has no const");
    }

    #[test]
    fn secrets_are_write_only_and_the_set_marker_keeps_the_stored_one() {
        let body = json!({"id": "s", "kind": "smb", "server": "h", "share": "d",
                          "username": "u", "password": "pw-1", "status": {"state": "idle"}});
        let (spec, secrets) = split_secrets(&body, &BTreeMap::new()).unwrap();
        assert!(!spec.contains_key("password") && !spec.contains_key("status"));
        assert_eq!(secrets["password"], "pw-1");
        let c = validate(&spec, &secrets, &ApiPolicy::default(), 3).unwrap();
        assert_eq!(c.spec["password"], json!({"set": true}));
        assert!(!c.spec.to_string().contains("pw-1"));
        // the GET form sent back keeps the secret; without one stored it is an error
        let (_, kept) = split_secrets(&c.spec, &secrets).unwrap();
        assert_eq!(kept["password"], "pw-1");
        let errs = split_secrets(&c.spec, &BTreeMap::new()).unwrap_err();
        assert_eq!(errs[0].path, "password");
        let errs = split_secrets(&json!({"password": 5}), &BTreeMap::new()).unwrap_err();
        assert_eq!(errs[0].path, "password");
        assert!(split_secrets(&json!([1]), &BTreeMap::new()).is_err());
    }
}
