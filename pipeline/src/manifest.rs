//! Manifests: each committed batch, written to the object store before the catalog
//! transaction, so that the catalog can be rebuilt from the bucket alone.
//!
//! Key: `manifests/<connector>/<committed_at ns, 20 digits>-<job>-<batch>.json`, so a
//! listing returns them in commit order.

use serde::{Deserialize, Serialize};
use tributary_catalog::NewVersion;

pub const PREFIX: &str = "manifests/";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub connector: String,
    pub job_id: Option<i64>,
    pub committed_at: i64,
    pub checkpoint: Option<String>,
    pub versions: Vec<NewVersion>,
}

pub fn key(connector: &str, committed_at: i64, job_id: i64, batch: u64) -> String {
    format!("{PREFIX}{connector}/{committed_at:020}-{job_id}-{batch}.json")
}
