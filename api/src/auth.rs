//! Authentication, authorization and rate limits: the middleware every request passes.
//!
//! In order: the client address's request limit; the route's access from the route
//! table ([`crate::routes::access`], fail closed); the bearer token (constant-time
//! comparison of SHA-256 digests), or without one the dashboard's session cookie
//! ([`crate::session`]); the failed-authentication limit of the client address (past
//! it, every request with credentials from that address is refused until its window
//! ends, so guessing cannot go on); the role; with the cookie, the anti-CSRF token of
//! a request that may change something; the principal's read or write limit. Failed authentications are logged with the client address, never the token.
//! Every response that counted against a limit carries `X-RateLimit-Limit`,
//! `-Remaining` and `-Reset` of the tightest one; a refusal is `429 RATE_LIMITED` with
//! `Retry-After` and `details.wait_seconds`.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::error::ApiError;
use crate::oidc::{Identity, OidcError};
use crate::ratelimit::{Rate, Verdict};
use crate::routes::{Access, access};

/// The client address a limit is kept for: IPv6 by its /64 (one host's usual share), so
/// spraying addresses of one network does not multiply the allowance.
pub fn client_key(addr: Option<IpAddr>) -> String {
    match addr {
        Some(IpAddr::V4(a)) => a.to_string(),
        Some(IpAddr::V6(a)) => match a.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = a.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        None => "unknown".into(),
    }
}

/// The static token whose SHA-256 is `presented`'s, compared in constant time.
fn static_token(tokens: &[tributary_config::ApiToken], presented: &str) -> Option<Identity> {
    let presented: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
    let mut found = None;
    for t in tokens {
        let diff = t
            .sha256
            .iter()
            .zip(presented.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff == 0 {
            found = Some(Identity {
                principal: t.name.clone(),
                role: t.role,
            });
        }
    }
    found
}

/// Who a presented bearer token names: a static token, else (when configured, and it
/// has the shape of a JWT) an OpenID Connect token.
pub(crate) async fn authenticate(st: &AppState, token: &str) -> Result<Identity, OidcError> {
    let oidc = {
        let cfg = st.auth.read().unwrap_or_else(|e| e.into_inner());
        if let Some(id) = static_token(&cfg.tokens, token) {
            return Ok(id);
        }
        cfg.oidc.clone()
    };
    match oidc {
        Some(o) if token.split('.').count() == 3 => o.verify(token).await,
        _ => Err(OidcError::Invalid("the bearer token is not valid".into())),
    }
}

/// The bearer token of the request: `None` without an `Authorization` header,
/// `Some(Err)` with another scheme or an empty token.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<Result<&str, ()>> {
    let v = headers.get(header::AUTHORIZATION)?;
    let token = v.to_str().ok().and_then(|v| {
        let (scheme, rest) = v.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
    });
    Some(match token {
        Some(t) if !t.is_empty() => Ok(t),
        _ => Err(()),
    })
}

/// The credentials a request came with.
enum Presented {
    Bearer(Result<String, ()>),
    /// The session cookie's value.
    Cookie(String),
}

/// The limits counted so far for one request; the tightest goes into the headers.
#[derive(Default)]
struct Counted(Option<Verdict>);

impl Counted {
    fn add(&mut self, v: Verdict) {
        if self.0.is_none_or(|t| v.remaining < t.remaining) {
            self.0 = Some(v);
        }
    }

    fn headers(&self, resp: &mut Response) {
        if let Some(v) = self.0 {
            let h = resp.headers_mut();
            h.insert("x-ratelimit-limit", HeaderValue::from(v.limit));
            h.insert("x-ratelimit-remaining", HeaderValue::from(v.remaining));
            h.insert("x-ratelimit-reset", HeaderValue::from(v.reset_secs()));
        }
    }

    fn refuse(&self, v: Verdict, what: &str) -> Response {
        let wait = v.reset_secs();
        let mut resp = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "RATE_LIMITED",
            format!("too many {what}; try again in {wait} s"),
        )
        .details(json!({"wait_seconds": wait}))
        .into_response();
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(wait));
        self.headers(&mut resp);
        resp
    }
}

fn unauthorized(message: &str) -> Response {
    let mut resp =
        ApiError::new(StatusCode::UNAUTHORIZED, "AUTH_TOKEN_INVALID", message).into_response();
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"tributary\""),
    );
    resp
}

