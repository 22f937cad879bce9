//! Reloading the configuration (SIGHUP, `POST /config/reload`): an invalid file is
//! rejected and the running configuration stays; connectors are added, removed or
//! restarted; what needs a restart is reported. What changes is decided by pure
//! functions of the old and new configuration ([`connector_changes`],
//! [`needs_restart`]).

use super::*;

/// What a reload does to the connectors.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct ConnectorChanges {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Running connectors whose settings (secrets included) changed: restarted with
    /// the new ones (a job in flight keeps the settings it started with).
    pub changed: Vec<String>,
}

/// How the connectors `running` become those of `new` (ids in the order of `running`
/// for removals, of `new` for the rest).
pub(super) fn connector_changes<'a>(
    running: impl IntoIterator<Item = &'a ConnectorConfig>,
    new: &Config,
) -> ConnectorChanges {
    let running: Vec<&ConnectorConfig> = running.into_iter().collect();
    let mut out = ConnectorChanges::default();
    for r in &running {
        if new.connector(&r.id).is_none() {
            out.removed.push(r.id.clone());
        }
    }
    for c in &new.connectors {
        match running.iter().find(|r| r.id == c.id) {
            None => out.added.push(c.id.clone()),
            Some(r) if !r.same_settings(c) => out.changed.push(c.id.clone()),
            Some(_) => {}
        }
    }
    out
}

/// The changes a reload cannot apply, each as what to tell the operator.
pub(super) fn needs_restart(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut out = Vec::new();
    let store = |c: &Config| {
        format!(
            "{:?}{:?}{:?}{:?}",
            c.catalog, c.object_store, c.store_key_file, c.pipeline
        )
    };
    if store(old) != store(new) || old.api.listen != new.api.listen {
        out.push("catalog, object_store, pipeline or api.listen changed: restart to apply");
    }
    if format!("{:?}", old.vectorize) != format!("{:?}", new.vectorize) {
        out.push("vectorize changed: restart to apply");
    }
    if old.secrets_key_file != new.secrets_key_file {
        out.push("secrets.key_file changed: restart to apply");
    }
    out
}

impl Daemon {
    pub(super) async fn reload_config(self: &Arc<Self>) -> Result<serde_json::Value, ControlError> {
        let _one = self.applying.lock().await;
        let file = wiring::load_config(&self.config_path).map_err(|errs| {
            ControlError::ConfigInvalid(errs.0.iter().map(|e| e.to_string()).collect())
        })?;
        let api = self
            .load_api_connectors(&file)
            .await
            .map_err(|e| ControlError::Internal(format!("{e:#}")))?;
        let new = api_connectors::merged(file, api).map_err(ControlError::ConfigInvalid)?;
        let summary = self.apply_config(new)?;
        self.publish("config.reloaded", None, summary.clone());
        Ok(summary)
    }

