//! `tributary`: the command-line entry point. The one place that reads the
//! environment, installs the tracing subscriber and turns configuration into concrete
//! connectors and stores (design invariants 1 and 2).

mod cli;
mod instance;
mod redacted_log;
mod sdnotify;
mod server;
mod wiring;

use std::process::ExitCode;

use clap::Parser;

/// Chunk-sized buffers (hundreds of KiB to MiB, allocated on one thread and freed on
/// another) are served by mmap and returned to the system on free, instead of piling up
/// in glibc's per-thread arenas; and few arenas. This keeps peak RSS near the pipeline's
/// own bound (`max_bytes_in_flight` plus the readers' buffers). (mimalloc was measured
/// too: it held three times more.)
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn tune_allocator() {
    // SAFETY: mallopt only changes allocator parameters; it is called once, in main
    // before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    // A restore keeps glibc's defaults: its decoded chunks are freed and allocated
    // again at once on the same threads, so heap reuse beats a fresh mapping per chunk
    // (measured on the bench corpus: a third less system time, a tenth less wall time,
    // peak RSS 52 → 84 MiB, still well under restic's).
    if !matches!(args.command, cli::Command::Restore { .. }) {
        tune_allocator();
    }
    if let cli::Command::ExtractWorker {
        memory,
        cpu_seconds,
    } = args.command
    {
        // a child of the daemon: extracts the text of one untrusted file
        let limits = tributary_extract::worker::ProcessLimits {
            memory_bytes: memory,
            cpu_seconds,
        };
        return ExitCode::from(tributary_extract::worker::main(limits) as u8);
    }
    cli::init_tracing(&args);
    if let Ok(spec) = std::env::var("TRIBUTARY_FAULT_POINT")
        && let Err(e) = tributary_pipeline::fault::install(&spec)
    {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    // Both rustls back-ends end up linked (aws-lc-rs, and ring through the SharePoint
    // connector's HTTP stack), so rustls cannot pick one by itself: pick aws-lc-rs.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
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
