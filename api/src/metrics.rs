//! API request metrics: counts and latency histograms by method, route template and
//! status class. Every label comes from a closed set, whatever a caller sends: methods
//! outside [`METHODS`] and paths that match no route are `other`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

use axum::http::Method;

/// The methods counted by name.
pub const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

const BUCKETS: [f64; 10] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

#[derive(Default)]
struct Series {
    count: u64,
    sum: f64,
    buckets: [u64; BUCKETS.len()],
}

#[derive(Default)]
pub struct ApiMetrics {
    series: Mutex<BTreeMap<(&'static str, &'static str, &'static str), Series>>,
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
        let class = match status {
            100..=599 => ["1xx", "2xx", "3xx", "4xx", "5xx"][usize::from(status / 100 - 1)],
            _ => "other",
        };
        let mut m = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let s = m.entry((method, route, class)).or_default();
        let secs = took.as_secs_f64();
        s.count += 1;
        s.sum += secs;
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                s.buckets[i] += 1;
            }
        }
    }

    pub fn render(&self, out: &mut String) {
        let m = self.series.lock().unwrap_or_else(|e| e.into_inner());
        out.push_str(
            "# HELP tributary_api_requests_total API requests by method, route and status class.\n",
        );
        out.push_str("# TYPE tributary_api_requests_total counter\n");
        for ((method, route, class), s) in m.iter() {
            let _ = writeln!(
                out,
                "tributary_api_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{class}\"}} {}",
                s.count
            );
        }
        out.push_str("# HELP tributary_api_request_duration_seconds API request latency.\n");
        out.push_str("# TYPE tributary_api_request_duration_seconds histogram\n");
        for ((method, route, class), s) in m.iter() {
            let labels = format!("method=\"{method}\",route=\"{route}\",status=\"{class}\"");
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "tributary_api_request_duration_seconds_bucket{{{labels},le=\"{b}\"}} {}",
                    s.buckets[i]
                );
            }
            let _ = writeln!(
                out,
                "tributary_api_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(
                out,
                "tributary_api_request_duration_seconds_sum{{{labels}}} {}",
                s.sum
            );
            let _ = writeln!(
                out,
                "tributary_api_request_duration_seconds_count{{{labels}}} {}",
                s.count
            );
        }
    }
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
        let mut out = String::new();
        m.render(&mut out);
        let series: Vec<&str> = out
            .lines()
            .filter(|l| l.starts_with("tributary_api_requests_total{"))
            .collect();
        assert_eq!(
            series,
            [
                r#"tributary_api_requests_total{method="GET",route="other",status="4xx"} 600"#,
                r#"tributary_api_requests_total{method="HEAD",route="/api/v1/jobs/{id}",status="2xx"} 1"#,
                r#"tributary_api_requests_total{method="other",route="/api/v1/health",status="4xx"} 300"#,
            ]
        );
    }
}