    /// Makes `new` the running configuration: connectors added, removed or restarted
    /// with their new settings; returns what changed. The caller holds `applying`.
    pub(super) fn apply_config(
        self: &Arc<Self>,
        new: Config,
    ) -> Result<serde_json::Value, ControlError> {
        let old = self.config();
        let mut built = HashMap::new();
        for c in &new.connectors {
            let conn = wiring::connector(c).map_err(|e| {
                ControlError::ConfigInvalid(vec![format!("connector {}: {e:#}", c.id)])
            })?;
            built.insert(c.id.clone(), conn);
        }
        let changes = {
            let mut conns = self.conns.lock().unwrap();
            let changes = connector_changes(conns.values().map(|s| &s.cfg), &new);
            for id in &changes.removed {
                if let Some(s) = conns.remove(id) {
                    s.tasks.cancel();
                }
            }
            for id in &changes.changed {
                let (Some(s), Some(c)) = (conns.get_mut(id), new.connector(id)) else {
                    continue;
                };
                s.tasks.cancel();
                s.tasks = CancellationToken::new();
                s.cfg = c.clone();
                s.connector = built.remove(id).expect("built above");
                s.next_run = None;
            }
            for id in &changes.added {
                let c = new.connector(id).expect("listed in the new configuration");
                let conn = built.remove(id).expect("built above");
                conns.insert(id.clone(), ConnState::new(c.clone(), conn, false));
            }
            changes
        };
        for id in changes.added.iter().chain(&changes.changed) {
            self.start_tasks(id);
        }
        let restart = needs_restart(&old, &new);
        *self.auth.write().unwrap() = auth_of(&new);
        *self.cfg.write().unwrap() = Arc::new(new);
        self.ensure_vectorizer();
        let ConnectorChanges {
            added,
            removed,
            changed,
        } = changes;
        tracing::info!(?added, ?removed, ?changed, "configuration reloaded");
        for (kind, ids) in [
            ("connector.created", &added),
            ("connector.removed", &removed),
            ("connector.changed", &changed),
        ] {
            for id in ids {
                self.publish(kind, Some(id), json!({}));
            }
        }
        Ok(json!({
            "reloaded": true,
            "added": added,
            "removed": removed,
            "changed": changed,
            "restart_required_for": restart,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        let env = std::collections::HashMap::from([("PW".to_string(), "pw-1".to_string())]);
        let text = format!("version: 1\nstate_dir: /tmp/tributary-reload-test\n{text}");
        tributary_config::load_str(std::path::Path::new("/tmp/t.yaml"), &text, &env)
            .map(|l| l.config)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    const A: &str = "  - id: a\n    kind: local\n    path: /srv/a\n    target: /a\n";
    const B: &str = "  - id: b\n    kind: local\n    path: /srv/b\n    target: /b\n";

    #[test]
    fn connectors_are_added_removed_and_changed_by_their_settings() {
        let old = config(&format!("connectors:\n{A}{B}"));
        let same = config(&format!("connectors:\n{B}{A}"));
        assert_eq!(
            connector_changes(&old.connectors, &same),
            ConnectorChanges::default(),
            "order alone changes nothing"
        );
        let c = "  - id: c\n    kind: local\n    path: /srv/c\n    target: /c\n";
        let new = config(&format!(
            "connectors:\n{c}  - id: b\n    kind: local\n    path: /srv/b2\n    target: /b\n"
        ));
        assert_eq!(
            connector_changes(&old.connectors, &new),
            ConnectorChanges {
                added: vec!["c".into()],
                removed: vec!["a".into()],
                changed: vec!["b".into()],
            }
        );
    }

    #[test]
    fn a_new_secret_alone_restarts_the_connector() {
        let smb = |pw: &str| {
            config(&format!(
                "connectors:\n  - id: s\n    kind: smb\n    server: files.example\n    share: docs\n    username: u\n    password: {pw}\n    target: /s\n"
            ))
        };
        let old = smb("${PW}");
        assert!(connector_changes(&old.connectors, &smb("${PW}")) == ConnectorChanges::default());
        assert_eq!(
            connector_changes(&old.connectors, &smb("pw-2")).changed,
            ["s"]
        );
    }

    #[test]
    fn what_a_reload_cannot_apply_is_named() {
        let old = config(&format!("connectors:\n{A}"));
        assert!(needs_restart(&old, &config(&format!("connectors:\n{A}{B}"))).is_empty());
        let moved = config(&format!("api:\n  listen: 127.0.0.1:9999\nconnectors:\n{A}"));
        assert_eq!(needs_restart(&old, &moved).len(), 1);
        assert!(needs_restart(&old, &moved)[0].contains("api.listen"));
        let both = config(&format!(
            "api:\n  listen: 127.0.0.1:9999\nvectorize:\n  passage_tokens: 64\nconnectors:\n{A}"
        ));
        assert_eq!(needs_restart(&old, &both).len(), 2);
    }
}
