//! Route handlers.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Extension, FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use tributary_catalog::{ItemFilter, JobFilter, JobRow};

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::params::{Params, meta};
use crate::{AppState, openapi};

pub use crate::connector_admin::{
    create_connector, delete_connector, get_connector, patch_connector, replace_connector,
    test_connector, test_connector_body,
};
pub use crate::download::item_content;
pub use crate::usage::usage;

/// A JSON object body whose rejections use the error envelope: an absent or empty body
/// is `{}`; any other body must say `Content-Type: application/json` (415), arrive whole
/// within `api.body_read_timeout` (408) and within `api.max_body_size` (413), and be a
/// JSON object (422) of the right shape, unknown fields refused (422).
pub struct JsonBody<T>(pub T);

impl<T: serde::de::DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, st: &AppState) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|m| {
                let m = m.trim();
                // a JSON merge patch (RFC 7386) is JSON too
                m.eq_ignore_ascii_case("application/json")
                    || m.eq_ignore_ascii_case("application/merge-patch+json")
            });
        let read = axum::body::Bytes::from_request(req, st);
        let bytes = match tokio::time::timeout(st.bodies.read_timeout, read).await {
            Err(_) => {
                return Err(ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "BODY_TIMEOUT",
                    "the request body did not arrive within api.body_read_timeout",
                ));
            }
            Ok(Err(e)) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(crate::error::payload_too_large());
            }
            Ok(Err(e)) => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "INVALID_BODY",
                    e.body_text(),
                ));
            }
            Ok(Ok(b)) => b,
        };
        let value = if bytes.is_empty() {
            json!({})
        } else if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UNSUPPORTED_MEDIA_TYPE",
                "a request body must be sent with `Content-Type: application/json`",
            ));
        } else {
            serde_json::from_slice(&bytes)
                .map_err(|e| invalid_body(format!("invalid JSON: {e}")))?
        };
        if !value.is_object() {
            return Err(invalid_body("the body must be a JSON object".into()));
        }
        serde_json::from_value(value)
            .map(JsonBody)
            .map_err(|e| invalid_body(format!("invalid body: {e}")))
    }
}

fn invalid_body(message: String) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "INVALID_BODY", message)
}

/// A path parameter; one that is not valid UTF-8 (or otherwise cannot be read) is a 400
/// in the envelope, not axum's plain-text rejection.
pub struct Path<T>(pub T);

impl<T: serde::de::DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "INVALID_PATH", e.body_text()))
    }
}

/// The query string; one that cannot be decoded (invalid UTF-8 after percent-decoding)
/// is a 400 in the envelope.
pub struct Query<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "INVALID_QUERY", e.body_text()))
    }
}

pub(crate) fn id_param(raw: &str, code: &'static str) -> ApiResult<i64> {
    raw.parse()
        .map_err(|_| ApiError::not_found(code, format!("`{raw}` is not a valid id")))
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("ROUTE_NOT_FOUND", "no such route; see /api/v1/openapi.json")
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        "method not allowed on this route",
    )
}

pub async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

pub async fn ready(State(st): State<AppState>) -> Response {
    let mut parts = serde_json::Map::new();
    let mut ok = true;
    // a database that is gone makes the pool retry until its acquire timeout: the
    // probe answers sooner
    match tokio::time::timeout(std::time::Duration::from_secs(3), st.catalog.ping()).await {
        Ok(Ok(())) => {
            parts.insert("catalog".into(), json!({"ok": true}));
        }
        Ok(Err(e)) => {
            ok = false;
            parts.insert(
                "catalog".into(),
                json!({"ok": false, "error": e.to_string()}),
            );
        }
        Err(_) => {
            ok = false;
            parts.insert(
                "catalog".into(),
                json!({"ok": false, "error": "timed out after 3s"}),
            );
        }
    }
    match tokio::time::timeout(std::time::Duration::from_secs(5), st.store.check()).await {
        Ok(Ok(())) => {
            parts.insert("object_store".into(), json!({"ok": true}));
        }
        Ok(Err(e)) => {
            ok = false;
            parts.insert(
                "object_store".into(),
                json!({"ok": false, "error": e.to_string()}),
            );
        }
        Err(_) => {
            ok = false;
            parts.insert(
                "object_store".into(),
                json!({"ok": false, "error": "timed out after 5s"}),
            );
        }
    }
    match st.control.vectors_ready() {
        None => {}
        Some(Ok(())) => {
            parts.insert("vectors".into(), json!({"ok": true}));
        }
        Some(Err(e)) => {
            ok = false;
            parts.insert("vectors".into(), json!({"ok": false, "error": e}));
        }
    }
    if ok {
        (
            StatusCode::OK,
            Json(json!({"status": "ready", "checks": parts})),
        )
            .into_response()
    } else {
        let failing: Vec<String> = parts
            .iter()
            .filter(|(_, v)| v["ok"] == json!(false))
            .map(|(k, _)| k.clone())
            .collect();
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "NOT_READY",
            format!("not ready: {}", failing.join(", ")),
        )
        .details(json!({"checks": parts}))
        .into_response()
    }
}

