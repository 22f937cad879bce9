//! `tributary`: the command-line entry point. The one place that reads the
//! environment, installs the tracing subscriber and turns configuration into concrete
//! connectors and stores (design invariants 1 and 2).

mod cli;
mod sdnotify;
mod server;
mod wiring;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc returns freed chunk buffers to the system promptly; glibc's per-thread
/// arenas kept tens of MiB of them resident under the blocking pool's many threads.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    cli::init_tracing(&args);
    if let Ok(spec) = std::env::var("TRIBUTARY_FAULT_POINT")
        && let Err(e) = tributary_pipeline::fault::install(&spec)
    {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: start runtime: {e}");
            return ExitCode::from(1);
        }
    };
    rt.block_on(cli::run(args))
}
