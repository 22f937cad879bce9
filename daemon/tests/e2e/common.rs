//! The daemon harness shared by the end-to-end tests: the real binary on a free
//! loopback port, driven over HTTP.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_tributary");
pub const VIEWER: &str = "viewer-token-for-tests-0001";
pub const OPERATOR: &str = "operator-token-for-tests-0002";
pub const ADMIN: &str = "admin-token-for-tests-0003";

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Running {
    pub child: Child,
    pub port: u16,
    pub http: reqwest::Client,
    pub stderr: PathBuf,
}

pub fn config(dir: &Path, port: u16, store: &str, connectors: &str, extra: &str) -> PathBuf {
    let cfg = dir.join("tributary.yaml");
    std::fs::write(
        &cfg,
        format!(
            "version: 1\nstate_dir: state\n{store}api:\n  listen: 127.0.0.1:{port}\n  max_body_size: 4KiB\n  tokens:\n    - {{ name: v, role: viewer, token: {VIEWER} }}\n    - {{ name: o, role: operator, token: {OPERATOR} }}\n    - {{ name: a, role: admin, token: {ADMIN} }}\ndaemon:\n  shutdown_deadline: 3s\n  watch_debounce: 300ms\n{extra}connectors:\n{connectors}"
        ),
    )
    .unwrap();
    cfg
}

impl Running {
    pub fn start(cfg: &Path, port: u16, envs: &[(&str, &str)]) -> Running {
        Running::start_with(Command::new(BIN), cfg, port, envs)
    }

