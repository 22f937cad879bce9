//! The admin REST API (axum on hyper), under `/api/v1`.
//!
//! It reads the catalog directly and acts on the daemon through the [`Control`] trait,
//! so it knows nothing of schedulers or connectors. Every response carries
//! `X-Request-Id`; every error uses the envelope of [`error`]; routes need a bearer
//! token whose role covers them (GET: viewer; runs, pause, resume, cancel: operator;
//! reload, connector changes and tests, the audit trail: admin), except `/health*`, the OpenAPI document and, when configured open,
//! `/metrics` ([`routes`] is the one table, [`auth`] the check, fail closed). [`serve`]
//! runs it on a listener with connection limits and timeouts.

// the OpenAPI document's schemas are one large `json!`
#![recursion_limit = "256"]

pub mod audit;
pub mod auth;
mod connector_admin;
pub mod dashboard;
mod download;
pub mod error;
pub mod error_codes;
pub mod events;
pub mod events_http;
mod handlers;
pub use handlers::INSTANCE_DOWN_AFTER;
pub mod metrics;
pub mod oidc;
pub mod oidc_sign_in;
pub mod openapi;
mod params;
pub mod parse_errors;
pub mod ratelimit;
pub mod routes;
pub mod serve;
pub mod session;
mod usage;

pub use routes::{Access, ROUTES, Route};

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tributary_catalog::Stats;
use tributary_catalog::{Catalog, LogLine};
use tributary_config::{ApiToken, RateLimits, Role};
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
    /// `file` (the configuration file) or `api` (created over the API).
    pub source: &'static str,
    /// An API connector's revision (its ETag).
    pub revision: Option<i64>,
    /// Its storage quota (shown by `/usage`; the listing shows it in `config`).
    #[serde(skip)]
    pub quota: tributary_config::Quota,
}

/// A connector as written: its YAML form as JSON (secrets as `{"set": true}`), and where
/// it is defined.
#[derive(Debug, Clone)]
pub struct ConnectorSpec {
    pub spec: serde_json::Value,
    /// `file` or `api`.
    pub source: &'static str,
    /// An API connector's revision.
    pub revision: Option<i64>,
    /// A file connector's configuration file.
    pub file: Option<String>,
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
    /// A connector body that fails validation: one entry per bad field.
    ConnectorInvalid(Vec<tributary_config::api_connector::FieldError>),
    /// A connector of the configuration file (named) cannot be changed over the API.
    ManagedByFile {
        id: String,
        file: String,
    },
    /// A connector with this id exists (`file` or `api`).
    ConnectorExists {
        id: String,
        source: &'static str,
    },
    /// `If-Match` named another revision than the connector's (its current one).
    PreconditionFailed {
        current: i64,
    },
    /// Deleting a connector's data would delete more than its `max_delete_percent`
    /// of its live items, and the caller did not confirm it.
    MassDeleteHeld {
        items: u64,
        max_delete_percent: f64,
    },
    Internal(String),
}

/// What becomes of a deleted connector's stored versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteData {
    /// They stay as they are.
    Keep,
    /// Every live item gets a tombstone through the commit path (change feed, restore
    /// as of a past moment still sees them), behind the mass-delete guard:
    /// `allow_mass_delete` confirms deletes beyond the connector's `max_delete_percent`.
    Delete { allow_mass_delete: bool },
}

