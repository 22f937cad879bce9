//! Signing in to the dashboard through a real OpenID provider (oidc-provider on
//! loopback, its own sign-in and consent pages): authorization code + PKCE through the
//! real daemon; the session takes the account's name and role from the access token (as a
//! bearer token of the account would: the same principal in the audit trail) and ends
//! with it; a callback only counts once, only in the browser that started it; a
//! refusal at the provider, an account without a role and a wrong client secret are
//! sent back to the sign-in page with their reason.

use std::time::Duration;

use serde_json::Value;
use tributary_testkit::oidc::{AtTheProvider, OidcProvider};

use crate::common::*;

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn cookie_of(h: &reqwest::header::HeaderMap, name: &str) -> Option<(String, String)> {
    h.get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| (v.split(';').next().unwrap().to_string(), v))
}

/// A daemon whose dashboard signs in through `idp` as `client` (with `extra` lines
/// under `sign_in:`).
fn daemon(idp: &OidcProvider, dir: &std::path::Path, client: &str, extra: &str) -> Running {
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(dir.join("src/a.txt"), "alpha").unwrap();
    let port = free_port();
    let cfg = config(dir, port, "", &local_connector(""), "");
    add_api_lines(
        &cfg,
        &format!(
            "  oidc:\n    issuer: {}\n    audience: api://tributary\n    sign_in:\n      client_id: {client}\n      scopes: [openid, profile, api]\n      resource: api://tributary\n{extra}",
            idp.issuer()
        ),
    );
    Running::start(&cfg, port, &[])
}

/// Starts a sign-in at the daemon: the provider's URL and the state cookie.
async fn start(d: &Running, idp: &OidcProvider) -> (String, String) {
    let resp = no_redirects()
        .get(d.url("/api/v1/session/oidc"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let to = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(to.starts_with(&format!("{}/auth?", idp.issuer())), "{to}");
    for p in [
        "response_type=code",
        "client_id=",
        "code_challenge_method=S256",
        "code_challenge=",
        "nonce=",
        "state=",
    ] {
        assert!(to.contains(p), "{p} in {to}");
    }
    let (state, set) = cookie_of(resp.headers(), "tributary_oidc").expect("the state cookie");
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/api/v1/session/oidc"] {
        assert!(set.contains(attr), "{set}");
    }
    (to, state)
}

/// Follows the provider's answer back into the daemon with `cookie`: where the daemon
/// sends the browser, and the session cookie it set, if any.
async fn back(callback: &str, cookie: Option<&str>) -> (String, Option<String>) {
    let mut req = no_redirects().get(callback);
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 303, "{callback}");
    let to = resp.headers()["location"].to_str().unwrap().to_string();
    let session = cookie_of(resp.headers(), "tributary_session").map(|(c, set)| {
        for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(set.contains(attr), "{set}");
        }
        c
    });
    (to, session)
}

async fn session(d: &Running, cookie: &str) -> Value {
    let (s, _, b) = d
        .call_with("GET", "/api/v1/session", None, None, &[("cookie", cookie)])
        .await;
    assert_eq!(s, 200, "{b}");
    serde_json::from_str(&b).unwrap()
}

