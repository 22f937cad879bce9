//! Browser sessions: what the dashboard signs in with. `POST /api/v1/session` takes a
//! token (a static API token or an OpenID Connect access token), checks it as a bearer
//! token is checked, and answers with a session cookie — `HttpOnly`, `SameSite=Strict`,
//! `Secure` under TLS, `Path=/` — and the session's anti-CSRF token. A request with the
//! cookie and no `Authorization` header acts as the session's principal and role
//! ([`crate::auth`]); one that may change something must also carry the anti-CSRF token
//! in `X-CSRF-Token`, which a page of another site cannot read. Sessions live in memory
//! (a restart signs everyone out), expire after `api.session_ttl`, and end with
//! `DELETE /api/v1/session`.
//!
//! Only a SHA-256 of each session id is kept, and ids and anti-CSRF tokens are 256
//! random bits, compared in constant time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, header};
use sha2::{Digest, Sha256};
use tributary_config::Role;

/// The session cookie's name.
pub const COOKIE: &str = "tributary_session";
/// The header a mutating request made with the cookie carries its anti-CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Sessions held at once; past it, expired ones are dropped, then the oldest.
pub const MAX_SESSIONS: usize = 10_000;

/// A signed-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    pub principal: String,
    pub role: Role,
    pub csrf: String,
    pub expires: Instant,
    /// Wall-clock end, for the client.
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

/// The sessions of this instance.
#[derive(Default)]
pub struct Sessions {
    by_digest: Mutex<HashMap<[u8; 32], Session>>,
}