    pub fn start_with(mut cmd: Command, cfg: &Path, port: u16, envs: &[(&str, &str)]) -> Running {
        let stderr = cfg.with_extension(format!("stderr-{:x}", rand::random::<u32>()));
        cmd.args(["run", "-c", cfg.to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        let r = Running {
            child,
            port,
            http: reqwest::Client::new(),
            stderr,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "daemon did not listen: {}",
                r.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        r
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, reqwest::header::HeaderMap, String) {
        let mut req = self.http.request(method.parse().unwrap(), self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        (status, headers, resp.text().await.unwrap())
    }

    /// As [`call`](Self::call), with more request headers (a body is sent with the
    /// `Content-Type` among them, when one is).
    pub async fn call_with(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (u16, reqwest::header::HeaderMap, String) {
        let mut req = self.http.request(method.parse().unwrap(), self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        (status, headers, resp.text().await.unwrap())
    }

    pub async fn get(&self, path: &str) -> Value {
        let (status, _, body) = self.call("GET", path, Some(VIEWER), None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// GET as the viewer, expecting 200; the body as text.
    pub async fn get_text(&self, path: &str) -> String {
        let (status, _, body) = self.call("GET", path, Some(VIEWER), None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    pub async fn wait_for(&self, what: &str, secs: u64, mut f: impl AsyncFnMut(&Running) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !f(self).await {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; daemon log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn jobs(&self, query: &str) -> Vec<Value> {
        self.get(&format!("/api/v1/jobs?per_page=500&{query}"))
            .await["items"]
            .as_array()
            .unwrap()
            .clone()
    }

    pub fn signal(&self, sig: &str) {
        assert!(
            Command::new("kill")
                .args([&format!("-{sig}"), &self.child.id().to_string()])
                .status()
                .unwrap()
                .success()
        );
    }

    pub fn wait_exit(&mut self, secs: u64) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "daemon did not exit: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the `tributary` binary with `args` (no token from the environment) and asserts
/// that it succeeds, showing what it said when it does not.
pub fn cli_ok(args: &[&str]) -> std::process::Output {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("TRIBUTARY_TOKEN")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tributary {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A new key file `<dir>/secrets.key` (`tributary key generate`), and the configuration
/// lines that make it `secrets.key_file`.
pub fn secrets_key(dir: &Path) -> String {
    let key = dir.join("secrets.key");
    cli_ok(&["key", "generate", "--out", key.to_str().unwrap()]);
    format!("secrets:\n  key_file: {}\n", key.display())
}

/// Adds `lines` to the `api` section of the configuration file `cfg`.
pub fn add_api_lines(cfg: &Path, lines: &str) {
    let text = std::fs::read_to_string(cfg).unwrap().replace(
        "  max_body_size: 4KiB\n",
        &format!("  max_body_size: 4KiB\n{lines}"),
    );
    std::fs::write(cfg, text).unwrap();
}

/// Starts the daemon as `nobody` (root reads everything: permission errors need
/// another user), from a copy of the binary in `dir`, which is handed to `nobody`.
pub fn start_as_nobody(dir: &Path, cfg: &Path, port: u16) -> Running {
    let bin = dir.join("tributary");
    std::fs::copy(BIN, &bin).unwrap();
    assert!(
        Command::new("chown")
            .args(["-R", "nobody:nogroup", dir.to_str().unwrap()])
            .status()
            .unwrap()
            .success()
    );
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--reuid=nobody",
        "--regid=nogroup",
        "--clear-groups",
        bin.to_str().unwrap(),
    ]);
    Running::start_with(cmd, cfg, port, &[])
}

pub fn local_connector(extra: &str) -> String {
    format!("  - id: docs\n    kind: local\n    path: src\n    target: /docs\n{extra}")
}

pub fn assert_envelope(status: u16, headers: &reqwest::header::HeaderMap, body: &str, code: &str) {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    assert_eq!(v["error"]["code"], code, "{body}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(v["error"]["details"].is_object(), "{body}");
    let rid = headers
        .get("x-request-id")
        .expect("X-Request-Id on every response")
        .to_str()
        .unwrap();
    assert_eq!(v["error"]["request_id"], rid, "{body}");
    assert!(status >= 400);
}

/// Restores `prefix` with the CLI (the daemon may be running) into a fresh folder
/// under `dir`; returns the folder the prefix landed in.
pub fn restore(cfg: &Path, prefix: &str, dir: &Path) -> PathBuf {
    let out = dir.join(format!("restored-{:x}", rand::random::<u32>()));
    let r = Command::new(BIN)
        .args([
            "restore",
            "-c",
            cfg.to_str().unwrap(),
            prefix,
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    out.join(prefix.trim_start_matches('/'))
}

/// The file names in a folder (not recursive), sorted.
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

impl Running {
    /// The newest job of `connector`, once it is finished.
    pub async fn latest_job(&self, connector: &str) -> Value {
        let mut job = Value::Null;
        let query = format!("connector={connector}");
        self.wait_for("a finished job", 60, async |d| {
            match d.jobs(&query).await.first() {
                Some(j) if !["queued", "running"].contains(&j["status"].as_str().unwrap()) => {
                    job = j.clone();
                    true
                }
                _ => false,
            }
        })
        .await;
        job
    }

    /// Queues a job of `connector` (`kind`: `full` or `incremental`; the API's default
    /// when `None`) and returns its id.
    pub async fn queue_run(&self, connector: &str, kind: Option<&str>) -> i64 {
        let (status, _, body) = self
            .call(
                "POST",
                &format!("/api/v1/connectors/{connector}/runs"),
                Some(OPERATOR),
                kind.map(|k| serde_json::json!({ "kind": k })),
            )
            .await;
        assert_eq!(status, 202, "{body}");
        serde_json::from_str::<Value>(&body).unwrap()["job_id"]
            .as_i64()
            .unwrap()
    }

    /// Queues a job of `connector` (`full` or `incremental`) and returns it finished.
    pub async fn run_and_wait(&self, connector: &str, kind: &str) -> Value {
        let query = format!("connector={connector}");
        let before = self.jobs(&query).await.len();
        self.queue_run(connector, Some(kind)).await;
        self.wait_for("the job", 60, async |d| d.jobs(&query).await.len() > before)
            .await;
        self.latest_job(connector).await
    }
}

/// The embedded default model (all-MiniLM-L6-v2), put in place by
/// `scripts/fetch-model.sh` (`.ci/run` does it); `TRIBUTARY_MODEL_DIR` overrides.
pub fn model_dir() -> PathBuf {
    let dir = std::env::var_os("TRIBUTARY_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME"))
                .join(".cache/tributary/models/all-MiniLM-L6-v2")
        });
    assert!(
        dir.join("model.safetensors").is_file(),
        "no model in {} (run scripts/fetch-model.sh {0} or set TRIBUTARY_MODEL_DIR)",
        dir.display()
    );
    dir
}
