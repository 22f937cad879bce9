//! Signing in to the dashboard through the OpenID provider (`api.oidc.sign_in`): the
//! authorization code flow with PKCE (RFC 7636, `S256`), `state` and `nonce`.
//!
//! `GET /api/v1/session/oidc` starts a sign-in: it keeps the flow (PKCE verifier,
//! nonce, redirect URI) under a random `state`, sets that `state` in a short cookie
//! scoped to these two routes (`SameSite=Lax`, so that it comes back on the provider's
//! redirect), and sends the browser to the provider. `GET /api/v1/session/oidc/callback`
//! takes the flow back — only once, only within [`FLOW_TTL`], only from the browser
//! whose cookie holds its `state` (no login CSRF) — checks `iss` when the provider
//! sends it (RFC 9207, mix-ups), trades the code for tokens, verifies the ID token
//! (signature, audience, nonce) and the access token as any bearer token is verified
//! ([`crate::oidc`]: issuer, audience, roles), and starts a session
//! ([`crate::session`]) that ends when the access token does (or at
//! `api.session_ttl`, whichever comes first). The browser then goes to the dashboard;
//! a failure goes there too, with its reason after `#/signin?error=`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::oidc::OidcError;

/// The cookie that binds a sign-in to the browser that started it.
pub const STATE_COOKIE: &str = "tributary_oidc";
/// The path both routes live under (the state cookie is sent to them only).
pub const PATH: &str = "/api/v1/session/oidc";
/// The callback's path, under this API's root.
pub const CALLBACK: &str = "/api/v1/session/oidc/callback";
/// A sign-in not finished within this is forgotten.
pub const FLOW_TTL: Duration = Duration::from_secs(600);
/// Sign-ins in progress held at once; past it, the oldest is forgotten.
pub const MAX_FLOWS: usize = 10_000;

/// One sign-in in progress.
#[derive(Debug, Clone)]
pub struct Flow {
    pub verifier: String,
    pub nonce: String,
    pub redirect_uri: String,
    started: Instant,
}

/// The sign-ins in progress, by `state`.
#[derive(Default)]
pub struct Flows {
    by_state: Mutex<HashMap<String, Flow>>,
}

fn random() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// The PKCE `S256` challenge of a verifier: base64url(SHA-256(verifier)).
pub fn challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

impl Flows {
    /// Starts a flow; returns its `state` and the flow.
    pub fn begin(&self, redirect_uri: String) -> (String, Flow) {
        let state = random();
        let flow = Flow {
            verifier: random(),
            nonce: random(),
            redirect_uri,
            started: Instant::now(),
        };
        let mut m = self.by_state.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() >= MAX_FLOWS {
            m.retain(|_, f| f.started.elapsed() < FLOW_TTL);
            if m.len() >= MAX_FLOWS
                && let Some(oldest) = m
                    .iter()
                    .min_by_key(|(_, f)| f.started)
                    .map(|(k, _)| k.clone())
            {
                m.remove(&oldest);
            }
        }
        m.insert(state.clone(), flow.clone());
        (state, flow)
    }

    /// Takes the live flow of `state` (once: a second take finds nothing).
    pub fn take(&self, state: &str) -> Option<Flow> {
        let mut m = self.by_state.lock().unwrap_or_else(|e| e.into_inner());
        m.remove(state).filter(|f| f.started.elapsed() < FLOW_TTL)
    }
}

/// The provider's authorization URL for a flow.
pub fn authorize_url(
    endpoint: &str,
    si: &tributary_config::OidcSignIn,
    state: &str,
    flow: &Flow,
) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("response_type", "code")
        .append_pair("client_id", &si.client_id)
        .append_pair("redirect_uri", &flow.redirect_uri)
        .append_pair("scope", &si.scopes.join(" "))
        .append_pair("state", state)
        .append_pair("nonce", &flow.nonce)
        .append_pair("code_challenge", &challenge(&flow.verifier))
        .append_pair("code_challenge_method", "S256");
    if let Some(r) = &si.resource {
        q.append_pair("resource", r);
    }
    let sep = if endpoint.contains('?') { '&' } else { '?' };
    format!("{endpoint}{sep}{}", q.finish())
}

/// Where the provider sends the browser back: the configured URL, else the callback
/// on the host the browser used (`Host` must look like a host, and the provider only
/// accepts a redirect URI registered for the client anyway).
pub fn redirect_uri(configured: Option<&str>, headers: &HeaderMap, tls: bool) -> Option<String> {
    if let Some(u) = configured {
        return Some(u.to_string());
    }
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let ok = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
    ok.then(|| {
        let scheme = if tls { "https" } else { "http" };
        format!("{scheme}://{host}{CALLBACK}")
    })
}

