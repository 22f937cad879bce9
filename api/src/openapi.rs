//! The OpenAPI 3.0 document, built from [`crate::ROUTES`] plus per-route text, so the
//! document and the router cannot drift apart (a test checks both ways).

use serde_json::{Map, Value, json};

use crate::{Access, ROUTES, Route, role_name};

fn describe(method: &str, path: &str) -> (&'static str, Vec<Value>, Option<Value>, &'static str) {
    let page = || {
        vec![
            json!({"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "default": 1}}),
            json!({"name": "per_page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}}),
        ]
    };
    let id = || json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string"}});
    let q = |name: &str, desc: &str| json!({"name": name, "in": "query", "description": desc, "schema": {"type": "string"}});
    match (method, path) {
        ("GET", "/api/v1/health") => ("Liveness", vec![], None, "200"),
        ("GET", "/api/v1/health/ready") => (
            "Readiness of catalog, object store and (when a connector is vectorized) the embedder and vector index; 503 names the failing part",
            vec![],
            None,
            "200",
        ),
        ("GET", "/api/v1/metrics") => ("Prometheus metrics (text format)", vec![], None, "200"),
        ("GET", "/api/v1/openapi.json") => ("This document", vec![], None, "200"),
        ("GET", "/api/v1/connectors") => ("List connectors with live status", page(), None, "200"),
        ("GET", "/api/v1/connectors/{id}") => (
            "A connector: status, next run, last job, config with secrets redacted",
            vec![id()],
            None,
            "200",
        ),
        ("POST", "/api/v1/connectors/{id}/runs") => (
            "Queue a job now; 409 JOB_ALREADY_RUNNING when one is queued or running",
            vec![id()],
            Some(
                json!({"type": "object", "properties": {"kind": {"type": "string", "enum": ["full", "incremental"]}}}),
            ),
            "202",
        ),
        ("POST", "/api/v1/connectors/{id}/pause") => {
            ("Pause scheduled and watch runs", vec![id()], None, "200")
        }
        ("POST", "/api/v1/connectors/{id}/resume") => {
            ("Resume a paused connector", vec![id()], None, "200")
        }
        ("GET", "/api/v1/jobs") => {
            let mut p = vec![
                q("connector", "connector id"),
                q(
                    "status",
                    "queued, running, succeeded, failed, cancelled, interrupted",
                ),
                q("since", "RFC 3339 or Unix seconds"),
            ];
            p.extend(page());
            ("List jobs, newest first", p, None, "200")
        }
        ("GET", "/api/v1/jobs/{id}") => (
            "A job with counters, progress, error_count and last_error",
            vec![id()],
            None,
            "200",
        ),
        ("GET", "/api/v1/jobs/{id}/log") => ("The job's log lines", vec![id()], None, "200"),
        ("POST", "/api/v1/jobs/{id}/cancel") => (
            "Cancel a queued or running job (files in flight finish)",
            vec![id()],
            None,
            "202",
        ),
        ("GET", "/api/v1/items") => {
            let mut p = vec![
                q("connector", "connector id"),
                q("prefix", "path prefix in the target namespace"),
                q("status", "completed, deleted, failed or conflict"),
            ];
            p.extend(page());
            ("List items", p, None, "200")
        }
        ("GET", "/api/v1/items/{id}") => ("An item with its versions", vec![id()], None, "200"),
        ("GET", "/api/v1/items/{id}/content") => (
            "The stored bytes of the current (or given) version; supports Range",
            vec![
                id(),
                json!({"name": "version", "in": "query", "schema": {"type": "integer"}}),
                json!({"name": "Range", "in": "header", "schema": {"type": "string"}}),
            ],
            None,
            "200",
        ),
        ("GET", "/api/v1/changes") => (
            "The change feed after a cursor; 410 SYNC_CURSOR_INVALID past the retention",
            vec![
                json!({"name": "cursor", "in": "query", "schema": {"type": "integer", "minimum": 0}}),
                json!({"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}),
            ],
            None,
            "200",
        ),
        ("GET", "/api/v1/conflicts") => {
            let mut p = vec![
                q("connector", "connector id (either side of the conflict)"),
                q(
                    "kind",
                    "path_claim, name_collision, diverged, torn_read or mass_delete",
                ),
                q("include_resolved", "true to list resolved conflicts too"),
            ];
            p.extend(page());
            (
                "List conflicts (open ones by default), oldest first",
                p,
                None,
                "200",
            )
        }
        ("GET", "/api/v1/conflicts/{id}") => (
            "A conflict with its competing claims",
            vec![id()],
            None,
            "200",
        ),
        ("POST", "/api/v1/conflicts/{id}/resolve") => (
            "Resolve an open conflict; 409 CONFLICT_ALREADY_RESOLVED if it is not open",
            vec![id()],
            Some(json!({
                "type": "object",
                "required": ["resolution"],
                "properties": {"resolution": {"type": "string", "enum": ["keep_source", "keep_existing", "keep_both", "allow", "reject"]}}
            })),
            "200",
        ),
        ("GET", "/api/v1/search") => (
            "Passages closest in meaning to `q`, best first; 503 VECTORS_UNAVAILABLE when vectorization is off or not ready",
            vec![
                json!({"name": "q", "in": "query", "required": true, "schema": {"type": "string", "minLength": 1}}),
                json!({"name": "k", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 10}}),
                q("connector", "only this connector's items"),
                q("path_prefix", "only items under this path"),
                q(
                    "principal",
                    "only documents readable by one of these principals (comma-separated: user:<id>, group:<id>, siteGroup:<id>, anyone, organization); documents without captured permissions are left out",
                ),
            ],
            None,
            "200",
        ),
        ("GET", "/api/v1/queue") => (
            "Vectorization: state, embedder, queue depth, index states and totals",
            vec![],
            None,
            "200",
        ),
        ("POST", "/api/v1/config/reload") => (
            "Re-read the configuration file; 422 CONFIG_INVALID keeps the old one",
            vec![],
            None,
            "200",
        ),
        _ => ("", vec![], None, "200"),
    }
}

pub fn document() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for Route {
        method,
        path,
        access,
    } in ROUTES
    {
        let (summary, params, body, ok) = describe(method, path);
        let mut op = json!({
            "summary": summary,
            "operationId": format!("{}{}", method.to_lowercase(), path.replace("/api/v1", "").replace(['/', '{', '}', '.'], "_")),
            "parameters": params,
            "responses": {
                ok: {"description": "success"},
                "default": {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
            },
        });
        match access {
            Access::Needs(r) => {
                op["security"] = json!([{"bearer": []}]);
                op["description"] = json!(format!("Needs the `{}` role.", role_name(*r)));
            }
            Access::Open => op["security"] = json!([]),
        }
        if let Some(schema) = body {
            op["requestBody"] =
                json!({"required": false, "content": {"application/json": {"schema": schema}}});
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
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {
                        "type": "object",
                        "required": ["code", "message", "details", "request_id"],
                        "properties": {
                            "code": {"type": "string", "example": "JOB_NOT_FOUND"},
                            "message": {"type": "string"},
                            "details": {"type": "object"},
                            "request_id": {"type": "string"},
                        },
                    }},
                },
            },
        },
    })
}
