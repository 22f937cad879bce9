//! Subcommands.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use tributary_pipeline::{JobKind, JobReport, JobSpec, JobStatus, Progress, Stats, maintenance};

use crate::wiring;

#[derive(Parser, Debug)]
#[command(
    name = "tributary",
    version,
    about = "Ingests file shares, SharePoint and local folders into deduplicated object storage"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log filter (tracing EnvFilter syntax); also RUST_LOG.
    #[arg(long, global = true)]
    pub log: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the daemon: schedules, watches, the admin API.
    Run {
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Validate a configuration file (offline unless --connect).
    Check {
        #[arg(short, long)]
        config: PathBuf,
        /// Also try the object store and every connector.
        #[arg(long)]
        connect: bool,
    },
    /// Configuration helpers.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Run one job of a connector in the foreground.
    Once {
        #[arg(short, long)]
        config: PathBuf,
        /// The connector id.
        connector: String,
        /// Incremental (changes only, no delete reconciliation) instead of full.
        #[arg(long)]
        incremental: bool,
        /// Allow this job to delete more than the connector's max_delete_percent.
        #[arg(long)]
        allow_mass_delete: bool,
        /// Print the summary as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Write stored files back to a folder.
    Restore {
        #[arg(short, long)]
        config: PathBuf,
        /// Path prefix in the target namespace (e.g. `/docs/reports`; `/` for all).
        prefix: String,
        /// Destination folder.
        dest: PathBuf,
        /// Restore as of this moment (RFC 3339, e.g. 2026-11-01T12:00:00Z, or Unix seconds).
        #[arg(long)]
        at: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Re-read every referenced chunk and check its hash.
    Verify {
        #[arg(short, long)]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Delete chunks and manifests that no committed version references.
    Gc {
        #[arg(short, long)]
        config: PathBuf,
        /// Objects younger than this are kept (they may belong to a running ingest).
        #[arg(long, default_value = "24h")]
        grace: String,
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
    /// Apply version retention now: drop superseded versions and tombstones older than
    /// this (the daemon does it hourly with daemon.version_retention); then `gc`
    /// removes their data.
    Prune {
        #[arg(short, long)]
        config: PathBuf,
        #[arg(long)]
        older_than: String,
    },
    /// Rebuild an empty catalog from the manifests in the object store.
    RebuildCatalog {
        #[arg(short, long)]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Connectors, recent jobs and failed items, from the catalog (daemon running or not).
    Status {
        #[arg(short, long)]
        config: PathBuf,
        /// How many recent jobs to show.
        #[arg(long, default_value_t = 10)]
        jobs: i64,
    },
    /// Conflicts waiting for an operator (resolve them with `ctl resolve` or the API).
    Conflicts {
        #[arg(short, long)]
        config: PathBuf,
        /// Only conflicts involving this connector.
        #[arg(long)]
        connector: Option<String>,
        /// Include resolved conflicts.
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Internal: a text-extraction worker process, started by the daemon for one file
    /// (a request and the bytes on stdin, the text on stdout).
    #[command(hide = true)]
    ExtractWorker {
        /// Address-space limit in bytes.
        #[arg(long)]
        memory: u64,
        /// CPU-time limit in seconds.
        #[arg(long)]
        cpu_seconds: u64,
    },
    /// Search the documents of vectorized connectors by meaning, through the running
    /// daemon's API (needs a token).
    Search {
        #[arg(short, long)]
        config: PathBuf,
        #[command(flatten)]
        auth: TokenArgs,
        /// Number of passages to return.
        #[arg(short, default_value_t = 10)]
        k: usize,
        /// Only this connector's documents.
        #[arg(long)]
        connector: Option<String>,
        /// Only documents under this path.
        #[arg(long)]
        path_prefix: Option<String>,
        /// Only documents readable by this principal (repeatable): user:<id>,
        /// group:<id>, siteGroup:<id>, anyone, organization.
        #[arg(long)]
        principal: Vec<String>,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
        /// What to look for.
        query: String,
    },
    /// Drop the vector index and embed every document again with the configured
    /// embedder (after changing the model). Stop the daemon first.
    Reindex {
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Probe the running daemon's liveness endpoint (for container health checks).
    Health {
        #[arg(short, long)]
        config: PathBuf,
        /// Also require /health/ready (catalog and object store reachable).
        #[arg(long)]
        ready: bool,
    },
    /// Ask the running daemon to act, through its API (needs a token).
    Ctl {
        #[arg(short, long)]
        config: PathBuf,
        #[command(flatten)]
        auth: TokenArgs,
        #[command(subcommand)]
        action: CtlAction,
    },
}

#[derive(clap::Args, Debug)]
pub struct TokenArgs {
    /// Bearer token (also TRIBUTARY_TOKEN).
    #[arg(long, env = "TRIBUTARY_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// A file holding the bearer token.
    #[arg(long)]
    token_file: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum CtlAction {
    /// Queue a job now.
    Run {
        connector: String,
        #[arg(long)]
        full: bool,
    },
    Pause {
        connector: String,
    },
    Resume {
        connector: String,
    },
    Cancel {
        job: i64,
    },
    /// Re-read the configuration file.
    Reload,
    /// Resolve a conflict: keep_source, keep_existing, keep_both (claims and torn
    /// reads), allow or reject (mass deletes).
    Resolve {
        conflict: i64,
        resolution: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Print the JSON Schema of the configuration file.
    Schema,
}

pub fn init_tracing(args: &Cli) {
    use tracing_subscriber::EnvFilter;
    // the daemon reports its work; one-shot commands print their own summaries
    let default = if matches!(args.command, Command::Run { .. }) {
        "info"
    } else {
        "warn"
    };
    let filter = args
        .log
        .clone()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| default.to_string());
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(crate::redacted_log::RedactedStderr);
    if std::io::stderr().is_terminal() {
        builder.init();
    } else {
        builder.json().init();
    }
}

pub async fn run(args: Cli) -> ExitCode {
    let result = match args.command {
        Command::Run { config } => run_daemon(config).await,
        Command::Check { config, connect } => check(config, connect).await,
        Command::Config {
            command: ConfigCommand::Schema,
        } => {
            println!(
                "{}",
                serde_json::to_string_pretty(&tributary_config::json_schema()).expect("schema")
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Once {
            config,
            connector,
            incremental,
            allow_mass_delete,
            json,
        } => once(config, connector, incremental, allow_mass_delete, json).await,
        Command::Restore {
            config,
            prefix,
            dest,
            at,
            json,
        } => restore(config, prefix, dest, at, json).await,
        Command::Verify { config, json } => verify(config, json).await,
        Command::Gc {
            config,
            grace,
            dry_run,
            json,
        } => gc(config, grace, dry_run, json).await,
        Command::RebuildCatalog { config, json } => rebuild(config, json).await,
        Command::Prune { config, older_than } => prune(config, older_than).await,
        Command::Status { config, jobs } => status(config, jobs).await,
        Command::Conflicts {
            config,
            connector,
            all,
            json,
        } => conflicts(config, connector, all, json).await,
        Command::Ctl {
            config,
            auth,
            action,
        } => ctl(config, auth, action).await,
        Command::Health { config, ready } => health(config, ready).await,
        Command::ExtractWorker { .. } => {
            unreachable!("handled in main before the runtime starts")
        }
        Command::Search {
            config,
            auth,
            k,
            connector,
            path_prefix,
            principal,
            json,
            query,
        } => {
            search(
                config,
                auth,
                k,
                connector,
                path_prefix,
                principal,
                json,
                query,
            )
            .await
        }
        Command::Reindex { config } => reindex(config).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", shown(format!("{e:#}")));
            ExitCode::from(1)
        }
    }
}

/// An error as the user sees it, every configured secret masked (an upstream server
/// may have echoed one).
fn shown(e: impl std::fmt::Display) -> String {
    tributary_config::redact::redact(&e.to_string()).into_owned()
}

/// Config errors exit with 2 and every message, one per line.
fn config(path: &std::path::Path) -> Result<tributary_config::Config, ExitCode> {
    wiring::load_config(path).map_err(|errs| {
        eprintln!("{errs}");
        ExitCode::from(2)
    })
}

macro_rules! load {
    ($path:expr) => {
        match config(&$path) {
            Ok(c) => c,
            Err(code) => return Ok(code),
        }
    };
}

async fn run_daemon(path: PathBuf) -> anyhow::Result<ExitCode> {
    let cfg = load!(path);
    crate::server::run(path, cfg).await?;
    Ok(ExitCode::SUCCESS)
}

async fn check(path: PathBuf, connect: bool) -> anyhow::Result<ExitCode> {
    let cfg = load!(path);
    println!(
        "{}: ok ({} connector(s))",
        path.display(),
        cfg.connectors.len()
    );
    if !connect {
        return Ok(ExitCode::SUCCESS);
    }
    let mut failed = false;
    let store = wiring::open_store(&cfg).await?;
    match store.check().await {
        Ok(()) => println!("object store {}: ok", store.describe()),
        Err(e) => {
            failed = true;
            println!("object store {}: {}", store.describe(), shown(e));
        }
    }
    for c in &cfg.connectors {
        let r = match wiring::connector(c) {
            Ok(conn) => conn.check().await.map_err(anyhow::Error::from),
            Err(e) => Err(e),
        };
        match r {
            Ok(found) => println!("connector {}: ok ({found})", c.id),
            Err(e) => {
                failed = true;
                println!("connector {}: {}", c.id, shown(format!("{e:#}")));
            }
        }
    }
    if !cfg.vectorized_connectors().is_empty() {
        match tributary_vectorize::embed::build(&cfg.vectorize.embedder).await {
            Ok(e) => match e.embed(vec!["tributary check".into()]).await {
                Ok(v) => println!(
                    "embedder {}: ok ({} dimensions)",
                    e.id(),
                    v.first().map_or(0, Vec::len)
                ),
                Err(err) => {
                    failed = true;
                    println!("embedder {}: {}", e.id(), shown(err));
                }
            },
            Err(e) => {
                failed = true;
                println!("embedder: {}", shown(e));
            }
        }
        match tributary_vectorize::open_store(&cfg.vectorize.store).await {
            Ok(s) => println!("vector store {}: ok", s.describe()),
            Err(e) => {
                failed = true;
                println!("vector store: {}", shown(e));
            }
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn human_bytes(b: u64) -> String {
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

fn dedup_ratio(s: &Stats) -> f64 {
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

fn progress_line(s: &Stats, elapsed: Duration) -> String {
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

async fn once(
    path: PathBuf,
    id: String,
    incremental: bool,
    allow_mass_delete: bool,
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

fn print_report(r: &JobReport, json: bool) {
    let s = &r.stats;
    if json {
        let v = serde_json::json!({
            "job_id": r.job_id,
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

async fn conflicts(
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

fn parse_at(s: &str) -> anyhow::Result<i64> {
    if let Ok(secs) = s.parse::<f64>() {
        return Ok((secs * 1e9) as i64);
    }
    let t = chrono::DateTime::parse_from_rfc3339(s).with_context(|| {
        format!("--at `{s}`: expected RFC 3339 (2026-11-01T12:00:00Z) or Unix seconds")
    })?;
    t.timestamp_nanos_opt().context("--at is out of range")
}

async fn restore(
    path: PathBuf,
    prefix: String,
    dest: PathBuf,
    at: Option<String>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let cfg = load!(path);
    let at = at.as_deref().map(parse_at).transpose()?;
    let catalog = wiring::open_catalog(&cfg).await?;
    let store = wiring::open_store(&cfg).await?;
    let prefix = if prefix == "/" { String::new() } else { prefix };
    let report = maintenance::restore(&catalog, store, prefix.as_bytes(), &dest, at).await?;
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "restored {} file(s), {} into {}",
            report.files,
            human_bytes(report.bytes),
            dest.display()
        );
        for e in &report.errors {
            println!("  error: {e}");
        }
    }
    Ok(if report.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn verify(path: PathBuf, json: bool) -> anyhow::Result<ExitCode> {
    let cfg = load!(path);
    let catalog = wiring::open_catalog(&cfg).await?;
    let store = wiring::open_store(&cfg).await?;
    let report = maintenance::verify(&catalog, store).await?;
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "verified {} chunk(s), {}: {} missing, {} corrupt",
            report.chunks_checked,
            human_bytes(report.bytes_checked),
            report.missing.len(),
            report.corrupt.len()
        );
        for m in &report.missing {
            println!("  missing: {m}");
        }
        for c in &report.corrupt {
            println!("  corrupt: {c}");
        }
    }
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn gc(path: PathBuf, grace: String, dry_run: bool, json: bool) -> anyhow::Result<ExitCode> {
    let cfg = load!(path);
    let grace = tributary_config::units::parse_duration(&grace)
        .map_err(anyhow::Error::msg)
        .context("--grace")?;
    let catalog = wiring::open_catalog(&cfg).await?;
    let store = wiring::open_store(&cfg).await?;
    let report = maintenance::gc(&catalog, store, grace, dry_run).await?;
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "gc{}: {} chunk(s) listed, {} deleted ({}), {} manifest(s) deleted, {} kept within the grace period",
            if dry_run { " (dry run)" } else { "" },
            report.chunks_listed,
            report.chunks_deleted,
            human_bytes(report.bytes_deleted),
            report.manifests_deleted,
            report.kept_in_grace
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn prune(path: PathBuf, older_than: String) -> anyhow::Result<ExitCode> {
    let cfg = load!(path);
    let age = tributary_config::units::parse_duration(&older_than)
        .map_err(anyhow::Error::msg)
        .context("--older-than")?;
    let catalog = wiring::open_catalog(&cfg).await?;
    let (versions, items) = catalog
        .prune_versions(tributary_catalog::now_ns() - age.as_nanos() as i64)
        .await?;
    println!(
        "pruned {versions} version(s) and {items} deleted item(s); run `tributary gc` to remove data no longer referenced"
    );
    Ok(ExitCode::SUCCESS)
}

async fn rebuild(path: PathBuf, json: bool) -> anyhow::Result<ExitCode> {
    let cfg = load!(path);
    let catalog = wiring::open_catalog(&cfg).await?;
    let store = wiring::open_store(&cfg).await?;
    let report = maintenance::rebuild_catalog(&catalog, store).await?;
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "rebuilt the catalog from {} manifest(s): {} version(s), {} duplicate(s) skipped, {} without data (pruned) skipped",
            report.manifests,
            report.versions,
            report.duplicates_skipped,
            report.missing_data_skipped
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn status(path: PathBuf, recent: i64) -> anyhow::Result<ExitCode> {
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

async fn health(path: PathBuf, ready: bool) -> anyhow::Result<ExitCode> {
    let cfg = load!(path);
    let (client, base) = api_client(&cfg)?;
    let url = format!("{base}/health{}", if ready { "/ready" } else { "" });
    let resp = client
        .get(&url)
        .timeout(Duration::from_secs(4))
        .send()
        .await;
    match resp {
        Ok(r) if r.status().is_success() => {
            println!("ok: {url}");
            Ok(ExitCode::SUCCESS)
        }
        Ok(r) => {
            println!(
                "unhealthy: {url}: HTTP {}: {}",
                r.status(),
                r.text().await.unwrap_or_default()
            );
            Ok(ExitCode::from(1))
        }
        Err(e) => {
            println!("unreachable: {url}: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

/// A client for the daemon's own API: the listen address (loopback when it listens on
/// every address), HTTPS trusting the configured certificate when TLS is on.
fn api_client(cfg: &tributary_config::Config) -> anyhow::Result<(reqwest::Client, String)> {
    let mut addr = cfg.api.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            [127, 0, 0, 1].into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let mut b = reqwest::Client::builder();
    let scheme = match &cfg.api.tls {
        None => "http",
        Some((cert, _)) => {
            let pem = std::fs::read(cert).with_context(|| format!("read {}", cert.display()))?;
            for c in
                reqwest::Certificate::from_pem_bundle(&pem).context("parse the API certificate")?
            {
                b = b.add_root_certificate(c);
            }
            "https"
        }
    };
    let host = if addr.ip().is_loopback() && addr.is_ipv4() {
        format!("localhost:{}", addr.port())
    } else {
        addr.to_string()
    };
    Ok((b.build()?, format!("{scheme}://{host}/api/v1")))
}

fn fmt_ns(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns)
        .format("%Y-%m-%d %H:%M:%S UTC")
        .to_string()
}

fn token_of(auth: TokenArgs) -> anyhow::Result<String> {
    Ok(match (auth.token, auth.token_file) {
        (Some(t), _) => t,
        (None, Some(f)) => std::fs::read_to_string(&f)
            .with_context(|| format!("read token file {}", f.display()))?
            .trim_end()
            .to_string(),
        (None, None) => bail!("a token is needed: --token, --token-file or TRIBUTARY_TOKEN"),
    })
}

#[allow(clippy::too_many_arguments)]
async fn search(
    path: PathBuf,
    auth: TokenArgs,
    k: usize,
    connector: Option<String>,
    path_prefix: Option<String>,
    principals: Vec<String>,
    json: bool,
    query: String,
) -> anyhow::Result<ExitCode> {
    let cfg = load!(path);
    let token = token_of(auth)?;
    let (client, base) = api_client(&cfg)?;
    let mut params = vec![("q", query), ("k", k.to_string())];
    if let Some(c) = connector {
        params.push(("connector", c));
    }
    if let Some(p) = path_prefix {
        params.push(("path_prefix", p));
    }
    if !principals.is_empty() {
        params.push(("principal", principals.join(",")));
    }
    let resp = client
        .get(format!("{base}/search"))
        .query(&params)
        .bearer_auth(token)
        .send()
        .await
        .with_context(|| format!("reach the daemon at {base} (is `tributary run` running?)"))?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    if json || !status.is_success() {
        println!("{text}");
        return Ok(if status.is_success() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    let v: serde_json::Value = serde_json::from_str(&text).context("the daemon's answer")?;
    let items = v["items"].as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        println!("no match");
    }
    for (n, h) in items.iter().enumerate() {
        let location = h["location"]
            .as_str()
            .map(|l| format!(" ({l})"))
            .unwrap_or_default();
        println!(
            "{}. {:.3}  {}{location}  [item {}, version {}]",
            n + 1,
            h["score"].as_f64().unwrap_or(0.0),
            h["path"].as_str().unwrap_or(""),
            h["item_id"],
            h["version_id"],
        );
        let text: String = h["text"]
            .as_str()
            .unwrap_or("")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let short: String = text.chars().take(240).collect();
        println!(
            "   {short}{}",
            if short.len() < text.len() { "…" } else { "" }
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn reindex(path: PathBuf) -> anyhow::Result<ExitCode> {
    let cfg = load!(path);
    let catalog = wiring::open_catalog(&cfg).await?;
    match tributary_vectorize::reindex(&catalog, &cfg.vectorize).await {
        Ok((embedder, dropped)) => {
            println!(
                "dropped {dropped} passages; the daemon will embed every document of the vectorized connectors again with {embedder}"
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => bail!("reindex: {e}"),
    }
}

async fn ctl(path: PathBuf, auth: TokenArgs, action: CtlAction) -> anyhow::Result<ExitCode> {
    let cfg = load!(path);
    let token = token_of(auth)?;
    let (client, base) = api_client(&cfg)?;
    let (path, body) = match &action {
        CtlAction::Run { connector, full } => (
            format!("/connectors/{connector}/runs"),
            serde_json::json!({"kind": if *full { "full" } else { "incremental" }}),
        ),
        CtlAction::Pause { connector } => (
            format!("/connectors/{connector}/pause"),
            serde_json::json!({}),
        ),
        CtlAction::Resume { connector } => (
            format!("/connectors/{connector}/resume"),
            serde_json::json!({}),
        ),
        CtlAction::Cancel { job } => (format!("/jobs/{job}/cancel"), serde_json::json!({})),
        CtlAction::Reload => ("/config/reload".to_string(), serde_json::json!({})),
        CtlAction::Resolve {
            conflict,
            resolution,
        } => (
            format!("/conflicts/{conflict}/resolve"),
            serde_json::json!({ "resolution": resolution }),
        ),
    };
    let resp = client
        .post(format!("{base}{path}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .with_context(|| format!("reach the daemon at {base} (is `tributary run` running?)"))?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    println!("{text}");
    Ok(if status.is_success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