pub async fn auth(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let now = Instant::now();
    let client = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let ckey = client_key(client);
    let (limits, open_metrics) = {
        let cfg = st.auth.read().unwrap_or_else(|e| e.into_inner());
        (cfg.rate_limits, cfg.open_metrics)
    };
    let hit = |class: &str, key: &str, rate: Option<Rate>| {
        rate.map(|r| st.limiter.hit(&format!("{class}:{key}"), r, now))
    };
    let mut counted = Counted::default();
    if let Some(v) = hit("client", &ckey, limits.client) {
        counted.add(v);
        if !v.allowed {
            return counted.refuse(v, "requests from this address");
        }
    }
    let matched = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string());
    let need = match access(req.method(), matched.as_deref()) {
        Access::Open => None,
        // the handler authenticates after the upgrade (close codes, not 401/403)
        Access::InBand(_) => None,
        Access::Needs(_) if open_metrics && matched.as_deref() == Some("/api/v1/metrics") => None,
        Access::Needs(r) => Some(r),
    };
    let Some(need) = need else {
        let mut resp = next.run(req).await;
        counted.headers(&mut resp);
        return resp;
    };
    // a bearer token decides when there is one; else the dashboard's session cookie
    let presented = match bearer(req.headers()) {
        Some(p) => Presented::Bearer(p.map(str::to_string)),
        None => match crate::session::cookie(req.headers()) {
            Some(id) => Presented::Cookie(id),
            None => {
                let mut resp = unauthorized("a bearer token is required");
                counted.headers(&mut resp);
                return resp;
            }
        },
    };
    let failed_key = format!("failed_auth:{ckey}");
    if let Some(rate) = limits.failed_auth {
        let v = st.limiter.peek(&failed_key, rate, now);
        if !v.allowed {
            return counted.refuse(v, "failed authentications from this address");
        }
    }
    let mut session = None;
    let verified = match presented {
        Presented::Bearer(Ok(token)) => authenticate(&st, &token).await,
        Presented::Bearer(Err(())) => Err(OidcError::Invalid(
            "the Authorization header is not `Bearer <token>`".into(),
        )),
        Presented::Cookie(cookie) => match st.sessions.get(&cookie) {
            Some(s) => {
                let id = Identity {
                    principal: s.principal.clone(),
                    role: s.role,
                };
                session = Some((cookie, s));
                Ok(id)
            }
            None => Err(OidcError::Invalid(
                "the session has expired or was ended: sign in again".into(),
            )),
        },
    };
    let Identity { principal, role } = match verified {
        Ok(id) => id,
        Err(OidcError::Invalid(why)) => {
            tracing::warn!(client = %ckey, method = %req.method(), route = matched.as_deref().unwrap_or("other"), reason = %why, "authentication failed");
            if let Some(rate) = limits.failed_auth {
                let v = st.limiter.hit(&failed_key, rate, now);
                if !v.allowed {
                    return counted.refuse(v, "failed authentications from this address");
                }
            }
            let mut resp = unauthorized(&why);
            counted.headers(&mut resp);
            return resp;
        }
        Err(OidcError::NoRole(why)) => {
            let mut resp =
                ApiError::new(StatusCode::FORBIDDEN, "AUTHZ_FORBIDDEN", why).into_response();
            counted.headers(&mut resp);
            return resp;
        }
        Err(OidcError::Unavailable(why)) => {
            let mut resp = ApiError::unavailable(format!("OpenID provider: {why}")).into_response();
            counted.headers(&mut resp);
            return resp;
        }
    };
    let caller = crate::audit::Caller {
        principal: principal.clone(),
        role,
    };
    if role < need {
        let mut resp = ApiError::new(
            StatusCode::FORBIDDEN,
            "AUTHZ_FORBIDDEN",
            format!("this route needs the `{}` role", crate::role_name(need)),
        )
        .into_response();
        counted.headers(&mut resp);
        resp.extensions_mut().insert(caller);
        return resp;
    }
    // a change made with the cookie: the page must prove it is ours (a page of another
    // site can make the browser send the cookie, but cannot read the token)
    if let Some((_, s)) = &session
        && !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
        && !req
            .headers()
            .get(crate::session::CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| crate::session::same(v, &s.csrf))
    {
        let mut resp = ApiError::new(
            StatusCode::FORBIDDEN,
            "CSRF_TOKEN_INVALID",
            "a change made with the session cookie needs the session's anti-CSRF token in X-CSRF-Token",
        )
        .into_response();
        counted.headers(&mut resp);
        resp.extensions_mut().insert(caller);
        return resp;
    }
    let (class, rate) = if matches!(*req.method(), Method::GET | Method::HEAD) {
        ("read", limits.read)
    } else {
        ("write", limits.write)
    };
    if let Some(v) = hit(class, &principal, rate) {
        counted.add(v);
        if !v.allowed {
            let mut resp = counted.refuse(v, &format!("{class} requests of this principal"));
            resp.extensions_mut().insert(caller);
            return resp;
        }
    }
    let mut req = req;
    req.extensions_mut().insert(Principal(principal.clone()));
    if let Some((cookie, _)) = session {
        req.extensions_mut().insert(SessionCookie(cookie));
    }
    let method = req.method().clone();
    let mut resp = next.run(req).await;
    counted.headers(&mut resp);
    resp.extensions_mut().insert(caller);
    // what an operator did, and who: every request that may change something
    if class == "write" {
        tracing::info!(
            principal = %principal,
            client = %ckey,
            %method,
            route = matched.as_deref().unwrap_or("other"),
            status = resp.status().as_u16(),
            request_id = %crate::error::current_request_id(),
            "api action"
        );
    }
    resp
}

/// The authenticated caller (the token's name), for handlers and logs.
#[derive(Debug, Clone)]
pub struct Principal(pub String);

/// The session cookie a request was authenticated with (a stream opened with it ends
/// with the session).
#[derive(Clone)]
pub struct SessionCookie(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_keys_group_ipv6_by_its_64_and_unmap_ipv4() {
        let k = |s: &str| client_key(Some(s.parse().unwrap()));
        assert_eq!(k("127.0.0.1"), "127.0.0.1");
        assert_eq!(k("::ffff:10.1.2.3"), "10.1.2.3");
        assert_eq!(k("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(k("2001:db8:1:2:bbbb::9"), k("2001:db8:1:2:aaaa::1"));
        assert_ne!(k("2001:db8:1:3::1"), k("2001:db8:1:2::1"));
        assert_eq!(client_key(None), "unknown");
    }

    #[test]
    fn only_a_bearer_scheme_with_a_token_counts() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::AUTHORIZATION, v.parse().unwrap());
            bearer(&m).map(|r| r.map(str::to_string))
        };
        assert_eq!(h("Bearer abc"), Some(Ok("abc".to_string())));
        assert_eq!(h("bearer  abc "), Some(Ok("abc".to_string())));
        assert_eq!(h("BEARER abc"), h("Bearer abc"));
        assert!(matches!(h("Basic YWJj"), Some(Err(()))));
        assert!(matches!(h("Bearer "), Some(Err(()))));
        assert!(bearer(&HeaderMap::new()).is_none());
    }
}
