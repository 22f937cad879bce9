//! Connector administration: a connector as written (its YAML form as JSON, secrets
//! as `{"set": true}`) with where it is defined and its live status; create, replace,
//! merge-patch and delete connectors created over the API. Each answer about one
//! connector carries its revision as an `ETag`; `If-Match` makes a change conditional
//! on it (412 when someone changed it first).

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::handlers::{JsonBody, Path, Query, connector_status};
use crate::{AppState, ConnectorSpec, DeleteData};

/// `If-Match`: a revision (`"3"`, `W/"3"`); `*`, empty or absent is `None` (any
/// revision).
pub(crate) fn if_match(headers: &HeaderMap) -> ApiResult<Option<i64>> {
    let Some(v) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let bad = || {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_HEADER",
            "If-Match: expected the ETag a GET gave (\"3\"), or *",
        )
    };
    let text = v.to_str().map_err(|_| bad())?.trim();
    // `*`, or an empty list of tags (`#entity-tag` allows none): any revision
    if text == "*" || text.is_empty() {
        return Ok(None);
    }
    let tag = text.strip_prefix("W/").unwrap_or(text);
    tag.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .and_then(|t| t.parse::<i64>().ok())
        .filter(|r| *r > 0)
        .map(Some)
        .ok_or_else(bad)
}

/// The answer about one connector: its spec with `source`, `revision`, `file` and
/// `status`, and an `ETag` for an API connector.
async fn answer(st: &AppState, status: StatusCode, spec: ConnectorSpec) -> ApiResult<Response> {
    let id = spec.spec["id"].as_str().unwrap_or_default().to_string();
    let mut v = spec.spec;
    v["source"] = json!(spec.source);
    v["revision"] = json!(spec.revision);
    if let Some(f) = spec.file {
        v["file"] = json!(f);
    }
    v["status"] = connector_status(st, &id).await?;
    let mut r = (status, Json(v)).into_response();
    if let Some(rev) = spec.revision {
        let tag = HeaderValue::from_str(&format!("\"{rev}\"")).expect("digits");
        r.headers_mut().insert(header::ETAG, tag);
    }
    if status == StatusCode::CREATED {
        let at = HeaderValue::from_str(&format!("/api/v1/connectors/{id}"))
            .map_err(ApiError::internal)?;
        r.headers_mut().insert(header::LOCATION, at);
    }
    Ok(r)
}

pub async fn get_connector(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let spec = st.control.connector_spec(&id).await?;
    answer(&st, StatusCode::OK, spec).await
}

pub async fn create_connector(
    State(st): State<AppState>,
    Extension(Principal(by)): Extension<Principal>,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult<Response> {
    let spec = st.control.create_connector(body, &by).await?;
    answer(&st, StatusCode::CREATED, spec).await
}

pub async fn replace_connector(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Extension(Principal(by)): Extension<Principal>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult<Response> {
    let expected = if_match(&headers)?;
    let spec = st
        .control
        .replace_connector(&id, body, expected, &by)
        .await?;
    answer(&st, StatusCode::OK, spec).await
}

/// A JSON merge patch (RFC 7386) of the connector as a GET shows it; its secrets stay
/// unless the patch sets them (`null` drops one).
pub async fn patch_connector(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Extension(Principal(by)): Extension<Principal>,
    headers: HeaderMap,
    JsonBody(patch): JsonBody<Value>,
) -> ApiResult<Response> {
    let expected = if_match(&headers)?;
    let current = st.control.connector_spec(&id).await?;
    if let Some(file) = current.file {
        return Err(crate::ControlError::ManagedByFile { id, file }.into());
    }
    if let (Some(want), Some(have)) = (expected, current.revision)
        && want != have
    {
        return Err(crate::ControlError::PreconditionFailed { current: have }.into());
    }
    let mut doc = current.spec;
    json_patch::merge(&mut doc, &patch);
    // the revision read is the one patched: a change made meanwhile is not undone
    let spec = st
        .control
        .replace_connector(&id, doc, expected.or(current.revision), &by)
        .await?;
    answer(&st, StatusCode::OK, spec).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteParams {
    /// `keep` (the default): the connector's stored versions stay as they are;
    /// `delete`: its items are tombstoned first, behind the mass-delete guard.
    data: Option<String>,
    /// With `data=delete`: deletes beyond the connector's `max_delete_percent` are
    /// meant (`true`, `false`; no effect with `data=keep`).
    allow_mass_delete: Option<String>,
}

pub async fn delete_connector(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Extension(Principal(by)): Extension<Principal>,
    headers: HeaderMap,
    Query(q): Query<DeleteParams>,
) -> ApiResult<Response> {
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, "INVALID_QUERY", m);
    let allow = match q.allow_mass_delete.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(bad(format!(
                "allow_mass_delete: expected `true` or `false`, got `{other}`"
            )));
        }
    };
    let data = match q.data.as_deref() {
        None | Some("keep") => DeleteData::Keep,
        Some("delete") => DeleteData::Delete {
            allow_mass_delete: allow,
        },
        Some(other) => {
            return Err(bad(format!(
                "data: expected `keep` or `delete`, got `{other}`"
            )));
        }
    };
    let expected = if_match(&headers)?;
    match st
        .control
        .delete_connector(&id, expected, &by, data)
        .await?
    {
        None => Ok(StatusCode::NO_CONTENT.into_response()),
        Some(d) => {
            st.catalog.set_requested_by(d.job_id, &by).await?;
            Ok(Json(json!({
                "id": id,
                "data": "delete",
                "job_id": d.job_id,
                "items_deleted": d.items_deleted,
            }))
            .into_response())
        }
    }
}

/// Reaches the source of a connector body without storing anything.
pub async fn test_connector_body(
    State(st): State<AppState>,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult<Json<Value>> {
    Ok(Json(st.control.test_connector_body(body).await?))
}

/// Reaches the source of connector `id` as it runs.
pub async fn test_connector(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(st.control.test_connector(&id).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_takes_an_etag_a_weak_one_or_a_star() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::IF_MATCH, HeaderValue::from_str(v).unwrap());
            if_match(&m)
        };
        assert_eq!(if_match(&HeaderMap::new()).unwrap(), None);
        assert_eq!(h("\"3\"").unwrap(), Some(3));
        assert_eq!(h("W/\"12\"").unwrap(), Some(12));
        assert_eq!(h("*").unwrap(), None);
        assert_eq!(h("").unwrap(), None);
        for bad in ["3", "\"x\"", "\"0\"", "\"-1\""] {
            assert_eq!(h(bad).unwrap_err().status, StatusCode::BAD_REQUEST, "{bad}");
        }
    }
}
