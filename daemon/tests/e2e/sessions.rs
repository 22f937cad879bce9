//! Browser sessions through the real daemon: sign in with a token for an `HttpOnly`,
//! `SameSite=Strict` cookie; changes made with the cookie need the anti-CSRF token; the
//! role still decides; the event streams take the cookie (a WebSocket only from a page
//! of this origin) and end with the session; sessions end when signed out and when
//! they expire.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};

use crate::common::*;

const TTL_S: u64 = 4;

/// Signs in with `token`: the cookie (`name=value`) and the session's answer.
async fn sign_in(d: &Running, token: &str) -> (String, Value) {
    let (s, h, b) = d
        .call(
            "POST",
            "/api/v1/session",
            None,
            Some(json!({"token": token})),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let set = h["set-cookie"].to_str().unwrap().to_string();
    for attr in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/",
        &format!("Max-Age={TTL_S}"),
    ] {
        assert!(set.contains(attr), "{set}");
    }
    assert!(!set.contains("Secure"), "plain HTTP: {set}");
    let cookie = set.split(';').next().unwrap().to_string();
    (cookie, serde_json::from_str(&b).unwrap())
}

async fn with_cookie(
    d: &Running,
    method: &str,
    path: &str,
    cookie: &str,
    csrf: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut headers = vec![("cookie", cookie)];
    if let Some(c) = csrf {
        headers.push(("x-csrf-token", c));
    }
    d.call_with(method, path, None, None, &headers).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_session_acts_as_its_principal_needs_its_csrf_token_for_changes_and_ends() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    std::fs::write(dir.path().join("src/a.txt"), "alpha").unwrap();
    let port = free_port();
    let cfg = config(dir.path(), port, "", &local_connector(""), "");
    add_api_lines(&cfg, &format!("  session_ttl: {TTL_S}s\n"));
    let d = Running::start(&cfg, port, &[]);
    let first = d.latest_job("docs").await;
    assert_eq!(first["status"], "succeeded", "{first}");

    // a wrong token signs nobody in
    let (s, h, b) = d
        .call(
            "POST",
            "/api/v1/session",
            None,
            Some(json!({"token": "wrong"})),
        )
        .await;
    assert_eq!(s, 401, "{b}");
    assert_envelope(s, &h, &b, "AUTH_TOKEN_INVALID");
    assert!(!h.contains_key("set-cookie"));

    // sessions expire
    let (viewer, _) = sign_in(&d, VIEWER).await;
    assert_eq!(
        with_cookie(&d, "GET", "/api/v1/jobs", &viewer, None)
            .await
            .0,
        200
    );
    tokio::time::sleep(Duration::from_millis(TTL_S * 1000 + 300)).await;
    let (s, h, b) = with_cookie(&d, "GET", "/api/v1/jobs", &viewer, None).await;
    assert_eq!(s, 401, "{b}");
    assert_envelope(s, &h, &b, "AUTH_TOKEN_INVALID");
    assert!(b.contains("sign in again"), "{b}");

    // the cookie acts as the principal; a change needs the anti-CSRF token
    let (op, answer) = sign_in(&d, OPERATOR).await;
    assert_eq!(answer["principal"], "o");
    assert_eq!(answer["role"], "operator");
    let csrf = answer["csrf_token"].as_str().unwrap().to_string();
    assert_eq!(csrf.len(), 64);
    let (s, _, b) = with_cookie(&d, "GET", "/api/v1/session", &op, None).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        serde_json::from_str::<Value>(&b).unwrap()["csrf_token"],
        csrf.as_str()
    );
    let pause = "/api/v1/connectors/docs/pause";
    let (s, h, b) = with_cookie(&d, "POST", pause, &op, None).await;
    assert_eq!(s, 403, "a forged change (no token): {b}");
    assert_envelope(s, &h, &b, "CSRF_TOKEN_INVALID");
    let (s, _, b) = with_cookie(&d, "POST", pause, &op, Some(&"0".repeat(64))).await;
    assert_eq!(s, 403, "a wrong token: {b}");
    let (s, _, b) = with_cookie(&d, "POST", pause, &op, Some(&csrf)).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        d.get("/api/v1/connectors/docs").await["status"]["paused"],
        true
    );
    // the role still decides
    let (viewer, v) = sign_in(&d, VIEWER).await;
    let vcsrf = v["csrf_token"].as_str().unwrap();
    let (s, h, b) = with_cookie(
        &d,
        "POST",
        "/api/v1/connectors/docs/resume",
        &viewer,
        Some(vcsrf),
    )
    .await;
    assert_eq!(s, 403, "{b}");
    assert_envelope(s, &h, &b, "AUTHZ_FORBIDDEN");
    // without a live cookie, nobody is signed in (a bearer token is not a session)
    let (s, _, b) = d.call("GET", "/api/v1/session", Some(ADMIN), None).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        serde_json::from_str::<Value>(&b).unwrap(),
        json!({"signed_in": false})
    );

    // the event streams take the cookie; a WebSocket only from a page of this origin
    let sse = d
        .http
        .get(d.url("/api/v1/events"))
        .header("cookie", &op)
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), 200);
    let ws = |origin: &str| {
        let mut req = format!("ws://127.0.0.1:{port}/api/v1/ws")
            .into_client_request()
            .unwrap();
        req.headers_mut().insert("cookie", op.parse().unwrap());
        req.headers_mut().insert("origin", origin.parse().unwrap());
        req
    };
    let (mut ours, _) = tokio_tungstenite::connect_async(ws(&format!("http://127.0.0.1:{port}")))
        .await
        .unwrap();
    let Some(Ok(Message::Text(t))) = ours.next().await else {
        panic!("no welcome");
    };
    let welcome: Value = serde_json::from_str(&t).unwrap();
    assert_eq!(welcome["principal"], "o", "{welcome}");
    let (mut theirs, _) = tokio_tungstenite::connect_async(ws("http://evil.example"))
        .await
        .unwrap();
    theirs.send(Message::Text("hello".into())).await.unwrap();
    match theirs.next().await {
        Some(Ok(Message::Close(Some(f)))) => assert_eq!(u16::from(f.code), 4401),
        other => panic!("another site's page is not signed in: {other:?}"),
    }

    // signing out ends the session
    let (s, h, b) = with_cookie(&d, "DELETE", "/api/v1/session", &op, Some(&csrf)).await;
    assert_eq!(s, 204, "{b}");
    assert!(h["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    let (s, _, b) = with_cookie(&d, "GET", "/api/v1/jobs", &op, None).await;
    assert_eq!(s, 401, "{b}");
    // and the event streams opened with it: SSE ends, the WebSocket closes with 4401
    let mut sse = sse;
    let sse_ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(_)) = sse.chunk().await {}
    })
    .await;
    assert!(sse_ended.is_ok(), "the SSE stream ended with its session");
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match ours.next().await {
                Some(Ok(Message::Close(Some(f)))) => return Some(u16::from(f.code)),
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    })
    .await
    .expect("the WebSocket closed with its session");
    assert_eq!(closed, Some(4401));
    // sign-ins are in the audit trail; the token is never recorded nor logged
    let (s, _, audit) = d
        .call(
            "GET",
            "/api/v1/audit?action=session.create",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(s, 200, "{audit}");
    let audit: Value = serde_json::from_str(&audit).unwrap();
    assert_eq!(audit["meta"]["total"], 4, "{audit}");
    assert!(!audit.to_string().contains(OPERATOR));
    assert!(!d.log().contains(OPERATOR));
    assert!(!d.log().contains(&csrf));
}
