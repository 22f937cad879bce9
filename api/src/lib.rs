//! The admin REST API (axum on hyper), under `/api/v1`.
//!
//! It reads the catalog directly and acts on the daemon through the [`Control`] trait,
//! so it knows nothing of schedulers or connectors. Every response carries
//! `X-Request-Id`; every error uses the envelope of [`error`]; routes need a bearer
//! token whose role covers them (GET: viewer; runs, pause, resume, cancel: operator;
//! reload: admin), except `/health*`, the OpenAPI document and, when configured open,
//! `/metrics`.

pub mod error;
mod handlers;
pub mod metrics;
pub mod openapi;
mod params;

use std::sync::{Arc, RwLock};
use std::time::Instant;

use async_trait::async_trait;
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tributary_catalog::{Catalog, LogLine};
use tributary_config::{ApiToken, Role};
use tributary_pipeline::Stats;
use tributary_store::ObjectStore;

use crate::error::{ApiError, REQUEST_ID};

/// What the API shows of a connector, live.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectorStatus {
    pub id: String,
    pub kind: String,
    pub target: String,
    pub schedule: Option<String>,
    pub timezone: Option<String>,
    pub watch: bool,
    pub paused: bool,
    /// `idle`, `queued` or `running`.
    pub state: String,
    pub current_job: Option<i64>,
    pub next_run: Option<String>,
    /// Scheduled or watch runs skipped because a job of this connector was running.
    pub skipped_runs: u64,
    /// The connector's configuration, secrets redacted.
    pub config: serde_json::Value,
}

/// A running job as the daemon sees it.
#[derive(Debug, Clone)]
pub struct LiveJob {
    pub stats: Stats,
    pub log: Vec<LogLine>,
}

#[derive(Debug)]
pub enum ControlError {
    ConnectorNotFound,
    JobNotFound,
    AlreadyRunning(i64),
    JobNotRunning,
    Paused,
    ShuttingDown,
    ConfigInvalid(Vec<String>),
    ConflictNotFound(i64),
    ConflictAlreadyResolved(i64),
    /// The resolution does not apply to this kind of conflict.
    ResolutionInvalid(String),
    /// Vectorization is off, starting or failed (the message says which and why).
    VectorsUnavailable(String),
    Internal(String),
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        use serde_json::json;
        match e {
            ControlError::ConnectorNotFound => {
                ApiError::not_found("CONNECTOR_NOT_FOUND", "no such connector")
            }
            ControlError::JobNotFound => ApiError::not_found("JOB_NOT_FOUND", "no such job"),
            ControlError::AlreadyRunning(id) => ApiError::new(
                StatusCode::CONFLICT,
                "JOB_ALREADY_RUNNING",
                format!("job {id} of this connector is already queued or running"),
            )
            .details(json!({"job_id": id})),
            ControlError::JobNotRunning => ApiError::new(
                StatusCode::CONFLICT,
                "JOB_NOT_RUNNING",
                "the job is not queued or running",
            ),
            ControlError::Paused => ApiError::new(
                StatusCode::CONFLICT,
                "CONNECTOR_PAUSED",
                "the connector is paused; resume it first",
            ),
            ControlError::ShuttingDown => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "SHUTTING_DOWN",
                "the daemon is shutting down",
            ),
            ControlError::ConfigInvalid(errors) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "CONFIG_INVALID",
                "the configuration file is invalid; the previous configuration keeps running",
            )
            .details(json!({"errors": errors})),
            ControlError::ConflictNotFound(id) => {
                ApiError::not_found("CONFLICT_NOT_FOUND", format!("no conflict {id}"))
            }
            ControlError::ConflictAlreadyResolved(id) => ApiError::new(
                StatusCode::CONFLICT,
                "CONFLICT_ALREADY_RESOLVED",
                format!("conflict {id} is already resolved"),
            ),
            ControlError::ResolutionInvalid(m) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "RESOLUTION_INVALID", m)
            }
            ControlError::VectorsUnavailable(m) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "VECTORS_UNAVAILABLE", m)
            }
            ControlError::Internal(m) => ApiError::internal(m),
        }
    }
}

