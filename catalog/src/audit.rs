//! The audit trail: who did what, from where, and how it ended — every mutating API
//! request, every failed authentication or authorization, every operator command of
//! the CLI. Rows hold no request body, query string or credential; they are kept for
//! `api.audit_retention` ([`Catalog::prune_audit`]).

use serde::Serialize;

use crate::{Catalog, Result};

/// How a recorded action ended.
pub const OUTCOMES: &[&str] = &["success", "error", "permission_denied"];

/// The outcome of an HTTP status: a refused authentication or authorization (401,
/// 403) is `permission_denied`, any other 4xx/5xx `error`.
pub fn outcome_of_status(status: u16) -> &'static str {
    match status {
        401 | 403 => "permission_denied",
        s if s >= 400 => "error",
        _ => "success",
    }
}

/// One action to record.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuditEntry {
    /// Unix ns.
    pub at: i64,
    /// `api` or `cli`.
    pub source: String,
    /// The token's name or the identity provider's subject; `None` when the caller was
    /// not authenticated.
    pub principal: Option<String>,
    pub role: Option<String>,
    /// The client address (IPv6 by its /64), `local` for the CLI.
    pub client: String,
    /// The HTTP method, `CLI` for a command.
    pub method: String,
    /// The route template (`/api/v1/connectors/{id}/runs`) or the command.
    pub route: String,
    /// A stable name of the action (`connector.run`).
    pub action: String,
    /// What it acted on (`connectors/docs`), when a route names one.
    pub resource: Option<String>,
    /// One of [`OUTCOMES`].
    pub outcome: String,
    pub status: i64,
    pub request_id: String,
    pub duration_us: i64,
}

/// A recorded action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct AuditRow {
    pub id: i64,
    pub at: i64,
    pub source: String,
    /// The instance that answered (several instances share one trail).
    pub instance: Option<String>,
    pub principal: Option<String>,
    pub role: Option<String>,
    pub client: String,
    pub method: String,
    pub route: String,
    pub action: String,
    pub resource: Option<String>,
    pub outcome: String,
    pub status: i64,
    pub request_id: String,
    pub duration_us: i64,
}

/// Filters of an audit listing (all optional, combined with AND).
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub principal: Option<String>,
    pub action: Option<String>,
    pub resource: Option<String>,
    pub outcome: Option<String>,
    /// At or after (Unix ns).
    pub since: Option<i64>,
    /// Before (Unix ns).
    pub until: Option<i64>,
}

const COLUMNS: &str = "id, at, source, instance, principal, role, client, method, route, action, resource, outcome, status, request_id, duration_us";

impl Catalog {
    /// Records one action; returns its id.
    pub async fn record_audit(&self, e: &AuditEntry) -> Result<i64> {
        with_pool!(self, |pool| {
            Ok(sqlx::query_scalar(
                "INSERT INTO audit (at, source, instance, principal, role, client, method, route, action, resource, outcome, status, request_id, duration_us)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id",
            )
            .bind(e.at)
            .bind(&e.source)
            .bind(self.instance.as_deref())
            .bind(&e.principal)
            .bind(&e.role)
            .bind(&e.client)
            .bind(&e.method)
            .bind(&e.route)
            .bind(&e.action)
            .bind(&e.resource)
            .bind(&e.outcome)
            .bind(e.status)
            .bind(&e.request_id)
            .bind(e.duration_us)
            .fetch_one(pool)
            .await?)
        })
    }

    /// A page of the trail, newest first, and the number of rows the filter matches.
    pub async fn list_audit(
        &self,
        f: &AuditFilter,
        page: i64,
        per_page: i64,
    ) -> Result<(Vec<AuditRow>, i64)> {
        const WHERE: &str = "($1 IS NULL OR principal = $1) AND ($2 IS NULL OR action = $2)
            AND ($3 IS NULL OR resource = $3) AND ($4 IS NULL OR outcome = $4)
            AND ($5 IS NULL OR at >= $5) AND ($6 IS NULL OR at < $6)";
        with_pool!(self, |pool| {
            let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT COUNT(*) FROM audit WHERE {WHERE}"
            )))
            .bind(&f.principal)
            .bind(&f.action)
            .bind(&f.resource)
            .bind(&f.outcome)
            .bind(f.since)
            .bind(f.until)
            .fetch_one(pool)
            .await?;
            let rows = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM audit WHERE {WHERE} ORDER BY id DESC LIMIT $7 OFFSET $8"
            )))
            .bind(&f.principal)
            .bind(&f.action)
            .bind(&f.resource)
            .bind(&f.outcome)
            .bind(f.since)
            .bind(f.until)
            .bind(per_page)
            .bind((page - 1).max(0) * per_page)
            .fetch_all(pool)
            .await?;
            Ok((rows, total))
        })
    }

    /// Deletes the actions recorded before `before` (Unix ns); returns how many.
    pub async fn prune_audit(&self, before: i64) -> Result<u64> {
        with_pool!(self, |pool| {
            Ok(sqlx::query("DELETE FROM audit WHERE at < $1")
                .bind(before)
                .execute(pool)
                .await?
                .rows_affected())
        })
    }

    /// Records who asked for job `id` (the principal's name).
    pub async fn set_requested_by(&self, id: i64, by: &str) -> Result<()> {
        with_pool!(self, |pool| {
            sqlx::query("UPDATE jobs SET requested_by = $1 WHERE id = $2")
                .bind(by)
                .bind(id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_outcomes() {
        assert_eq!(outcome_of_status(200), "success");
        assert_eq!(outcome_of_status(202), "success");
        assert_eq!(outcome_of_status(304), "success");
        assert_eq!(outcome_of_status(401), "permission_denied");
        assert_eq!(outcome_of_status(403), "permission_denied");
        assert_eq!(outcome_of_status(404), "error");
        assert_eq!(outcome_of_status(409), "error");
        assert_eq!(outcome_of_status(429), "error");
        assert_eq!(outcome_of_status(503), "error");
        for o in ["success", "error", "permission_denied"] {
            assert!(OUTCOMES.contains(&o));
        }
    }
}
