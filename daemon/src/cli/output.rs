//! What the commands print: sizes, times, progress lines and job reports.

use std::time::Duration;

use tributary_pipeline::{JobReport, JobStatus, Stats};

pub(super) fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

pub(super) fn dedup_ratio(s: &Stats) -> f64 {
    if s.bytes_uploaded == 0 {
        if s.bytes_read == 0 {
            1.0
        } else {
            f64::INFINITY
        }
    } else {
        s.bytes_read as f64 / s.bytes_uploaded as f64
    }
}

pub(super) fn progress_line(s: &Stats, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(0.001);
    let rate = s.bytes_read as f64 / secs;
    let eta = if s.listing_done && rate > 0.0 && s.bytes_planned > s.bytes_read {
        format!(
            ", ETA {:.0}s",
            (s.bytes_planned - s.bytes_read) as f64 / rate
        )
    } else {
        String::new()
    };
    format!(
        "files {}/{} ({} unchanged, {} failed), {} of {} read, {}/s, dedup {:.2}x{eta}",
        s.files_done,
        s.files_planned,
        s.files_unchanged,
        s.files_failed,
        human_bytes(s.bytes_read),
        human_bytes(s.bytes_planned),
        human_bytes(rate as u64),
        dedup_ratio(s)
    )
}

pub(super) fn print_report(r: &JobReport, json: bool) {
    let s = &r.stats;
    if json {
        let v = serde_json::json!({
            "job_id": r.job_id,
            "dry_run": r.dry_run,
            "status": r.status.as_str(),
            "error": r.error,
            "item_errors": r.item_errors,
            "conflicts": r.conflicts,
            "elapsed_secs": r.elapsed.as_secs_f64(),
            "stats": s,
        });
        println!("{v}");
        return;
    }
    let status = match r.status {
        JobStatus::Failed => "FAILED",
        s => s.as_str(),
    };
    if r.dry_run {
        print_dry_run(r, status);
    } else {
        print_job(r, status);
    }
    for e in r.item_errors.iter().take(20) {
        println!("  item error: {e}");
    }
    if r.item_errors.len() > 20 {
        println!(
            "  … and {} more item errors (tributary status)",
            r.item_errors.len() - 20
        );
    }
    for c in r.conflicts.iter().take(20) {
        println!("  conflict: {c}");
    }
    if r.conflicts.len() > 20 {
        println!(
            "  … and {} more conflicts (tributary conflicts)",
            r.conflicts.len() - 20
        );
    }
    if let Some(e) = &r.error {
        println!("  error: {e}");
    }
}

/// What a job did.
fn print_job(r: &JobReport, status: &str) {
    let s = &r.stats;
    println!(
        "job {} {status} in {:.1}s",
        r.job_id,
        r.elapsed.as_secs_f64()
    );
    println!(
        "  files:  {} seen, {} unchanged, {} stored, {} deleted, {} failed, {} skipped",
        s.files_seen,
        s.files_unchanged,
        s.files_done,
        s.files_deleted,
        s.files_failed,
        s.files_skipped
    );
    println!(
        "  bytes:  {} read, {} uploaded, {} deduplicated (ratio {:.2}x)",
        human_bytes(s.bytes_read),
        human_bytes(s.bytes_uploaded),
        human_bytes(s.bytes_deduplicated),
        dedup_ratio(s)
    );
    println!(
        "  chunks: {} new, {} reused; {} upload retries, {} torn reads",
        s.chunks_new, s.chunks_reused, s.upload_retries, s.torn_reads
    );
}

/// What a real run would do, as a dry run found it.
fn print_dry_run(r: &JobReport, status: &str) {
    let s = &r.stats;
    println!(
        "dry run (job {}) {status} in {:.1}s: nothing was stored",
        r.job_id,
        r.elapsed.as_secs_f64()
    );
    println!(
        "  would read:   {} files, {} ({} new, {} changed)",
        s.files_planned,
        human_bytes(s.bytes_planned),
        s.files_new,
        s.files_changed
    );
    println!(
        "  would delete: {}; relocate: {}; {} unchanged, {} skipped, {} failed",
        s.files_deleted, s.files_relocated, s.files_unchanged, s.files_skipped, s.files_failed
    );
    println!(
        "  conflicts:    {}; the mass-delete guard would {}",
        s.conflicts,
        if s.mass_delete_held {
            "hold the deletes (tributary once --allow-mass-delete lets them through)"
        } else {
            "let the deletes through"
        }
    );
}

pub(super) fn fmt_ns(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns)
        .format("%Y-%m-%d %H:%M:%S UTC")
        .to_string()
}