/// The daemon, as the API acts on it.
#[async_trait]
pub trait Control: Send + Sync + 'static {
    fn connectors(&self) -> Vec<ConnectorStatus>;
    /// Queues a job; returns its id.
    async fn run_now(&self, connector: &str, full: bool) -> Result<i64, ControlError>;
    async fn set_paused(&self, connector: &str, paused: bool) -> Result<(), ControlError>;
    async fn cancel_job(&self, job_id: i64) -> Result<(), ControlError>;
    fn live_job(&self, job_id: i64) -> Option<LiveJob>;
    /// Re-reads the configuration file; returns a summary of what changed.
    async fn reload(&self) -> Result<serde_json::Value, ControlError>;
    /// Prometheus text of the daemon's own metrics.
    async fn metrics(&self) -> String;
    /// Applies an operator's decision on a conflict; returns the conflict as resolved.
    async fn resolve_conflict(
        &self,
        id: i64,
        resolution: &str,
    ) -> Result<tributary_catalog::ConflictRow, ControlError>;
    /// Semantic search: `{"items": [hits]}`.
    async fn search(&self, q: SearchQuery) -> Result<serde_json::Value, ControlError>;
    /// Vectorization queue and state.
    async fn vector_queue(&self) -> Result<serde_json::Value, ControlError>;
    /// `None` when no connector is vectorized; else whether search can answer.
    fn vectors_ready(&self) -> Option<Result<(), String>>;
}

/// A search request, validated.
#[derive(Debug, Clone)]
pub struct SearchQuery {
    pub q: String,
    pub k: usize,
    pub connector: Option<String>,
    pub path_prefix: Option<String>,
    /// Only documents readable by one of these principals (as captured from the source).
    pub principals: Vec<String>,
}

#[derive(Clone)]
pub struct AppState {
    pub catalog: Catalog,
    pub store: Arc<dyn ObjectStore>,
    pub control: Arc<dyn Control>,
    pub auth: Arc<RwLock<AuthConfig>>,
    pub metrics: Arc<metrics::ApiMetrics>,
}

#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub tokens: Vec<ApiToken>,
    pub open_metrics: bool,
}

/// Every route the router serves: (method, path, role needed; `None` = open).
pub const ROUTES: &[(&str, &str, Option<Role>)] = &[
    ("GET", "/api/v1/health", None),
    ("GET", "/api/v1/health/ready", None),
    ("GET", "/api/v1/metrics", Some(Role::Viewer)),
    ("GET", "/api/v1/openapi.json", None),
    ("GET", "/api/v1/connectors", Some(Role::Viewer)),
    ("GET", "/api/v1/connectors/{id}", Some(Role::Viewer)),
    ("POST", "/api/v1/connectors/{id}/runs", Some(Role::Operator)),
    (
        "POST",
        "/api/v1/connectors/{id}/pause",
        Some(Role::Operator),
    ),
    (
        "POST",
        "/api/v1/connectors/{id}/resume",
        Some(Role::Operator),
    ),
    ("GET", "/api/v1/jobs", Some(Role::Viewer)),
    ("GET", "/api/v1/jobs/{id}", Some(Role::Viewer)),
    ("GET", "/api/v1/jobs/{id}/log", Some(Role::Viewer)),
    ("POST", "/api/v1/jobs/{id}/cancel", Some(Role::Operator)),
    ("GET", "/api/v1/items", Some(Role::Viewer)),
    ("GET", "/api/v1/items/{id}", Some(Role::Viewer)),
    ("GET", "/api/v1/items/{id}/content", Some(Role::Viewer)),
    ("GET", "/api/v1/changes", Some(Role::Viewer)),
    ("GET", "/api/v1/conflicts", Some(Role::Viewer)),
    ("GET", "/api/v1/conflicts/{id}", Some(Role::Viewer)),
    (
        "POST",
        "/api/v1/conflicts/{id}/resolve",
        Some(Role::Operator),
    ),
    ("GET", "/api/v1/search", Some(Role::Viewer)),
    ("GET", "/api/v1/queue", Some(Role::Viewer)),
    ("POST", "/api/v1/config/reload", Some(Role::Admin)),
];

