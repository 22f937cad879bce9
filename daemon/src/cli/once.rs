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
    vectorize: bool,
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
    // what the job stored is made searchable now, when the connector asks for it
    let vectorized = if vectorize && c.vectorize && report.status == JobStatus::Succeeded {
        Some(vectorize_stored(&cfg, &pipeline, &c.id, json).await)
    } else {
        None
    };
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
        JobStatus::Succeeded if vectorized == Some(false) => ExitCode::from(1),
        JobStatus::Succeeded if open > 0 => ExitCode::from(3),
        JobStatus::Succeeded => ExitCode::SUCCESS,
        _ => ExitCode::from(1),
    })
}

/// Indexes what waits for connector `id` (extraction, passages, embeddings), with a
/// progress line, then says what the index holds for it. `false`: it could not (the
/// model missing, the vector store unreachable), said on stderr.
async fn vectorize_stored(
    cfg: &tributary_config::Config,
    pipeline: &tributary_pipeline::Pipeline,
    id: &str,
    json: bool,
) -> bool {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("tributary"));
    let v = tributary_vectorize::Vectorizer::new(
        pipeline.catalog.clone(),
        pipeline.store.clone(),
        cfg.vectorize.clone(),
        Box::new(wiring::VectorBackends(cfg.vectorize.clone())),
        vec![id.to_string()],
        exe,
    );
    let started = std::time::Instant::now();
    let ticker = {
        let v = v.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(2)).await;
                if let Ok(s) = v.status().await {
                    eprintln!(
                        "vectorizing: {} indexed, {} waiting, {} failed ({:.0?})",
                        s.indexed,
                        s.pending,
                        s.failed,
                        started.elapsed()
                    );
                }
            }
        })
    };
    let done = v
        .index_pending(&tokio_util::sync::CancellationToken::new())
        .await;
    ticker.abort();
    let _ = ticker.await;
    if let Err(e) = done {
        eprintln!(
            "tributary: vectorize `{id}`: {} (the files are stored; the daemon vectorizes them once this is fixed)",
            super::shown(e)
        );
        return false;
    }
    match v.status().await {
        Ok(s) => {
            let line = format!(
                "  vectorized: {} document(s) indexed, {} skipped (no text), {} failed, {} passage(s) in {:.1?}",
                s.indexed,
                s.skipped,
                s.failed,
                s.passages,
                started.elapsed()
            );
            // stdout stays the JSON summary alone with --json
            if json {
                eprintln!("{line}");
            } else {
                println!("{line}");
            }
            true
        }
        Err(e) => {
            eprintln!("tributary: vectorize `{id}`: {e}");
            false
        }
    }
}