pub async fn metrics_text(State(st): State<AppState>) -> Response {
    let mut registry = prometheus_client::registry::Registry::default();
    st.control.metrics(&mut registry).await;
    st.metrics.register(&mut registry);
    crate::serve::register(&mut registry);
    st.events.register(&mut registry);
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        crate::metrics::encode(&registry),
    )
        .into_response()
}

pub async fn openapi_doc() -> Json<Value> {
    Json(openapi::document())
}

// ---- connectors ---------------------------------------------------------------------

pub async fn list_connectors(
    State(st): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let mut p = Params::new(q);
    let (page, per_page) = p.page();
    p.done()?;
    let all = st.control.connectors();
    let total = all.len() as i64;
    let items: Vec<_> = all
        .into_iter()
        .skip(((page - 1) * per_page) as usize)
        .take(per_page as usize)
        .collect();
    Ok(Json(
        json!({"items": items, "meta": meta(page, per_page, total)}),
    ))
}

/// A connector's live status and last job, as `GET /connectors/{id}` shows them.
pub(crate) async fn connector_status(st: &AppState, id: &str) -> ApiResult<Value> {
    let c = st
        .control
        .connectors()
        .into_iter()
        .find(|c| c.id == id)
        .ok_or_else(|| {
            ApiError::not_found("CONNECTOR_NOT_FOUND", format!("no connector `{id}`"))
        })?;
    let last_job = st.catalog.last_job(id).await?.map(|j| job_view(st, j));
    Ok(json!({
        "state": c.state,
        "paused": c.paused,
        "current_job": c.current_job,
        "next_run": c.next_run,
        "timezone": c.timezone,
        "skipped_runs": c.skipped_runs,
        "last_job": last_job,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunBody {
    /// Absent: incremental; `null` is not a kind.
    #[serde(default)]
    kind: RunKind,
    /// List and plan only: the job stores nothing and its counters say what a real
    /// run would do.
    #[serde(default)]
    dry_run: bool,
}

#[derive(Deserialize, Clone, Copy, Default)]
#[serde(rename_all = "lowercase")]
enum RunKind {
    Full,
    #[default]
    Incremental,
}

pub async fn run_connector(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Extension(Principal(by)): Extension<Principal>,
    JsonBody(body): JsonBody<RunBody>,
) -> ApiResult<Response> {
    let full = matches!(body.kind, RunKind::Full);
    let job_id = st.control.run_now(&id, full, body.dry_run).await?;
    st.catalog.set_requested_by(job_id, &by).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(
            json!({"job_id": job_id, "kind": if full { "full" } else { "incremental" }, "dry_run": body.dry_run}),
        ),
    )
        .into_response())
}

pub async fn pause_connector(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    st.control.set_paused(&id, true).await?;
    Ok(Json(json!({"id": id, "paused": true})))
}

pub async fn resume_connector(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    st.control.set_paused(&id, false).await?;
    Ok(Json(json!({"id": id, "paused": false})))
}

// ---- jobs ---------------------------------------------------------------------------

pub(crate) const JOB_STATUSES: &[&str] = &[
    "queued",
    "running",
    "succeeded",
    "failed",
    "cancelled",
    "interrupted",
];

pub(crate) fn job_view(st: &AppState, j: JobRow) -> Value {
    let live = st.control.live_job(j.id);
    let progress = match &live {
        Some(l) => serde_json::to_value(&l.stats).unwrap_or(Value::Null),
        None => serde_json::from_str(&j.stats).unwrap_or(Value::Null),
    };
    let ts = |ns: Option<i64>| ns.map(rfc3339);
    json!({
        "id": j.id,
        "connector": j.connector,
        "kind": j.kind,
        "trigger": j.trigger,
        "status": j.status,
        "instance": j.instance.unwrap_or_default(),
        "requested_by": j.requested_by,
        "queued_at": ts(j.queued_at),
        "started_at": ts(j.started_at),
        "finished_at": ts(j.finished_at),
        // running (here, or elsewhere with its progress saved): as counted so far
        "error_count": if live.is_some() || j.status == "running" { progress["files_failed"].as_i64().unwrap_or(0) } else { j.error_count },
        "last_error": j.last_error,
        "progress": progress,
        "dry_run": j.dry_run,
    })
}

/// An instance without a heartbeat for this long is shown `down`.
pub use tributary_catalog::INSTANCE_DOWN_AFTER;

pub async fn list_instances(State(st): State<AppState>) -> ApiResult<Json<Value>> {
    let now = tributary_catalog::now_ns();
    let items: Vec<Value> = st
        .catalog
        .instances()
        .await?
        .into_iter()
        .map(|(r, running)| {
            json!({
                "state": tributary_catalog::instance_state(&r, now, INSTANCE_DOWN_AFTER.as_nanos() as i64),
                "this": st.catalog.instance() == Some(r.id.as_str()),
                "id": r.id,
                "hostname": r.hostname,
                "version": r.version,
                "started_at": rfc3339(r.started_at),
                "heartbeat_at": rfc3339(r.heartbeat_at),
                "stopped_at": r.stopped_at.map(rfc3339),
                "draining": r.draining != 0,
                "running_jobs": running,
            })
        })
        .collect();
    Ok(Json(json!({ "items": items })))
}

/// Tells an instance to take no new job (`tributary ctl drain`): its running jobs
/// finish, queued ones go to the other instances.
pub async fn drain_instance(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    set_draining(st, id, true).await
}

pub async fn undrain_instance(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    set_draining(st, id, false).await
}

async fn set_draining(st: AppState, id: String, draining: bool) -> ApiResult<Json<Value>> {
    if !st.catalog.set_draining(&id, draining).await? {
        return Err(ApiError::not_found(
            "INSTANCE_NOT_FOUND",
            format!("no instance {id}"),
        ));
    }
    Ok(Json(json!({"id": id, "draining": draining})))
}

pub fn rfc3339(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub async fn list_jobs(
    State(st): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let mut p = Params::new(q);
    let filter = JobFilter {
        connector: p.string("connector"),
        status: p.one_of("status", JOB_STATUSES),
        since: p.time("since"),
    };
    let (page, per_page) = p.page();
    p.done()?;
    let (rows, total) = st.catalog.list_jobs(&filter, page, per_page).await?;
    let items: Vec<Value> = rows.into_iter().map(|j| job_view(&st, j)).collect();
    Ok(Json(
        json!({"items": items, "meta": meta(page, per_page, total)}),
    ))
}

pub async fn get_job(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let id = id_param(&id, "JOB_NOT_FOUND")?;
    let j = st
        .catalog
        .job(id)
        .await?
        .ok_or_else(|| ApiError::not_found("JOB_NOT_FOUND", format!("no job {id}")))?;
    Ok(Json(job_view(&st, j)))
}

pub async fn job_log(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let id = id_param(&id, "JOB_NOT_FOUND")?;
    st.catalog
        .job(id)
        .await?
        .ok_or_else(|| ApiError::not_found("JOB_NOT_FOUND", format!("no job {id}")))?;
    let lines = match st.control.live_job(id) {
        Some(l) => l.log,
        None => st.catalog.job_log(id).await?,
    };
    let items: Vec<Value> = lines
        .into_iter()
        .map(|l| json!({"at": rfc3339(l.at), "level": l.level, "message": l.message}))
        .collect();
    Ok(Json(json!({"items": items})))
}

pub async fn cancel_job(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let id = id_param(&id, "JOB_NOT_FOUND")?;
    st.catalog
        .job(id)
        .await?
        .ok_or_else(|| ApiError::not_found("JOB_NOT_FOUND", format!("no job {id}")))?;
    st.control.cancel_job(id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"job_id": id, "cancelling": true})),
    )
        .into_response())
}

