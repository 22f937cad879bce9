//! Deleting an API connector with its data (`DELETE /connectors/{id}?data=delete`):
//! its live items are tombstoned by a job of the normal pipeline whose source names
//! nothing (an empty, complete listing: reconciliation deletes everything, through the
//! commit path, with its manifests and change-feed rows), and only then is the
//! connector deleted. The mass-delete guard is the pipeline's own: a dry run of that
//! job says whether it would hold the deletes, and unless the caller confirmed them
//! nothing changes.

use tributary_api::{DataDeleted, DeleteData};
use tributary_connectors::memory::MemoryConnector;

use super::*;

impl Daemon {
    /// Deletes API connector `id` (at revision `if_match`, when given), with its data
    /// when `data` says so.
    pub(super) async fn delete_connector_with(
        self: &Arc<Self>,
        id: &str,
        if_match: Option<i64>,
        by: &str,
        data: DeleteData,
    ) -> Result<Option<DataDeleted>, ControlError> {
        let DeleteData::Delete { allow_mass_delete } = data else {
            self.delete_api_connector(id, if_match, by).await?;
            return Ok(None);
        };
        let cfg = self.config();
        let Some(c) = cfg.connector(id).cloned() else {
            // not running: a file connector would be known; an API one that is
            // stored but not runnable cannot be tombstoned (its target is unknown)
            return Err(ControlError::ConnectorNotFound);
        };
        if c.origin == tributary_config::Origin::File {
            return Err(ControlError::ManagedByFile {
                id: id.to_string(),
                file: cfg.source.display().to_string(),
            });
        }
        if let (Some(want), tributary_config::Origin::Api { revision }) = (if_match, &c.origin)
            && want != *revision
        {
            return Err(ControlError::PreconditionFailed { current: *revision });
        }
        let spec = |dry_run: bool| JobSpec {
            job_id: None,
            connector_id: id.to_string(),
            target: c.target.clone(),
            kind: JobKind::Full,
            trigger: "api-delete".into(),
            max_delete_percent: c.max_delete_percent,
            allow_mass_delete,
            max_retries: None,
            namespace: Arc::new(wiring::namespace(&cfg)),
            dry_run,
            // deletes only: a quota never holds them
            quota: Default::default(),
        };
        let held = self.run_emptied(&spec(true)).await?;
        if held.stats.mass_delete_held {
            return Err(ControlError::MassDeleteHeld {
                items: held.stats.files_delete_held,
                max_delete_percent: c.max_delete_percent,
            });
        }
        // no schedule, watch or retry starts a job that lists the source again
        // between the tombstones and the connector's end
        let was_paused = self.conns.lock().unwrap().get(id).is_some_and(|s| s.paused);
        self.pause_for_delete(id, true).await?;
        let done = self.run_emptied(&spec(false)).await;
        let done = match done {
            Ok(r) if r.status == JobStatus::Succeeded => r,
            other => {
                if !was_paused {
                    let _ = self.pause_for_delete(id, false).await;
                }
                return Err(match other {
                    Ok(r) => ControlError::Internal(format!(
                        "job {} deleting the connector's data ended {}: {}; the connector is kept",
                        r.job_id,
                        r.status.as_str(),
                        r.error.unwrap_or_default()
                    )),
                    Err(e) => e,
                });
            }
        };
        self.delete_api_connector(id, if_match, by).await?;
        // the pause was for the deletion; an id created again starts unpaused, and
        // lists its source from nothing (a delta cursor would skip what was deleted)
        let catalog = &self.pipeline.catalog;
        if let Err(e) = catalog.set_paused(id, false).await {
            tracing::warn!(connector = %id, error = %e, "clear the paused flag of a deleted connector");
        }
        if let Err(e) = catalog.forget_checkpoint(id).await {
            tracing::warn!(connector = %id, error = %e, "forget the checkpoint of a deleted connector");
        }
        tracing::info!(connector = %id, by, job_id = done.job_id, items = done.stats.files_deleted, "connector deleted over the API with its data");
        Ok(Some(DataDeleted {
            job_id: done.job_id,
            items_deleted: done.stats.files_deleted,
        }))
    }

    /// Runs a job of connector `spec.connector_id` against a source that names
    /// nothing, in this request (a job queued or running already is 409).
    async fn run_emptied(
        &self,
        spec: &JobSpec,
    ) -> Result<tributary_pipeline::JobReport, ControlError> {
        let source = Arc::new(MemoryConnector::new(spec.connector_id.clone()));
        self.pipeline
            .run_job(
                source,
                spec,
                Arc::new(Progress::default()),
                JobControl::default(),
            )
            .await
            .map_err(
                |e| match e.downcast_ref::<tributary_catalog::CatalogError>() {
                    Some(tributary_catalog::CatalogError::JobActive { job, .. }) => {
                        ControlError::AlreadyRunning(*job)
                    }
                    _ => ControlError::Internal(format!("{e:#}")),
                },
            )
    }

    async fn pause_for_delete(&self, id: &str, paused: bool) -> Result<(), ControlError> {
        if let Some(s) = self.conns.lock().unwrap().get_mut(id) {
            s.paused = paused;
        }
        self.pipeline
            .catalog
            .set_paused(id, paused)
            .await
            .map_err(|e| ControlError::Internal(e.to_string()))
    }
}
