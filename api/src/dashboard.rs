//! The dashboard: a static client of the public API and its event stream, served at
//! `/` (its page) and `/assets/*` (its script and style sheet), compiled into the
//! binary from `api/dashboard/` (no build step, no CDN: it works offline). These paths
//! need no token; the page signs in with `POST /api/v1/session` and holds the session
//! cookie. A strict Content-Security-Policy lets the page load only its own script,
//! style and API. `/api/v1/docs` renders the OpenAPI document with ReDoc (bundled from
//! the npm package, `api/dashboard/vendor/redoc/`), also without a token.

use axum::Router;
use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::AppState;

const INDEX: &str = include_str!("../dashboard/index.html");
const APP_JS: &str = include_str!("../dashboard/app.js");
const APP_CSS: &str = include_str!("../dashboard/app.css");
const DOCS: &str = include_str!("../dashboard/docs.html");
const DOCS_JS: &str = include_str!("../dashboard/docs.js");
/// ReDoc (npm `redoc`, MIT): renders the OpenAPI document at `/api/v1/docs`.
const REDOC_BUNDLE: &str = include_str!("../dashboard/vendor/redoc/redoc.standalone.js");

/// ReDoc's attribution logo comes from a CDN, which an offline installation cannot
/// reach (and the page's CSP refuses): the bundle as served names no image instead
/// (the logo hides itself when its image fails), the vendored file stays as published.
static REDOC: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    REDOC_BUNDLE.replace("https://cdn.redoc.ly/redoc/logo-mini.svg", "data:,")
});

/// The dashboard's paths (GET and HEAD), open without a token.
pub const PAGES: &[&str] = &[
    "/",
    "/assets/app.js",
    "/assets/app.css",
    "/api/v1/docs",
    "/assets/docs.js",
    "/assets/redoc.standalone.js",
];

/// What the page may load: itself, nothing else.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
/// The API reference: ReDoc sets its styles inline and may run a worker from a blob.
const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

/// Whether a request is for one of the dashboard's pages.
pub fn is_page(method: &Method, matched: Option<&str>) -> bool {
    (method == Method::GET || method == Method::HEAD) && matched.is_some_and(|m| PAGES.contains(&m))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    with_csp(content_type, body, CSP)
}

fn with_csp(content_type: &'static str, body: &'static str, csp: &'static str) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // the binary's own copy: revalidated, so an upgrade shows at once
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(csp),
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
    const HTML: &str = "text/html; charset=utf-8";
    const JS: &str = "text/javascript; charset=utf-8";
    r.route("/", get(|| async { asset(HTML, INDEX) }))
        .route("/assets/app.js", get(|| async { asset(JS, APP_JS) }))
        .route(
            "/assets/app.css",
            get(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
        )
        .route(
            "/api/v1/docs",
            get(|| async { with_csp(HTML, DOCS, DOCS_CSP) }),
        )
        .route(
            "/assets/docs.js",
            get(|| async { with_csp(JS, DOCS_JS, DOCS_CSP) }),
        )
        .route(
            "/assets/redoc.standalone.js",
            get(|| async { with_csp(JS, REDOC.as_str(), DOCS_CSP) }),
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
        assert!(is_page(&Method::GET, Some("/api/v1/docs")));
        assert!(!is_page(&Method::GET, Some("/api/v1/jobs")));
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
