//! Our own OAuth client-credentials token provider, plugged into graph-rs-sdk as its
//! `ClientApplication` (the SDK's own cannot be pointed at another token URL, and its
//! certificate credential signs one assertion for good). With a certificate, every
//! token request carries a client assertion signed just then (PS256, `x5t#S256` =
//! SHA-256 thumbprint of the certificate, `aud` = the token URL, 10 minutes of
//! validity, a fresh `jti`), so refreshes keep working for as long as the daemon runs.
//! The cache is shared by every
//! clone (the SDK clones the provider into each request); one refresh runs at a time;
//! a token is refreshed five minutes before it expires (or halfway, for short-lived
//! ones), and [`TokenProvider::invalidate`] forces a refresh after a Graph 401.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use graph_core::identity::{ClientApplication, ForceTokenRefresh};
use graph_rs_sdk::error::{AuthExecutionError, AuthExecutionResult};

/// Why a token could not be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// The identity platform refused the credentials (`invalid_client`, …): retrying
    /// does not help.
    Rejected(String),
    /// The token endpoint could not be reached or answered something else.
    Unavailable(String),
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenError::Rejected(m) | TokenError::Unavailable(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for TokenError {}

struct Cached {
    token: String,
    refresh_at: Instant,
}

/// The app's credential.
#[derive(Clone)]
pub enum Credential {
    Secret(String),
    /// PEM certificate registered with the app, and its RSA private key (PEM).
    Certificate {
        cert_pem: String,
        key_pem: String,
    },
}

enum Signer {
    Secret(String),
    Certificate {
        key: jsonwebtoken::EncodingKey,
        thumbprint: String,
    },
}

struct Inner {
    token_url: String,
    client_id: String,
    signer: Signer,
    http: reqwest12::Client,
    cache: tokio::sync::Mutex<Option<Cached>>,
}

#[derive(Clone)]
pub struct TokenProvider(Arc<Inner>);

/// SHA-256 thumbprint of a PEM certificate, base64url without padding (`x5t#S256`).
pub fn thumbprint(cert_pem: &str) -> Result<String, String> {
    use base64::Engine as _;
    use sha2::Digest as _;
    let block = pem::parse_many(cert_pem)
        .map_err(|e| format!("certificate: {e}"))?
        .into_iter()
        .find(|p| p.tag() == "CERTIFICATE")
        .ok_or("certificate: no CERTIFICATE block")?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(block.contents())))
}

impl TokenProvider {
    pub fn new(
        token_url: String,
        client_id: String,
        credential: Credential,
    ) -> Result<TokenProvider, String> {
        let signer = match credential {
            Credential::Secret(s) => Signer::Secret(s),
            Credential::Certificate { cert_pem, key_pem } => Signer::Certificate {
                thumbprint: thumbprint(&cert_pem)?,
                key: jsonwebtoken::EncodingKey::from_rsa_pem(key_pem.as_bytes()).map_err(|e| {
                    format!("private key: {e} (expected an RSA private key in PEM)")
                })?,
            },
        };
        Ok(TokenProvider(Arc::new(Inner {
            token_url,
            client_id,
            signer,
            http: reqwest12::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("reqwest client"),
            cache: tokio::sync::Mutex::new(None),
        })))
    }

    /// A client assertion signed now.
    fn assertion(
        &self,
        key: &jsonwebtoken::EncodingKey,
        thumbprint: &str,
    ) -> Result<String, TokenError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::PS256);
        header.x5t_s256 = Some(thumbprint.to_string());
        let jti = format!("{:032x}", rand::random::<u128>());
        let claims = serde_json::json!({
            "aud": self.0.token_url,
            "iss": self.0.client_id,
            "sub": self.0.client_id,
            "jti": jti,
            "nbf": now.saturating_sub(60),
            "iat": now,
            "exp": now + 600,
        });
        jsonwebtoken::encode(&header, &claims, key)
            .map_err(|e| TokenError::Rejected(format!("signing the client assertion: {e}")))
    }

    /// Forgets the cached token (Graph said 401): the next call gets a new one.
    pub async fn invalidate(&self) {
        *self.0.cache.lock().await = None;
    }

    /// A live access token, from the cache or the token endpoint.
    pub async fn token(&self) -> Result<String, TokenError> {
        let mut cache = self.0.cache.lock().await;
        if let Some(c) = cache.as_ref()
            && Instant::now() < c.refresh_at
        {
            return Ok(c.token.clone());
        }
        let mut form = vec![
            ("grant_type", "client_credentials".to_string()),
            ("scope", "https://graph.microsoft.com/.default".to_string()),
            ("client_id", self.0.client_id.clone()),
        ];
        match &self.0.signer {
            Signer::Secret(s) => form.push(("client_secret", s.clone())),
            Signer::Certificate { key, thumbprint } => {
                form.push((
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_string(),
                ));
                form.push(("client_assertion", self.assertion(key, thumbprint)?));
            }
        }
        let resp = self
            .0
            .http
            .post(&self.0.token_url)
            .form(&form)
            .send()
            .await
            .map_err(|e| {
                TokenError::Unavailable(format!(
                    "token endpoint {}: {}",
                    self.0.token_url,
                    without_url(&e)
                ))
            })?;
        let status = resp.status();
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        if !status.is_success() {
            let code = body["error"].as_str().unwrap_or("error");
            let desc = body["error_description"]
                .as_str()
                .unwrap_or("")
                .lines()
                .next()
                .unwrap_or("");
            let msg = format!(
                "token request for client {} refused ({status}): {code}: {desc}",
                self.0.client_id
            );
            return Err(if status.is_client_error() {
                TokenError::Rejected(msg)
            } else {
                TokenError::Unavailable(msg)
            });
        }
        let token = body["access_token"]
            .as_str()
            .ok_or_else(|| TokenError::Unavailable("token response without access_token".into()))?
            .to_string();
        // `expires_in` is a number or a numeric string; without it, refresh next time
        let ttl = body["expires_in"]
            .as_u64()
            .or_else(|| body["expires_in"].as_str().and_then(|s| s.parse().ok()))
            .unwrap_or(0);
        let early = (ttl / 2).min(300);
        *cache = Some(Cached {
            token: token.clone(),
            refresh_at: Instant::now() + Duration::from_secs(ttl - early),
        });
        Ok(token)
    }
}

/// A reqwest error without the URL it carries (which is ours anyway) or any secret.
fn without_url(e: &reqwest12::Error) -> String {
    let mut s = e.to_string();
    if let Some(u) = e.url() {
        s = s.replace(u.as_str(), "");
    }
    s
}

#[async_trait]
impl ClientApplication for TokenProvider {
    fn get_token_silent(&mut self) -> AuthExecutionResult<String> {
        // The SDK's async path calls the async method; a blocking caller gets the
        // cached token or an error.
        match self.0.cache.try_lock() {
            Ok(c) => c
                .as_ref()
                .map(|c| c.token.clone())
                .ok_or_else(|| AuthExecutionError::Other("no token yet".into())),
            Err(_) => Err(AuthExecutionError::Other(
                "token refresh in progress".into(),
            )),
        }
    }

    async fn get_token_silent_async(&mut self) -> AuthExecutionResult<String> {
        self.token()
            .await
            .map_err(|e| AuthExecutionError::Other(Box::new(e)))
    }

    fn with_force_token_refresh(&mut self, _force: ForceTokenRefresh) {}
}
