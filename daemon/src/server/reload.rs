//! Reloading the configuration (SIGHUP, `POST /config/reload`): an invalid file is
//! rejected and the running configuration stays; connectors are added, removed or
//! restarted; what needs a restart is reported.

use super::*;

impl Daemon {
    pub(super) async fn reload_config(self: &Arc<Self>) -> Result<serde_json::Value, ControlError> {
        let new = wiring::load_config(&self.config_path).map_err(|errs| {
            ControlError::ConfigInvalid(errs.0.iter().map(|e| e.to_string()).collect())
        })?;
        let old = self.config();
        let mut added = Vec::new();
        let mut removed = Vec::new();
        let mut changed = Vec::new();
        let mut built = HashMap::new();
        for c in &new.connectors {
            let conn = wiring::connector(c).map_err(|e| {
                ControlError::ConfigInvalid(vec![format!("connector {}: {e:#}", c.id)])
            })?;
            built.insert(c.id.clone(), conn);
        }
        let mut restart = Vec::new();
        {
            let mut conns = self.conns.lock().unwrap();
            let ids: Vec<String> = conns.keys().cloned().collect();
            for id in ids {
                if new.connector(&id).is_none() {
                    if let Some(s) = conns.remove(&id) {
                        s.tasks.cancel();
                    }
                    removed.push(id);
                }
            }
            for c in &new.connectors {
                let conn = built.remove(&c.id).expect("built above");
                match conns.get_mut(&c.id) {
                    Some(s) if s.cfg.same_settings(c) => {}
                    Some(s) => {
                        s.tasks.cancel();
                        s.tasks = CancellationToken::new();
                        s.cfg = c.clone();
                        s.connector = conn; // a running job keeps the config it started with
                        s.next_run = None;
                        changed.push(c.id.clone());
                        restart.push(c.id.clone());
                    }
                    None => {
                        conns.insert(c.id.clone(), ConnState::new(c.clone(), conn, false));
                        added.push(c.id.clone());
                        restart.push(c.id.clone());
                    }
                }
            }
        }
        for id in &restart {
            self.start_tasks(id);
        }
        let restart_required = format!("{:?}{:?}{:?}", old.catalog, old.object_store, old.pipeline)
            != format!("{:?}{:?}{:?}", new.catalog, new.object_store, new.pipeline)
            || old.api.listen != new.api.listen;
        let vectorize_changed = format!("{:?}", old.vectorize) != format!("{:?}", new.vectorize);
        *self.auth.write().unwrap() = auth_of(&new);
        *self.cfg.write().unwrap() = Arc::new(new);
        self.ensure_vectorizer();
        tracing::info!(?added, ?removed, ?changed, "configuration reloaded");
        Ok(json!({
            "reloaded": true,
            "added": added,
            "removed": removed,
            "changed": changed,
            "restart_required_for": match (restart_required, vectorize_changed) {
                (false, false) => json!([]),
                (true, false) => json!(["catalog, object_store, pipeline or api.listen changed: restart to apply"]),
                (false, true) => json!(["vectorize changed: restart to apply"]),
                (true, true) => json!(["catalog, object_store, pipeline or api.listen changed: restart to apply", "vectorize changed: restart to apply"]),
            },
        }))
    }
}
