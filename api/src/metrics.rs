//! API request metrics: counts and latency histograms by method, route template and
//! status class. Every label comes from a closed set, whatever a caller sends: methods
//! outside [`METHODS`] and paths that match no route are `other`.
//!
//! A scrape builds one [`Registry`]: the daemon registers its metrics through
//! [`crate::Control::metrics`], the API its own ([`ApiMetrics::register`],
//! [`crate::serve::register`]), and [`encode`] writes the Prometheus text.

use std::time::Duration;

use axum::http::Method;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The methods counted by name.
pub const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

const BUCKETS: [f64; 10] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

/// The `Content-Type` of what [`encode`] writes.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Request {
    method: &'static str,
    route: &'static str,
    status: &'static str,
}

pub struct ApiMetrics {
    requests: Family<Request, Counter>,
    latency: Family<Request, Histogram, fn() -> Histogram>,
}

impl Default for ApiMetrics {
    fn default() -> ApiMetrics {
        ApiMetrics {
            requests: Family::default(),
            latency: Family::new_with_constructor(|| Histogram::new(BUCKETS)),
        }
    }
}

impl ApiMetrics {
    /// `route` is the matched route template (from the route table), if any.
    pub fn record(&self, method: &Method, route: Option<&str>, status: u16, took: Duration) {
        let method = METHODS
            .iter()
            .find(|m| **m == method.as_str())
            .copied()
            .unwrap_or("other");
        let route = route
            .and_then(|r| crate::ROUTES.iter().find(|x| x.path == r))
            .map_or("other", |x| x.path);
        let status = match status {
            100..=599 => ["1xx", "2xx", "3xx", "4xx", "5xx"][usize::from(status / 100 - 1)],
            _ => "other",
        };
        let labels = Request {
            method,
            route,
            status,
        };
        self.requests.get_or_create(&labels).inc();
        self.latency
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "tributary_api_requests",
            "API requests by method, route and status class",
            self.requests.clone(),
        );
        registry.register(
            "tributary_api_request_duration_seconds",
            "API request latency",
            self.latency.clone(),
        );
    }
}

/// The Prometheus text (format 0.0.4) of everything in `registry`.
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut out, registry)
        .expect("writing to a String does not fail");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_come_from_closed_sets() {
        let m = ApiMetrics::default();
        let d = Duration::from_millis(3);
        for i in 0..300 {
            let method = Method::from_bytes(format!("ZZ{i}").as_bytes()).unwrap();
            m.record(&method, Some("/api/v1/health"), 405, d);
            m.record(&Method::GET, Some(&format!("/nope/{i}")), 404, d);
            m.record(&Method::GET, None, 404, d);
        }
        m.record(&Method::HEAD, Some("/api/v1/jobs/{id}"), 200, d);
        let out = encode(&registry_of(&m));
        let mut series: Vec<&str> = out
            .lines()
            .filter(|l| l.starts_with("tributary_api_requests_total{"))
            .collect();
        series.sort();
        assert_eq!(
            series,
            [
                r#"tributary_api_requests_total{method="GET",route="other",status="4xx"} 600"#,
                r#"tributary_api_requests_total{method="HEAD",route="/api/v1/jobs/{id}",status="2xx"} 1"#,
                r#"tributary_api_requests_total{method="other",route="/api/v1/health",status="4xx"} 300"#,
            ]
        );
        assert!(
            out.contains(r#"tributary_api_request_duration_seconds_bucket{le="0.005",method="HEAD",route="/api/v1/jobs/{id}",status="2xx"} 1"#)
                || out.contains(r#"tributary_api_request_duration_seconds_bucket{method="HEAD",route="/api/v1/jobs/{id}",status="2xx",le="0.005"} 1"#),
            "{out}"
        );
    }

    fn registry_of(m: &ApiMetrics) -> Registry {
        let mut r = Registry::default();
        m.register(&mut r);
        r
    }
}