pub(crate) const ITEM_STATUSES: [&str; 4] = ["completed", "deleted", "failed", "conflict"];

// ---- items --------------------------------------------------------------------------

pub async fn list_items(
    State(st): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let mut p = Params::new(q);
    let filter = ItemFilter {
        connector: p.string("connector"),
        prefix: p.string("prefix").map(String::into_bytes),
        status: p.one_of("status", &ITEM_STATUSES),
    };
    let (page, per_page) = p.page();
    p.done()?;
    let (rows, total) = st.catalog.list_items(&filter, page, per_page).await?;
    let items: Vec<Value> = rows.into_iter().map(item_view).collect();
    Ok(Json(
        json!({"items": items, "meta": meta(page, per_page, total)}),
    ))
}

fn item_view(r: tributary_catalog::ItemRow) -> Value {
    json!({
        "id": r.id,
        "connector": r.connector,
        "path": r.path,
        "status": r.status,
        "size": r.size,
        "mtime": r.mtime_ns.map(rfc3339),
        "current_version": r.current_version,
        "last_error": r.last_error,
        "retry_count": r.retry_count,
        "failed_at": r.failed_at.map(rfc3339),
    })
}

pub async fn get_item(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = id_param(&id, "ITEM_NOT_FOUND")?;
    let (row, versions) = st
        .catalog
        .item(id)
        .await?
        .ok_or_else(|| ApiError::not_found("ITEM_NOT_FOUND", format!("no item {id}")))?;
    let mut v = item_view(row);
    let ids: Vec<i64> = versions.iter().map(|x| x.id).collect();
    let states = st.catalog.index_states(&ids).await?;
    let vectorized = st.control.vectors_ready().is_some();
    let index_of = |x: &tributary_catalog::VersionRow, current: bool| -> Value {
        match states.iter().find(|s| s.version_id == x.id) {
            Some(s) => json!({
                "state": s.state,
                "reason": s.reason,
                "format": s.format,
                "passages": s.passages,
                "attempts": s.attempts,
                "updated_at": rfc3339(s.updated_at),
            }),
            None if current && vectorized && !x.deleted && !x.held => json!({"state": "pending"}),
            None => Value::Null,
        }
    };
    let current_version = v["current_version"].as_i64();
    v["versions"] = versions
        .into_iter()
        .map(|x| {
            json!({
                "index": index_of(&x, Some(x.id) == current_version),
                "id": x.id,
                "deleted": x.deleted,
                "size": x.size,
                "mtime": rfc3339(x.mtime_ns),
                "digest": x.digest.map(|d| format!("blake3:{d}")),
                "committed_at": rfc3339(x.committed_at),
                "job_id": x.job_id,
                "chunks": x.chunks,
                "held": x.held,
                "status": if x.held { "held" } else if x.deleted { "deleted" } else { "completed" },
            })
        })
        .collect();
    Ok(Json(v))
}

