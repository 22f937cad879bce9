//! The dashboard: a static client of the public API and its event stream, served at
//! `/` (its page) and `/assets/*` (its script and style sheet), compiled into the
//! binary from `api/dashboard/` (no build step, no CDN: it works offline). These paths
//! need no token; the page signs in with `POST /api/v1/session` and holds the session
//! cookie. A strict Content-Security-Policy lets the page load only its own script,
//! style and API.

use axum::Router;
use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::AppState;

const INDEX: &str = include_str!("../dashboard/index.html");
const APP_JS: &str = include_str!("../dashboard/app.js");
const APP_CSS: &str = include_str!("../dashboard/app.css");

/// The dashboard's paths (GET and HEAD), open without a token.
pub const PAGES: &[&str] = &["/", "/assets/app.js", "/assets/app.css"];

/// What the page may load: itself, nothing else.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Whether a request is for one of the dashboard's pages.
pub fn is_page(method: &Method, matched: Option<&str>) -> bool {
    (method == Method::GET || method == Method::HEAD) && matched.is_some_and(|m| PAGES.contains(&m))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // the binary's own copy: revalidated, so an upgrade shows at once
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

/// Adds the dashboard's routes.
pub(crate) fn add_pages(r: Router<AppState>) -> Router<AppState> {
    r.route(
        "/",
        get(|| async { asset("text/html; charset=utf-8", INDEX) }),
    )
    .route(
        "/assets/app.js",
        get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
    )
    .route(
        "/assets/app.css",
        get(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_reading_the_pages_is_open() {
        assert!(is_page(&Method::GET, Some("/")));
        assert!(is_page(&Method::HEAD, Some("/assets/app.js")));
        assert!(!is_page(&Method::POST, Some("/")));
        assert!(!is_page(&Method::GET, Some("/assets/other.js")));
        assert!(!is_page(&Method::GET, None));
    }

    #[test]
    fn the_page_loads_only_its_own_assets() {
        for src in ["/assets/app.js", "/assets/app.css"] {
            assert!(INDEX.contains(src), "{src}");
        }
        assert!(
            !INDEX.contains("http://") && !INDEX.contains("https://"),
            "no CDN"
        );
        assert!(
            !APP_JS.contains("innerHTML"),
            "text from the API is set as text"
        );
    }
}