fn digest(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

fn random_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// Equal, in time that does not depend on where they differ.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Sessions {
    /// Starts a session; returns its id (the cookie's value) and the session.
    pub fn create(&self, principal: String, role: Role, ttl: Duration) -> (String, Session) {
        let id = random_token();
        let session = Session {
            principal,
            role,
            csrf: random_token(),
            expires: Instant::now() + ttl,
            expires_at: chrono::Utc::now()
                + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::hours(12)),
        };
        let mut m = self.by_digest.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() >= MAX_SESSIONS {
            let now = Instant::now();
            m.retain(|_, s| s.expires > now);
            if m.len() >= MAX_SESSIONS
                && let Some(oldest) = m.iter().min_by_key(|(_, s)| s.expires).map(|(k, _)| *k)
            {
                m.remove(&oldest);
            }
        }
        m.insert(digest(&id), session.clone());
        (id, session)
    }

    /// The live session of cookie value `id`.
    pub fn get(&self, id: &str) -> Option<Session> {
        let mut m = self.by_digest.lock().unwrap_or_else(|e| e.into_inner());
        let key = digest(id);
        match m.get(&key) {
            Some(s) if s.expires > Instant::now() => Some(s.clone()),
            Some(_) => {
                m.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Ends the session of cookie value `id`.
    pub fn remove(&self, id: &str) {
        self.by_digest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&digest(id));
    }

    /// Resolves when the session of cookie value `id` ends: it expires, is signed out,
    /// or was never live. (Looked at every second, and at its expiry.)
    pub async fn ended(self: std::sync::Arc<Self>, id: String) {
        while let Some(s) = self.get(&id) {
            let left = s.expires.saturating_duration_since(Instant::now());
            tokio::time::sleep(left.min(Duration::from_secs(1))).await;
        }
    }

    /// Sessions held (expired ones included until they are looked at or pushed out).
    pub fn len(&self) -> usize {
        self.by_digest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The session cookie's value in the request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap) -> Option<String> {
    cookie_named(headers, COOKIE)
}

/// The value of cookie `name` in the request's `Cookie` headers (none when empty).
pub fn cookie_named(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The `Set-Cookie` value of a new session (`None`: the cookie that ends one).
pub fn set_cookie(id: Option<&str>, ttl: Duration, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let v = match id {
        Some(id) => format!(
            "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}",
            ttl.as_secs()
        ),
        None => format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{secure}"),
    };
    HeaderValue::from_str(&v).expect("cookie text is ASCII")
}

/// Whether a WebSocket handshake made with the cookie comes from a page of this
/// origin: its `Origin` names the host it was sent to (browsers always send `Origin`
/// on a WebSocket handshake; a page of another site cannot forge it).
pub fn same_origin(headers: &HeaderMap) -> bool {
    let (Some(origin), Some(host)) = (
        headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        headers.get(header::HOST).and_then(|v| v.to_str().ok()),
    ) else {
        return false;
    };
    origin
        .split_once("://")
        .is_some_and(|(scheme, rest)| matches!(scheme, "http" | "https") && rest == host)
}

// ---- routes ---------------------------------------------------------------------------

/// `POST /api/v1/session`'s body.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    /// A static API token or an OpenID Connect access token.
    pub token: String,
}

fn answer(s: &Session) -> serde_json::Value {
    serde_json::json!({
        "signed_in": true,
        "principal": s.principal,
        "role": crate::role_name(s.role),
        "csrf_token": s.csrf,
        "expires_at": s.expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    })
}

/// `POST /api/v1/session`: signs in with a token; the session cookie and the
/// anti-CSRF token in return. Failures count against the address's
/// failed-authentication limit, as a wrong bearer token does.
pub async fn sign_in(
    axum::extract::State(st): axum::extract::State<crate::AppState>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    crate::handlers::JsonBody(body): crate::handlers::JsonBody<SignIn>,
) -> crate::error::ApiResult<axum::response::Response> {
    use crate::error::ApiError;
    use crate::oidc::OidcError;
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    let (failed_auth, ttl) = {
        let cfg = st.auth.read().unwrap_or_else(|e| e.into_inner());
        (cfg.rate_limits.failed_auth, cfg.session_ttl)
    };
    let ckey = crate::auth::client_key(Some(peer.ip()));
    let failed_key = format!("failed_auth:{ckey}");
    if let Some(rate) = failed_auth {
        let v = st.limiter.peek(&failed_key, rate, Instant::now());
        if !v.allowed {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "RATE_LIMITED",
                format!(
                    "too many failed authentications from this address; try again in {} s",
                    v.reset_secs()
                ),
            )
            .details(serde_json::json!({"wait_seconds": v.reset_secs()})));
        }
    }
    let token = body.token.trim();
    let verified = if token.is_empty() {
        Err(OidcError::Invalid("the token is empty".into()))
    } else {
        crate::auth::authenticate(&st, token).await
    };
    let id = match verified {
        Ok(id) => id,
        Err(OidcError::Invalid(why)) => {
            tracing::warn!(client = %ckey, route = "/api/v1/session", reason = %why, "sign-in failed");
            if let Some(rate) = failed_auth {
                st.limiter.hit(&failed_key, rate, Instant::now());
            }
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "AUTH_TOKEN_INVALID",
                why,
            ));
        }
        Err(OidcError::NoRole(why)) => {
            return Err(ApiError::new(StatusCode::FORBIDDEN, "AUTHZ_FORBIDDEN", why));
        }
        Err(OidcError::Unavailable(why)) => {
            return Err(ApiError::unavailable(format!("OpenID provider: {why}")));
        }
    };
    let (sid, session) = st.sessions.create(id.principal.clone(), id.role, ttl);
    tracing::info!(principal = %id.principal, client = %ckey, "signed in (session)");
    let mut resp = (StatusCode::CREATED, axum::Json(answer(&session))).into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(Some(&sid), ttl, st.secure_cookies),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp.extensions_mut().insert(crate::audit::Caller {
        principal: id.principal,
        role: id.role,
    });
    Ok(resp)
}