// ---- change feed ----------------------------------------------------------------------

pub async fn changes(
    State(st): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let mut p = Params::new(q);
    let cursor = p.int("cursor", 0, i64::MAX).unwrap_or(0);
    let limit = p.int("limit", 1, 1000).unwrap_or(100);
    p.done()?;
    let pruned = st.catalog.pruned_through().await?;
    if cursor < pruned {
        return Err(ApiError::new(
            StatusCode::GONE,
            "SYNC_CURSOR_INVALID",
            format!("cursor {cursor} is older than the change retention; resynchronise from cursor {pruned} after a full read of /api/v1/items"),
        )
        .details(json!({"oldest_valid_cursor": pruned})));
    }
    let rows = st.catalog.changes(cursor, limit).await?;
    let next = rows.last().map(|c| c.seq).unwrap_or(cursor);
    let items: Vec<Value> = rows
        .into_iter()
        .map(|c| {
            json!({
                "seq": c.seq,
                "connector": c.connector,
                "op": c.op,
                "item_id": c.item_id,
                "version_id": c.version_id,
                "path": String::from_utf8_lossy(&c.path),
                "at": rfc3339(c.at),
            })
        })
        .collect();
    Ok(Json(json!({"items": items, "next_cursor": next})))
}

pub async fn reload(State(st): State<AppState>) -> ApiResult<Json<Value>> {
    Ok(Json(st.control.reload().await?))
}

// ---- conflicts ----------------------------------------------------------------------

