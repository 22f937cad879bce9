//! The daemon as the API's [`Control`]: connector status, run now, pause, cancel,
//! conflict resolution, reload, search and the vector queue.

use super::*;

fn connector_json(c: &ConnectorConfig) -> serde_json::Value {
    // Only fields known to carry no secret are shown.
    let mut v = json!({
        "id": c.id,
        "kind": kind_name(c),
        "target": c.target,
        "schedule": c.schedule.as_ref().map(|s| s.expression.clone()),
        "include": c.include,
        "exclude": c.exclude,
        "glob_case_insensitive": c.glob_case_insensitive,
        "max_file_size": c.max_file_size,
        "max_delete_percent": c.max_delete_percent,
        "conflict_policy": c.conflict_policy,
        "case_sensitive": c.case_sensitive,
        "watch": c.watch,
        "vectorize": c.vectorize,
    });
    match &c.source {
        SourceConfig::Local {
            path,
            follow_symlinks,
            one_file_system,
        } => {
            v["path"] = json!(path.display().to_string());
            v["follow_symlinks"] = json!(follow_symlinks);
            v["one_file_system"] = json!(one_file_system);
        }
        // never a secret
        SourceConfig::SharePoint(s) => {
            v["tenant_id"] = json!(s.tenant_id);
            v["client_id"] = json!(s.client_id);
            v["site"] = json!(s.site);
            v["drives"] = json!(s.drives);
            v["graph_url"] = json!(s.graph_url);
            v["token_url"] = json!(s.token_url);
        }
        SourceConfig::Smb(s) => {
            v["server"] = json!(s.server);
            v["port"] = json!(s.port);
            v["share"] = json!(s.share);
            v["path"] = json!(s.path);
            v["domain"] = json!(s.domain);
            v["username"] = json!(s.username);
            v["protocol"] = json!(s.protocol);
            v["directory_timeout_secs"] = json!(s.timeout.as_secs_f64());
            v["workers"] = json!(s.workers);
        }
    }
    v
}

fn kind_name(c: &ConnectorConfig) -> &'static str {
    match c.kind {
        tributary_config::ConnectorKind::Local => "local",
        tributary_config::ConnectorKind::Smb => "smb",
        tributary_config::ConnectorKind::Sharepoint => "sharepoint",
    }
}

fn vectors_off() -> ControlError {
    ControlError::VectorsUnavailable(
        "vectorization is off: no connector has `vectorize: true`".into(),
    )
}

