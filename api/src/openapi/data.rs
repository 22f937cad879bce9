//! Operations on what connectors produce: jobs, items and their content, the change feed, conflicts, search and usage.

use serde_json::json;

use super::*;

/// The operations of this area, or `None` for another area's route.
pub(super) fn describe(method: &str, path: &str) -> Option<Op> {
    Some(match (method, path) {
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
            summary: "Resolve an open conflict; 409 CONFLICT_ALREADY_RESOLVED if it is not open"
                .into(),
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
        _ => return None,
    })
}