/// A connector deleted with its data: the job that tombstoned its items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataDeleted {
    pub job_id: i64,
    pub items_deleted: u64,
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
            ControlError::ConnectorInvalid(fields) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "CONNECTOR_INVALID",
                match fields.as_slice() {
                    [one] if one.path.is_empty() => one.message.clone(),
                    [one] => format!("{}: {}", one.path, one.message),
                    many => format!("{} fields are invalid", many.len()),
                },
            )
            .details(json!({"fields": fields})),
            ControlError::ManagedByFile { id, file } => ApiError::new(
                StatusCode::CONFLICT,
                "CONNECTOR_MANAGED_BY_FILE",
                format!("connector `{id}` is defined in {file}: change it there and reload"),
            )
            .details(json!({"file": file})),
            ControlError::ConnectorExists { id, source } => ApiError::new(
                StatusCode::CONFLICT,
                "CONNECTOR_EXISTS",
                match source {
                    "file" => format!("connector `{id}` exists, defined in the configuration file"),
                    _ => format!("connector `{id}` exists; change it with PUT or PATCH"),
                },
            )
            .details(json!({"source": source})),
            ControlError::PreconditionFailed { current } => ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "PRECONDITION_FAILED",
                format!("the connector was changed meanwhile: it is at revision {current}; read it again"),
            )
            .details(json!({"revision": current})),
            ControlError::MassDeleteHeld {
                items,
                max_delete_percent,
            } => ApiError::new(
                StatusCode::CONFLICT,
                "MASS_DELETE_HELD",
                format!(
                    "deleting the connector's data deletes all of its {items} stored item(s), more than its max_delete_percent ({max_delete_percent}%): confirm with allow_mass_delete=true; nothing was changed"
                ),
            )
            .details(json!({"items": items, "max_delete_percent": max_delete_percent})),
            ControlError::Internal(m) => ApiError::internal(m),
        }
    }
}

/// The daemon, as the API acts on it.
#[async_trait]
pub trait Control: Send + Sync + 'static {
    fn connectors(&self) -> Vec<ConnectorStatus>;
    /// Queues a job; returns its id.
    /// Queues a job of `connector`; a dry run stores nothing.
    async fn run_now(
        &self,
        connector: &str,
        full: bool,
        dry_run: bool,
    ) -> Result<i64, ControlError>;
    async fn set_paused(&self, connector: &str, paused: bool) -> Result<(), ControlError>;
    async fn cancel_job(&self, job_id: i64) -> Result<(), ControlError>;
    fn live_job(&self, job_id: i64) -> Option<LiveJob>;
    /// Re-reads the configuration file; returns a summary of what changed.
    async fn reload(&self) -> Result<serde_json::Value, ControlError>;
    /// A connector as written.
    async fn connector_spec(&self, id: &str) -> Result<ConnectorSpec, ControlError>;
    /// Creates a connector from `body` (its YAML form as JSON); `by`: the principal.
    async fn create_connector(
        &self,
        body: serde_json::Value,
        by: &str,
    ) -> Result<ConnectorSpec, ControlError>;
    /// Replaces API connector `id` with `body`, if it is at revision `if_match` (when
    /// given).
    async fn replace_connector(
        &self,
        id: &str,
        body: serde_json::Value,
        if_match: Option<i64>,
        by: &str,
    ) -> Result<ConnectorSpec, ControlError>;
    /// Reaches the source a connector body describes, as `check --connect` does, within
    /// a deadline, storing nothing: `{"ok", "found" | "error", "duration_ms"}`.
    async fn test_connector_body(
        &self,
        body: serde_json::Value,
    ) -> Result<serde_json::Value, ControlError>;
    /// The same for connector `id` as it runs.
    async fn test_connector(&self, id: &str) -> Result<serde_json::Value, ControlError>;
    /// Deletes API connector `id`, if it is at revision `if_match` (when given); with
    /// [`DeleteData::Delete`], tombstones its items first (and answers how).
    async fn delete_connector(
        &self,
        id: &str,
        if_match: Option<i64>,
        by: &str,
        data: DeleteData,
    ) -> Result<Option<DataDeleted>, ControlError>;
    /// Registers the daemon's own metrics for one scrape of `/metrics`.
    async fn metrics(&self, registry: &mut prometheus_client::registry::Registry);
    /// Applies an operator's decision on a conflict (`by`: the principal's name, recorded
    /// as `resolved_by`); returns the conflict as resolved.
    async fn resolve_conflict(
        &self,
        id: i64,
        resolution: &str,
        by: &str,
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
    pub limiter: Arc<ratelimit::Limiter>,
    pub bodies: BodyLimits,
    /// What `/api/v1/events` and `/api/v1/ws` stream.
    pub events: Arc<events::EventBus>,
    /// Browser sessions (the dashboard's sign-in).
    pub sessions: Arc<session::Sessions>,
    /// Sign-ins through the OpenID provider in progress.
    pub sign_in_flows: Arc<oidc_sign_in::Flows>,
    /// Session cookies are `Secure` (the API is served over TLS).
    pub secure_cookies: bool,
}

