//! Prometheus metrics at `/metrics`: requests by route, method and status, bytes received and sent,
//! upload requests in flight, and requests that failed inside the registry (storage errors), in the
//! text exposition format. Counted by the same middleware that writes the access log, so the two
//! always agree.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// The registry's counters since it started.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, String, u16), u64>>,
    bytes_received: AtomicU64,
    bytes_sent: AtomicU64,
    uploads_in_flight: AtomicI64,
    storage_errors: AtomicU64,
}

impl Metrics {
    /// An upload request (`POST`, `PATCH` or `PUT` of a blob upload) has started.
    pub fn upload_started(&self) {
        self.uploads_in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// An upload request has ended.
    pub fn upload_ended(&self) {
        self.uploads_in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// A request was answered.
    pub fn record(&self, route: &'static str, method: &str, status: u16, received: u64, sent: u64) {
        *self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((route, method.to_owned(), status))
            .or_default() += 1;
        self.bytes_received.fetch_add(received, Ordering::Relaxed);
        self.bytes_sent.fetch_add(sent, Ordering::Relaxed);
        if status >= 500 {
            self.storage_errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP wharf_http_requests_total Requests answered, by route, method and status.\n",
        );
        out.push_str("# TYPE wharf_http_requests_total counter\n");
        for ((route, method, status), count) in self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "wharf_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}} {count}"
            );
        }
        let gauges: [(&str, &str, &str, i64); 4] = [
            (
                "wharf_http_received_bytes_total",
                "counter",
                "Request body bytes received.",
                self.bytes_received.load(Ordering::Relaxed) as i64,
            ),
            (
                "wharf_http_sent_bytes_total",
                "counter",
                "Response body bytes sent.",
                self.bytes_sent.load(Ordering::Relaxed) as i64,
            ),
            (
                "wharf_uploads_in_flight",
                "gauge",
                "Blob upload requests being received.",
                self.uploads_in_flight.load(Ordering::Relaxed),
            ),
            (
                "wharf_storage_errors_total",
                "counter",
                "Requests that failed inside the registry (answered 5xx).",
                self.storage_errors.load(Ordering::Relaxed) as i64,
            ),
        ];
        for (name, kind, help, value) in gauges {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_what_was_counted() {
        let metrics = Metrics::default();
        metrics.record("manifests", "PUT", 201, 500, 0);
        metrics.record("manifests", "PUT", 201, 500, 0);
        metrics.record("blobs", "GET", 500, 0, 10);
        metrics.upload_started();
        let text = metrics.render();
        assert!(text.contains(
            "wharf_http_requests_total{route=\"manifests\",method=\"PUT\",status=\"201\"} 2\n"
        ));
        assert!(text.contains("wharf_http_received_bytes_total 1000\n"));
        assert!(text.contains("wharf_http_sent_bytes_total 10\n"));
        assert!(text.contains("wharf_uploads_in_flight 1\n"));
        assert!(text.contains("wharf_storage_errors_total 1\n"));
    }
}
