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
    /// Lifetime of the dashboard clients' access tokens, when not the default 300 s.
    user_token_ttl: Option<u64>,
}

impl OidcProvider {
    /// Starts a provider on a free loopback port.
    pub fn start() -> OidcProvider {
        Self::start_with(None)
    }

    /// Starts a provider whose sign-ins (the `dashboard` clients) get access tokens
    /// valid for `user_token_ttl` seconds.
    pub fn start_with(user_token_ttl: Option<u64>) -> OidcProvider {
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
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            user_token_ttl,
        };
        p.spawn();
        p
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new("node");
        if let Some(ttl) = self.user_token_ttl {
            cmd.env("TRIBUTARY_TEST_OIDC_TTL", ttl.to_string());
        }
        let child = cmd
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

/// What a person does on the provider's pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtTheProvider<'a> {
    /// Signs in as this account (any password) and consents.
    SignIn(&'a str),
    /// Cancels on the sign-in page.
    Cancel,
}

impl OidcProvider {
    /// Plays a browser at the provider from `authorize_url` (where the daemon sent
    /// it): follows the provider's redirects, keeping its cookies, and submits its
    /// sign-in and consent forms as `who` says. Returns the URL the provider finally
    /// sends the browser to (the daemon's callback, with a code or an error).
    pub async fn authorize(&self, authorize_url: &str, who: AtTheProvider<'_>) -> String {
        let issuer = self.issuer();
        let mut jar: Vec<(String, String)> = Vec::new();
        let mut url = authorize_url.to_string();
        let mut form: Option<Vec<(&str, String)>> = None;
        for _ in 0..20 {
            let cookies = jar
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            let req = match form.take() {
                Some(f) => self.http.post(&url).form(&f),
                None => self.http.get(&url),
            };
            let resp = req.header("cookie", cookies).send().await.unwrap();
            for c in resp.headers().get_all("set-cookie") {
                let kv = c.to_str().unwrap().split(';').next().unwrap();
                if let Some((k, v)) = kv.split_once('=') {
                    jar.retain(|(n, _)| n != k);
                    jar.push((k.to_string(), v.to_string()));
                }
            }
            let status = resp.status();
            if status.is_redirection() {
                let loc = resp.headers()["location"].to_str().unwrap().to_string();
                let loc = if loc.starts_with('/') {
                    format!("{issuer}{loc}")
                } else {
                    loc
                };
                if !loc.starts_with(&issuer) {
                    return loc;
                }
                url = loc;
                continue;
            }
            let page = resp.text().await.unwrap();
            assert!(
                status.is_success(),
                "the provider answered {status}: {page}"
            );
            let prompt = if page.contains(r#"name="prompt" value="login""#) {
                "login"
            } else if page.contains(r#"name="prompt" value="consent""#) {
                "consent"
            } else {
                panic!("an unexpected page at the provider: {page}");
            };
            let action = page
                .split(r#"action=""#)
                .nth(1)
                .and_then(|r| r.split('"').next())
                .expect("the page's form")
                .replace("&amp;", "&");
            let action = if action.starts_with('/') {
                format!("{issuer}{action}")
            } else {
                action
            };
            match (who, prompt) {
                (AtTheProvider::Cancel, _) => {
                    url = format!("{action}/abort");
                }
                (AtTheProvider::SignIn(login), "login") => {
                    url = action;
                    form = Some(vec![
                        ("prompt", "login".into()),
                        ("login", login.to_string()),
                        ("password", "any".into()),
                    ]);
                }
                (AtTheProvider::SignIn(_), _) => {
                    url = action;
                    form = Some(vec![("prompt", "consent".into())]);
                }
            }
        }
        panic!("the provider never sent the browser back");
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        self.stop();
    }
}
