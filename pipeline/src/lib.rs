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
pub use progress::{Progress, Stats};
use tributary_catalog::Catalog;
use tributary_connectors::Connector;
use tributary_store::ObjectStore;
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
        }
    }
}

/// The catalog and object store a pipeline writes to.
#[derive(Clone)]
pub struct Pipeline {
    pub catalog: Catalog,
    pub store: Arc<dyn ObjectStore>,
    pub settings: Settings,
}

impl Pipeline {
    pub fn new(catalog: Catalog, store: Arc<dyn ObjectStore>, settings: Settings) -> Pipeline {
        Pipeline {
            catalog,
            store,
            settings,
        }
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
