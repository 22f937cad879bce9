//! Operations on connectors: list, read, create, change, test, delete, run, pause and resume.

use serde_json::json;

use super::*;

/// The operations of this area, or `None` for another area's route.
pub(super) fn describe(method: &str, path: &str) -> Option<Op> {
    Some(match (method, path) {
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
        _ => return None,
    })
}
