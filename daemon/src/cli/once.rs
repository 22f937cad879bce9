//! `tributary once`: one job of one connector in the foreground, with progress.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use tributary_pipeline::{JobKind, JobSpec, JobStatus, Progress};

use super::output::{print_report, progress_line};
use crate::wiring;

pub(super) async fn once(
    path: PathBuf,
    id: String,
    incremental: bool,
    allow_mass_delete: bool,
    dry_run: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let cfg = load!(path);
    let Some(c) = cfg.connector(&id) else {
        let ids: Vec<_> = cfg.connectors.iter().map(|c| c.id.as_str()).collect();
        bail!(
            "no connector `{id}` in {} (connectors: {})",
            path.display(),
            ids.join(", ")
        );
    };
    let connector = wiring::connector(c)?;
    // the source's connections come up while the catalog and the store open
    connector.warm_up();
    let pipeline = wiring::pipeline(&cfg).await?;
    let spec = JobSpec {
        job_id: None,
        max_retries: None,
        connector_id: c.id.clone(),
        target: c.target.clone(),
        kind: if incremental {
            JobKind::Incremental
        } else {
            JobKind::Full
        },
        trigger: "cli".into(),
        max_delete_percent: c.max_delete_percent,
        allow_mass_delete,
        namespace: Arc::new(wiring::namespace(&cfg)),
        dry_run,
        quota: c.quota,
    };
    let progress = Arc::new(Progress::default());
    let started = std::time::Instant::now();
    let ticker = {
        let progress = progress.clone();
        let tty = std::io::stderr().is_terminal();
        tokio::spawn(async move {
            if tty {
                let bar = indicatif::ProgressBar::new_spinner();
                bar.enable_steady_tick(Duration::from_millis(200));
                loop {
                    bar.set_message(progress_line(&progress.snapshot(), started.elapsed()));
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            } else {
                loop {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    eprintln!(
                        "progress: {}",
                        progress_line(&progress.snapshot(), started.elapsed())
                    );
                }
            }
        })
    };
    let report = pipeline
        .run_job(connector, &spec, progress, Default::default())
        .await;
    ticker.abort();
    let _ = ticker.await;
    let report = report?;
    print_report(&report, json);
    if dry_run {
        pipeline.catalog.close().await;
        return Ok(match report.status {
            JobStatus::Succeeded => ExitCode::SUCCESS,
            _ => ExitCode::from(1),
        });
    }
    let filter = tributary_catalog::ConflictFilter {
        connector: Some(c.id.clone()),
        ..Default::default()
    };
    let (_, open) = pipeline.catalog.list_conflicts(&filter, 1, 1).await?;
    pipeline.catalog.close().await;
    if open > 0 && !json {
        println!(
            "  {open} open conflict(s) of `{}` wait for an operator: tributary conflicts -c {}",
            c.id,
            path.display()
        );
    }
    // 3: the job finished, but conflicts it could not decide alone are open
    Ok(match report.status {
        JobStatus::Succeeded if open > 0 => ExitCode::from(3),
        JobStatus::Succeeded => ExitCode::SUCCESS,
        _ => ExitCode::from(1),
    })
}
