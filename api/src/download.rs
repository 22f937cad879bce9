//! `GET /items/{id}/content`: a version's bytes, read back from the object store chunk
//! by chunk, whole or one byte range; and the two header decisions it makes, pure and
//! unit-tested: which range a `Range` header asks for (RFC 9110 §14) and the
//! `Content-Disposition` of any file name (RFC 6266).

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::handlers::{Path, Query, id_param};
use crate::params::Params;

/// What a `Range` header asks of content of a given size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAsk {
    /// No range, or one to ignore (another unit, several ranges, bad syntax): 200.
    Whole,
    /// Bytes `a..=b`: 206.
    Part(u64, u64),
    /// A valid range that starts at or past the end: 416.
    Unsatisfiable,
}

/// One `bytes=` range (`a-b`, `a-`, `-n`) within `size`. A server may ignore a range
/// (RFC 9110 §14.2), and this one ignores every range it does not serve: other units,
/// several ranges, malformed ones.
pub fn parse_range(h: Option<&str>, size: u64) -> RangeAsk {
    let Some((unit, spec)) = h.and_then(|h| h.split_once('=')) else {
        return RangeAsk::Whole;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return RangeAsk::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeAsk::Whole;
    };
    let num = |s: &str| {
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    match (a.trim(), b.trim()) {
        ("", n) => match num(n) {
            None => RangeAsk::Whole,
            Some(0) => RangeAsk::Unsatisfiable,
            Some(_) if size == 0 => RangeAsk::Unsatisfiable,
            Some(n) => RangeAsk::Part(size.saturating_sub(n), size - 1),
        },
        (a, b) => {
            let Some(start) = num(a) else {
                return RangeAsk::Whole;
            };
            let end = if b.is_empty() {
                u64::MAX
            } else {
                match num(b) {
                    Some(e) if e >= start => e,
                    _ => return RangeAsk::Whole,
                }
            };
            if start >= size {
                RangeAsk::Unsatisfiable
            } else {
                RangeAsk::Part(start, end.min(size - 1))
            }
        }
    }
}

/// RFC 5987 `attr-char`s stay as they are; every other byte is percent-encoded.
const ATTR_CHAR: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// `attachment; filename="<ASCII fallback>"; filename*=UTF-8''<percent-encoded>` for
/// any name: control characters, quotes, backslashes, `%` and non-ASCII become `_` in
/// the fallback, and the exact name travels in `filename*` (RFC 6266 §4.3).
pub fn content_disposition(name: &str) -> HeaderValue {
    let fallback: String = name
        .chars()
        .map(|c| match c {
            ' '..='~' if !matches!(c, '"' | '\\' | '%') => c,
            _ => '_',
        })
        .collect();
    let fallback = if fallback.is_empty() {
        "content".into()
    } else {
        fallback
    };
    let exact = percent_encoding::utf8_percent_encode(name, ATTR_CHAR);
    HeaderValue::from_str(&format!(
        "attachment; filename=\"{fallback}\"; filename*=UTF-8''{exact}"
    ))
    .unwrap_or(HeaderValue::from_static("attachment"))
}

pub async fn item_content(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let id = id_param(&id, "ITEM_NOT_FOUND")?;
    let mut p = Params::new(q);
    let version = p.int("version", 1, i64::MAX);
    p.done()?;
    let (row, versions) = st
        .catalog
        .item(id)
        .await?
        .ok_or_else(|| ApiError::not_found("ITEM_NOT_FOUND", format!("no item {id}")))?;
    let vid = match version {
        Some(v) if versions.iter().any(|x| x.id == v) => v,
        Some(v) => {
            return Err(ApiError::not_found(
                "VERSION_NOT_FOUND",
                format!("item {id} has no version {v}"),
            ));
        }
        None => row
            .current_version
            .ok_or_else(|| ApiError::not_found("VERSION_NOT_FOUND", "no version"))?,
    };
    let entry = st.catalog.version_content(vid).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::GONE,
            "ITEM_DELETED",
            "this version is a delete (tombstone)",
        )
    })?;
    let size = entry.size;
    let asked = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let range = match parse_range(asked, size) {
        RangeAsk::Whole => None,
        RangeAsk::Part(a, b) => Some((a, b)),
        RangeAsk::Unsatisfiable => {
            let mut resp = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "RANGE_NOT_SATISFIABLE",
                format!("the range starts at or past the end of the {size}-byte content"),
            )
            .into_response();
            if let Ok(v) = HeaderValue::try_from(format!("bytes */{size}")) {
                resp.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(resp);
        }
    };
    let (start, end) = range.unwrap_or((0, size.saturating_sub(1)));
    let stop = if size == 0 { 0 } else { end + 1 };
    let locs = entry.chunks.iter().map(|c| c.loc()).collect();
    let stream = tributary_store::chunk::read_range(st.store.clone(), locs, start, stop, 4)
        .map(|r| r.map_err(|e| std::io::Error::other(e.to_string())));
    use futures::StreamExt;
    let name = row.path.rsplit('/').next().unwrap_or_default();
    let mut resp = Response::builder()
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_DISPOSITION, content_disposition(name))
        .header(
            header::CONTENT_LENGTH,
            if size == 0 { 0 } else { end - start + 1 },
        );
    if range.is_some() {
        resp = resp
            .status(StatusCode::PARTIAL_CONTENT)
            .header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{size}"));
    }
    resp.body(Body::from_stream(stream))
        .map_err(ApiError::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_served_ignored_and_refused() {
        use RangeAsk::*;
        let cases: &[(Option<&str>, u64, RangeAsk)] = &[
            (None, 10, Whole),
            (Some("bytes=0-3"), 10, Part(0, 3)),
            (Some("bytes=7-"), 10, Part(7, 9)),
            (Some("bytes=-4"), 10, Part(6, 9)),
            (Some("bytes=-40"), 10, Part(0, 9)),
            (Some("bytes=5-400"), 10, Part(5, 9)),
            (Some("Bytes = 2-2"), 10, Part(2, 2)),
            (Some("bytes=10-"), 10, Unsatisfiable),
            (Some("bytes=10-20"), 10, Unsatisfiable),
            (Some("bytes=-0"), 10, Unsatisfiable),
            (Some("bytes=0-"), 0, Unsatisfiable),
            (Some("bytes=-5"), 0, Unsatisfiable),
            // ignored: another unit, several ranges, malformed
            (Some("items=0-1"), 10, Whole),
            (Some("bytes=0-1,3-4"), 10, Whole),
            (Some("bytes=4-2"), 10, Whole),
            (Some("bytes=a-b"), 10, Whole),
            (Some("bytes=+1-2"), 10, Whole),
            (Some("bytes=1"), 10, Whole),
            (Some("bytes"), 10, Whole),
            (Some("bytes=99999999999999999999999-"), 10, Whole),
        ];
        for (h, size, want) in cases {
            assert_eq!(parse_range(*h, *size), *want, "{h:?} of {size}");
        }
    }

    #[test]
    fn any_name_makes_a_valid_content_disposition() {
        let cd = |n: &str| content_disposition(n).to_str().unwrap().to_string();
        assert_eq!(
            cd("report.pdf"),
            "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"
        );
        assert_eq!(
            cd("new\nline.txt"),
            "attachment; filename=\"new_line.txt\"; filename*=UTF-8''new%0Aline.txt"
        );
        assert_eq!(
            cd("ctrl\u{1}char.txt"),
            "attachment; filename=\"ctrl_char.txt\"; filename*=UTF-8''ctrl%01char.txt"
        );
        assert_eq!(
            cd("say \"hi\" 100%.txt"),
            "attachment; filename=\"say _hi_ 100_.txt\"; filename*=UTF-8''say%20%22hi%22%20100%25.txt"
        );
        assert_eq!(
            cd("Café.txt"),
            "attachment; filename=\"Caf_.txt\"; filename*=UTF-8''Caf%C3%A9.txt"
        );
        assert_eq!(
            cd(""),
            "attachment; filename=\"content\"; filename*=UTF-8''"
        );
        assert!(cd("a\\b\r\u{7f}").starts_with("attachment; filename=\"a_b__\""));
    }
}
