//! The one route table: it generates the router ([`add_routes`]), drives the
//! authorization check ([`access`]) and the OpenAPI document ([`crate::openapi`]), so the
//! three cannot disagree.
//!
//! Fail closed: a (method, route) pair that is not in the table needs an authenticated
//! caller (who then gets 404 or 405); HEAD takes GET's access. Only the entries marked
//! [`Access::Open`] answer without a token.

use axum::Router;
use axum::http::Method;
use axum::routing::{MethodFilter, on};
use tributary_config::Role;

use crate::AppState;
use crate::events_http::{events, ws};
use crate::handlers::*;
use crate::oidc_sign_in::{callback as oidc_callback, start as oidc_start};
use crate::session::{sign_in, sign_out, who};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token needed (health, the OpenAPI document).
    Open,
    /// A token of at least this role (`/metrics` may be opened by `api.open_metrics`).
    Needs(Role),
    /// A token of at least this role, checked by the handler itself after a WebSocket
    /// upgrade (failures are close codes: [`crate::events_http`]).
    InBand(Role),
}

/// One route of the API.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub access: Access,
    /// The action's stable name in the audit trail (`connector.run`).
    pub action: &'static str,
}

macro_rules! routes {
    ($($method:ident $path:literal $access:expr, $action:literal => $handler:ident;)*) => {
        /// Every route the router serves, in the order the OpenAPI document lists them.
        pub const ROUTES: &[Route] = &[$(Route {
            method: stringify!($method),
            path: $path,
            access: $access,
            action: $action,
        }),*];

        /// Adds every route of [`ROUTES`] to `r`, each with its handler.
        pub(crate) fn add_routes(mut r: Router<AppState>) -> Router<AppState> {
            $(r = r.route($path, on(MethodFilter::$method, $handler));)*
            r
        }
    };
}

const OPEN: Access = Access::Open;
const VIEWER: Access = Access::Needs(Role::Viewer);
const OPERATOR: Access = Access::Needs(Role::Operator);
const ADMIN: Access = Access::Needs(Role::Admin);

routes! {
    GET "/api/v1/health" OPEN, "health.read" => health;
    GET "/api/v1/health/ready" OPEN, "health.ready" => ready;
    GET "/api/v1/metrics" VIEWER, "metrics.read" => metrics_text;
    GET "/api/v1/openapi.json" OPEN, "openapi.read" => openapi_doc;
    GET "/api/v1/connectors" VIEWER, "connector.list" => list_connectors;
    POST "/api/v1/connectors" ADMIN, "connector.create" => create_connector;
    GET "/api/v1/connectors/{id}" VIEWER, "connector.read" => get_connector;
    PUT "/api/v1/connectors/{id}" ADMIN, "connector.replace" => replace_connector;
    PATCH "/api/v1/connectors/{id}" ADMIN, "connector.patch" => patch_connector;
    DELETE "/api/v1/connectors/{id}" ADMIN, "connector.delete" => delete_connector;
    POST "/api/v1/connectors/{id}/runs" OPERATOR, "connector.run" => run_connector;
    POST "/api/v1/connectors/{id}/pause" OPERATOR, "connector.pause" => pause_connector;
    POST "/api/v1/connectors/{id}/resume" OPERATOR, "connector.resume" => resume_connector;
    POST "/api/v1/connectors/{id}/test" ADMIN, "connector.test" => test_connector;
    POST "/api/v1/connector-tests" ADMIN, "connector.test_body" => test_connector_body;
    GET "/api/v1/jobs" VIEWER, "job.list" => list_jobs;
    GET "/api/v1/jobs/{id}" VIEWER, "job.read" => get_job;
    GET "/api/v1/jobs/{id}/log" VIEWER, "job.log" => job_log;
    POST "/api/v1/jobs/{id}/cancel" OPERATOR, "job.cancel" => cancel_job;
    GET "/api/v1/items" VIEWER, "item.list" => list_items;
    GET "/api/v1/items/{id}" VIEWER, "item.read" => get_item;
    GET "/api/v1/items/{id}/content" VIEWER, "item.content" => item_content;
    GET "/api/v1/changes" VIEWER, "change.list" => changes;
    GET "/api/v1/conflicts" VIEWER, "conflict.list" => list_conflicts;
    GET "/api/v1/conflicts/{id}" VIEWER, "conflict.read" => get_conflict;
    POST "/api/v1/conflicts/{id}/resolve" OPERATOR, "conflict.resolve" => resolve_conflict;
    GET "/api/v1/search" VIEWER, "search.query" => search;
    GET "/api/v1/queue" VIEWER, "queue.read" => queue;
    GET "/api/v1/usage" VIEWER, "usage.read" => usage;
    GET "/api/v1/events" VIEWER, "event.stream" => events;
    GET "/api/v1/ws" Access::InBand(Role::Viewer), "event.ws" => ws;
    POST "/api/v1/session" OPEN, "session.create" => sign_in;
    GET "/api/v1/session" OPEN, "session.read" => who;
    DELETE "/api/v1/session" VIEWER, "session.delete" => sign_out;
    GET "/api/v1/session/oidc" OPEN, "session.oidc_start" => oidc_start;
    GET "/api/v1/session/oidc/callback" OPEN, "session.oidc_callback" => oidc_callback;
    GET "/api/v1/instances" VIEWER, "instance.list" => list_instances;
    POST "/api/v1/instances/{id}/drain" OPERATOR, "instance.drain" => drain_instance;
    POST "/api/v1/instances/{id}/undrain" OPERATOR, "instance.undrain" => undrain_instance;
    POST "/api/v1/config/reload" ADMIN, "config.reload" => reload;
    GET "/api/v1/audit" ADMIN, "audit.list" => list_audit;
}

/// The table's entry of a request: its method (HEAD as GET) on its matched route.
pub fn find(method: &Method, matched: Option<&str>) -> Option<&'static Route> {
    let method = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    let path = matched?;
    ROUTES.iter().find(|r| r.method == method && r.path == path)
}

/// The access a request needs: its entry's; anything not in the table (an unknown path
/// or method) needs an authenticated viewer.
pub fn access(method: &Method, matched: Option<&str>) -> Access {
    if crate::dashboard::is_page(method, matched) {
        return OPEN;
    }
    find(method, matched).map_or(VIEWER, |r| r.access)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_takes_gets_access_and_anything_unlisted_needs_a_token() {
        let m = |s: &str| Method::from_bytes(s.as_bytes()).unwrap();
        assert_eq!(access(&m("GET"), Some("/api/v1/health")), OPEN);
        assert_eq!(access(&m("HEAD"), Some("/api/v1/health")), OPEN);
        assert_eq!(
            access(&m("HEAD"), Some("/api/v1/items/{id}/content")),
            VIEWER
        );
        assert_eq!(access(&m("POST"), Some("/api/v1/health")), VIEWER);
        assert_eq!(access(&m("HEAD"), Some("/api/v1/config/reload")), VIEWER);
        assert_eq!(access(&m("POST"), Some("/api/v1/config/reload")), ADMIN);
        assert_eq!(access(&m("ZZ1"), Some("/api/v1/openapi.json")), VIEWER);
        assert_eq!(access(&m("GET"), None), VIEWER);
        assert_eq!(access(&m("OPTIONS"), Some("/api/v1/jobs")), VIEWER);
    }

    #[test]
    fn every_route_is_listed_once() {
        let mut seen = std::collections::HashSet::new();
        for r in ROUTES {
            assert!(
                seen.insert((r.method, r.path)),
                "{} {} twice",
                r.method,
                r.path
            );
            assert!(r.path.starts_with("/api/v1/"));
        }
    }
}
