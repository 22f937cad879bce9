//! The live views of the event bus ([`crate::events`]): `GET /api/v1/events` (Server-Sent
//! Events) and `GET /api/v1/ws` (WebSocket).
//!
//! **SSE**: the bearer token is checked by the middleware like any viewer route. Each
//! event is `id:` (its id), `event:` (its type) and `data:` (its JSON); a comment line
//! every [`HEARTBEAT`] keeps proxies from closing an idle stream. `Last-Event-ID` (or
//! `?last_event_id=`) resumes after that id, or gets one `gap` event.
//!
//! **WebSocket**: the upgrade always completes; authentication is in band and its
//! failures are close codes (most WebSocket clients see nothing else): the
//! `Authorization` header decides when present, else the first message
//! `{"token": "…"}` within [`TOKEN_WAIT`]. Close codes: [`CLOSE_UNAUTHENTICATED`] (no,
//! invalid or expired token), [`CLOSE_FORBIDDEN`] (no role), [`CLOSE_TOO_MANY`]
//! (`api.max_event_connections`, in all or per principal, or too many failed
//! authentications from the address), [`CLOSE_TOO_SLOW`] (the client fell behind).
//! Once authenticated, the server sends `{"type": "welcome", "principal", "role"}`, then
//! the events as text messages (the same JSON as SSE's `data:`), and a ping every
//! [`HEARTBEAT`].
//!
//! Both: `?connector=a,b` and `?type=job,conflict.opened` filter; a client too slow to
//! take its events (more than [`crate::events::LAG`] behind, or a send blocked for
//! [`SEND_TIMEOUT`]) is disconnected and counted; the daemon's shutdown ends every
//! stream.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Extension, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::json;
use tokio::sync::{broadcast, mpsc};
use tributary_config::Role;

use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::events::{Backlog, Event, EventBus, Filter, Refused};
use crate::oidc::{Identity, OidcError};

/// Between heartbeats (SSE comment, WebSocket ping).
pub const HEARTBEAT: Duration = Duration::from_secs(30);
/// How long a send to a client may block before the client counts as too slow.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a WebSocket client without an `Authorization` header has to send its token.
pub const TOKEN_WAIT: Duration = Duration::from_secs(10);

/// No token, or an invalid or expired one; or the session the stream was opened with
/// ended.
pub const CLOSE_UNAUTHENTICATED: u16 = 4401;
/// The token's principal has no role that may read events.
pub const CLOSE_FORBIDDEN: u16 = 4403;
/// Too many event streams (in all, or of this principal), or too many failed
/// authentications from this address.
pub const CLOSE_TOO_MANY: u16 = 4429;
/// The client did not take its events fast enough.
pub const CLOSE_TOO_SLOW: u16 = 4408;

/// The close codes, for the documentation.
pub const CLOSE_CODES: &[(u16, &str)] = &[
    (
        CLOSE_UNAUTHENTICATED,
        "no token (neither an Authorization header nor a first message {\"token\": \"…\"} within 10 s), or an invalid or expired one; or the dashboard session the stream was opened with ended",
    ),
    (
        CLOSE_FORBIDDEN,
        "the token is valid but maps to no role (OpenID Connect)",
    ),
    (
        CLOSE_TOO_MANY,
        "api.max_event_connections (in all or per principal) reached, or too many failed authentications from this address",
    ),
    (
        CLOSE_TOO_SLOW,
        "the client fell too far behind the events (or a send blocked for 10 s)",
    ),
    (1001, "the daemon is shutting down"),
    (
        1011,
        "the OpenID provider could not be reached to check the token",
    ),
];

/// The stream's filter and resume point from the query and headers.
fn stream_params(
    q: &HashMap<String, String>,
    headers: &HeaderMap,
) -> ApiResult<(Filter, Option<u64>)> {
    let filter = Filter::parse(
        q.get("connector").map(String::as_str),
        q.get("type").map(String::as_str),
    )
    .map_err(|m| {
        ApiError::new(StatusCode::BAD_REQUEST, "VALIDATION_FAILED", m.clone())
            .details(json!({"fields": [{"field": "type", "message": m}]}))
    })?;
    // an id that is not one of ours is an id no longer held: the client gets a gap
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .or(q.get("last_event_id").map(String::as_str))
        .map(|v| v.trim().parse::<u64>().unwrap_or(0));
    Ok((filter, after))
}