/// What a request body may be.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// Larger bodies (declared or sent) are 413.
    pub max_size: usize,
    /// A body not received whole within this is 408.
    pub read_timeout: Duration,
}

#[derive(Clone)]
pub struct AuthConfig {
    pub tokens: Vec<ApiToken>,
    pub open_metrics: bool,
    pub rate_limits: RateLimits,
    /// OpenID Connect bearer tokens, when configured.
    pub oidc: Option<Arc<oidc::Oidc>>,
    /// Live event streams open at once, in all and per principal.
    pub max_event_connections: usize,
    pub max_event_connections_per_principal: usize,
    /// How long a browser session lasts.
    pub session_ttl: Duration,
}

/// Longest request URI the router answers (longer: 414 in the envelope).
pub const MAX_URI_LEN: usize = 8192;

pub fn router(state: AppState) -> Router {
    let max_body = state.bodies.max_size;
    dashboard::add_pages(routes::add_routes(Router::new()))
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(middleware::from_fn(move |req, next| {
            declared_body_size(max_body, req, next)
        }))
        .layer(middleware::from_fn_with_state(state.clone(), auth::auth))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// A declared `Content-Length` over the limit is 413 at once, before any of the body
/// is waited for.
async fn declared_body_size(max: usize, req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return error::payload_too_large().into_response();
    }
    next.run(req).await
}

pub fn role_name(r: Role) -> &'static str {
    match r {
        Role::Viewer => "viewer",
        Role::Operator => "operator",
        Role::Admin => "admin",
    }
}

/// Request id (taken from `X-Request-Id` when sane, else generated), URI length,
/// metrics.
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
        .map(|m| m.as_str().to_string());
    let path = req.uri().path().to_string();
    let client = auth::client_key(
        req.extensions()
            .get::<ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip()),
    );
    let too_long = req.uri().to_string().len() > MAX_URI_LEN;
    let mut resp = REQUEST_ID
        .scope(id.clone(), async move {
            if too_long {
                ApiError::new(
                    StatusCode::URI_TOO_LONG,
                    "URI_TOO_LONG",
                    format!("the request URI is longer than {MAX_URI_LEN} bytes"),
                )
                .into_response()
            } else {
                next.run(req).await
            }
        })
        .await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    let status = resp.status().as_u16();
    st.metrics
        .record(&method, route.as_deref(), status, started.elapsed());
    if audit::audited(&method, status) {
        let caller = resp.extensions().get::<audit::Caller>();
        let entry = tributary_catalog::audit::AuditEntry {
            at: tributary_catalog::now_ns(),
            source: "api".into(),
            principal: caller.map(|c| c.principal.clone()),
            role: caller.map(|c| role_name(c.role).to_string()),
            client,
            method: method.to_string(),
            route: route.clone().unwrap_or_else(|| "other".into()),
            action: audit::action_of(&method, route.as_deref()).into(),
            // a creation names what it created
            resource: route
                .as_deref()
                .and_then(|t| audit::resource_of(t, &path))
                .or_else(|| {
                    let at = resp.headers().get(header::LOCATION)?.to_str().ok()?;
                    audit::resource_of("/api/v1/connectors/{id}", at)
                }),
            outcome: tributary_catalog::audit::outcome_of_status(status).into(),
            status: i64::from(status),
            request_id: id,
            duration_us: started.elapsed().as_micros().min(i64::MAX as u128) as i64,
        };
        audit::record(&st, entry).await;
    }
    resp
}
