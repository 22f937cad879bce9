//! Subcommands.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::wiring;

/// Loads the configuration or returns from the command with exit code 2 (the errors
/// are printed).
macro_rules! load {
    ($path:expr) => {
        match $crate::cli::config(&$path) {
            Ok(c) => c,
            Err(code) => return Ok(code),
        }
    };
}

mod args;
mod audit;
mod catalog;
mod connectors;
mod dist;
mod keys;
mod maintenance;
mod once;
mod output;
mod remote;
mod status;

pub use args::{Cli, Command, ConfigCommand, ConnectorsCommand};
use maintenance::{
    check, encrypt_store, gc, migrate_store, prune, rebuild, reindex, restore, verify,
};
use once::once;
use remote::{ctl, health, search};
use status::{conflicts, status};

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
    let started = std::time::Instant::now();
    let audit = audit::audited(&args.command).map(|(action, command, config)| {
        (
            action,
            command,
            config.to_path_buf(),
            audit::resource(&args.command),
        )
    });
    let code = run_command(args).await;
    if let Some((action, command, config, resource)) = audit {
        let ok = code == ExitCode::SUCCESS;
        audit::record(
            &config,
            audit::entry(action, command, resource, ok, started),
        )
        .await;
    }
    code
}

async fn run_command(args: Cli) -> ExitCode {
    let result = match args.command {
        Command::Run { config } => run_daemon(config).await,
        Command::Check { config, connect } => check(config, connect).await,
        Command::Migrate { config, dry_run } => maintenance::migrate(config, dry_run).await,
        Command::Config {
            command: ConfigCommand::Schema,
        } => {
            println!(
                "{}",
                serde_json::to_string_pretty(&tributary_config::json_schema()).expect("schema")
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Config {
            command: ConfigCommand::Reference,
        } => {
            print!("{}", tributary_config::reference::markdown());
            Ok(ExitCode::SUCCESS)
        }
        Command::Config {
            command: ConfigCommand::Errors,
        } => {
            print!("{}", tributary_api::error_codes::markdown());
            Ok(ExitCode::SUCCESS)
        }
        Command::Completions { shell } => dist::print_completion(shell),
        Command::Man { out } => dist::man(&out),
        Command::Key { command } => keys::run(command).await,
        Command::Catalog { command } => catalog::run(command).await,
        Command::Once {
            config,
            connector,
            incremental,
            allow_mass_delete,
            dry_run,
            no_vectorize,
            json,
        } => {
            once(
                config,
                connector,
                incremental,
                allow_mass_delete,
                dry_run,
                !no_vectorize,
                json,
            )
            .await
        }
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
            max_unused,
            max_repack_size,
            json,
        } => gc(config, grace, dry_run, max_unused, max_repack_size, json).await,
        Command::RebuildCatalog { config, json } => rebuild(config, json).await,
        Command::MigrateStore {
            config,
            encrypt: false,
            json,
        } => migrate_store(config, json).await,
        Command::MigrateStore {
            config,
            encrypt: true,
            json,
        } => encrypt_store(config, json).await,
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
        Command::Connectors {
            command: ConnectorsCommand::Export { config, id },
        } => connectors::export(config, id).await,
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
                remote::SearchArgs {
                    k,
                    connector,
                    path_prefix,
                    principals: principal,
                    json,
                    query,
                },
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
pub(crate) fn shown(e: impl std::fmt::Display) -> String {
    tributary_config::redact::redact(&e.to_string()).into_owned()
}

/// Config errors exit with 2 and every message, one per line.
pub(crate) fn config(path: &std::path::Path) -> Result<tributary_config::Config, ExitCode> {
    wiring::load_config(path).map_err(|errs| {
        eprintln!("{errs}");
        ExitCode::from(2)
    })
}

async fn run_daemon(path: PathBuf) -> anyhow::Result<ExitCode> {
    let cfg = load!(path);
    crate::server::run(path, cfg).await?;
    Ok(ExitCode::SUCCESS)
}