fn limits(st: &AppState) -> (usize, usize) {
    let cfg = st.auth.read().unwrap_or_else(|e| e.into_inner());
    (
        cfg.max_event_connections,
        cfg.max_event_connections_per_principal,
    )
}

fn refused_message(r: Refused) -> &'static str {
    match r {
        Refused::TooMany => "too many event streams are open (api.max_event_connections)",
        Refused::TooManyForPrincipal => {
            "this principal has too many event streams open (api.max_event_connections_per_principal)"
        }
    }
}

/// Feeds one client: the backlog, then live events, through `tx` (bounded), until the
/// client goes, falls behind, or the daemon stops.
async fn forward(
    bus: Arc<EventBus>,
    filter: Filter,
    after: Option<u64>,
    tx: mpsc::Sender<Arc<Event>>,
) {
    let sub = bus.subscribe(after);
    let mut live = sub.live;
    let backlog = match sub.backlog {
        Backlog::Events(e) => e,
        Backlog::Gap(g) => vec![g],
    };
    // waits for room in the client's queue, but not while the client falls more than
    // LAG events behind, nor longer than SEND_TIMEOUT
    let send = async |e: Arc<Event>, live: &broadcast::Receiver<Arc<Event>>| -> bool {
        let since = Instant::now();
        loop {
            tokio::select! {
                biased;
                permit = tx.reserve() => match permit {
                    Ok(p) => {
                        p.send(e);
                        return true;
                    }
                    Err(_) => return false,
                },
                _ = tokio::time::sleep(LOOK_EVERY) => {
                    if live.len() >= crate::events::LAG || since.elapsed() >= SEND_TIMEOUT {
                        tracing::info!(behind = live.len(), "event stream dropped: the client is too slow");
                        bus.metrics.dropped_slow.fetch_add(1, Ordering::Relaxed);
                        return false;
                    }
                }
                _ = bus.closed() => return false,
            }
        }
    };
    for e in backlog {
        if filter.wants(&e) && !send(e, &live).await {
            return;
        }
    }
    loop {
        let e = tokio::select! {
            biased;
            r = live.recv() => r,
            _ = tx.closed() => return,
            _ = bus.closed() => {
                // the last events (the instance's `instance.down`) still go out
                while let Ok(e) = live.try_recv() {
                    if filter.wants(&e) && tx.try_send(e).is_err() {
                        break;
                    }
                }
                return;
            }
        };
        match e {
            Ok(e) => {
                if filter.wants(&e) && !send(e, &live).await {
                    return;
                }
            }
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::info!(behind = n, "event stream dropped: the client is too slow");
                bus.metrics.dropped_slow.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Queued per client between the bus and its socket.
const QUEUE: usize = 64;
/// How often a forwarder waiting on its client looks at how far behind it is.
const LOOK_EVERY: Duration = Duration::from_millis(200);

/// `GET /api/v1/events`: Server-Sent Events.
pub async fn events(
    State(st): State<AppState>,
    Extension(Principal(principal)): Extension<Principal>,
    session: Option<Extension<crate::auth::SessionCookie>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (filter, after) = stream_params(&q, &headers)?;
    let (max, per) = limits(&st);
    let slot = st.events.open_stream(&principal, max, per).map_err(|r| {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TOO_MANY_EVENT_STREAMS",
            refused_message(r),
        )
    })?;
    let (tx, rx) = mpsc::channel::<Arc<Event>>(QUEUE);
    let bus = st.events.clone();
    let sessions = st.sessions.clone();
    tokio::spawn(async move {
        let _slot = slot;
        match session {
            // a stream opened with the session cookie ends with the session
            Some(Extension(crate::auth::SessionCookie(id))) => {
                tokio::select! {
                    _ = forward(bus, filter, after, tx) => {}
                    _ = sessions.ended(id) => {}
                }
            }
            None => forward(bus, filter, after, tx).await,
        }
    });
    let bus = st.events.clone();
    let stream = tokio_stream_of(rx).map(move |e| {
        bus.metrics.sent.fetch_add(1, Ordering::Relaxed);
        Ok::<_, Infallible>(
            SseEvent::default()
                .id(e.id.to_string())
                .event(e.kind.clone())
                .data(e.json.clone()),
        )
    });
    let mut resp = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(HEARTBEAT).text("keep-alive"))
        .into_response();
    // proxies (nginx) must not buffer the stream
    resp.headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(resp)
}

fn tokio_stream_of<T: Send + 'static>(
    mut rx: mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// `GET /api/v1/ws`: the WebSocket view; authentication after the upgrade.
pub async fn ws(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let upgrade = upgrade.map_err(|e| {
        ApiError::new(
            StatusCode::UPGRADE_REQUIRED,
            "UPGRADE_REQUIRED",
            format!("this route is a WebSocket: connect with a WebSocket client ({e})"),
        )
    })?;
    let (filter, after) = stream_params(&q, &headers)?;
    let header_token = crate::auth::bearer(&headers).map(|t| t.map(str::to_string));
    // the dashboard's session cookie, from a page of this origin only
    let by_cookie = if header_token.is_none() && crate::session::same_origin(&headers) {
        crate::session::cookie(&headers).and_then(|id| {
            let s = st.sessions.get(&id)?;
            Some((
                Identity {
                    principal: s.principal,
                    role: s.role,
                },
                id,
            ))
        })
    } else {
        None
    };
    let request_id = crate::error::current_request_id();
    let credentials = match by_cookie {
        Some((id, cookie)) => Credentials::Session(id, cookie),
        None => Credentials::Token(header_token),
    };
    Ok(upgrade
        .on_upgrade(move |socket| async move {
            session(st, socket, peer, credentials, filter, after, request_id).await
        })
        .into_response())
}

async fn close(mut socket: WebSocket, code: u16, reason: &str) {
    let frame = CloseFrame {
        code,
        reason: reason.chars().take(120).collect::<String>().into(),
    };
    let _ = tokio::time::timeout(
        Duration::from_secs(2),
        socket.send(Message::Close(Some(frame))),
    )
    .await;
}

/// The token of a client without an `Authorization` header: its first message.
async fn first_message_token(socket: &mut WebSocket) -> Option<String> {
    let msg = tokio::time::timeout(TOKEN_WAIT, socket.recv())
        .await
        .ok()??
        .ok()?;
    let text = match msg {
        Message::Text(t) => t.to_string(),
        _ => return None,
    };
    serde_json::from_str::<serde_json::Value>(&text)
        .ok()?
        .get("token")?
        .as_str()
        .filter(|t| !t.is_empty())
        .map(str::to_string)
}

/// What a WebSocket client authenticates with.
enum Credentials {
    /// The `Authorization` header's token (`Err`: not a bearer token), or none: the
    /// first message's.
    Token(Option<Result<String, ()>>),
    /// The session (and its cookie) of a page of this origin.
    Session(Identity, String),
}

async fn session(
    st: AppState,
    mut socket: WebSocket,
    peer: SocketAddr,
    credentials: Credentials,
    filter: Filter,
    after: Option<u64>,
    request_id: String,
) {
    let ckey = crate::auth::client_key(Some(peer.ip()));
    let failed_auth = {
        let cfg = st.auth.read().unwrap_or_else(|e| e.into_inner());
        cfg.rate_limits.failed_auth
    };
    let failed_key = format!("failed_auth:{ckey}");
    if let Some(rate) = failed_auth
        && !st.limiter.peek(&failed_key, rate, Instant::now()).allowed
    {
        return close(
            socket,
            CLOSE_TOO_MANY,
            "too many failed authentications from this address",
        )
        .await;
    }
    let mut session_cookie = None;
    let token = match credentials {
        Credentials::Session(id, cookie) => {
            session_cookie = Some(cookie);
            Ok(id)
        }
        Credentials::Token(Some(Ok(t))) => Err(Some(t)),
        Credentials::Token(Some(Err(()))) => Err(None),
        Credentials::Token(None) => Err(first_message_token(&mut socket).await),
    };
    let verified = match token {
        Ok(id) => Ok(id),
        Err(Some(t)) => crate::auth::authenticate(&st, &t).await,
        Err(None) => Err(OidcError::Invalid(
            "a bearer token is required: an Authorization header, or a first message {\"token\": \"…\"}".into(),
        )),
    };
    let denied = |status: u16, principal: Option<&Identity>| crate::audit::AuditEntryParts {
        status,
        principal: principal.map(|i| (i.principal.clone(), i.role)),
        client: ckey.clone(),
        route: "/api/v1/ws",
        method: "GET",
        request_id: request_id.clone(),
    };
    let Identity { principal, role } = match verified {
        Ok(id) => id,
        Err(OidcError::Invalid(why)) => {
            tracing::warn!(client = %ckey, route = "/api/v1/ws", reason = %why, "authentication failed");
            if let Some(rate) = failed_auth {
                st.limiter.hit(&failed_key, rate, Instant::now());
            }
            crate::audit::record_parts(&st, denied(401, None)).await;
            return close(socket, CLOSE_UNAUTHENTICATED, &why).await;
        }
        Err(OidcError::NoRole(why)) => {
            crate::audit::record_parts(&st, denied(403, None)).await;
            return close(socket, CLOSE_FORBIDDEN, &why).await;
        }
        Err(OidcError::Unavailable(why)) => {
            return close(socket, 1011, &format!("OpenID provider: {why}")).await;
        }
    };
    if role < Role::Viewer {
        crate::audit::record_parts(
            &st,
            denied(
                403,
                Some(&Identity {
                    principal: principal.clone(),
                    role,
                }),
            ),
        )
        .await;
        return close(socket, CLOSE_FORBIDDEN, "events need the `viewer` role").await;
    }
    let (max, per) = limits(&st);
    let slot = match st.events.open_stream(&principal, max, per) {
        Ok(s) => s,
        Err(r) => return close(socket, CLOSE_TOO_MANY, refused_message(r)).await,
    };
    let welcome =
        json!({"type": "welcome", "principal": principal, "role": crate::role_name(role)});
    if socket
        .send(Message::Text(welcome.to_string().into()))
        .await
        .is_err()
    {
        return;
    }
    let bus = st.events.clone();
    let (tx, mut rx) = mpsc::channel::<Arc<Event>>(QUEUE);
    let feeder = tokio::spawn(forward(bus.clone(), filter, after, tx));
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
    // a stream opened with the session cookie ends with the session
    let session_ended = async {
        match session_cookie {
            Some(id) => st.sessions.clone().ended(id).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(session_ended);
    let code = loop {
        tokio::select! {
            _ = &mut session_ended => {
                break Some((CLOSE_UNAUTHENTICATED, "the session has ended: sign in again"));
            }
            e = rx.recv() => match e {
                Some(e) => {
                    match tokio::time::timeout(SEND_TIMEOUT, socket.send(Message::Text(e.json.clone().into()))).await {
                        Ok(Ok(())) => { bus.metrics.sent.fetch_add(1, Ordering::Relaxed); }
                        Ok(Err(_)) => break None,
                        Err(_) => {
                            bus.metrics.dropped_slow.fetch_add(1, Ordering::Relaxed);
                            break None;
                        }
                    }
                }
                // the feeder stopped: the client fell behind, or the daemon stops
                None => break Some(if bus.is_closed() {
                    (1001, "the daemon is shutting down")
                } else {
                    (CLOSE_TOO_SLOW, "too slow: the client fell too far behind the events")
                }),
            },
            m = socket.recv() => match m {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break None,
                Some(Ok(_)) => {}
            },
            _ = ping.tick() => {
                if tokio::time::timeout(SEND_TIMEOUT, socket.send(Message::Ping(Vec::new().into()))).await.map_or(true, |r| r.is_err()) {
                    break None;
                }
            }
        }
    };
    feeder.abort();
    drop(slot);
    if let Some((code, reason)) = code {
        close(socket, code, reason).await;
    }
}