/// `GET /api/v1/session`: the browser session of the request's cookie, if it is live:
/// `{"signed_in": true, principal, role, csrf_token, expires_at}`, else
/// `{"signed_in": false}`; either way with `sign_in_url` when the identity provider
/// signs in ([`crate::oidc_sign_in`]) (never 401, so that the sign-in page loads without an error).
/// Only the cookie counts: it is 256 random bits, so asking tells nothing a guesser
/// could use.
pub async fn who(
    axum::extract::State(st): axum::extract::State<crate::AppState>,
    headers: HeaderMap,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let oidc = st
        .auth
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .oidc
        .as_ref()
        .is_some_and(|o| o.config().sign_in.is_some());
    let mut body = match cookie(&headers).and_then(|id| st.sessions.get(&id)) {
        Some(s) => answer(&s),
        None => serde_json::json!({"signed_in": false}),
    };
    if oidc {
        body["sign_in_url"] = crate::oidc_sign_in::PATH.into();
    }
    let mut resp = axum::Json(body).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// `DELETE /api/v1/session`: signs out (the session ends, the cookie is cleared).
pub async fn sign_out(
    axum::extract::State(st): axum::extract::State<crate::AppState>,
    headers: HeaderMap,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if let Some(id) = cookie(&headers) {
        st.sessions.remove(&id);
    }
    let mut resp = axum::http::StatusCode::NO_CONTENT.into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(None, Duration::ZERO, st.secure_cookies),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_found_by_their_id_expire_and_end() {
        let s = Sessions::default();
        let (id, made) = s.create("v".into(), Role::Viewer, Duration::from_secs(60));
        assert_eq!(id.len(), 64);
        assert_ne!(made.csrf, id);
        assert_eq!(s.get(&id).unwrap().principal, "v");
        assert!(s.get("0".repeat(64).as_str()).is_none());
        s.remove(&id);
        assert!(s.get(&id).is_none());
        let (old, _) = s.create("v".into(), Role::Viewer, Duration::ZERO);
        assert!(s.get(&old).is_none(), "expired");
        assert!(s.is_empty(), "an expired session is dropped once looked at");
    }

    #[test]
    fn the_cookie_is_read_among_others_and_set_with_its_attributes() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            "a=1; tributary_session=abc ; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&h).as_deref(), Some("abc"));
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, "x=1".parse().unwrap());
        h.append(header::COOKIE, "tributary_session=def".parse().unwrap());
        assert_eq!(cookie(&h).as_deref(), Some("def"));
        assert!(cookie(&HeaderMap::new()).is_none());
        let c = set_cookie(Some("abc"), Duration::from_secs(60), true);
        let c = c.to_str().unwrap();
        for attr in [
            "HttpOnly",
            "SameSite=Strict",
            "Path=/",
            "Max-Age=60",
            "Secure",
        ] {
            assert!(c.contains(attr), "{c}");
        }
        assert!(
            !set_cookie(Some("a"), Duration::from_secs(1), false)
                .to_str()
                .unwrap()
                .contains("Secure")
        );
        assert!(
            set_cookie(None, Duration::ZERO, false)
                .to_str()
                .unwrap()
                .contains("Max-Age=0")
        );
    }

    #[test]
    fn only_a_page_of_this_origin_may_use_the_cookie_on_a_websocket() {
        let h = |origin: Option<&str>| {
            let mut h = HeaderMap::new();
            h.insert(header::HOST, "127.0.0.1:8080".parse().unwrap());
            if let Some(o) = origin {
                h.insert(header::ORIGIN, o.parse().unwrap());
            }
            h
        };
        assert!(same_origin(&h(Some("http://127.0.0.1:8080"))));
        assert!(same_origin(&h(Some("https://127.0.0.1:8080"))));
        assert!(!same_origin(&h(Some("http://evil.example"))));
        assert!(!same_origin(&h(Some("http://127.0.0.1:8080.evil.example"))));
        assert!(!same_origin(&h(Some("null"))));
        assert!(!same_origin(&h(None)));
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
    }
}