/// The dashboard a redirect URI belongs to (the API's root).
pub fn dashboard_of(redirect_uri: &str) -> String {
    let root = redirect_uri
        .strip_suffix(CALLBACK)
        .unwrap_or_default()
        .to_string();
    format!("{root}/")
}

/// The state cookie's value in the request.
pub fn state_cookie(headers: &HeaderMap) -> Option<String> {
    crate::session::cookie_named(headers, STATE_COOKIE)
}

/// The `Set-Cookie` of a flow's state (`None`: the one that clears it).
pub fn set_state_cookie(state: Option<&str>, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let (value, age) = match state {
        Some(s) => (s, FLOW_TTL.as_secs()),
        None => ("", 0),
    };
    HeaderValue::from_str(&format!(
        "{STATE_COOKIE}={value}; HttpOnly; SameSite=Lax; Path={PATH}; Max-Age={age}{secure}"
    ))
    .expect("cookie text is ASCII")
}

fn redirect(to: &str) -> Response {
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// `GET /api/v1/session/oidc`: starts a sign-in at the provider (303 to it).
pub async fn start(State(st): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    let oidc = st
        .auth
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .oidc
        .clone();
    let Some((oidc, si)) = oidc.and_then(|o| {
        let si = o.config().sign_in.clone()?;
        Some((o, si))
    }) else {
        return Err(ApiError::not_found(
            "NOT_FOUND",
            "sign-in through an OpenID provider is not configured (api.oidc.sign_in)",
        ));
    };
    let endpoint = oidc
        .endpoints()
        .await
        .map_err(|e| ApiError::unavailable(format!("OpenID provider: {}", why(&e))))?
        .authorization;
    if endpoint.is_empty() {
        return Err(ApiError::unavailable(
            "OpenID provider: its discovery document names no authorization_endpoint",
        ));
    }
    let uri =
        redirect_uri(si.redirect_url.as_deref(), &headers, st.secure_cookies).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "INVALID_PARAMETER",
                "the request's Host header is not a host name; set api.oidc.sign_in.redirect_url",
            )
        })?;
    let (state, flow) = st.sign_in_flows.begin(uri);
    let mut resp = redirect(&authorize_url(&endpoint, &si, &state, &flow));
    resp.headers_mut().insert(
        header::SET_COOKIE,
        set_state_cookie(Some(&state), st.secure_cookies),
    );
    Ok(resp)
}

fn why(e: &OidcError) -> &str {
    match e {
        OidcError::Invalid(w) | OidcError::NoRole(w) | OidcError::Unavailable(w) => w,
    }
}