fn reason(to: &str) -> String {
    let q = to
        .split_once("#/signin?error=")
        .map(|x| x.1)
        .unwrap_or_default();
    percent_encoding::percent_decode_str(q)
        .decode_utf8_lossy()
        .into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_at_the_provider_and_gets_a_session_with_their_role() {
    let idp = OidcProvider::start();
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(&idp, dir.path(), "dashboard", "");
    let home = d.url("/");

    // signed out, the sign-in page learns where the provider's button goes
    let me = d.get_text("/api/v1/session").await;
    let me: Value = serde_json::from_str(&me).unwrap();
    assert_eq!(me["signed_in"], false);
    assert_eq!(me["sign_in_url"], "/api/v1/session/oidc");

    let (to, state) = start(&d, &idp).await;
    let callback = idp.authorize(&to, AtTheProvider::SignIn("ann")).await;
    assert!(
        callback.starts_with(&d.url("/api/v1/session/oidc/callback?code=")),
        "{callback}"
    );

    // another browser (no state cookie, or another sign-in's) cannot use the answer
    let (to_other, s) = back(&callback, None).await;
    assert!(s.is_none());
    assert!(
        reason(&to_other).contains("did not start this sign-in"),
        "{to_other}"
    );
    let (_, other_state) = start(&d, &idp).await;
    let (to_other, s) = back(&callback, Some(&other_state)).await;
    assert!(s.is_none());
    assert!(reason(&to_other).contains("another sign-in"), "{to_other}");

    // the browser that started it is signed in and sent to the dashboard
    let (to_home, cookie) = back(&callback, Some(&state)).await;
    assert_eq!(to_home, home);
    let cookie = cookie.expect("a session cookie");
    let me = session(&d, &cookie).await;
    assert_eq!(me["signed_in"], true, "{me}");
    assert_eq!(me["principal"], "oidc:ann");
    assert_eq!(me["role"], "operator");
    // the session ends with the provider's access token (300 s), not api.session_ttl
    let ends = chrono::DateTime::parse_from_rfc3339(me["expires_at"].as_str().unwrap()).unwrap();
    let left = ends.signed_duration_since(chrono::Utc::now()).num_seconds();
    assert!((200..=305).contains(&left), "{left} s left");
    // an operator's session pauses a connector (with its anti-CSRF token)
    let csrf = me["csrf_token"].as_str().unwrap();
    let (s, _, b) = d
        .call_with(
            "POST",
            "/api/v1/connectors/docs/pause",
            None,
            None,
            &[("cookie", &cookie), ("x-csrf-token", csrf)],
        )
        .await;
    assert_eq!(s, 200, "{b}");

    // the same answer again is refused: a code and its sign-in are good once
    let (to_again, s) = back(&callback, Some(&state)).await;
    assert!(s.is_none());
    assert!(reason(&to_again).contains("already used"), "{to_again}");

    // a viewer gets a viewer's session; an account the provider gives no role, none
    let (to, state) = start(&d, &idp).await;
    let cb = idp.authorize(&to, AtTheProvider::SignIn("vic")).await;
    let (_, cookie) = back(&cb, Some(&state)).await;
    let me = session(&d, &cookie.unwrap()).await;
    assert_eq!(me["role"], "viewer");
    assert_eq!(me["principal"], "oidc:vic");
    let (to, state) = start(&d, &idp).await;
    let cb = idp.authorize(&to, AtTheProvider::SignIn("nobody")).await;
    let (to_home, s) = back(&cb, Some(&state)).await;
    assert!(s.is_none());
    assert!(to_home.starts_with(&home));
    assert!(reason(&to_home).contains("grants no role"), "{to_home}");

    // cancelling at the provider comes back as the provider's refusal
    let (to, state) = start(&d, &idp).await;
    let cb = idp.authorize(&to, AtTheProvider::Cancel).await;
    let (to_home, s) = back(&cb, Some(&state)).await;
    assert!(s.is_none());
    assert!(reason(&to_home).contains("access_denied"), "{to_home}");

    // without api.oidc.sign_in the route is not there (and the session says so)
    let plain = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(plain.path().join("src")).unwrap();
    let port = free_port();
    let cfg = config(plain.path(), port, "", &local_connector(""), "");
    let p = Running::start(&cfg, port, &[]);
    let (s, h, b) = p.call("GET", "/api/v1/session/oidc", None, None).await;
    assert_eq!(s, 404, "{b}");
    assert_envelope(s, &h, &b, "NOT_FOUND");
    let me: Value = serde_json::from_str(&p.get_text("/api/v1/session").await).unwrap();
    assert!(me.get("sign_in_url").is_none(), "{me}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ends_with_the_access_token_and_a_confidential_clients_secret_is_checked() {
    let idp = OidcProvider::start_with(Some(4));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret"), "dashboard-confidential-secret\n").unwrap();
    let d = daemon(
        &idp,
        dir.path(),
        "dashboard-confidential",
        &format!(
            "      client_secret_file: {}\n",
            dir.path().join("secret").display()
        ),
    );
    let (to, state) = start(&d, &idp).await;
    let cb = idp.authorize(&to, AtTheProvider::SignIn("ada")).await;
    let (_, cookie) = back(&cb, Some(&state)).await;
    let cookie = cookie.expect("signed in with the client's secret");
    let me = session(&d, &cookie).await;
    assert_eq!(me["role"], "admin");
    let (s, _, b) = d
        .call_with("GET", "/api/v1/audit", None, None, &[("cookie", &cookie)])
        .await;
    assert_eq!(s, 200, "{b}");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(session(&d, &cookie).await["signed_in"], false);
    let (s, _, b) = d
        .call_with("GET", "/api/v1/audit", None, None, &[("cookie", &cookie)])
        .await;
    assert_eq!(s, 401, "the session ended with its token: {b}");

    // a wrong secret: the provider refuses the exchange, and the reason says so
    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join("secret"), "not-the-secret-471").unwrap();
    let d = daemon(
        &idp,
        other.path(),
        "dashboard-confidential",
        &format!(
            "      client_secret_file: {}\n",
            other.path().join("secret").display()
        ),
    );
    let (to, state) = start(&d, &idp).await;
    let cb = idp.authorize(&to, AtTheProvider::SignIn("ada")).await;
    let (to_home, s) = back(&cb, Some(&state)).await;
    assert!(s.is_none());
    let why = reason(&to_home);
    assert!(why.contains("invalid_client"), "{why}");
    assert!(!to_home.contains("not-the-secret-471"));
    assert!(
        !d.log().contains("not-the-secret-471"),
        "the log names no secret"
    );
}
