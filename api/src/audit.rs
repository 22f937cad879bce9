//! The API's side of the audit trail ([`tributary_catalog::audit`]): which requests are
//! recorded (every request that may change something, and every refused
//! authentication or authorization, whatever its method), the action and resource a
//! request names, and the caller [`crate::auth`] found. Nothing of a request's body,
//! query string or headers is recorded.

use std::time::Duration;

use axum::http::Method;
use tributary_catalog::audit::AuditEntry;
use tributary_config::Role;

use crate::AppState;

/// Who made a request, as [`crate::auth`] established it (a response extension).
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: String,
    pub role: Role,
}

/// The longest wait for an audit row to be written before the response goes out
/// (a catalog that does not answer must not hold the API up; the row is then logged).
const RECORD_TIMEOUT: Duration = Duration::from_secs(2);

/// The longest resource name recorded (an id comes from the caller's URL).
const MAX_RESOURCE: usize = 256;

/// Whether a request is recorded: any method but GET, HEAD and OPTIONS, and any
/// request refused for its credentials (401) or its role (403).
pub fn audited(method: &Method, status: u16) -> bool {
    let reads = [Method::GET, Method::HEAD, Method::OPTIONS];
    !reads.contains(method) || status == 401 || status == 403
}

/// The audit action of a request: its route's name (HEAD as GET), `unknown` for a path
/// or method the API does not serve.
pub fn action_of(method: &Method, matched: Option<&str>) -> &'static str {
    crate::routes::find(method, matched).map_or("unknown", |r| r.action)
}

/// What a request acts on: `<collection>/<id>` for a route with an `{id}`
/// (`/api/v1/connectors/{id}/runs` at `/api/v1/connectors/docs/runs` is
/// `connectors/docs`), the id percent-decoded and cut to [`MAX_RESOURCE`] bytes.
pub fn resource_of(template: &str, path: &str) -> Option<String> {
    let t: Vec<&str> = template.split('/').collect();
    let p: Vec<&str> = path.split('/').collect();
    if t.len() != p.len() {
        return None;
    }
    let i = t.iter().position(|s| s.starts_with('{'))?;
    let collection = t[..i].last().filter(|c| !c.is_empty())?;
    let id = percent_encoding::percent_decode_str(p[i]).decode_utf8_lossy();
    let mut r = format!("{collection}/{id}");
    if r.len() > MAX_RESOURCE {
        let mut end = MAX_RESOURCE;
        while !r.is_char_boundary(end) {
            end -= 1;
        }
        r.truncate(end);
    }
    Some(r)
}

/// A refused authentication that has no HTTP response of its own (a WebSocket closed
/// with 4401/4403 after its upgrade): recorded as the status it stands for.
pub(crate) struct AuditEntryParts {
    pub status: u16,
    pub principal: Option<(String, Role)>,
    pub client: String,
    pub route: &'static str,
    pub method: &'static str,
    pub request_id: String,
}

pub(crate) async fn record_parts(st: &AppState, p: AuditEntryParts) {
    let method = Method::from_bytes(p.method.as_bytes()).unwrap_or(Method::GET);
    let entry = AuditEntry {
        at: tributary_catalog::now_ns(),
        source: "api".into(),
        principal: p.principal.as_ref().map(|(n, _)| n.clone()),
        role: p.principal.map(|(_, r)| crate::role_name(r).to_string()),
        client: p.client,
        method: p.method.to_string(),
        route: p.route.to_string(),
        action: action_of(&method, Some(p.route)).into(),
        resource: None,
        outcome: tributary_catalog::audit::outcome_of_status(p.status).into(),
        status: i64::from(p.status),
        request_id: p.request_id,
        duration_us: 0,
    };
    record(st, entry).await;
}

/// Records `entry`; a row that cannot be written in time is logged in its place.
pub async fn record(st: &AppState, entry: AuditEntry) {
    let written = tokio::time::timeout(RECORD_TIMEOUT, st.catalog.record_audit(&entry)).await;
    let failure = match written {
        Ok(Ok(_)) => return,
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("the catalog did not answer within {RECORD_TIMEOUT:?}"),
    };
    tracing::error!(
        principal = entry.principal.as_deref().unwrap_or("-"),
        client = %entry.client,
        method = %entry.method,
        route = %entry.route,
        resource = entry.resource.as_deref().unwrap_or("-"),
        status = entry.status,
        request_id = %entry.request_id,
        error = %failure,
        "audit row not recorded"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_refusals_are_audited_reads_are_not() {
        assert!(audited(&Method::POST, 202));
        assert!(audited(&Method::POST, 404));
        assert!(audited(&Method::DELETE, 500));
        assert!(audited(&Method::PATCH, 429));
        assert!(audited(&Method::GET, 401));
        assert!(audited(&Method::HEAD, 403));
        assert!(!audited(&Method::GET, 200));
        assert!(!audited(&Method::GET, 404));
        assert!(!audited(&Method::HEAD, 200));
        assert!(!audited(&Method::OPTIONS, 405));
    }

    #[test]
    fn actions_come_from_the_route_table() {
        let runs = Some("/api/v1/connectors/{id}/runs");
        assert_eq!(action_of(&Method::POST, runs), "connector.run");
        assert_eq!(action_of(&Method::HEAD, Some("/api/v1/items")), "item.list");
        assert_eq!(action_of(&Method::GET, runs), "unknown");
        assert_eq!(action_of(&Method::POST, None), "unknown");
        // every route has a name of its own
        let mut seen = std::collections::HashSet::new();
        for r in crate::ROUTES {
            assert!(seen.insert(r.action), "{} named twice", r.action);
            assert!(r.action.contains('.'), "{}", r.action);
        }
    }

    #[test]
    fn resources_are_the_collection_and_the_id() {
        assert_eq!(
            resource_of(
                "/api/v1/connectors/{id}/runs",
                "/api/v1/connectors/docs/runs"
            )
            .as_deref(),
            Some("connectors/docs")
        );
        assert_eq!(
            resource_of("/api/v1/jobs/{id}", "/api/v1/jobs/42").as_deref(),
            Some("jobs/42")
        );
        assert_eq!(
            resource_of("/api/v1/connectors/{id}", "/api/v1/connectors/a%20b").as_deref(),
            Some("connectors/a b")
        );
        assert_eq!(
            resource_of("/api/v1/config/reload", "/api/v1/config/reload"),
            None
        );
        assert_eq!(resource_of("/api/v1/jobs/{id}", "/api/v1/jobs/1/x"), None);
        let long = format!("/api/v1/jobs/{}", "é".repeat(300));
        let r = resource_of("/api/v1/jobs/{id}", &long).unwrap();
        assert!(r.len() <= MAX_RESOURCE && r.starts_with("jobs/é"));
    }
}
