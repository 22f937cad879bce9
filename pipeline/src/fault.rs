//! Deterministic crash points for the crash-consistency tests.
//!
//! The daemon (the only reader of the environment) installs a plan such as
//! `commit.after_manifest:3`: the third time that named point is reached, the process
//! aborts on the spot, like a SIGKILL. Without a plan every point is a no-op.
//!
//! Points: `upload.after_put` (format v1), `pack.before_upload`, `pack.after_upload`,
//! `commit.before_manifest`, `commit.after_manifest`, `commit.after_catalog`,
//! `reconcile.before_commit`, `migrate.before_move`, `migrate.after_move`,
//! `gc.before_move`, `gc.after_move`, `encrypt.before_commit`, `encrypt.after_commit`.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

struct Plan {
    point: String,
    hit: u64,
    seen: AtomicU64,
}

static PLAN: OnceLock<Plan> = OnceLock::new();

/// Installs the plan `name:N` (abort at the N-th hit of `name`, N ≥ 1).
pub fn install(spec: &str) -> Result<(), String> {
    let (point, n) = spec
        .rsplit_once(':')
        .ok_or_else(|| format!("fault plan `{spec}`: expected NAME:N"))?;
    let hit: u64 = n
        .parse()
        .map_err(|_| format!("fault plan `{spec}`: N must be a positive integer"))?;
    PLAN.set(Plan {
        point: point.to_string(),
        hit: hit.max(1),
        seen: AtomicU64::new(0),
    })
    .map_err(|_| "fault plan already installed".to_string())
}

/// Marks that `name` was reached; aborts the process if the plan says so.
pub fn point(name: &str) {
    if let Some(p) = PLAN.get()
        && p.point == name
        && p.seen.fetch_add(1, Ordering::SeqCst) + 1 == p.hit
    {
        eprintln!("fault injection: aborting at {name} (hit {})", p.hit);
        std::process::abort();
    }
}

/// The fault points of a pack writer (or a migration) that reports nothing else.
pub struct FaultPoints;

impl tributary_store::pack::PackEvents for FaultPoints {
    fn point(&self, name: &'static str) {
        point(name);
    }
}
