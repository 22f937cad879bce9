//! Our own OAuth client-credentials token provider, plugged into graph-rs-sdk as its
//! `ClientApplication` (the SDK's own cannot be pointed at another token URL, and its
//! certificate credential signs one assertion for good). The cache is shared by every
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

struct Inner {
    token_url: String,
    client_id: String,
    secret: String,
    http: reqwest12::Client,
    cache: tokio::sync::Mutex<Option<Cached>>,
}

#[derive(Clone)]
pub struct TokenProvider(Arc<Inner>);

impl TokenProvider {
    pub fn new(token_url: String, client_id: String, secret: String) -> TokenProvider {
        TokenProvider(Arc::new(Inner {
            token_url,
            client_id,
            secret,
            http: reqwest12::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("reqwest client"),
            cache: tokio::sync::Mutex::new(None),
        }))
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
        let form = [
            ("grant_type", "client_credentials"),
            ("scope", "https://graph.microsoft.com/.default"),
            ("client_id", self.0.client_id.as_str()),
            ("client_secret", self.0.secret.as_str()),
        ];
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
