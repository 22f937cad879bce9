//! Runs [`tributary_extract`] in a worker process per file (`<exe> extract-worker`),
//! with the worker's own memory and CPU limits, a wall-clock timeout enforced here,
//! and a cap on what it may send back.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tributary_extract::worker::{Request, Response};
use tributary_extract::{ExtractError, Extracted, Limits};

#[derive(Debug, Clone)]
pub struct Extractor {
    pub exe: PathBuf,
    pub limits: Limits,
    pub memory_bytes: u64,
    pub timeout: Duration,
}

impl Extractor {
    /// The arguments that start a worker after the executable.
    pub fn worker_args(&self) -> Vec<String> {
        vec![
            "extract-worker".into(),
            "--memory".into(),
            self.memory_bytes.to_string(),
            "--cpu-seconds".into(),
            (self.timeout.as_secs() + 1).to_string(),
        ]
    }

    pub async fn extract(&self, name: &str, bytes: &[u8]) -> Result<Extracted, ExtractError> {
        let mut child = tokio::process::Command::new(&self.exe)
            .args(self.worker_args())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                ExtractError::Failed(format!(
                    "cannot start the extraction worker {}: {e}",
                    self.exe.display()
                ))
            })?;
        let req = Request {
            name: name.to_string(),
            size: bytes.len() as u64,
            limits: self.limits,
        };
        let mut header = serde_json::to_vec(&req).expect("serializable");
        header.push(b'\n');
        let mut stdin = child.stdin.take().expect("piped");
        let mut stdout = child.stdout.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        // The worker may answer (or die) before it read everything: write errors are
        // not the verdict, the response and the exit status are.
        let write = async {
            let _ = stdin.write_all(&header).await;
            let _ = stdin.write_all(bytes).await;
            drop(stdin);
        };
        let cap = (self.limits.max_text_bytes as u64) * 7 + (1 << 20);
        let read = async {
            let mut out = Vec::new();
            let _ = (&mut stdout).take(cap).read_to_end(&mut out).await;
            out
        };
        let read_err = async {
            let mut out = Vec::new();
            let _ = (&mut stderr).take(8192).read_to_end(&mut out).await;
            out
        };
        let run = async {
            let ((), out, err) = tokio::join!(write, read, read_err);
            let status = child.wait().await;
            (out, err, status)
        };
        let (out, err, status) = match tokio::time::timeout(self.timeout, run).await {
            Ok(r) => r,
            Err(_) => {
                return Err(ExtractError::Failed(format!(
                    "extraction took longer than {}s (extract_timeout); the worker was stopped",
                    self.timeout.as_secs()
                )));
            }
        };
        let status = status.map_err(|e| ExtractError::Failed(format!("extraction worker: {e}")))?;
        if status.success()
            && let Ok(resp) = serde_json::from_slice::<Response>(&out)
        {
            return match resp {
                Response::Ok(x) => Ok(x),
                Response::Err(e) => Err(e),
            };
        }
        let detail = String::from_utf8_lossy(&err);
        let detail = detail
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        use std::os::unix::process::ExitStatusExt;
        let why = if detail.contains("memory allocation") || detail.contains("out of memory") {
            format!(
                "the extraction worker ran out of memory (extract_memory {} MiB)",
                self.memory_bytes >> 20
            )
        } else {
            match status.signal() {
                Some(libc::SIGXCPU) | Some(libc::SIGKILL) => format!(
                    "the extraction worker exceeded its CPU time limit ({}s)",
                    self.timeout.as_secs() + 1
                ),
                Some(sig) => format!("the extraction worker crashed (signal {sig})"),
                None => format!(
                    "the extraction worker failed (exit {}){}",
                    status.code().unwrap_or(-1),
                    if detail.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", detail.chars().take(300).collect::<String>())
                    }
                ),
            }
        };
        Err(ExtractError::Failed(why))
    }
}
