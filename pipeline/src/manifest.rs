//! Manifests: each committed batch, written to the object store before the catalog
//! transaction, so that the catalog can be rebuilt from the bucket alone.
//!
//! Key: `manifests/<connector>/<committed_at ns, 20 digits>-<job>-<batch>.json.zst`
//! (JSON, zstd-compressed), so a listing returns them in commit order.

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
    format!("{PREFIX}{connector}/{committed_at:020}-{job_id}-{batch}.json.zst")
}

/// The stored form of a manifest.
pub fn encode(m: &Manifest) -> Result<Vec<u8>, String> {
    let json = serde_json::to_vec(m).map_err(|e| format!("encode manifest: {e}"))?;
    zstd::bulk::compress(&json, 3).map_err(|e| format!("compress manifest: {e}"))
}

/// Reads a stored manifest (`.json.zst`, or plain `.json`).
pub fn decode(key: &str, body: &[u8]) -> Result<Manifest, String> {
    let json = if key.ends_with(".zst") {
        zstd::stream::decode_all(body).map_err(|e| format!("decompress manifest {key}: {e}"))?
    } else {
        body.to_vec()
    };
    serde_json::from_slice(&json).map_err(|e| format!("parse manifest {key}: {e}"))
}
