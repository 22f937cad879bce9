//! A real OpenID provider on loopback: `oidc-provider` from the npm registry, run with
//! the machine's Node.js (`testkit/oidc/provider.mjs`; clients, roles and the tokens it
//! mints are described there).
//!
//! The package is looked up in `$TRIBUTARY_OIDC_DIR`, then `~/.cache/tributary/oidc`
//! (`.ci/run` installs it there from `testkit/oidc/package-lock.json`). The provider
//! exits when the test process does, and when dropped.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const SCRIPT: &str = include_str!("../oidc/provider.mjs");

/// The audience tokens are issued for by default.
pub const AUDIENCE: &str = "api://tributary";

fn install_dir() -> PathBuf {
    if let Ok(p) = std::env::var("TRIBUTARY_OIDC_DIR") {
        return PathBuf::from(p);
    }
    let home = std::env::var("HOME").unwrap_or_default();
    PathBuf::from(home).join(".cache/tributary/oidc")
}

pub struct OidcProvider {
    child: Option<Child>,
    pub port: u16,
    script: PathBuf,
    log: PathBuf,
    http: reqwest::Client,
}

impl OidcProvider {
    /// Starts a provider on a free loopback port.
    pub fn start() -> OidcProvider {
        let dir = install_dir();
        assert!(
            dir.join("node_modules/oidc-provider").is_dir(),
            "oidc-provider not found in {}: run `bash .ci/run` once or set TRIBUTARY_OIDC_DIR",
            dir.display()
        );
        // next to its node_modules, where Node resolves its imports
        let script = dir.join("provider.mjs");
        let tmp = dir.join(format!(".provider-{:016x}.mjs", rand::random::<u64>()));
        std::fs::write(&tmp, SCRIPT).unwrap();
        std::fs::rename(&tmp, &script).unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::env::temp_dir().join(format!("tributary-oidc-{port}.log"));
        let mut p = OidcProvider {
            child: None,
            port,
            script,
            log,
            http: reqwest::Client::new(),
        };
        p.spawn();
        p
    }

    fn spawn(&mut self) {
        let child = Command::new("node")
            .arg(&self.script)
            .arg(self.port.to_string())
            .arg(std::process::id().to_string())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&self.log).unwrap())
            .stderr(Stdio::from(
                std::fs::OpenOptions::new()
                    .append(true)
                    .open(&self.log)
                    .unwrap(),
            ))
            .spawn()
            .expect("spawn node (Node.js is needed for the OpenID provider)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the OpenID provider did not listen: {}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops and starts it again on the same port: new signing keys (a key rotation).
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// An access token for `client` (client credentials), for `resource` (default
    /// [`AUDIENCE`]).
    pub async fn token(&self, client: &str, resource: Option<&str>) -> String {
        let mut form = vec![
            ("grant_type", "client_credentials".to_string()),
            ("client_id", client.to_string()),
            ("client_secret", format!("{client}-secret")),
        ];
        if let Some(r) = resource {
            form.push(("resource", r.to_string()));
        }
        let body: Value = self
            .http
            .post(format!("{}/token", self.issuer()))
            .form(&form)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no token for {client}: {body}"))
            .to_string()
    }

    /// A token no honest provider issues: `expired` (signed with the published key),
    /// `foreign` (signed by another key under a published key id) or `none`.
    pub async fn mint(&self, kind: &str) -> String {
        let body: Value = self
            .http
            .get(format!("{}/test/mint?kind={kind}", self.issuer()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["access_token"].as_str().unwrap().to_string()
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        self.stop();
    }
}
