//! `GET /api/v1/usage`: what each connector's current content uses, with its quota.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::handlers::{Query, rfc3339};
use crate::{AppState, ConnectorStatus};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageParams {
    /// `true`: recalculated from the catalog now.
    recalculate: Option<String>,
}

/// What each connector's content uses (as last calculated: after a job that committed
/// something, or now with `recalculate=true`), with its quota. Connectors no longer
/// configured whose items are kept are listed too (no target, no quota).
pub async fn usage(
    State(st): State<AppState>,
    Query(q): Query<UsageParams>,
) -> ApiResult<Json<Value>> {
    let recalculate = match q.recalculate.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "INVALID_QUERY",
                format!("recalculate: expected `true` or `false`, got `{other}`"),
            ));
        }
    };
    let mut stored: std::collections::BTreeMap<String, tributary_catalog::Usage> = st
        .catalog
        .usage()
        .await?
        .into_iter()
        .map(|u| (u.connector.clone(), u))
        .collect();
    let connectors = st.control.connectors();
    let gone: Vec<String> = stored
        .keys()
        .filter(|k| !connectors.iter().any(|c| &c.id == *k))
        .cloned()
        .collect();
    let mut items = Vec::new();
    let mut entry = async |id: &str, c: Option<&ConnectorStatus>| -> ApiResult<Value> {
        let u = match stored.remove(id) {
            Some(u) if !recalculate => u,
            _ => st.catalog.recalculate_usage(id).await?,
        };
        Ok(json!({
            "connector": id,
            "target": c.map(|c| c.target.clone()),
            "files": u.files,
            "bytes": u.bytes,
            "stored_bytes": u.stored_bytes,
            "calculated_at": rfc3339(u.calculated_at),
            "quota": c.map(|c| json!({"max_bytes": c.quota.max_bytes, "max_files": c.quota.max_files})),
        }))
    };
    for c in &connectors {
        items.push(entry(&c.id, Some(c)).await?);
    }
    for id in gone {
        items.push(entry(&id, None).await?);
    }
    Ok(Json(json!({ "items": items })))
}
