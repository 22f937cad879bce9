//! Connectors created over the admin API: stored in the catalog (spec and sealed
//! secrets, [`tributary_catalog::api_connectors`]), checked by the configuration's own
//! validator plus the API's policy ([`tributary_config::api_connector`]), and run beside
//! the file's connectors. The running set is always the file's connectors plus the
//! catalog's: every change (a write here, a reload, a change another instance made,
//! seen by the fleet poll) rebuilds it and applies the difference as a reload does.

use std::collections::BTreeMap;

use serde_json::Value;
use tributary_api::ConnectorSpec;
use tributary_catalog::api_connectors::{ChangeRefused, ConnectorWrite, StoredConnector};
use tributary_config::Origin;
use tributary_config::api_connector::{self, ApiPolicy, FieldError};
use tributary_store::crypt::Kek;

use super::*;

/// What seals the secrets of connectors created over the API (`secrets.key_file`).
pub(super) fn load_secrets_key(cfg: &Config) -> anyhow::Result<Option<Arc<Kek>>> {
    cfg.secrets_key_file
        .as_deref()
        .map(|p| {
            Kek::load(p)
                .map(Arc::new)
                .map_err(|e| anyhow::anyhow!("secrets.key_file: {e}"))
        })
        .transpose()
}

/// What connectors created over the API may read and reach, under configuration `cfg`
/// read from `config_path`.
pub(super) fn policy(cfg: &Config, config_path: &std::path::Path) -> ApiPolicy {
    let mut protected = vec![cfg.state_dir.clone(), config_path.to_path_buf()];
    protected.extend(cfg.store_key_file.clone());
    protected.extend(cfg.secrets_key_file.clone());
    if let Some((cert, key)) = &cfg.api.tls {
        protected.push(cert.clone());
        protected.push(key.clone());
    }
    if let tributary_config::CatalogConfig::Sqlite { path } = &cfg.catalog {
        protected.push(path.clone());
    }
    if let tributary_config::ObjectStoreConfig::Local { path } = &cfg.object_store {
        protected.push(path.clone());
    }
    ApiPolicy {
        roots: cfg.api.connector_roots.clone(),
        allow_endpoint_overrides: cfg.api.allow_endpoint_overrides,
        protected,
    }
}

fn secrets_aad(id: &str) -> Vec<u8> {
    format!("tributary connector {id} secrets").into_bytes()
}

/// The running configuration `file` with the API connectors `api` beside its own; an id
/// in both is an error naming it.
pub(super) fn merged(mut file: Config, api: Vec<ConnectorConfig>) -> Result<Config, Vec<String>> {
    let mut clashes = Vec::new();
    for c in api {
        if file.connector(&c.id).is_some() {
            clashes.push(format!(
                "connector `{}` is defined in {} and was also created over the API: rename one, or delete the API one (DELETE /api/v1/connectors/{} is refused while the file defines it: remove it from the file first)",
                c.id,
                file.source.display(),
                c.id
            ));
        } else {
            file.connectors.push(c);
        }
    }
    if clashes.is_empty() {
        Ok(file)
    } else {
        Err(clashes)
    }
}

/// A connector as the catalog keeps it.
struct StoredForm {
    spec: String,
    sealed: Option<Vec<u8>>,
    key_id: Option<String>,
}

impl StoredForm {
    fn write<'a>(&'a self, by: &'a str) -> ConnectorWrite<'a> {
        ConnectorWrite {
            spec: &self.spec,
            secrets: self.sealed.as_deref(),
            key_id: self.key_id.as_deref(),
            by,
        }
    }
}

/// How long a connector test may take.
pub(super) const TEST_DEADLINE: Duration = Duration::from_secs(30);

