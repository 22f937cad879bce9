//! The extraction worker: a process of the same binary (`tributary extract-worker`)
//! that extracts one file and exits. It limits its own address space and CPU time
//! before it reads anything, so a hostile file that makes a parser allocate or loop
//! without bound ends this process, never the daemon.
//!
//! Protocol: the parent writes one JSON line ([`Request`]) and then the file's bytes
//! (exactly `size` of them) to stdin; the worker writes one JSON line ([`Response`]) to
//! stdout.

use std::io::{BufRead, Read, Write};

use serde::{Deserialize, Serialize};

use crate::{ExtractError, Extracted, Limits};

#[derive(Debug, Serialize, Deserialize)]
pub struct Request {
    /// The file's name (its extension is a hint for the format).
    pub name: String,
    pub size: u64,
    pub limits: Limits,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    Ok(Extracted),
    Err(ExtractError),
}

/// Resource limits the worker applies to itself.
#[derive(Debug, Clone, Copy)]
pub struct ProcessLimits {
    /// RLIMIT_AS in bytes.
    pub memory_bytes: u64,
    /// RLIMIT_CPU in seconds.
    pub cpu_seconds: u64,
}

/// Runs the worker on stdin/stdout; returns the process exit code.
pub fn main(limits: ProcessLimits) -> i32 {
    if let Err(e) = apply(limits) {
        eprintln!("extract-worker: cannot set resource limits: {e}");
        return 2;
    }
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut line = String::new();
    if input.read_line(&mut line).is_err() {
        return 2;
    }
    let req: Request = match serde_json::from_str(&line) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("extract-worker: bad request: {e}");
            return 2;
        }
    };
    let mut bytes = Vec::new();
    if let Err(e) = input.take(req.size).read_to_end(&mut bytes) {
        eprintln!("extract-worker: reading input: {e}");
        return 2;
    }
    let resp = match crate::extract(&req.name, &bytes, &req.limits) {
        Ok(x) => Response::Ok(x),
        Err(e) => Response::Err(e),
    };
    drop(bytes);
    let mut out = std::io::stdout().lock();
    let ok = serde_json::to_writer(&mut out, &resp).is_ok() && out.write_all(b"\n").is_ok();
    if ok && out.flush().is_ok() { 0 } else { 2 }
}

#[allow(unsafe_code)]
fn apply(limits: ProcessLimits) -> std::io::Result<()> {
    let set = |resource, value: u64| {
        let lim = libc::rlimit {
            rlim_cur: value as libc::rlim_t,
            rlim_max: value as libc::rlim_t,
        };
        // SAFETY: setrlimit reads the struct we pass and changes only this process.
        if unsafe { libc::setrlimit(resource, &lim) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    };
    set(libc::RLIMIT_AS, limits.memory_bytes)?;
    set(libc::RLIMIT_CPU, limits.cpu_seconds.max(1))?;
    set(libc::RLIMIT_CORE, 0)?;
    Ok(())
}