pub fn router(state: AppState, max_body: usize) -> Router {
    use handlers::*;
    Router::new()
        .route("/api/v1/health", get(health))
        .route("/api/v1/health/ready", get(ready))
        .route("/api/v1/metrics", get(metrics_text))
        .route("/api/v1/openapi.json", get(openapi_doc))
        .route("/api/v1/connectors", get(list_connectors))
        .route("/api/v1/connectors/{id}", get(get_connector))
        .route("/api/v1/connectors/{id}/runs", post(run_connector))
        .route("/api/v1/connectors/{id}/pause", post(pause_connector))
        .route("/api/v1/connectors/{id}/resume", post(resume_connector))
        .route("/api/v1/jobs", get(list_jobs))
        .route("/api/v1/jobs/{id}", get(get_job))
        .route("/api/v1/jobs/{id}/log", get(job_log))
        .route("/api/v1/jobs/{id}/cancel", post(cancel_job))
        .route("/api/v1/items", get(list_items))
        .route("/api/v1/items/{id}", get(get_item))
        .route("/api/v1/items/{id}/content", get(item_content))
        .route("/api/v1/changes", get(changes))
        .route("/api/v1/conflicts", get(list_conflicts))
        .route("/api/v1/conflicts/{id}", get(get_conflict))
        .route("/api/v1/conflicts/{id}/resolve", post(resolve_conflict))
        .route("/api/v1/search", get(search))
        .route("/api/v1/queue", get(queue))
        .route("/api/v1/config/reload", post(reload))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// The role a request needs, from the route table.
fn required_role(method: &Method, matched: Option<&str>) -> Option<Role> {
    let path = matched?;
    ROUTES
        .iter()
        .find(|(m, p, _)| *m == method.as_str() && *p == path)
        .and_then(|(_, _, r)| *r)
}

async fn auth(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let matched = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string());
    let Some(need) = required_role(req.method(), matched.as_deref()) else {
        return next.run(req).await;
    };
    let cfg = st.auth.read().unwrap().clone();
    if matched.as_deref() == Some("/api/v1/metrics") && cfg.open_metrics {
        return next.run(req).await;
    }
    let presented = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|t| Sha256::digest(t.trim().as_bytes()));
    let Some(presented) = presented else {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "AUTH_TOKEN_INVALID",
            "a bearer token is required",
        )
        .into_response();
    };
    // constant-time comparison against every configured hash
    let token = cfg.tokens.iter().find(|t| {
        t.sha256
            .iter()
            .zip(presented.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    });
    match token {
        None => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "AUTH_TOKEN_INVALID",
            "the bearer token is not valid",
        )
        .into_response(),
        Some(t) if t.role < need => ApiError::new(
            StatusCode::FORBIDDEN,
            "AUTHZ_FORBIDDEN",
            format!("this route needs the `{}` role", role_name(need)),
        )
        .into_response(),
        Some(_) => next.run(req).await,
    }
}

pub fn role_name(r: Role) -> &'static str {
    match r {
        Role::Viewer => "viewer",
        Role::Operator => "operator",
        Role::Admin => "admin",
    }
}

/// Request id (taken from `X-Request-Id` when sane, else generated), metrics.
async fn observe(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| format!("{:016x}", rand::random::<u64>()));
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let mut resp = REQUEST_ID.scope(id.clone(), next.run(req)).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    st.metrics.record(
        method.as_str(),
        &route,
        resp.status().as_u16(),
        started.elapsed(),
    );
    resp
}
