//! The OpenAPI 3.0 document, built from [`crate::ROUTES`] plus per-route text, so the
//! document and the router cannot drift apart (a test checks both ways).
//!
//! It describes the API exactly, so that a schema-driven fuzzer (schemathesis, run
//! against the daemon in CI) finds no mismatch: enums for every closed set, bounds for
//! every number, `additionalProperties: false` on request bodies, and a schema for every
//! response a route gives (206, 410, 413, 416, 503 where they apply; every error is the
//! envelope).

use serde_json::{Map, Value, json};

use crate::{Access, ROUTES, Route, role_name};

/// A response: (status, description, body as (content type, schema)).
type Response = (&'static str, &'static str, Option<(&'static str, Value)>);

/// One operation's description.
struct Op {
    summary: String,
    params: Vec<Value>,
    body: Option<Value>,
    /// Whether the request body must be there.
    body_required: bool,
    responses: Vec<Response>,
}

fn schema(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn ok(s: &'static str, name: &str) -> Response {
    (s, "success", Some(("application/json", schema(name))))
}

fn error(
    s: &'static str,
    why: &'static str,
) -> (&'static str, &'static str, Option<(&'static str, Value)>) {
    (s, why, Some(("application/json", schema("Error"))))
}

/// Largest `page` accepted.
pub const MAX_PAGE: i64 = i64::MAX / 1000;

fn describe(method: &str, path: &str) -> Op {
    let page = || {
        vec![
            json!({"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 1}}),
            json!({"name": "per_page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}}),
        ]
    };
    let id = || json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string"}, "example": "1"});
    // why a change of a connector may be refused
    let change_refusals = || {
        vec![
            error("404", "no such connector"),
            error(
                "409",
                "CONNECTOR_MANAGED_BY_FILE: the configuration file defines it",
            ),
            error(
                "412",
                "PRECONDITION_FAILED: If-Match names another revision",
            ),
        ]
    };
    let if_match = || json!({"name": "If-Match", "in": "header", "description": "the ETag a GET gave: the change is made only at that revision (412 otherwise)", "schema": {"type": "string", "pattern": "^((W/)?\"[1-9][0-9]{0,17}\"|\\*)$"}});
    let q = |name: &str, desc: &str| json!({"name": name, "in": "query", "description": desc, "schema": {"type": "string"}});
    let one_of = |name: &str, values: &[&str]| json!({"name": name, "in": "query", "schema": {"type": "string", "enum": values}});
    let list = |item: &str| {
        json!({"type": "object", "required": ["items", "meta"], "properties": {
            "items": {"type": "array", "items": schema(item)},
            "meta": schema("Meta"),
        }})
    };
    let op = |summary: &str, params, responses| Op {
        summary: summary.to_string(),
        params,
        body: None,
        body_required: false,
        responses,
    };
    match (method, path) {
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
        ("GET", "/api/v1/connectors") => op(
            "List connectors with live status",
            page(),
            vec![(
                "200",
                "success",
                Some(("application/json", list("Connector"))),
            )],
        ),
        ("GET", "/api/v1/connectors/{id}") => op(
            "A connector as written in YAML (as JSON; secrets as {\"set\": true}), where it is defined (source, revision as the ETag, file) and its status",
            vec![id()],
            vec![
                ok("200", "ConnectorDetail"),
                error("404", "no such connector"),
            ],
        ),
        ("POST", "/api/v1/connectors") => Op {
            summary: "Create a connector (source: api) from its YAML form as JSON; it starts no job by itself".into(),
            params: vec![],
            body: Some(schema("ConnectorBody")),
            body_required: true,
            responses: vec![
                ok("201", "ConnectorDetail"),
                error(
                    "409",
                    "CONNECTOR_EXISTS: the id is taken (by the file or the API)",
                ),
                error(
                    "422",
                    "CONNECTOR_INVALID: details.fields lists each bad field with its key path",
                ),
            ],
        },
        ("PUT", "/api/v1/connectors/{id}") | ("PATCH", "/api/v1/connectors/{id}") => Op {
            summary: if method == "PUT" {
                "Replace an API connector; {\"set\": true} keeps a stored secret"
            } else {
                "Change an API connector by a JSON merge patch (RFC 7386) of what GET shows"
            }
            .into(),
            params: vec![id(), if_match()],
            body: Some(if method == "PUT" {
                schema("ConnectorBody")
            } else {
                json!({"type": "object", "description": "a JSON merge patch; null removes a key"})
            }),
            body_required: true,
            responses: [
                vec![ok("200", "ConnectorDetail")],
                change_refusals(),
                vec![error(
                    "422",
                    "CONNECTOR_INVALID: details.fields lists each bad field with its key path",
                )],
            ]
            .concat(),
        },
        ("POST", "/api/v1/connector-tests") | ("POST", "/api/v1/connectors/{id}/test") => {
            let result = json!({"type": "object", "required": ["ok", "duration_ms"], "properties": {
                "ok": {"type": "boolean"},
                "found": {"type": "string", "description": "what the source showed: log-on, share or site, the root's entries, the protocol"},
                "error": {"type": "object", "required": ["code", "message"], "properties": {
                    "code": {"type": "string", "enum": ["ACCESS_DENIED", "SOURCE_UNAVAILABLE", "SOURCE_ERROR", "TIMEOUT"]},
                    "message": {"type": "string"},
                }},
                "duration_ms": {"type": "integer", "minimum": 0},
            }});
            let answers = |extra: Response| {
                vec![
                    (
                        "200",
                        "the source was reached (ok) or why not",
                        Some(("application/json", result.clone())),
                    ),
                    extra,
                ]
            };
            if path == "/api/v1/connector-tests" {
                Op {
                    summary: "Reach the source a connector body describes (log-on, share or site, the root listed) within 30 s, storing nothing".into(),
                    params: vec![],
                    body: Some(schema("ConnectorBody")),
                    body_required: true,
                    responses: answers(error(
                        "422",
                        "CONNECTOR_INVALID: details.fields lists each bad field",
                    )),
                }
            } else {
                op(
                    "Reach a connector's source as it runs (log-on, share or site, the root listed) within 30 s",
                    vec![id()],
                    answers(error("404", "no such connector")),
                )
            }
        }
        ("DELETE", "/api/v1/connectors/{id}") => op(
            "Delete an API connector. data=keep (the default): its stored versions stay as they are (204). data=delete: every live item of the connector is first tombstoned through the commit path, as if the source had deleted it (the change feed says so; a restore as of an earlier moment still sees it), behind the mass-delete guard: more than the connector's max_delete_percent is 409 MASS_DELETE_HELD, and nothing changes, unless allow_mass_delete=true; the answer names the job that did it (200)",
            vec![
                id(),
                if_match(),
                json!({"name": "data", "in": "query", "schema": {"type": "string", "enum": ["keep", "delete"], "default": "keep"}}),
                json!({"name": "allow_mass_delete", "in": "query", "description": "with data=delete: deletes beyond max_delete_percent are meant", "schema": {"type": "string", "enum": ["true", "false"], "default": "false"}}),
            ],
            [
                vec![
                    (
                        "200",
                        "deleted, with its data",
                        Some((
                            "application/json",
                            json!({"type": "object", "required": ["id", "data", "job_id", "items_deleted"], "properties": {
                                "id": {"type": "string"}, "data": {"type": "string", "enum": ["delete"]},
                                "job_id": {"type": "integer"}, "items_deleted": {"type": "integer", "minimum": 0},
                            }}),
                        )),
                    ),
                    ("204", "deleted; its data is kept", None),
                ],
                change_refusals()
                    .into_iter()
                    .filter(|r| r.0 != "409")
                    .collect(),
                vec![error(
                    "409",
                    "CONNECTOR_MANAGED_BY_FILE: the configuration file defines it; MASS_DELETE_HELD: data=delete would pass max_delete_percent (confirm with allow_mass_delete=true); JOB_ALREADY_RUNNING: a job of the connector is queued or running",
                )],
            ]
            .concat(),
        ),
        ("POST", "/api/v1/connectors/{id}/runs") => Op {
            summary: "Queue a job now; 409 JOB_ALREADY_RUNNING when one is queued or running. A dry run (`dry_run: true`) lists and plans and stores nothing: its job's progress says what a real run would read (files_planned, bytes_planned, files_new, files_changed), relocate, delete, which conflicts it would meet and whether the mass-delete guard would hold (mass_delete_held)".into(),
            params: vec![id()],
            body: Some(
                json!({"type": "object", "additionalProperties": false, "properties": {"kind": {"type": "string", "enum": ["full", "incremental"]}, "dry_run": {"type": "boolean", "default": false}}}),
            ),
            body_required: false,
            responses: vec![
                (
                    "202",
                    "queued",
                    Some((
                        "application/json",
                        json!({"type": "object", "required": ["job_id", "kind", "dry_run"], "properties": {"job_id": {"type": "integer"}, "kind": {"type": "string", "enum": ["full", "incremental"]}, "dry_run": {"type": "boolean"}}}),
                    )),
                ),
                error(
                    "409",
                    "a job of this connector is queued or running, or it is paused",
                ),
                error("503", "the daemon is shutting down"),
            ],
        },
        ("POST", "/api/v1/connectors/{id}/pause") | ("POST", "/api/v1/connectors/{id}/resume") => {
            op(
                if path.ends_with("pause") {
                    "Pause scheduled and watch runs"
                } else {
                    "Resume a paused connector"
                },
                vec![id()],
                vec![(
                    "200",
                    "success",
                    Some((
                        "application/json",
                        json!({"type": "object", "required": ["id", "paused"], "properties": {"id": {"type": "string"}, "paused": {"type": "boolean"}}}),
                    )),
                )],
            )
        }
        ("GET", "/api/v1/jobs") => {
            let mut p = vec![
                q("connector", "connector id"),
                one_of("status", crate::handlers::JOB_STATUSES),
                json!({"name": "since", "in": "query", "description": "RFC 3339 or Unix seconds", "schema": {"oneOf": [{"type": "string", "format": "date-time"}, {"type": "integer"}]}}),
            ];
            p.extend(page());
            op(
                "List jobs, newest first",
                p,
                vec![("200", "success", Some(("application/json", list("Job"))))],
            )
        }
        ("GET", "/api/v1/jobs/{id}") => op(
            "A job with counters, progress, error_count and last_error",
            vec![id()],
            vec![ok("200", "Job")],
        ),
        ("GET", "/api/v1/jobs/{id}/log") => {
            op("The job's log lines", vec![id()], vec![ok("200", "JobLog")])
        }
        ("POST", "/api/v1/jobs/{id}/cancel") => op(
            "Cancel a queued or running job (files in flight finish)",
            vec![id()],
            vec![
                (
                    "202",
                    "cancelling",
                    Some((
                        "application/json",
                        json!({"type": "object", "required": ["job_id", "cancelling"], "properties": {"job_id": {"type": "integer"}, "cancelling": {"type": "boolean"}}}),
                    )),
                ),
                error("409", "the job is not queued or running"),
            ],
        ),
        ("GET", "/api/v1/items") => {
            let mut p = vec![
                q("connector", "connector id"),
                q("prefix", "path prefix in the target namespace"),
                one_of("status", &crate::handlers::ITEM_STATUSES),
            ];
            p.extend(page());
            op(
                "List items",
                p,
                vec![("200", "success", Some(("application/json", list("Item"))))],
            )
        }
        ("GET", "/api/v1/items/{id}") => op(
            "An item with its versions",
            vec![id()],
            vec![ok("200", "ItemDetail")],
        ),
        ("GET", "/api/v1/items/{id}/content") => op(
            "The stored bytes of the current (or given) version; one `bytes=` Range is served (206), any other Range is ignored (200), one past the end is 416",
            vec![
                id(),
                json!({"name": "version", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": i64::MAX}}),
                json!({"name": "Range", "in": "header", "schema": {"type": "string"}}),
            ],
            vec![
                (
                    "200",
                    "the whole content",
                    Some((
                        "application/octet-stream",
                        json!({"type": "string", "format": "binary"}),
                    )),
                ),
                (
                    "206",
                    "the range asked for",
                    Some((
                        "application/octet-stream",
                        json!({"type": "string", "format": "binary"}),
                    )),
                ),
                error("410", "the version is a delete"),
                error("416", "the range starts at or past the end"),
            ],
        ),
        ("GET", "/api/v1/changes") => op(
            "The change feed after a cursor; 410 SYNC_CURSOR_INVALID past the retention",
            vec![
                json!({"name": "cursor", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": i64::MAX}}),
                json!({"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}}),
            ],
            vec![
                ok("200", "Changes"),
                error("410", "the cursor is older than the change retention"),
            ],
        ),
        ("GET", "/api/v1/conflicts") => {
            let mut p = vec![
                q("connector", "connector id (either side of the conflict)"),
                one_of("kind", &tributary_catalog::conflicts::KINDS),
                one_of("include_resolved", &["true", "false"]),
            ];
            p.extend(page());
            op(
                "List conflicts (open ones by default), oldest first",
                p,
                vec![(
                    "200",
                    "success",
                    Some(("application/json", list("Conflict"))),
                )],
            )
        }
        ("GET", "/api/v1/conflicts/{id}") => op(
            "A conflict with its competing claims",
            vec![id()],
            vec![ok("200", "Conflict")],
        ),
        ("POST", "/api/v1/conflicts/{id}/resolve") => Op {
            summary: "Resolve an open conflict; 409 CONFLICT_ALREADY_RESOLVED if it is not open".into(),
            params: vec![id()],
            body: Some(json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["resolution"],
                "properties": {"resolution": {"type": "string", "enum": tributary_catalog::conflicts::RESOLUTIONS}}
            })),
            body_required: true,
            responses: vec![
                ok("200", "Conflict"),
                error("409", "the conflict is not open"),
            ],
        },
        ("GET", "/api/v1/search") => op(
            "Passages closest in meaning to `q`, best first; 503 VECTORS_UNAVAILABLE when vectorization is off or not ready",
            vec![
                json!({"name": "q", "in": "query", "required": true, "schema": {"type": "string", "minLength": 1, "pattern": "\\S"}}),
                json!({"name": "k", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 10}}),
                q("connector", "only this connector's items"),
                q("path_prefix", "only items under this path"),
                q(
                    "principal",
                    "only documents readable by one of these principals (comma-separated: user:<id>, group:<id>, siteGroup:<id>, anyone, organization); documents without captured permissions are left out",
                ),
            ],
            vec![
                ok("200", "SearchHits"),
                error("503", "vectorization is off, starting or failed"),
            ],
        ),
        ("GET", "/api/v1/usage") => op(
            "What each connector's current content uses: live files, their logical bytes, and the stored bytes of the distinct chunks they reference (after dedup and compression; a chunk two connectors share counts for both), as last calculated (after a job that committed something) or now with recalculate=true; with the connector's quota. Connectors no longer configured whose items are kept have no target and no quota",
            vec![one_of("recalculate", &["true", "false"])],
            vec![(
                "200",
                "success",
                Some((
                    "application/json",
                    json!({"type": "object", "required": ["items"], "properties": {"items": {"type": "array", "items": schema("Usage")}}}),
                )),
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
        _ => op("", vec![], vec![]),
    }
}

fn components() -> Value {
    let int = || json!({"type": "integer"});
    let str_ = || json!({"type": "string"});
    let nint = || json!({"type": "integer", "nullable": true});
    let nstr = || json!({"type": "string", "nullable": true});
    let time = || json!({"type": "string", "format": "date-time"});
    let ntime = || json!({"type": "string", "format": "date-time", "nullable": true});
    let job = json!({
        "type": "object",
        "required": ["id", "connector", "kind", "trigger", "status", "instance", "requested_by", "queued_at", "started_at", "finished_at", "error_count", "last_error", "progress", "dry_run"],
        "properties": {
            "id": int(), "connector": str_(), "kind": {"type": "string", "enum": ["full", "incremental"]},
            "instance": {"type": "string", "description": "the instance_id of the daemon instance that ran the job (empty for jobs recorded before instances were)"},
            "requested_by": {"type": "string", "nullable": true, "description": "who asked for the run over the API (the principal's name); null for runs the daemon started"},
            "trigger": str_(), "status": {"type": "string", "enum": crate::handlers::JOB_STATUSES},
            "queued_at": ntime(), "started_at": ntime(), "finished_at": ntime(),
            "error_count": int(), "last_error": nstr(),
            "progress": {"type": "object", "nullable": true},
            "dry_run": {"type": "boolean", "description": "a dry run: it stored nothing; its progress says what a real run would do"},
        },
    });
    let connector_props = json!({
        "id": str_(), "kind": {"type": "string", "enum": ["local", "smb", "sharepoint"]},
        "target": str_(), "schedule": nstr(), "timezone": nstr(), "watch": {"type": "boolean"},
        "paused": {"type": "boolean"}, "state": {"type": "string", "enum": ["idle", "queued", "running"]},
        "current_job": nint(), "next_run": ntime(), "skipped_runs": int(), "config": {"type": "object"},
        "source": {"type": "string", "enum": ["file", "api"]}, "revision": nint(),
    });
    let connector_required = json!([
        "id", "kind", "target", "paused", "state", "config", "source", "revision"
    ]);
    let detail = json!({"type": "object", "required": ["id", "kind", "source", "revision", "status"], "properties": {
        "id": str_(), "kind": {"type": "string", "enum": ["local", "smb", "sharepoint"]},
        "source": {"type": "string", "enum": ["file", "api"]},
        "revision": {"type": "integer", "nullable": true, "description": "an API connector's revision (its ETag); null for the file's"},
        "file": {"type": "string", "description": "the configuration file that defines it (source: file)"},
        "status": {"type": "object", "required": ["state", "paused", "current_job", "next_run", "skipped_runs", "last_job"], "properties": {
            "state": {"type": "string", "enum": ["idle", "queued", "running"]}, "paused": {"type": "boolean"},
            "current_job": nint(), "next_run": ntime(), "timezone": nstr(), "skipped_runs": int(),
            "last_job": {"allOf": [schema("Job")], "nullable": true},
        }},
    }});
    let (body, body_defs) = tributary_config::api_connector::body_schema();
    let item_props = json!({
        "id": nint(), "connector": str_(), "path": str_(),
        "status": {"type": "string", "enum": crate::handlers::ITEM_STATUSES},
        "size": nint(), "mtime": ntime(), "current_version": nint(), "last_error": nstr(),
        "retry_count": nint(), "failed_at": ntime(),
    });
    let mut item_detail_props = item_props.clone();
    item_detail_props["versions"] = json!({"type": "array", "items": {
        "type": "object",
        "required": ["id", "deleted", "size", "mtime", "digest", "committed_at", "job_id", "chunks", "held", "status", "index"],
        "properties": {
            "id": int(), "deleted": {"type": "boolean"}, "size": int(), "mtime": time(),
            "digest": nstr(), "committed_at": time(), "job_id": nint(), "chunks": int(),
            "held": {"type": "boolean"}, "status": {"type": "string", "enum": ["completed", "deleted", "held"]},
            "index": {"type": "object", "nullable": true, "required": ["state"], "properties": {
                "state": {"type": "string", "enum": ["pending", "indexed", "failed", "skipped"]},
                "reason": nstr(), "format": nstr(), "passages": int(), "attempts": int(), "updated_at": time(),
            }},
        },
    }});
    let item_required = json!(["id", "connector", "path", "status"]);
    let mut out = json!({
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {"error": {
                "type": "object",
                "required": ["code", "message", "details", "request_id"],
                "properties": {
                    "code": {"type": "string", "example": "JOB_NOT_FOUND"},
                    "message": str_(),
                    "details": {"type": "object"},
                    "request_id": str_(),
                },
            }},
        },
        "Meta": {
            "type": "object",
            "required": ["page", "per_page", "total", "pages"],
            "properties": {"page": int(), "per_page": int(), "total": int(), "pages": int()},
        },
        "Health": {"type": "object", "required": ["status"], "properties": {"status": {"type": "string", "enum": ["ok"]}}},
        "Ready": {"type": "object", "required": ["status", "checks"], "properties": {"status": {"type": "string", "enum": ["ready"]}, "checks": {"type": "object"}}},
        "Job": job,
        "Session": {"type": "object", "required": ["signed_in"], "properties": {
            "signed_in": {"type": "boolean"},
            "principal": {"type": "string"},
            "role": {"type": "string", "enum": ["viewer", "operator", "admin"]},
            "csrf_token": {"type": "string", "description": "send it in X-CSRF-Token with every change made with the session cookie"},
            "expires_at": {"type": "string", "format": "date-time"},
            "sign_in_url": {"type": "string", "description": "when the identity provider signs in: open it in the browser to sign in"},
        }},
        "Usage": {"type": "object", "required": ["connector", "target", "files", "bytes", "stored_bytes", "calculated_at", "quota"], "properties": {
            "connector": str_(), "target": nstr(),
            "files": {"type": "integer", "minimum": 0}, "bytes": {"type": "integer", "minimum": 0}, "stored_bytes": {"type": "integer", "minimum": 0},
            "calculated_at": time(),
            "quota": {"type": "object", "nullable": true, "required": ["max_bytes", "max_files"], "properties": {"max_bytes": nint(), "max_files": nint()}},
        }},
        "JobLog": {"type": "object", "required": ["items"], "properties": {"items": {"type": "array", "items": {
            "type": "object", "required": ["at", "level", "message"],
            "properties": {"at": time(), "level": {"type": "string", "enum": ["info", "warn", "error"]}, "message": str_()},
        }}}},
        "Connector": {"type": "object", "required": connector_required.clone(), "properties": connector_props},
        "ConnectorDetail": detail,
        "ConnectorBody": body,
        "Item": {"type": "object", "required": item_required.clone(), "properties": item_props},
        "ItemDetail": {"type": "object", "required": item_required, "properties": item_detail_props},
        "Changes": {"type": "object", "required": ["items", "next_cursor"], "properties": {
            "next_cursor": int(),
            "items": {"type": "array", "items": {
                "type": "object", "required": ["seq", "connector", "op", "item_id", "version_id", "path", "at"],
                "properties": {"seq": int(), "connector": str_(), "op": {"type": "string", "enum": ["upsert", "delete"]},
                    "item_id": int(), "version_id": nint(), "path": str_(), "at": time()},
            }},
        }},
        "Conflict": {"type": "object", "required": ["id", "kind", "status", "path", "connector", "claims", "resolutions"], "properties": {
            "id": int(), "kind": {"type": "string", "enum": tributary_catalog::conflicts::KINDS},
            "status": {"type": "string", "enum": ["open", "resolved"]}, "path": str_(), "connector": str_(),
            "policy": str_(), "detail": nstr(), "first_seen": time(), "last_seen": time(),
            "resolution": nstr(), "resolved_by": nstr(), "resolved_at": ntime(), "renamed_to": nstr(),
            "resolutions": {"type": "array", "items": {"type": "string", "enum": tributary_catalog::conflicts::RESOLUTIONS}},
            "claims": {"type": "array", "items": {"type": "object", "required": ["role", "connector", "path", "state"], "properties": {
                "role": str_(), "connector": str_(), "path": str_(), "item_id": nint(), "state": str_(),
                "version_id": nint(), "size": nint(), "mtime": ntime(), "digest": nstr(),
            }}},
        }},
        "SearchHits": {"type": "object", "required": ["items"], "properties": {"items": {"type": "array", "items": {
            "type": "object", "required": ["score", "item_id", "version_id", "connector", "path", "passage", "text"],
            "properties": {"score": {"type": "number"}, "item_id": int(), "version_id": int(), "connector": str_(),
                "path": str_(), "passage": int(), "location": nstr(), "text": str_()},
        }}}},
        "Instances": {"type": "object", "required": ["items"], "properties": {"items": {"type": "array", "items": {
            "type": "object",
            "required": ["id", "hostname", "version", "started_at", "heartbeat_at", "stopped_at", "state", "this", "draining", "running_jobs"],
            "properties": {
                "id": str_(), "hostname": str_(), "version": str_(),
                "started_at": time(), "heartbeat_at": time(), "stopped_at": ntime(),
                "state": {"type": "string", "enum": ["up", "down", "stopped"]},
                "this": {"type": "boolean", "description": "the instance answering"},
                "draining": {"type": "boolean", "description": "told to claim no new job (`tributary ctl drain`)"},
                "running_jobs": {"type": "array", "items": int()},
            },
        }}}},
        "AuditEntry": {"type": "object",
            "required": ["id", "at", "source", "instance", "principal", "role", "client", "method", "route", "action", "resource", "outcome", "status", "request_id", "duration_ms"],
            "properties": {
                "id": int(), "at": time(), "source": {"type": "string", "enum": ["api", "cli"]},
                "instance": nstr(), "principal": {"type": "string", "nullable": true, "description": "null when the caller was not authenticated"},
                "role": {"type": "string", "nullable": true, "enum": ["viewer", "operator", "admin", null]},
                "client": {"type": "string", "description": "the client address (IPv6 by its /64); local for the CLI"},
                "method": {"type": "string", "description": "the HTTP method; CLI for a command"},
                "route": {"type": "string", "description": "the route template, or the command"},
                "action": str_(), "resource": nstr(),
                "outcome": {"type": "string", "enum": tributary_catalog::audit::OUTCOMES},
                "status": {"type": "integer", "description": "the HTTP status; a command's exit code"},
                "request_id": str_(), "duration_ms": {"type": "number"},
            },
        },
        "Queue": {"type": "object", "required": ["state", "connectors", "pending", "indexed", "failed", "skipped"], "properties": {
            "state": {"type": "string", "enum": ["starting", "failed", "ready"]}, "error": nstr(), "embedder": nstr(),
            "dim": nint(), "connectors": {"type": "array", "items": str_()},
            "pending": int(), "indexed": int(), "failed": int(), "skipped": int(), "passages": int(),
            "index_vectors": int(), "index_memory_bytes": int(), "totals": {"type": "object"},
        }},
    });
    let schemas = out.as_object_mut().expect("an object");
    for (name, def) in body_defs {
        assert!(!schemas.contains_key(&name), "schema {name} defined twice");
        schemas.insert(name, def);
    }
    out
}

pub fn document() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for Route {
        method,
        path,
        access,
        ..
    } in ROUTES
    {
        let d = describe(method, path);
        let mut responses = Map::new();
        for (status, description, content) in d.responses {
            let mut r = json!({"description": description});
            if let Some((ctype, schema)) = content {
                r["content"] = json!({ctype: {"schema": schema}});
            }
            responses.insert(status.to_string(), r);
        }
        if let Access::Needs(_) | Access::InBand(_) = access {
            responses.insert("401".into(), json!({"description": "no valid bearer token", "content": {"application/json": {"schema": schema("Error")}}}));
            responses.insert("403".into(), json!({"description": "the token's role is too low", "content": {"application/json": {"schema": schema("Error")}}}));
        }
        responses.insert("429".into(), json!({"description": "rate limited: Retry-After and details.wait_seconds say when to try again", "content": {"application/json": {"schema": schema("Error")}}}));
        responses.insert(
            "default".into(),
            json!({"description": "error", "content": {"application/json": {"schema": schema("Error")}}}),
        );
        let mut op = json!({
            "summary": d.summary,
            "operationId": format!("{}{}", method.to_lowercase(), path.replace("/api/v1", "").replace(['/', '{', '}', '.'], "_")),
            "parameters": d.params,
            "responses": responses,
        });
        match access {
            Access::Needs(r) => {
                op["security"] = json!([{"bearer": []}]);
                op["description"] = json!(format!("Needs the `{}` role.", role_name(*r)));
            }
            Access::InBand(r) => {
                op["security"] = json!([{"bearer": []}]);
                op["description"] = json!(format!(
                    "Needs the `{}` role, checked after the upgrade: the Authorization header, else a first message {{\"token\": \"…\"}}. Failures close the socket with a code: {}.",
                    role_name(*r),
                    crate::events_http::CLOSE_CODES
                        .iter()
                        .map(|(c, m)| format!("{c} ({m})"))
                        .collect::<Vec<_>>()
                        .join("; ")
                ));
            }
            Access::Open => op["security"] = json!([]),
        }
        if let Some(body) = d.body {
            op["requestBody"] = json!({"required": d.body_required, "content": {"application/json": {"schema": body}}});
            op["responses"]["413"] = json!({"description": "PAYLOAD_TOO_LARGE: the body is larger than api.max_body_size", "content": {"application/json": {"schema": schema("Error")}}});
        }
        paths
            .entry(path.to_string())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("object")
            .insert(method.to_lowercase(), op);
    }
    json!({
        "openapi": "3.0.3",
        "info": {"title": "Tributary admin API", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": components(),
        },
    })
}