/// Reaches a connector's source once, as `tributary check --connect` does (log-on,
/// share or site, the root listed): what it found, or why not, in words that name no
/// secret.
pub(super) async fn reach(conn: &dyn tributary_connectors::Connector) -> Value {
    use tributary_connectors::ConnectorError;
    let started = Instant::now();
    let outcome = tokio::time::timeout(TEST_DEADLINE, conn.check()).await;
    let ms = started.elapsed().as_millis() as u64;
    let redact = |m: String| tributary_config::redact::redact(&m).into_owned();
    match outcome {
        Ok(Ok(found)) => serde_json::json!({"ok": true, "found": redact(found), "duration_ms": ms}),
        Ok(Err(e)) => {
            let code = match &e {
                ConnectorError::Auth(_) => "ACCESS_DENIED",
                ConnectorError::Unavailable(_) => "SOURCE_UNAVAILABLE",
                ConnectorError::Other(_) => "SOURCE_ERROR",
            };
            serde_json::json!({"ok": false, "error": {"code": code, "message": redact(e.to_string())}, "duration_ms": ms})
        }
        Err(_) => {
            serde_json::json!({"ok": false, "error": {"code": "TIMEOUT", "message": format!("the source did not answer within {} s", TEST_DEADLINE.as_secs())}, "duration_ms": ms})
        }
    }
}

impl Daemon {
    /// A connector body as it would run, checked as a creation checks it, for a test
    /// that stores nothing (an inline secret needs no key then).
    pub(super) fn checked_connector(&self, body: &Value) -> Result<ConnectorConfig, ControlError> {
        let (spec, secrets) = api_connector::split_secrets(body, &BTreeMap::new())
            .map_err(ControlError::ConnectorInvalid)?;
        let file = self.file_config();
        api_connector::validate(&spec, &secrets, &policy(&file, &self.config_path), 0)
            .map_err(ControlError::ConnectorInvalid)
    }

    fn open_secrets(&self, row: &StoredConnector) -> Result<BTreeMap<String, String>, String> {
        let Some(sealed) = &row.secrets else {
            return Ok(BTreeMap::new());
        };
        let Some(key) = &self.secrets_key else {
            return Err("its secrets are sealed, and no `secrets.key_file` is configured".into());
        };
        let id = key.id();
        if row.key_id.as_deref() != Some(id.as_str()) {
            return Err(format!(
                "its secrets were sealed with key {}, and `secrets.key_file` is key {id}",
                row.key_id.as_deref().unwrap_or("?")
            ));
        }
        let plain = key
            .open_secret(&secrets_aad(&row.id), sealed)
            .map_err(|_| "its sealed secrets do not open with `secrets.key_file`".to_string())?;
        serde_json::from_slice(&plain)
            .map_err(|e| format!("its sealed secrets are unreadable: {e}"))
    }