/// The callback's query: a code, or the provider's error (RFC 6749 4.1.2).
#[derive(Debug, Default, serde::Deserialize)]
pub struct Callback {
    pub code: Option<String>,
    pub state: Option<String>,
    pub iss: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// Why a callback cannot go on, before any token is asked for (pure: unit-tested).
pub fn check_callback(
    q: &Callback,
    cookie_state: Option<&str>,
    issuer: &str,
) -> Result<(String, String), String> {
    if let Some(err) = &q.error {
        let text: String = match &q.error_description {
            Some(d) => format!("{err}: {d}"),
            None => err.clone(),
        }
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
        return Err(format!("the identity provider refused: {text}"));
    }
    let (Some(code), Some(state)) = (&q.code, &q.state) else {
        return Err("the identity provider's answer has no code and state".into());
    };
    match cookie_state {
        Some(c) if crate::session::same(c, state) => {}
        Some(_) => {
            return Err("this answer belongs to another sign-in: start again".into());
        }
        None => {
            return Err(
                "this browser did not start this sign-in (or took longer than 10 minutes): start again"
                    .into(),
            );
        }
    }
    if let Some(iss) = &q.iss
        && iss.trim_end_matches('/') != issuer
    {
        return Err("the answer comes from another identity provider (iss)".into());
    }
    Ok((code.clone(), state.clone()))
}

/// `GET /api/v1/session/oidc/callback`: where the provider sends the browser back.
/// Success: a session cookie and 303 to the dashboard; failure: 303 to the
/// dashboard's sign-in page with the reason. Failures count against the address's
/// failed-authentication limit.
pub async fn callback(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<Callback>,
) -> Response {
    let (oidc, failed_auth, ttl) = {
        let cfg = st.auth.read().unwrap_or_else(|e| e.into_inner());
        (
            cfg.oidc.clone(),
            cfg.rate_limits.failed_auth,
            cfg.session_ttl,
        )
    };
    let ckey = crate::auth::client_key(Some(peer.ip()));
    let failed_key = format!("failed_auth:{ckey}");
    let cookie_state = state_cookie(&headers);
    // where to send the browser: the flow's own dashboard when the flow is known
    let flow = q
        .state
        .as_deref()
        .filter(|s| {
            cookie_state
                .as_deref()
                .is_some_and(|c| crate::session::same(c, s))
        })
        .and_then(|s| st.sign_in_flows.take(s));
    let home = match &flow {
        Some(f) => dashboard_of(&f.redirect_uri),
        None => "/".to_string(),
    };
    let (limiter, secure) = (st.limiter.clone(), st.secure_cookies);
    let fail = |reason: String, count: bool| {
        tracing::warn!(client = %ckey, route = CALLBACK, reason = %reason, "sign-in through the OpenID provider failed");
        if count && let Some(rate) = failed_auth {
            limiter.hit(&failed_key, rate, Instant::now());
        }
        let reason: String =
            percent_encoding::utf8_percent_encode(&reason, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        let mut resp = redirect(&format!("{home}#/signin?error={reason}"));
        resp.headers_mut()
            .insert(header::SET_COOKIE, set_state_cookie(None, secure));
        resp
    };
    if let Some(rate) = failed_auth
        && !st.limiter.peek(&failed_key, rate, Instant::now()).allowed
    {
        return fail(
            "too many failed authentications from this address; try again later".into(),
            false,
        );
    }
    let Some(oidc) = oidc.filter(|o| o.config().sign_in.is_some()) else {
        return fail(
            "sign-in through an OpenID provider is not configured (api.oidc.sign_in)".into(),
            false,
        );
    };
    let si = oidc.config().sign_in.clone().expect("checked above");
    let (code, _) = match check_callback(&q, cookie_state.as_deref(), &oidc.config().issuer) {
        Ok(v) => v,
        // the provider's own refusal (the user cancelled) is not a guess at anything
        Err(reason) => return fail(reason, q.error.is_none()),
    };
    let Some(flow) = flow else {
        return fail(
            "this sign-in has expired or was already used: start again".into(),
            true,
        );
    };
    let tokens = match oidc
        .exchange(&code, &flow.verifier, &flow.redirect_uri)
        .await
    {
        Ok(t) => t,
        Err(e) => {
            let count = matches!(e, OidcError::Invalid(_));
            return fail(why(&e).to_string(), count);
        }
    };
    if let Err(e) = oidc
        .verify_id_token(&tokens.id_token, &si.client_id, &flow.nonce)
        .await
    {
        let count = matches!(e, OidcError::Invalid(_));
        return fail(why(&e).to_string(), count);
    }
    let (id, exp) = match oidc.verify_until(&tokens.access_token).await {
        Ok(v) => v,
        Err(OidcError::Invalid(w)) => {
            return fail(
                format!(
                    "the access token the provider issued is not one this API accepts ({w}); ask for this API's audience through api.oidc.sign_in.scopes or .resource"
                ),
                true,
            );
        }
        Err(e) => return fail(why(&e).to_string(), false),
    };
    let left = exp - chrono::Utc::now().timestamp();
    if left <= 0 {
        return fail(
            "the provider issued an access token that has already expired".into(),
            true,
        );
    }
    let ttl = ttl.min(Duration::from_secs(left as u64));
    let (sid, _) = st.sessions.create(id.principal.clone(), id.role, ttl);
    tracing::info!(principal = %id.principal, client = %ckey, "signed in through the OpenID provider (session)");
    let mut resp = redirect(&home);
    let h = resp.headers_mut();
    h.append(
        header::SET_COOKIE,
        crate::session::set_cookie(Some(&sid), ttl, st.secure_cookies),
    );
    h.append(
        header::SET_COOKIE,
        set_state_cookie(None, st.secure_cookies),
    );
    resp.extensions_mut().insert(crate::audit::Caller {
        principal: id.principal,
        role: id.role,
    });
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign_in() -> tributary_config::OidcSignIn {
        tributary_config::OidcSignIn {
            client_id: "dash board".into(),
            client_secret: None,
            scopes: vec!["openid".into(), "profile".into()],
            resource: Some("api://tributary".into()),
            redirect_url: None,
        }
    }

    #[test]
    fn the_pkce_challenge_is_rfc_7636s() {
        // RFC 7636, appendix B
        assert_eq!(
            challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn a_flow_is_taken_once_and_its_secrets_are_fresh() {
        let flows = Flows::default();
        let (s1, f1) = flows.begin("http://h/cb".into());
        let (s2, f2) = flows.begin("http://h/cb".into());
        assert_ne!(s1, s2);
        assert_ne!(f1.verifier, f2.verifier);
        assert_ne!(f1.nonce, f1.verifier);
        assert!(f1.verifier.len() >= 43, "RFC 7636: 43 to 128 characters");
        assert_eq!(flows.take(&s1).unwrap().nonce, f1.nonce);
        assert!(flows.take(&s1).is_none(), "a state is good once");
        assert!(flows.take("nope").is_none());
        assert!(flows.take(&s2).is_some());
    }

    #[test]
    fn the_authorize_url_carries_the_flow() {
        let flows = Flows::default();
        let (state, flow) =
            flows.begin("http://127.0.0.1:8080/api/v1/session/oidc/callback".into());
        let url = authorize_url("https://idp/auth?tenant=x", &sign_in(), &state, &flow);
        assert!(url.starts_with("https://idp/auth?tenant=x&response_type=code&"));
        let q: HashMap<String, String> =
            form_urlencoded::parse(url.split_once('?').unwrap().1.as_bytes())
                .into_owned()
                .collect();
        assert_eq!(q["client_id"], "dash board");
        assert_eq!(q["redirect_uri"], flow.redirect_uri);
        assert_eq!(q["scope"], "openid profile");
        assert_eq!(q["state"], state);
        assert_eq!(q["nonce"], flow.nonce);
        assert_eq!(q["code_challenge"], challenge(&flow.verifier));
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["resource"], "api://tributary");
        assert!(!url.contains(&flow.verifier), "the verifier stays here");
    }

    #[test]
    fn the_redirect_uri_comes_from_the_config_or_a_sane_host() {
        let h = |host: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::HOST, host.parse().unwrap());
            h
        };
        assert_eq!(
            redirect_uri(None, &h("127.0.0.1:8080"), false).unwrap(),
            "http://127.0.0.1:8080/api/v1/session/oidc/callback"
        );
        assert_eq!(
            redirect_uri(None, &h("tributary.example"), true).unwrap(),
            "https://tributary.example/api/v1/session/oidc/callback"
        );
        assert!(redirect_uri(None, &h("evil/x?"), false).is_none());
        assert!(redirect_uri(None, &HeaderMap::new(), false).is_none());
        let fixed = "https://proxy.example/tributary/api/v1/session/oidc/callback";
        assert_eq!(
            redirect_uri(Some(fixed), &h("other"), false).unwrap(),
            fixed
        );
        assert_eq!(dashboard_of(fixed), "https://proxy.example/tributary/");
        assert_eq!(
            dashboard_of("http://127.0.0.1:8080/api/v1/session/oidc/callback"),
            "http://127.0.0.1:8080/"
        );
    }

    #[test]
    fn a_callback_needs_its_browsers_state_and_the_right_issuer() {
        let q = |code: Option<&str>, state: Option<&str>, iss: Option<&str>| Callback {
            code: code.map(Into::into),
            state: state.map(Into::into),
            iss: iss.map(Into::into),
            ..Default::default()
        };
        let issuer = "http://127.0.0.1:9";
        assert_eq!(
            check_callback(
                &q(Some("c"), Some("s"), Some("http://127.0.0.1:9/")),
                Some("s"),
                issuer
            ),
            Ok(("c".into(), "s".into()))
        );
        assert!(check_callback(&q(Some("c"), Some("s"), None), Some("s"), issuer).is_ok());
        let err = |r: Result<(String, String), String>| r.unwrap_err();
        assert!(
            err(check_callback(
                &q(Some("c"), Some("s"), None),
                Some("t"),
                issuer
            ))
            .contains("another sign-in")
        );
        assert!(
            err(check_callback(&q(Some("c"), Some("s"), None), None, issuer))
                .contains("did not start")
        );
        assert!(
            err(check_callback(
                &q(Some("c"), Some("s"), Some("http://evil")),
                Some("s"),
                issuer
            ))
            .contains("iss")
        );
        assert!(
            err(check_callback(&q(None, Some("s"), None), Some("s"), issuer)).contains("no code")
        );
        let refused = Callback {
            error: Some("access_denied".into()),
            error_description: Some("End-User aborted\ninteraction".into()),
            ..Default::default()
        };
        let e = err(check_callback(&refused, None, issuer));
        assert!(e.contains("access_denied: End-User aborted"), "{e}");
        assert!(!e.contains('\n'));
    }

    #[test]
    fn the_state_cookie_is_lax_short_and_scoped_to_the_sign_in_routes() {
        let c = set_state_cookie(Some("abc"), true);
        let c = c.to_str().unwrap();
        for attr in [
            "tributary_oidc=abc",
            "HttpOnly",
            "SameSite=Lax",
            "Path=/api/v1/session/oidc",
            "Max-Age=600",
            "Secure",
        ] {
            assert!(c.contains(attr), "{c}");
        }
        assert!(
            set_state_cookie(None, false)
                .to_str()
                .unwrap()
                .contains("Max-Age=0")
        );
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "tributary_session=x; tributary_oidc=st".parse().unwrap(),
        );
        assert_eq!(state_cookie(&h).as_deref(), Some("st"));
    }
}
