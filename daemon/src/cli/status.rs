//! `status` and `conflicts`: what the catalog says, read without the daemon.

use std::path::PathBuf;
use std::process::ExitCode;

use super::output::fmt_ns;
use crate::wiring;

pub(super) async fn status(path: PathBuf, recent: i64) -> anyhow::Result<ExitCode> {
    let cfg = load!(path);
    let catalog = wiring::open_catalog(&cfg).await?;
    let (items, versions, chunks) = catalog.counts().await?;
    println!("catalog: {items} live item(s), {versions} version(s), {chunks} chunk(s)\n");
    let paused = catalog.paused_connectors().await?;
    println!(
        "{:<20} {:<6} {:<16} {:<7} {:<12} {:<24} {:>7}",
        "CONNECTOR", "KIND", "SCHEDULE", "PAUSED", "LAST JOB", "FINISHED", "FAILED"
    );
    for c in &cfg.connectors {
        let last = catalog.last_job(&c.id).await?;
        let failed = catalog.item_errors(&c.id).await?.len();
        println!(
            "{:<20} {:<6} {:<16} {:<7} {:<12} {:<24} {:>7}",
            c.id,
            format!("{:?}", c.kind).to_lowercase(),
            c.schedule
                .as_ref()
                .map(|s| s.expression.as_str())
                .unwrap_or("-"),
            if paused.contains(&c.id) { "yes" } else { "no" },
            last.as_ref().map(|j| j.status.as_str()).unwrap_or("-"),
            last.as_ref()
                .and_then(|j| j.finished_at)
                .map(fmt_ns)
                .unwrap_or_else(|| "-".into()),
            failed
        );
    }
    let (jobs, _) = catalog.list_jobs(&Default::default(), 1, recent).await?;
    println!(
        "\n{:>6} {:<20} {:<12} {:<9} {:<12} {:<24} {:>7}  LAST ERROR",
        "JOB", "CONNECTOR", "KIND", "TRIGGER", "STATUS", "STARTED", "ERRORS"
    );
    for j in jobs {
        println!(
            "{:>6} {:<20} {:<12} {:<9} {:<12} {:<24} {:>7}  {}",
            j.id,
            j.connector,
            j.kind,
            j.trigger,
            j.status,
            j.started_at.map(fmt_ns).unwrap_or_else(|| "-".into()),
            j.error_count,
            j.last_error
                .as_deref()
                .unwrap_or("")
                .chars()
                .take(80)
                .collect::<String>()
        );
    }
    for c in &cfg.connectors {
        let errs = catalog.item_errors(&c.id).await?;
        if !errs.is_empty() {
            println!("\nfailed items of {}:", c.id);
            for e in errs.iter().take(50) {
                println!(
                    "  {}: {} (retries: {})",
                    String::from_utf8_lossy(&e.path),
                    e.error,
                    e.retry_count
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn conflicts(
    path: PathBuf,
    connector: Option<String>,
    all: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let cfg = load!(path);
    let catalog = wiring::open_catalog(&cfg).await?;
    let filter = tributary_catalog::ConflictFilter {
        connector,
        kind: None,
        include_resolved: all,
    };
    let mut rows = Vec::new();
    for page in 1.. {
        let (batch, total) = catalog.list_conflicts(&filter, page, 500).await?;
        let done = batch.is_empty() || (rows.len() + batch.len()) as i64 >= total;
        rows.extend(batch);
        if done {
            break;
        }
    }
    catalog.close().await;
    if json {
        println!("{}", serde_json::to_string(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        println!("no {}conflicts", if all { "" } else { "open " });
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:>5} {:<15} {:<9} {:<20} {:<24}  PATH / CLAIMS",
        "ID", "KIND", "STATUS", "CONNECTOR", "FIRST SEEN"
    );
    for c in &rows {
        println!(
            "{:>5} {:<15} {:<9} {:<20} {:<24}  {}",
            c.id,
            c.kind,
            c.resolution.as_deref().unwrap_or(&c.status),
            c.connector,
            fmt_ns(c.first_seen),
            c.path
        );
        for k in &c.claims {
            println!(
                "{:>58}{:<8} {} {} ({}, {} bytes{})",
                "",
                k.role,
                k.connector,
                k.path,
                k.state,
                k.size.map_or("?".into(), |s| s.to_string()),
                k.digest
                    .as_deref()
                    .map(|d| format!(", blake3 {}", &d[..12]))
                    .unwrap_or_default()
            );
        }
        if let Some(d) = &c.detail {
            println!("{:>58}{d}", "");
        }
    }
    Ok(ExitCode::SUCCESS)
}
