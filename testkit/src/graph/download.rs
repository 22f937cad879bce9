//! The download host: pre-authenticated URLs that expire, `Range`, cut and stalled
//! connections, garbled bytes.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::*;

pub(super) async fn download_handler(State(st): State<Arc<Mutex<St>>>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    let uri = parts.uri.to_string();
    let mut s = st.lock().unwrap();
    let r = download(&mut s, &parts.uri, &parts.headers);
    log(
        &mut s,
        "download",
        &parts.method,
        &uri,
        &parts.headers,
        r.status().as_u16(),
    );
    r
}

pub(super) fn download(s: &mut St, uri: &axum::http::Uri, h: &HeaderMap) -> Response {
    if h.contains_key(header::AUTHORIZATION) {
        s.violations.push(format!(
            "Authorization header sent to the download host: {uri}"
        ));
        return StatusCode::BAD_REQUEST.into_response();
    }
    let opaque = uri.path().trim_start_matches("/download/").to_string();
    let Some((d, i, exp)) = s.downloads.get(&opaque).cloned() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if Instant::now() > exp {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let Some((_, it)) = find(s, &d, &i) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let total = it.content.len();
    let range = h
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.split_once('-'))
        .and_then(|(a, b)| {
            let a: usize = a.parse().ok()?;
            let b: usize = if b.is_empty() {
                total.saturating_sub(1)
            } else {
                b.parse().ok()?
            };
            Some((a, b.min(total.saturating_sub(1))))
        });
    let (status, start, end) = match range {
        Some((a, _)) if a >= total && total > 0 => {
            return (
                StatusCode::RANGE_NOT_SATISFIABLE,
                [(header::CONTENT_RANGE, format!("bytes */{total}"))],
            )
                .into_response();
        }
        Some((a, b)) if !s.ignore_range => (StatusCode::PARTIAL_CONTENT, a, b + 1),
        _ => (StatusCode::OK, 0, total),
    };
    let mut bytes = it.content[start..end.max(start)].to_vec();
    if s.corrupt_downloads > 0 && !bytes.is_empty() {
        s.corrupt_downloads -= 1;
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x20;
    }
    let declared = bytes.len();
    // the knob applies to the next download longer than its cut
    let cut = match s.cut_next_download_after {
        Some(n) if n < bytes.len() => s.cut_next_download_after.take(),
        _ => None,
    };
    if let Some(n) = cut {
        bytes.truncate(n);
    }
    let slow = match s.slow_download {
        Some((n, _)) if n < bytes.len() && cut.is_none() => s.slow_download.take(),
        _ => None,
    };
    let mut headers = vec![
        (header::CONTENT_TYPE, "application/octet-stream".to_string()),
        (header::ACCEPT_RANGES, "bytes".to_string()),
    ];
    if status == StatusCode::PARTIAL_CONTENT {
        headers.push((
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{total}", end - 1),
        ));
    }
    let body = if cut.is_some() {
        // declare the whole length, send part of it, then drop the connection
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(2);
        tokio::spawn(async move {
            let _ = tx.send(Ok(bytes)).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            let _ = tx
                .send(Err(std::io::Error::other("connection cut by the fake")))
                .await;
        });
        Body::from_stream(tokio_stream_from(rx))
    } else if let Some((n, stall)) = slow {
        // part of the body, then nothing for `stall`, then the rest
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(2);
        tokio::spawn(async move {
            let rest = bytes.split_off(n);
            let _ = tx.send(Ok(bytes)).await;
            tokio::time::sleep(stall).await;
            let _ = tx.send(Ok(rest)).await;
        });
        Body::from_stream(tokio_stream_from(rx))
    } else {
        Body::from(bytes)
    };
    let mut r = (status, body).into_response();
    for (k, v) in headers {
        r.headers_mut()
            .insert(k, HeaderValue::from_str(&v).unwrap());
    }
    r.headers_mut().insert(
        header::CONTENT_LENGTH,
        HeaderValue::from_str(&declared.to_string()).unwrap(),
    );
    r
}

pub(super) fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
