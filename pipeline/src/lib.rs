//! The pipeline: plan → read+chunk+hash → dedup → upload → commit, and the maintenance
//! operations over what it stored (restore, verify, gc, rebuild-catalog).
//!
//! It works on traits only ([`Connector`], [`ObjectStore`]); the daemon decides which
//! implementations to use (design invariant 1). See `ARCHITECTURE.md` for the stage
//! diagram and the invariants this crate keeps: data before metadata, one read per
//! version, one bad file fails that file only.

pub mod chunking;
pub mod fault;
mod ingest;
pub mod maintenance;
pub mod manifest;
pub mod progress;

use std::sync::Arc;
use std::time::Duration;

pub use ingest::{JobControl, JobKind, JobReport, JobSpec, JobStatus, StopReason};
pub use progress::Progress;
use tributary_catalog::Catalog;
pub use tributary_catalog::Stats;
use tributary_connectors::Connector;
use tributary_store::ObjectStore;
use tributary_store::format::StoreFormat;
use tributary_store::retry::RetryPolicy;

pub type Hash = [u8; 32];

/// Tuning of the pipeline (from the `pipeline:` section of the configuration).
#[derive(Debug, Clone)]
pub struct Settings {
    pub chunk: chunking::ChunkParams,
    /// zstd level, `None` for no compression.
    pub zstd_level: Option<i32>,
    pub file_concurrency: usize,
    pub upload_concurrency: usize,
    pub max_bytes_in_flight: u64,
    pub commit_batch_size: usize,
    /// How long a partial batch may wait before it is committed.
    pub commit_interval: Duration,
    pub torn_read_retries: u32,
    pub retry: RetryPolicy,
    /// Target size of a pack object (store format v2).
    pub pack_size: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            chunk: chunking::ChunkParams {
                min: 256 << 10,
                avg: 1 << 20,
                max: 4 << 20,
            },
            zstd_level: Some(3),
            file_concurrency: 4,
            upload_concurrency: 8,
            max_bytes_in_flight: 16 << 20,
            commit_batch_size: 256,
            commit_interval: Duration::from_secs(2),
            torn_read_retries: 3,
            retry: RetryPolicy::default(),
            pack_size: 4 << 20,
        }
    }
}

/// The catalog and object store a pipeline writes to.
#[derive(Clone)]
pub struct Pipeline {
    pub catalog: Catalog,
    pub store: Arc<dyn ObjectStore>,
    pub settings: Settings,
    /// The store's format ([`tributary_store::format`]): where new chunks go.
    pub format: StoreFormat,
}

impl Pipeline {
    pub fn new(catalog: Catalog, store: Arc<dyn ObjectStore>, settings: Settings) -> Pipeline {
        Pipeline {
            catalog,
            store,
            settings,
            format: StoreFormat::current(),
        }
    }

    /// The same pipeline writing a store of format `format`.
    pub fn with_format(mut self, format: StoreFormat) -> Pipeline {
        self.format = format;
        self
    }

    /// Runs one job of `connector` to the end (or until `control` stops it) and
    /// records it in the catalog.
    pub async fn run_job(
        &self,
        connector: Arc<dyn Connector>,
        spec: &JobSpec,
        progress: Arc<Progress>,
        control: JobControl,
    ) -> anyhow::Result<JobReport> {
        ingest::run(self, connector, spec, progress, control).await
    }
}

/// The full target path of a source-relative path: `<target>/<rel>`, raw bytes.
pub fn target_path(target: &str, rel: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(target.len() + 1 + rel.len());
    p.extend_from_slice(target.as_bytes());
    p.push(b'/');
    p.extend_from_slice(rel);
    p
}

/// Applies an operator's decision on a conflict through the normal commit path: the
/// versions it implies are written to a manifest first, then committed in one
/// transaction with the conflict's new state. Returns the conflict as resolved.
///
/// `mass_delete` and `torn_read` conflicts are only closed here; the caller starts the
/// job that acts on them (deletes allowed, file read again).
pub async fn resolve_conflict(
    p: &Pipeline,
    id: i64,
    resolution: &str,
    by: &str,
) -> Result<tributary_catalog::ConflictRow, ResolveFailure> {
    let _claims = p.catalog.claims_lock().await;
    let at = tributary_catalog::now_ns();
    let plan = p.catalog.resolution_plan(id, resolution, by, at).await?;
    let connector = plan
        .conflict
        .claims
        .iter()
        .find(|c| c.role == "incoming")
        .map(|c| c.connector.clone())
        .unwrap_or_else(|| plan.conflict.connector.clone());
    let mut manifest_key = None;
    if !plan.versions.is_empty() {
        let key = manifest::key(&connector, at, 0, id as u64);
        let m = manifest::Manifest {
            format: 1,
            connector: connector.clone(),
            job_id: None,
            committed_at: at,
            checkpoint: None,
            versions: plan.versions.clone(),
        };
        let body = bytes::Bytes::from(manifest::encode(&m).map_err(ResolveFailure::Store)?);
        let store = p.store.clone();
        tributary_store::retry::with_retry(
            p.settings.retry,
            |_, _| {},
            || store.put(&key, body.clone(), tributary_store::PutMode::IfAbsent),
        )
        .await
        .or_else(|e| match e.class {
            tributary_store::ErrorClass::AlreadyExists => Ok(()),
            _ => Err(e),
        })
        .map_err(|e| {
            ResolveFailure::Store(format!("write manifest to {}: {e}", p.store.describe()))
        })?;
        manifest_key = Some(key);
    }
    p.catalog
        .commit_batch(&tributary_catalog::CommitBatch {
            connector: &connector,
            job_id: None,
            versions: &plan.versions,
            checkpoint: None,
            manifest: manifest_key.as_deref(),
            conflicts: std::slice::from_ref(&plan.op),
        })
        .await
        .map_err(|e| match e {
            tributary_catalog::CatalogError::AlreadyResolved(id) => {
                ResolveFailure::Resolve(tributary_catalog::ResolveError::AlreadyResolved(id))
            }
            e => ResolveFailure::Resolve(e.into()),
        })?;
    tracing::info!(
        conflict = id,
        resolution,
        "conflict resolved by an operator"
    );
    Ok(p.catalog
        .conflict(id)
        .await
        .map_err(|e| ResolveFailure::Resolve(e.into()))?
        .expect("a resolved conflict exists"))
}

#[derive(Debug, thiserror::Error)]
pub enum ResolveFailure {
    #[error(transparent)]
    Resolve(#[from] tributary_catalog::ResolveError),
    #[error("{0}")]
    Store(String),
}
