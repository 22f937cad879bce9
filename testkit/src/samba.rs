//! Starts a real Samba server (`smbd` from Debian's `samba`, installed by `.ci/run`) on
//! a free loopback port, with a generated `smb.conf`, private state folders and one
//! user, for the SMB tests. It serves one folder as share `docs` (case-sensitive, so
//! names differing only by case are two files; files are accessed as root) and again
//! as share `docs-as-user`, where the logged-on user's own file permissions apply, and
//! runs under a shell watchdog that stops it when the test process exits.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const USER: &str = "tribsmb";
pub const PASSWORD: &str = "Sm8-test%pw";
pub const SHARE: &str = "docs";
/// The same folder, accessed as [`USER`]: a mode-000 file or folder is access-denied.
pub const USER_SHARE: &str = "docs-as-user";

pub struct Samba {
    pub dir: PathBuf,
    pub port: u16,
    child: Option<Child>,
}

/// Creates the system user [`USER`] once. Tests start servers concurrently: the check
/// and the creation happen under one lock, and a user created meanwhile by another
/// process (`useradd` exit status 9) is as good.
fn ensure_user() {
    static CREATED: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
    let mut created = CREATED.lock().unwrap_or_else(|e| e.into_inner());
    if *created {
        return;
    }
    let exists = Command::new("id")
        .arg(USER)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !exists {
        let out = Command::new("useradd")
            .args(["-M", "-s", "/usr/sbin/nologin", USER])
            .output()
            .unwrap_or_else(|e| panic!("useradd: {e}"));
        assert!(
            out.status.success() || out.status.code() == Some(9),
            "useradd: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    *created = true;
}

impl Samba {
    /// A server for `dir` (created; the share's files live in `dir/share`).
    pub fn start(dir: &Path) -> Samba {
        Samba::start_with(dir, "  server min protocol = SMB2_10\n")
    }

    /// The same with other `[global]` protocol lines (e.g. an SMB1-only server).
    pub fn start_with(dir: &Path, protocol: &str) -> Samba {
        Samba::start_custom(dir, protocol, "")
    }

    /// The same with more lines for share [`SHARE`] too.
    pub fn start_custom(dir: &Path, protocol: &str, share_lines: &str) -> Samba {
        for sub in [
            "private", "lock", "state", "cache", "run", "ncalrpc", "log", "share",
        ] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        ensure_user();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let d = dir.display();
        let conf = format!(
            "[global]
  workgroup = WORKGROUP
  server role = standalone server
  smb ports = {port}
  interfaces = lo
  bind interfaces only = yes
  disable netbios = yes
{protocol}  map to guest = never
  passdb backend = tdbsam:{d}/private/passdb.tdb
  private dir = {d}/private
  lock directory = {d}/lock
  state directory = {d}/state
  cache directory = {d}/cache
  pid directory = {d}/run
  ncalrpc dir = {d}/ncalrpc
  log file = {d}/log/smbd.log
  max log size = 10000
  log level = 1 auth_audit:2
  load printers = no
  printing = bsd
  printcap name = /dev/null
  disable spoolss = yes

[{SHARE}]
  path = {d}/share
  read only = no
  valid users = {USER}
  force user = root
  case sensitive = yes
  preserve case = yes
  short preserve case = yes
  mangled names = no
{share_lines}
[{USER_SHARE}]
  path = {d}/share
  read only = yes
  valid users = {USER}
  case sensitive = yes
  preserve case = yes
  mangled names = no
"
        );
        std::fs::write(dir.join("smb.conf"), conf).unwrap();
        let conf = dir.join("smb.conf");
        let mut pw = Command::new("smbpasswd")
            .args(["-c", conf.to_str().unwrap(), "-s", "-a", USER])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("smbpasswd (is Samba installed? `bash .ci/run` installs it)");
        {
            use std::io::Write;
            let mut stdin = pw.stdin.take().unwrap();
            writeln!(stdin, "{PASSWORD}\n{PASSWORD}").unwrap();
        }
        assert!(pw.wait().unwrap().success(), "smbpasswd failed");
        let mut s = Samba {
            dir: dir.to_path_buf(),
            port,
            child: None,
        };
        s.spawn();
        s
    }

    pub fn share_dir(&self) -> PathBuf {
        self.dir.join("share")
    }

    /// How many log-ons the server refused for a wrong password so far.
    pub fn wrong_password_log_ons(&self) -> usize {
        std::fs::read_to_string(self.dir.join("log/smbd.log"))
            .unwrap_or_default()
            .matches("NT_STATUS_WRONG_PASSWORD")
            .count()
    }

    fn spawn(&mut self) {
        let conf = self.dir.join("smb.conf");
        // smbd signals its whole process group on SIGTERM: it gets a group of its own
        // (with the watchdog shell), never the test process's.
        let script = format!(
            "smbd --foreground --no-process-group -s '{conf}' >>'{log}' 2>&1 & w=$!; trap 'kill $w 2>/dev/null; exit 0' TERM; \
             while kill -0 {me} 2>/dev/null && kill -0 $w 2>/dev/null; do sleep 0.5; done; kill $w 2>/dev/null; wait $w",
            conf = conf.display(),
            log = self.dir.join("log/smbd.stdout").display(),
            me = std::process::id(),
        );
        use std::os::unix::process::CommandExt;
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("spawn sh for smbd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if Instant::now() > deadline {
                let log =
                    std::fs::read_to_string(self.dir.join("log/smbd.stdout")).unwrap_or_default();
                panic!("smbd did not listen on port {} in 30s:\n{log}", self.port);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .args([sig, "--", &format!("-{}", c.id())])
                .status();
        }
    }

    /// A server that stops answering: every smbd process of this server is stopped
    /// (SIGSTOP); connections are still accepted by the kernel, and nothing answers.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Lets a frozen server go on.
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    /// Stops the server and waits until its port is closed.
    pub fn stop(&mut self) {
        self.signal("-TERM");
        // a frozen server gets the TERM once it runs again
        self.signal("-CONT");
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for Samba {
    fn drop(&mut self) {
        self.stop();
    }
}
