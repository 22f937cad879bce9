//! The Graph host: the request log, sites, drives, items and the routing of every
//! Graph path, with the scripted faults and throttling.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::*;

pub(super) fn log(
    s: &mut St,
    listener: &'static str,
    method: &Method,
    uri: &str,
    h: &HeaderMap,
    status: u16,
) {
    s.log.push(Logged {
        listener,
        method: method.to_string(),
        uri: uri.to_string(),
        authorization: h.contains_key(header::AUTHORIZATION),
        user_agent: h
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        range: h
            .get(header::RANGE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        client_request_id: h
            .get("client-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        prefer: h
            .get("prefer")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        status,
        at: Instant::now(),
    });
}

pub(super) fn query(uri: &axum::http::Uri) -> HashMap<String, String> {
    form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

pub(super) async fn graph_handler(State(st): State<Arc<Mutex<St>>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let uri = parts.uri.to_string();
    let mut s = st.lock().unwrap();
    let r = graph(&mut s, &parts.method, &parts.uri, &parts.headers, &body);
    log(
        &mut s,
        "graph",
        &parts.method,
        &uri,
        &parts.headers,
        r.status().as_u16(),
    );
    r
}

/// How long after a 429 a request still counts as having been in flight when it went out.
const IN_FLIGHT_GRACE: Duration = Duration::from_millis(250);

pub(super) fn graph(
    s: &mut St,
    method: &Method,
    uri: &axum::http::Uri,
    h: &HeaderMap,
    body: &[u8],
) -> Response {
    let path = uri.path().to_string();
    if path.ends_with("/oauth2/v2.0/token") && method == Method::POST {
        return token(s, &path, h, body);
    }
    let Some(rest) = path.strip_prefix("/v1.0") else {
        return graph_error(StatusCode::BAD_REQUEST, "invalidRequest", "unknown route");
    };
    // Requests that were already in flight when the 429 went out (within
    // IN_FLIGHT_GRACE of it) are not the client's fault; later ones are.
    if let Some((at, nb)) = s.not_before
        && Instant::now() < nb
        && Instant::now() > at + IN_FLIGHT_GRACE
    {
        s.violations
            .push(format!("{method} {uri} sent before Retry-After had passed"));
    }
    let bearer = h
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match bearer.and_then(|t| s.tokens.get(t)) {
        Some(exp) if *exp > Instant::now() => {}
        _ => {
            return graph_error(
                StatusCode::UNAUTHORIZED,
                "InvalidAuthenticationToken",
                "Access token has expired or is not yet valid.",
            );
        }
    }
    let mut limit_headers = None;
    if let Some((limit, window)) = s.rate_limit {
        let now = Instant::now();
        if now.duration_since(s.window_start) >= window {
            s.window_start = now;
            s.used = 0;
        }
        let reset = (window - now.duration_since(s.window_start))
            .as_secs_f64()
            .ceil()
            .max(1.0) as u64;
        // resource units as Graph charges them (research/graph.md §4.5)
        s.used += if rest.ends_with("/permissions") {
            5
        } else if rest.contains("/delta") && !uri.query().is_some_and(|q| q.contains("token=")) {
            2
        } else {
            1
        };
        if s.used > limit {
            s.used = limit;
            s.throttled += 1;
            s.not_before = Some((now, s.window_start + window));
            let mut r = graph_error(
                StatusCode::TOO_MANY_REQUESTS,
                "activityLimitReached",
                "The request has been throttled",
            );
            for (k, v) in [
                ("retry-after", reset),
                ("ratelimit-limit", limit as u64),
                ("ratelimit-remaining", 0),
                ("ratelimit-reset", reset),
            ] {
                r.headers_mut().insert(k, HeaderValue::from(v));
            }
            return r;
        }
        if s.used * 5 >= limit * 4 {
            limit_headers = Some((limit, limit - s.used, reset));
        }
    }
    let mut r = route(s, method, uri, rest, h);
    if let Some((limit, remaining, reset)) = limit_headers {
        for (k, v) in [
            ("ratelimit-limit", limit as u64),
            ("ratelimit-remaining", remaining as u64),
            ("ratelimit-reset", reset),
        ] {
            r.headers_mut().insert(k, HeaderValue::from(v));
        }
    }
    r
}

pub(super) fn route(
    s: &mut St,
    method: &Method,
    uri: &axum::http::Uri,
    rest: &str,
    h: &HeaderMap,
) -> Response {
    let full = uri.to_string();
    if let Some(pos) = s
        .script
        .iter()
        .position(|x| x.method == method.as_str() && full.contains(&x.path_contains))
    {
        let x = s.script.remove(pos).unwrap();
        let mut r = (
            StatusCode::from_u16(x.status).unwrap(),
            [(header::CONTENT_TYPE, "application/json")],
            x.body.to_string(),
        )
            .into_response();
        for (k, v) in x.headers {
            if k.eq_ignore_ascii_case("retry-after") {
                let wait = match v.parse::<u64>() {
                    Ok(secs) => Some(Duration::from_secs(secs)),
                    // an HTTP date: until then, as seen from this clock
                    Err(_) => httpdate::parse_http_date(&v).ok().map(|at| {
                        at.duration_since(std::time::SystemTime::now())
                            .unwrap_or_default()
                    }),
                };
                if let Some(wait) = wait {
                    s.not_before = Some((Instant::now(), Instant::now() + wait));
                }
            }
            r.headers_mut()
                .insert(k, HeaderValue::from_str(&v).unwrap());
        }
        return r;
    }
    let q = query(uri);
    let segs: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
    match segs.as_slice() {
        ["sites", id] | ["sites", id, ""] => site(s, id, None),
        ["sites", host, "sites", name] => site(s, host, Some(name)),
        ["sites", id, "drives"] => {
            let drives: Vec<Value> = s
                .drives
                .iter()
                .filter(|d| d.site == *id)
                .map(|d| json!({"id": d.id, "name": d.name, "driveType": "documentLibrary"}))
                .collect();
            if !s.sites.iter().any(|(sid, _)| sid == id) {
                return graph_error(StatusCode::NOT_FOUND, "itemNotFound", "site not found");
            }
            json_ok(json!({"value": drives}))
        }
        ["drives", d, "root", delta] | ["drives", d, "items", _, delta]
            if delta.starts_with("delta") =>
        {
            let token = q.get("token").cloned().or_else(|| {
                delta
                    .strip_prefix("delta(token='")
                    .and_then(|t| t.strip_suffix("')"))
                    .map(str::to_string)
            });
            let prefer = h
                .get("prefer")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_ascii_lowercase();
            let sharing = prefer.contains("deltashowsharingchanges");
            if sharing
                && !(prefer.contains("deltashowremovedasdeleted")
                    && prefer.contains("deltatraversepermissiongaps"))
            {
                return graph_error(
                    StatusCode::BAD_REQUEST,
                    "invalidRequest",
                    "deltashowsharingchanges requires deltashowremovedasdeleted and deltatraversepermissiongaps",
                );
            }
            delta_page(
                s,
                d,
                token,
                &q,
                sharing,
                prefer.contains("deltashowremovedasdeleted"),
            )
        }
        ["drives", d, "items", i] => match find(s, d, i) {
            Some((drive, it)) if !it.deleted => json_ok(item_json(&drive, &it, true)),
            _ => graph_error(
                StatusCode::NOT_FOUND,
                "itemNotFound",
                "The resource could not be found.",
            ),
        },
        ["drives", d, "items", i, "permissions"] => match find(s, d, i) {
            Some((_, it)) if !it.deleted => json_ok(json!({"value": it.permissions})),
            _ => graph_error(
                StatusCode::NOT_FOUND,
                "itemNotFound",
                "The resource could not be found.",
            ),
        },
        ["drives", d, "items", i, "content"] if s.delete_on_content.remove(*i) => {
            s.seq += 1;
            let seq = s.seq;
            if let Some(it) = drive_item(s, d, i) {
                it.deleted = true;
                it.seq = seq;
            }
            graph_error(
                StatusCode::NOT_FOUND,
                "itemNotFound",
                "The resource could not be found.",
            )
        }
        ["drives", d, "items", i, "content"] => match find(s, d, i) {
            Some((_, it)) if !it.deleted && !it.folder && !it.package => {
                let opaque = format!("dl{:08}", s.next_id);
                s.next_id += 1;
                s.downloads.insert(
                    opaque.clone(),
                    (
                        d.to_string(),
                        i.to_string(),
                        if s.expired_links > 0 {
                            s.expired_links -= 1;
                            Instant::now()
                        } else {
                            Instant::now() + s.download_ttl
                        },
                    ),
                );
                let loc = format!("{}/download/{opaque}?tempauth=t{opaque}", s.dl_base);
                (StatusCode::FOUND, [(header::LOCATION, loc)]).into_response()
            }
            Some((_, it)) if it.folder && !it.deleted => graph_error(
                StatusCode::BAD_REQUEST,
                "invalidRequest",
                "a folder has no content",
            ),
            _ => graph_error(
                StatusCode::NOT_FOUND,
                "itemNotFound",
                "The resource could not be found.",
            ),
        },
        _ => graph_error(
            StatusCode::BAD_REQUEST,
            "invalidRequest",
            "unsupported segment",
        ),
    }
}

pub(super) fn drive_item<'a>(s: &'a mut St, d: &str, i: &str) -> Option<&'a mut Item> {
    s.drives.iter_mut().find(|x| x.id == d)?.items.get_mut(i)
}

pub(super) fn json_ok(v: Value) -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/json;odata.metadata=minimal",
        )],
        v.to_string(),
    )
        .into_response()
}

pub(super) fn site(s: &St, id: &str, name: Option<&str>) -> Response {
    let found = s.sites.iter().find(|(sid, path)| match name {
        None => sid == id,
        Some(n) => *path == format!("{id}/sites/{}", n.trim_end_matches(':')),
    });
    match found {
        Some((sid, path)) => json_ok(
            json!({"id": sid, "name": path.rsplit('/').next(), "webUrl": format!("https://{path}")}),
        ),
        None => graph_error(
            StatusCode::NOT_FOUND,
            "itemNotFound",
            "Requested site could not be found",
        ),
    }
}

pub(super) fn find(s: &St, d: &str, i: &str) -> Option<(String, Item)> {
    let drive = s.drives.iter().find(|x| x.id == d)?;
    let id = if i == "root" {
        drive.root.clone()
    } else {
        i.to_string()
    };
    drive
        .items
        .get(&id)
        .filter(|it| !it.hidden)
        .map(|it| (drive.id.clone(), it.clone()))
}
