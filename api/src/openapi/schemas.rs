//! The schemas of `components/schemas`: every body a route takes or gives.

use serde_json::{Value, json};

use super::schema;

pub(super) fn components() -> Value {
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
