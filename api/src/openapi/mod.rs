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

mod connectors;
mod data;
mod schemas;
mod service;

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

fn page() -> Vec<Value> {
    vec![
        json!({"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 1}}),
        json!({"name": "per_page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}}),
    ]
}

fn id() -> Value {
    json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string"}, "example": "1"})
}

/// Why a change of a connector may be refused.
fn change_refusals() -> Vec<Response> {
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
}

fn if_match() -> Value {
    json!({"name": "If-Match", "in": "header", "description": "the ETag a GET gave: the change is made only at that revision (412 otherwise)", "schema": {"type": "string", "pattern": "^((W/)?\"[1-9][0-9]{0,17}\"|\\*)$"}})
}

fn q(name: &str, desc: &str) -> Value {
    json!({"name": name, "in": "query", "description": desc, "schema": {"type": "string"}})
}

fn one_of(name: &str, values: &[&str]) -> Value {
    json!({"name": name, "in": "query", "schema": {"type": "string", "enum": values}})
}

fn list(item: &str) -> Value {
    json!({"type": "object", "required": ["items", "meta"], "properties": {
        "items": {"type": "array", "items": schema(item)},
        "meta": schema("Meta"),
    }})
}

fn op(summary: &str, params: Vec<Value>, responses: Vec<Response>) -> Op {
    Op {
        summary: summary.to_string(),
        params,
        body: None,
        body_required: false,
        responses,
    }
}

/// A route's operation, from the area it belongs to.
fn describe(method: &str, path: &str) -> Op {
    service::describe(method, path)
        .or_else(|| connectors::describe(method, path))
        .or_else(|| data::describe(method, path))
        .unwrap_or_else(|| op("", vec![], vec![]))
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
            "schemas": schemas::components(),
        },
    })
}