#[async_trait]
impl Control for Handle {
    fn connectors(&self) -> Vec<ConnectorStatus> {
        let conns = self.conns.lock().unwrap();
        let mut out: Vec<ConnectorStatus> = conns
            .values()
            .map(|s| ConnectorStatus {
                id: s.cfg.id.clone(),
                kind: kind_name(&s.cfg).into(),
                target: s.cfg.target.clone(),
                schedule: s.cfg.schedule.as_ref().map(|x| x.expression.clone()),
                timezone: s.cfg.schedule.as_ref().map(|x| x.zone.name()),
                watch: s.cfg.watch,
                paused: s.paused,
                state: match (s.current, s.running) {
                    (None, _) => "idle",
                    (Some(_), false) => "queued",
                    (Some(_), true) => "running",
                }
                .into(),
                current_job: s.current.filter(|j| *j > 0),
                next_run: if s.paused {
                    None
                } else {
                    s.next_run
                        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                },
                skipped_runs: s.skipped,
                config: connector_json(&s.cfg),
                source: match s.cfg.origin {
                    tributary_config::Origin::File => "file",
                    tributary_config::Origin::Api { .. } => "api",
                },
                revision: match s.cfg.origin {
                    tributary_config::Origin::File => None,
                    tributary_config::Origin::Api { revision } => Some(revision),
                },
                quota: s.cfg.quota,
            })
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    async fn run_now(
        &self,
        connector: &str,
        full: bool,
        dry_run: bool,
    ) -> Result<i64, ControlError> {
        let kind = if full {
            JobKind::Full
        } else {
            JobKind::Incremental
        };
        if dry_run {
            self.trigger_dry_run(connector, kind).await
        } else {
            self.trigger(connector, kind, "api").await
        }
    }

    async fn resolve_conflict(
        &self,
        id: i64,
        resolution: &str,
        by: &str,
    ) -> Result<tributary_catalog::ConflictRow, ControlError> {
        use tributary_catalog::ResolveError;
        use tributary_pipeline::ResolveFailure;
        let c = tributary_pipeline::resolve_conflict(&self.pipeline, id, resolution, by)
            .await
            .map_err(|e| match e {
                ResolveFailure::Resolve(ResolveError::NotFound(id)) => {
                    ControlError::ConflictNotFound(id)
                }
                ResolveFailure::Resolve(ResolveError::AlreadyResolved(id)) => {
                    ControlError::ConflictAlreadyResolved(id)
                }
                ResolveFailure::Resolve(e @ ResolveError::NotApplicable { .. }) => {
                    ControlError::ResolutionInvalid(e.to_string())
                }
                e => ControlError::Internal(e.to_string()),
            })?;
        // the decisions that act through a job
        let rerun = match (c.kind.as_str(), resolution) {
            ("mass_delete", "allow") => {
                if let Some(s) = self.conns.lock().unwrap().get_mut(&c.connector) {
                    s.allow_mass_delete = true;
                }
                Some(JobKind::Full)
            }
            ("torn_read", "keep_source") => Some(JobKind::Incremental),
            _ => None,
        };
        if let Some(kind) = rerun {
            match self.trigger(&c.connector, kind, "conflict").await {
                Ok(_) | Err(ControlError::AlreadyRunning(_)) => {
                    if let Some(s) = self.conns.lock().unwrap().get_mut(&c.connector) {
                        // a running job may not have seen the decision: run once more
                        s.rerun_pending |= s.current.is_some();
                    }
                }
                Err(e) => {
                    tracing::warn!(conflict = id, error = ?e, "the job acting on the resolution was not started")
                }
            }
        }
        self.notify_vectorizer();
        self.publish(
            "conflict.resolved",
            Some(&c.connector),
            json!({"conflict_id": c.id, "kind": c.kind, "path": c.path, "resolution": c.resolution, "by": c.resolved_by}),
        );
        Ok(c)
    }

    async fn set_paused(&self, connector: &str, paused: bool) -> Result<(), ControlError> {
        {
            let mut conns = self.conns.lock().unwrap();
            let s = conns
                .get_mut(connector)
                .ok_or(ControlError::ConnectorNotFound)?;
            s.paused = paused;
        }
        self.pipeline
            .catalog
            .set_paused(connector, paused)
            .await
            .map_err(|e| ControlError::Internal(e.to_string()))?;
        self.publish(
            if paused {
                "connector.paused"
            } else {
                "connector.resumed"
            },
            Some(connector),
            json!({}),
        );
        Ok(())
    }

    async fn cancel_job(&self, job_id: i64) -> Result<(), ControlError> {
        if let Some(l) = self.live.lock().unwrap().get(&job_id) {
            l.control.stop(StopReason::Cancelled);
            return Ok(());
        }
        // queued, or running on another instance, which acts within its poll
        use tributary_catalog::queue::CancelOutcome;
        match self.pipeline.catalog.request_cancel(job_id).await {
            Ok(CancelOutcome::Dequeued) => {
                let mut connector = None;
                for (id, s) in self.conns.lock().unwrap().iter_mut() {
                    if s.current == Some(job_id) {
                        s.current = None;
                        connector = Some(id.clone());
                    }
                }
                self.publish(
                    "job.finished",
                    connector.as_deref(),
                    json!({"job_id": job_id, "status": "cancelled", "error_count": 0, "last_error": null}),
                );
                tracing::info!(job_id, "queued job cancelled");
                Ok(())
            }
            Ok(CancelOutcome::Requested { instance }) => {
                tracing::info!(
                    job_id,
                    instance = instance.as_deref().unwrap_or("?"),
                    "cancel requested from the instance running the job"
                );
                Ok(())
            }
            Ok(CancelOutcome::NotActive) => Err(ControlError::JobNotRunning),
            Err(e) => Err(ControlError::Internal(e.to_string())),
        }
    }

    fn live_job(&self, job_id: i64) -> Option<LiveJob> {
        let live = self.live.lock().unwrap();
        live.get(&job_id).map(|l| LiveJob {
            stats: l.progress.snapshot(),
            log: l.progress.log_lines(),
        })
    }

    async fn reload(&self) -> Result<serde_json::Value, ControlError> {
        self.reload_config().await
    }

    async fn connector_spec(&self, id: &str) -> Result<ConnectorSpec, ControlError> {
        self.spec_of(id).ok_or(ControlError::ConnectorNotFound)
    }

    async fn create_connector(
        &self,
        body: serde_json::Value,
        by: &str,
    ) -> Result<ConnectorSpec, ControlError> {
        self.create_api_connector(body, by).await
    }

    async fn replace_connector(
        &self,
        id: &str,
        body: serde_json::Value,
        if_match: Option<i64>,
        by: &str,
    ) -> Result<ConnectorSpec, ControlError> {
        self.replace_api_connector(id, body, if_match, by).await
    }

    async fn test_connector_body(
        &self,
        body: serde_json::Value,
    ) -> Result<serde_json::Value, ControlError> {
        let c = self.checked_connector(&body)?;
        let conn = wiring::connector(&c).map_err(|e| {
            ControlError::ConnectorInvalid(vec![tributary_config::api_connector::FieldError::new(
                "",
                format!("{e:#}"),
            )])
        })?;
        Ok(api_connectors::reach(conn.as_ref()).await)
    }

    async fn test_connector(&self, id: &str) -> Result<serde_json::Value, ControlError> {
        let conn = self
            .conns
            .lock()
            .unwrap()
            .get(id)
            .map(|s| s.connector.clone())
            .ok_or(ControlError::ConnectorNotFound)?;
        Ok(api_connectors::reach(conn.as_ref()).await)
    }

    async fn delete_connector(
        &self,
        id: &str,
        if_match: Option<i64>,
        by: &str,
        data: tributary_api::DeleteData,
    ) -> Result<Option<tributary_api::DataDeleted>, ControlError> {
        // a task of its own: a caller that hangs up does not stop it halfway
        let (me, id, by) = (self.0.clone(), id.to_string(), by.to_string());
        tokio::spawn(async move { me.delete_connector_with(&id, if_match, &by, data).await })
            .await
            .map_err(|e| ControlError::Internal(format!("delete the connector: {e}")))?
    }

    async fn search(&self, q: SearchQuery) -> Result<serde_json::Value, ControlError> {
        let v = self.vectorizer().ok_or_else(vectors_off)?;
        let hits = v
            .search(
                &q.q,
                q.k,
                q.connector.as_deref(),
                q.path_prefix.as_deref(),
                &q.principals,
            )
            .await
            .map_err(|e| match e {
                SearchError::NotReady(m) | SearchError::Embedder(m) => {
                    ControlError::VectorsUnavailable(m)
                }
                SearchError::Catalog(e) => ControlError::Internal(e.to_string()),
            })?;
        Ok(json!({ "items": hits }))
    }

    async fn vector_queue(&self) -> Result<serde_json::Value, ControlError> {
        let v = self.vectorizer().ok_or_else(vectors_off)?;
        let s = v
            .status()
            .await
            .map_err(|e| ControlError::Internal(e.to_string()))?;
        Ok(serde_json::to_value(s).unwrap_or_default())
    }

    fn vectors_ready(&self) -> Option<Result<(), String>> {
        self.vectorizer().map(|v| v.ready())
    }

    async fn metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        self.register_metrics(registry).await
    }
}