    /// A stored connector as it runs, or why it cannot.
    fn stored_connector(
        &self,
        row: &StoredConnector,
        policy: &ApiPolicy,
    ) -> Result<ConnectorConfig, String> {
        let secrets = self.open_secrets(row)?;
        let spec: serde_json::Map<String, Value> =
            serde_json::from_str(&row.spec).map_err(|e| format!("unreadable spec: {e}"))?;
        api_connector::validate(&spec, &secrets, policy, row.revision).map_err(|errs| {
            errs.iter()
                .map(|e| format!("{}: {}", e.path, e.message))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    /// The catalog's API connectors under configuration `file`: one that no longer
    /// passes (a root removed, a key changed) is left out and logged.
    pub(super) async fn load_api_connectors(
        &self,
        file: &Config,
    ) -> anyhow::Result<Vec<ConnectorConfig>> {
        let policy = policy(file, &self.config_path);
        let mut out = Vec::new();
        let rows = self.pipeline.catalog.list_api_connectors().await?;
        *self.api_revisions_seen.lock().unwrap() =
            rows.iter().map(|r| (r.id.clone(), r.revision)).collect();
        for row in rows {
            match self.stored_connector(&row, &policy) {
                Ok(c) => out.push(c),
                Err(why) => {
                    tracing::error!(connector = %row.id, revision = row.revision, "connector created over the API not loaded: {why}")
                }
            }
        }
        Ok(out)
    }

    /// The file's part of the running configuration.
    pub(super) fn file_config(&self) -> Config {
        let mut cfg = (*self.config()).clone();
        cfg.connectors.retain(|c| c.origin == Origin::File);
        cfg
    }

    /// Applies the catalog's API connectors as they are now (after a write here, or one
    /// another instance made). A clash with the file keeps the file's connector.
    pub(super) async fn sync_api_connectors(self: &Arc<Self>) -> anyhow::Result<()> {
        let _one = self.applying.lock().await;
        let file = self.file_config();
        let mut api = self.load_api_connectors(&file).await?;
        api.retain(|c| {
            let clash = file.connector(&c.id).is_some();
            if clash {
                tracing::error!(connector = %c.id, "an API connector has the id of a connector of the file: the file's runs");
            }
            !clash
        });
        let new = merged(file, api).expect("clashes left out");
        self.apply_config(new)
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        Ok(())
    }

    /// Whether the catalog's API connectors changed since they were last applied here
    /// (by another instance, or a write whose apply failed).
    pub(super) async fn api_connectors_changed(&self) -> anyhow::Result<bool> {
        let stored = self.pipeline.catalog.api_connector_revisions().await?;
        Ok(*self.api_revisions_seen.lock().unwrap() != stored)
    }

    pub(super) fn spec_of(&self, id: &str) -> Option<ConnectorSpec> {
        let cfg = self.config();
        let c = cfg.connector(id)?;
        Some(match c.origin {
            Origin::File => ConnectorSpec {
                spec: c.spec.clone(),
                source: "file",
                revision: None,
                file: Some(cfg.source.display().to_string()),
            },
            Origin::Api { revision } => ConnectorSpec {
                spec: c.spec.clone(),
                source: "api",
                revision: Some(revision),
                file: None,
            },
        })
    }

    /// `body` checked as a connector written over the API, with `stored` the secrets
    /// its `{"set": true}` markers keep: the spec to store and its secrets.
    fn checked(
        &self,
        body: &Value,
        stored: &BTreeMap<String, String>,
    ) -> Result<api_connector::Split, ControlError> {
        let (spec, secrets) =
            api_connector::split_secrets(body, stored).map_err(ControlError::ConnectorInvalid)?;
        let file = self.file_config();
        let policy = policy(&file, &self.config_path);
        let mut errors = match api_connector::validate(&spec, &secrets, &policy, 0) {
            // what the file's connectors go through at a reload, too
            Ok(c) => match wiring::connector(&c) {
                Ok(_) => Vec::new(),
                Err(e) => vec![FieldError::new("", format!("{e:#}"))],
            },
            Err(e) => e,
        };
        if self.secrets_key.is_none() {
            for k in secrets.keys() {
                errors.push(FieldError::new(
                    k.clone(),
                    format!("a secret given inline is stored sealed, and no key is configured: set `secrets.key_file` in the configuration file (`tributary key generate --out FILE` writes one), or give `{k}_file` instead"),
                ));
            }
        }
        if errors.is_empty() {
            Ok((spec, secrets))
        } else {
            Err(ControlError::ConnectorInvalid(errors))
        }
    }

    /// A checked connector as the catalog keeps it: its spec as JSON, its secrets sealed.
    fn stored_form(
        &self,
        id: &str,
        spec: serde_json::Map<String, Value>,
        secrets: &BTreeMap<String, String>,
    ) -> StoredForm {
        let (sealed, key_id) = match (&self.secrets_key, secrets.is_empty()) {
            (Some(k), false) => {
                let plain = zeroize::Zeroizing::new(
                    serde_json::to_vec(secrets).expect("a map of strings serializes"),
                );
                (Some(k.seal_secret(&secrets_aad(id), &plain)), Some(k.id()))
            }
            _ => (None, None),
        };
        StoredForm {
            spec: Value::Object(spec).to_string(),
            sealed,
            key_id,
        }
    }

    pub(super) async fn create_api_connector(
        self: &Arc<Self>,
        body: Value,
        by: &str,
    ) -> Result<ConnectorSpec, ControlError> {
        let (spec, secrets) = self.checked(&body, &BTreeMap::new())?;
        let id = spec
            .get("id")
            .and_then(Value::as_str)
            .expect("a valid connector has an id")
            .to_string();
        if self
            .config()
            .connector(&id)
            .is_some_and(|c| c.origin == Origin::File)
        {
            return Err(ControlError::ConnectorExists { id, source: "file" });
        }
        let stored = self.stored_form(&id, spec, &secrets);
        match self
            .pipeline
            .catalog
            .insert_api_connector(&id, &stored.write(by))
            .await
        {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return Err(ControlError::ConnectorExists { id, source: "api" }),
            Err(e) => return Err(ControlError::Internal(e.to_string())),
        }
        tracing::info!(connector = %id, by, "connector created over the API");
        self.after_write(&id).await
    }

    pub(super) async fn replace_api_connector(
        self: &Arc<Self>,
        id: &str,
        body: Value,
        if_match: Option<i64>,
        by: &str,
    ) -> Result<ConnectorSpec, ControlError> {
        self.refuse_file_connector(id)?;
        if body.get("id").is_some_and(|v| v != id) {
            return Err(ControlError::ConnectorInvalid(vec![FieldError::new(
                "id",
                format!(
                    "the id is `{id}` (a connector cannot be renamed: create another and delete this one)"
                ),
            )]));
        }
        let mut body = body;
        if let Value::Object(m) = &mut body {
            m.insert("id".into(), Value::String(id.to_string()));
        }
        // without If-Match, the write is still made against the revision read: a
        // concurrent change is read again rather than undone
        for _ in 0..3 {
            let Some(row) = self.catalog_row(id).await? else {
                return Err(ControlError::ConnectorNotFound);
            };
            if let Some(want) = if_match
                && want != row.revision
            {
                return Err(ControlError::PreconditionFailed {
                    current: row.revision,
                });
            }
            let stored = self.open_secrets(&row).unwrap_or_default();
            let (spec, secrets) = self.checked(&body, &stored)?;
            let stored = self.stored_form(id, spec, &secrets);
            match self
                .pipeline
                .catalog
                .update_api_connector(id, row.revision, &stored.write(by))
                .await
            {
                Ok(Ok(_)) => {
                    tracing::info!(connector = %id, by, "connector changed over the API");
                    return self.after_write(id).await;
                }
                Ok(Err(ChangeRefused::NotFound)) => return Err(ControlError::ConnectorNotFound),
                Ok(Err(ChangeRefused::Stale(current))) if if_match.is_some() => {
                    return Err(ControlError::PreconditionFailed { current });
                }
                Ok(Err(_)) => continue,
                Err(e) => return Err(ControlError::Internal(e.to_string())),
            }
        }
        Err(ControlError::Internal(format!(
            "connector {id} kept changing under three attempts to write it"
        )))
    }

    pub(super) async fn delete_api_connector(
        self: &Arc<Self>,
        id: &str,
        if_match: Option<i64>,
        by: &str,
    ) -> Result<(), ControlError> {
        self.refuse_file_connector(id)?;
        loop {
            let Some(row) = self.catalog_row(id).await? else {
                return Err(ControlError::ConnectorNotFound);
            };
            let revision = if_match.unwrap_or(row.revision);
            match self
                .pipeline
                .catalog
                .delete_api_connector(id, revision)
                .await
            {
                Ok(Ok(())) => break,
                Ok(Err(ChangeRefused::Stale(current))) if if_match.is_some() => {
                    return Err(ControlError::PreconditionFailed { current });
                }
                Ok(Err(ChangeRefused::NotFound)) => return Err(ControlError::ConnectorNotFound),
                Ok(Err(_)) => continue,
                Err(e) => return Err(ControlError::Internal(e.to_string())),
            }
        }
        tracing::info!(connector = %id, by, "connector deleted over the API; its stored versions are kept");
        self.sync_api_connectors()
            .await
            .map_err(|e| ControlError::Internal(format!("{e:#}")))?;
        self.pipeline.catalog.signal_connectors_changed().await;
        Ok(())
    }

    fn refuse_file_connector(&self, id: &str) -> Result<(), ControlError> {
        let cfg = self.config();
        match cfg.connector(id) {
            Some(c) if c.origin == Origin::File => Err(ControlError::ManagedByFile {
                id: id.to_string(),
                file: cfg.source.display().to_string(),
            }),
            _ => Ok(()),
        }
    }

    async fn catalog_row(&self, id: &str) -> Result<Option<StoredConnector>, ControlError> {
        self.pipeline
            .catalog
            .get_api_connector(id)
            .await
            .map_err(|e| ControlError::Internal(e.to_string()))
    }

    /// After a write: the running set follows the catalog, the fleet is told, and the
    /// connector is shown as it now runs.
    async fn after_write(self: &Arc<Self>, id: &str) -> Result<ConnectorSpec, ControlError> {
        self.sync_api_connectors()
            .await
            .map_err(|e| ControlError::Internal(format!("{e:#}")))?;
        self.pipeline.catalog.signal_connectors_changed().await;
        self.spec_of(id).ok_or_else(|| {
            ControlError::Internal(format!(
                "connector {id} was stored but did not load (see the log)"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        let text = format!("version: 1\nstate_dir: /tmp/tributary-merge-test\n{text}");
        tributary_config::load_str(
            std::path::Path::new("/tmp/t.yaml"),
            &text,
            &Default::default(),
        )
        .map(|l| l.config)
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn api(id: &str) -> ConnectorConfig {
        let spec = serde_json::json!({"id": id, "kind": "smb", "server": "h", "share": "s", "username": "u", "password_file": "/dev/null"});
        let policy = ApiPolicy {
            roots: vec!["/dev".into()],
            ..Default::default()
        };
        api_connector::validate(spec.as_object().unwrap(), &BTreeMap::new(), &policy, 2).unwrap()
    }

    #[test]
    fn api_connectors_run_beside_the_files_and_a_shared_id_is_refused() {
        let file = config("connectors:\n  - id: a\n    kind: local\n    path: /srv/a\n");
        let both = merged(file.clone(), vec![api("b")]).unwrap();
        let ids: Vec<(&str, &Origin)> = both
            .connectors
            .iter()
            .map(|c| (c.id.as_str(), &c.origin))
            .collect();
        assert_eq!(
            ids,
            [("a", &Origin::File), ("b", &Origin::Api { revision: 2 })]
        );
        let errs = merged(file, vec![api("a")]).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0].contains("`a` is defined in /tmp/t.yaml"),
            "{}",
            errs[0]
        );
    }

    #[test]
    fn the_daemons_own_files_are_protected_from_api_connectors() {
        let cfg = config(
            "object_store:\n  kind: local\n  path: /srv/objects\napi:\n  connector_roots: [/srv]\n",
        );
        let p = policy(&cfg, std::path::Path::new("/srv/tributary.yaml"));
        assert_eq!(p.roots, [std::path::PathBuf::from("/srv")]);
        for bad in [
            "/srv/objects",
            "/srv/tributary.yaml",
            "/tmp/tributary-merge-test/x",
        ] {
            assert!(api_connector::readable_path(bad, &p).is_err(), "{bad}");
        }
        assert!(api_connector::readable_path("/srv/docs", &p).is_ok());
    }
}