pub fn conflict_view(c: &tributary_catalog::ConflictRow) -> Value {
    let claims: Vec<Value> = c
        .claims
        .iter()
        .map(|k| {
            json!({
                "role": k.role,
                "connector": k.connector,
                "path": k.path,
                "item_id": k.item_id,
                "state": k.state,
                "version_id": k.version_id,
                "size": k.size,
                "mtime": k.mtime_ns.map(rfc3339),
                "digest": k.digest.as_ref().map(|d| format!("blake3:{d}")),
            })
        })
        .collect();
    json!({
        "id": c.id,
        "kind": c.kind,
        "status": c.status,
        "path": c.path,
        "connector": c.connector,
        "policy": c.policy,
        "detail": c.detail,
        "first_seen": rfc3339(c.first_seen),
        "last_seen": rfc3339(c.last_seen),
        "resolution": c.resolution,
        "resolved_by": c.resolved_by,
        "resolved_at": c.resolved_at.map(rfc3339),
        "renamed_to": c.renamed_to,
        "resolutions": if c.status == "open" { tributary_catalog::conflicts::resolutions_for(&c.kind).to_vec() } else { Vec::new() },
        "claims": claims,
    })
}

pub async fn list_conflicts(
    State(st): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let mut p = Params::new(q);
    let filter = tributary_catalog::ConflictFilter {
        connector: p.string("connector"),
        kind: p.one_of("kind", &tributary_catalog::conflicts::KINDS),
        include_resolved: p.one_of("include_resolved", &["true", "false"]).as_deref()
            == Some("true"),
    };
    let (page, per_page) = p.page();
    p.done()?;
    let (rows, total) = st.catalog.list_conflicts(&filter, page, per_page).await?;
    let items: Vec<Value> = rows.iter().map(conflict_view).collect();
    Ok(Json(
        json!({"items": items, "meta": meta(page, per_page, total)}),
    ))
}

pub async fn get_conflict(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = id_param(&id, "CONFLICT_NOT_FOUND")?;
    let c =
        st.catalog.conflict(id).await?.ok_or_else(|| {
            ApiError::not_found("CONFLICT_NOT_FOUND", format!("no conflict {id}"))
        })?;
    Ok(Json(conflict_view(&c)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolveBody {
    resolution: String,
}

pub async fn resolve_conflict(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Extension(Principal(by)): Extension<Principal>,
    JsonBody(body): JsonBody<ResolveBody>,
) -> ApiResult<Json<Value>> {
    let id = id_param(&id, "CONFLICT_NOT_FOUND")?;
    let c = st
        .control
        .resolve_conflict(id, &body.resolution, &by)
        .await?;
    Ok(Json(conflict_view(&c)))
}

pub async fn search(
    State(st): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let mut p = Params::new(q);
    let text = p.string("q");
    let k = p.int("k", 1, 100).unwrap_or(10) as usize;
    let connector = p.string("connector");
    let path_prefix = p.string("path_prefix");
    let principals: Vec<String> = p
        .string("principal")
        .map(|v| {
            v.split(',')
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let text = match text {
        Some(t) if !crate::params::is_blank(&t) => t,
        _ => {
            p.done()?;
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "INVALID_QUERY",
                "invalid query parameters",
            )
            .details(json!({"fields": [{"field": "q", "message": "a search text is required"}]})));
        }
    };
    p.done()?;
    let hits = st
        .control
        .search(crate::SearchQuery {
            q: text,
            k,
            connector,
            path_prefix,
            principals,
        })
        .await?;
    Ok(Json(hits))
}

pub async fn queue(State(st): State<AppState>) -> ApiResult<Json<Value>> {
    Ok(Json(st.control.vector_queue().await?))
}

// ---- audit --------------------------------------------------------------------------

pub async fn list_audit(
    State(st): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    use tributary_catalog::audit::{AuditFilter, OUTCOMES};
    let mut p = Params::new(q);
    let filter = AuditFilter {
        principal: p.string("principal"),
        action: p.string("action"),
        resource: p.string("resource"),
        outcome: p.one_of("outcome", OUTCOMES),
        since: p.time("since"),
        until: p.time("until"),
    };
    let (page, per_page) = p.page();
    p.done()?;
    let (rows, total) = st.catalog.list_audit(&filter, page, per_page).await?;
    let items: Vec<Value> = rows
        .into_iter()
        .map(|r| {
            json!({
                "id": r.id,
                "at": rfc3339(r.at),
                "source": r.source,
                "instance": r.instance,
                "principal": r.principal,
                "role": r.role,
                "client": r.client,
                "method": r.method,
                "route": r.route,
                "action": r.action,
                "resource": r.resource,
                "outcome": r.outcome,
                "status": r.status,
                "request_id": r.request_id,
                "duration_ms": r.duration_us as f64 / 1000.0,
            })
        })
        .collect();
    Ok(Json(
        json!({"items": items, "meta": meta(page, per_page, total)}),
    ))
}
