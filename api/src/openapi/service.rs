//! Operations of the service itself: health, metrics, this document, events, sessions, instances, the queue, the audit log and configuration reload.

use serde_json::json;

use super::*;

/// The operations of this area, or `None` for another area's route.
pub(super) fn describe(method: &str, path: &str) -> Option<Op> {
    Some(match (method, path) {
        ("GET", "/api/v1/health") => op("Liveness", vec![], vec![ok("200", "Health")]),
        ("GET", "/api/v1/health/ready") => op(
            "Readiness of catalog, object store and (when a connector is vectorized) the embedder and vector index; 503 names the failing part",
            vec![],
            vec![
                ok("200", "Ready"),
                error("503", "not ready: details.checks names the failing part"),
            ],
        ),
        ("GET", "/api/v1/metrics") => op(
            "Prometheus metrics (text format)",
            vec![],
            vec![(
                "200",
                "success",
                Some(("text/plain", json!({"type": "string"}))),
            )],
        ),
        ("GET", "/api/v1/openapi.json") => op(
            "This document",
            vec![],
            vec![(
                "200",
                "success",
                Some(("application/json", json!({"type": "object"}))),
            )],
        ),
        ("GET", "/api/v1/events") | ("GET", "/api/v1/ws") => {
            let types: Vec<&str> = crate::events::EVENT_TYPES.iter().map(|(t, _)| *t).collect();
            let params = vec![
                q("connector", "only these connectors' events (comma-separated ids)"),
                q(
                    "type",
                    "only these event types or families (comma-separated: job, job.progress, conflict.*)",
                ),
                json!({"name": "last_event_id", "in": "query", "description": "resume after this event id (SSE clients send the Last-Event-ID header instead); an id no longer held gets one `gap` event", "schema": {"type": "integer", "minimum": 0}}),
            ];
            let list = crate::events::EVENT_TYPES
                .iter()
                .map(|(t, what)| format!("`{t}`: {what}"))
                .collect::<Vec<_>>()
                .join("; ");
            let event = json!({"type": "object", "required": ["id", "type", "at"], "properties": {
                "id": {"type": "integer", "description": "monotonic"},
                "type": {"type": "string", "enum": types},
                "at": {"type": "string", "format": "date-time"},
                "connector": {"type": "string"},
            }});
            if path.ends_with("/events") {
                Op {
                    summary: format!("Live events as Server-Sent Events: each has `id:`, `event:` (its type) and `data:` (its JSON); a comment every 30 s keeps the stream open. Types: {list}"),
                    params,
                    body: None,
                    body_required: false,
                    responses: vec![
                        ("200", "the event stream (text/event-stream; each data line is one Event)", Some(("text/event-stream", event))),
                        error("400", "an unknown event type"),
                    ],
                }
            } else {
                Op {
                    summary: format!("Live events over a WebSocket: after authentication a message {{\"type\": \"welcome\"}}, then each event as a text message of its JSON; a ping every 30 s. Types: {list}"),
                    params,
                    body: None,
                    body_required: false,
                    responses: vec![
                        ("101", "switching to the WebSocket protocol", None),
                        error("400", "an unknown event type"),
                        error("426", "UPGRADE_REQUIRED: not a WebSocket handshake"),
                    ],
                }
            }
        }
        ("POST", "/api/v1/session") => Op {
            summary: "Sign in (the dashboard): a static API token or an OpenID Connect access token for a session cookie (HttpOnly, SameSite=Strict, Secure under TLS; api.session_ttl). A request with the cookie and no Authorization header acts as the session's principal; one that may change something must carry csrf_token in X-CSRF-Token (403 CSRF_TOKEN_INVALID otherwise). Failures count against the address's failed-authentication limit".into(),
            params: vec![],
            body: Some(json!({"type": "object", "additionalProperties": false, "required": ["token"], "properties": {"token": {"type": "string", "minLength": 1, "maxLength": 16384}}})),
            body_required: true,
            responses: vec![
                ("201", "signed in: the session cookie in Set-Cookie", Some(("application/json", schema("Session")))),
                error("401", "AUTH_TOKEN_INVALID: the token is not valid"),
                error("403", "AUTHZ_FORBIDDEN: the token maps to no role"),
                error("422", "INVALID_BODY"),
                error("503", "the OpenID provider could not be reached"),
            ],
        },
        ("GET", "/api/v1/session") => op(
            "The browser session of the request's cookie: signed_in, and when it is live its principal, role, anti-CSRF token and end (never 401: the sign-in page asks it first)",
            vec![],
            vec![ok("200", "Session")],
        ),
        ("DELETE", "/api/v1/session") => op(
            "Sign out: the session ends and its cookie is cleared",
            vec![],
            vec![("204", "signed out", None)],
        ),
        ("GET", "/api/v1/session/oidc") => Op {
            summary: "Sign in through the OpenID provider (api.oidc.sign_in): 303 to its authorization endpoint (authorization code + PKCE S256, state, nonce), with a short cookie binding the sign-in to this browser. Open a browser on it; GET /api/v1/session says sign_in_url when it is configured".into(),
            params: vec![],
            body: None,
            body_required: false,
            responses: vec![
                ("303", "to the identity provider", None),
                error("400", "INVALID_PARAMETER: the Host header is not a host name"),
                error("404", "NOT_FOUND: sign-in through an OpenID provider is not configured"),
                error("503", "the OpenID provider could not be reached"),
            ],
        },
        ("GET", "/api/v1/session/oidc/callback") => Op {
            summary: "Where the OpenID provider sends the browser back: the code is traded for tokens (with the PKCE verifier), the ID token (nonce) and the access token (issuer, audience, roles) are verified, and a session starts that ends with the access token or at api.session_ttl. Always 303 to the dashboard: with the session cookie, or to #/signin?error=<reason>. Only the browser that started the sign-in, once, within 10 minutes".into(),
            params: vec![
                q("code", "the authorization code"),
                q("state", "the sign-in's state"),
                q("iss", "the provider's issuer (RFC 9207)"),
                q("error", "the provider's refusal"),
                q("error_description", "its reason"),
            ],
            body: None,
            body_required: false,
            responses: vec![("303", "to the dashboard (signed in, or with the reason it failed)", None)],
        },
        ("GET", "/api/v1/instances") => op(
            "The daemon instances using this catalog: heartbeat, version, state (up, down: no heartbeat for 30 s, stopped) and the jobs each runs",
            vec![],
            vec![ok("200", "Instances")],
        ),
        ("POST", "/api/v1/instances/{id}/drain") | ("POST", "/api/v1/instances/{id}/undrain") => {
            op(
                if path.ends_with("/drain") {
                    "Drain an instance: it claims no new job (its running jobs finish; queued jobs go to other instances), e.g. before an upgrade"
                } else {
                    "Let a drained instance claim jobs again"
                },
                vec![id()],
                vec![
                    (
                        "200",
                        "success",
                        Some((
                            "application/json",
                            json!({"type": "object", "required": ["id", "draining"], "properties": {"id": {"type": "string"}, "draining": {"type": "boolean"}}}),
                        )),
                    ),
                    error("404", "no such instance"),
                ],
            )
        }
        ("GET", "/api/v1/queue") => op(
            "Vectorization: state, embedder, queue depth, index states and totals",
            vec![],
            vec![ok("200", "Queue"), error("503", "vectorization is off")],
        ),
        ("GET", "/api/v1/audit") => {
            let mut p = vec![
                q(
                    "principal",
                    "the token's name or the identity provider's subject",
                ),
                q(
                    "action",
                    "an action name, e.g. connector.run (see the route table)",
                ),
                q(
                    "resource",
                    "what was acted on, e.g. connectors/docs or jobs/42",
                ),
                one_of("outcome", tributary_catalog::audit::OUTCOMES),
                json!({"name": "since", "in": "query", "description": "at or after: RFC 3339 or Unix seconds", "schema": {"oneOf": [{"type": "string", "format": "date-time"}, {"type": "integer"}]}}),
                json!({"name": "until", "in": "query", "description": "before: RFC 3339 or Unix seconds", "schema": {"oneOf": [{"type": "string", "format": "date-time"}, {"type": "integer"}]}}),
            ];
            p.extend(page());
            op(
                "The audit trail, newest first: every mutating request, every refused authentication or authorization, every operator command of the CLI",
                p,
                vec![(
                    "200",
                    "success",
                    Some(("application/json", list("AuditEntry"))),
                )],
            )
        }
        ("POST", "/api/v1/config/reload") => op(
            "Re-read the configuration file; 422 CONFIG_INVALID keeps the old one",
            vec![],
            vec![
                (
                    "200",
                    "applied",
                    Some(("application/json", json!({"type": "object"}))),
                ),
                error(
                    "422",
                    "the file is invalid; details.errors lists each problem",
                ),
            ],
        ),
        _ => return None,
    })
}
