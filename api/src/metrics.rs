//! API request metrics: counts and latency histograms by method, route template and
//! status class (bounded labels; never a raw path).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

const BUCKETS: [f64; 10] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

#[derive(Default)]
struct Series {
    count: u64,
    sum: f64,
    buckets: [u64; BUCKETS.len()],
}

#[derive(Default)]
pub struct ApiMetrics {
    series: Mutex<BTreeMap<(String, String, String), Series>>,
}

impl ApiMetrics {
    pub fn record(&self, method: &str, route: &str, status: u16, took: Duration) {
        let class = format!("{}xx", status / 100);
        let mut m = self.series.lock().unwrap();
        let s = m
            .entry((method.to_string(), route.to_string(), class))
            .or_default();
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
        let m = self.series.lock().unwrap();
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
