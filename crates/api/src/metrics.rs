//! The API's own counters, appended to the node's Prometheus text.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
};

/// Counters of requests and transaction admissions.
///
/// Label sets are bounded: routes are the router's templates (or `unmatched`), methods and
/// statuses are a small closed set, and refusal codes are the API's static codes.
#[derive(Clone, Debug, Default)]
pub struct ApiMetrics {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    requests: Mutex<BTreeMap<(&'static str, String, u16), u64>>,
    admitted: AtomicU64,
    refused: Mutex<BTreeMap<&'static str, u64>>,
    event_streams: AtomicUsize,
}

/// Holds one open event stream in the gauge; dropping it closes the stream's slot.
#[derive(Debug)]
pub struct StreamSlot {
    metrics: ApiMetrics,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.metrics
            .inner
            .event_streams
            .fetch_sub(1, Ordering::Relaxed);
    }
}

impl ApiMetrics {
    pub fn request(&self, method: &str, route: &str, status: u16) {
        let method = match method {
            "GET" => "GET",
            "POST" => "POST",
            "HEAD" => "HEAD",
            "PUT" => "PUT",
            _ => "OTHER",
        };
        let mut requests = self
            .inner
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *requests
            .entry((method, route.to_string(), status))
            .or_default() += 1;
    }

    pub fn admitted(&self) {
        self.inner.admitted.fetch_add(1, Ordering::Relaxed);
    }

    pub fn refused(&self, code: &'static str) {
        let mut refused = self.inner.refused.lock().unwrap_or_else(|p| p.into_inner());
        *refused.entry(code).or_default() += 1;
    }

    /// Opens an event stream if fewer than `max` are open.
    pub fn open_stream(&self, max: usize) -> Option<StreamSlot> {
        self.inner
            .event_streams
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |open| {
                (open < max).then_some(open + 1)
            })
            .ok()
            .map(|_| StreamSlot {
                metrics: self.clone(),
            })
    }

    pub fn open_streams(&self) -> usize {
        self.inner.event_streams.load(Ordering::Relaxed)
    }

    /// The counters in Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP exo_api_requests_total HTTP requests answered, by route and status.\n",
        );
        out.push_str("# TYPE exo_api_requests_total counter\n");
        let requests = self
            .inner
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for ((method, route, status), count) in requests {
            let _ = writeln!(
                out,
                "exo_api_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {count}",
                escape(&route)
            );
        }
        out.push_str("# HELP exo_api_txs_admitted_total Transactions admitted to the mempool.\n");
        out.push_str("# TYPE exo_api_txs_admitted_total counter\n");
        let _ = writeln!(
            out,
            "exo_api_txs_admitted_total {}",
            self.inner.admitted.load(Ordering::Relaxed)
        );
        out.push_str("# HELP exo_api_txs_refused_total Transactions refused, by reason.\n");
        out.push_str("# TYPE exo_api_txs_refused_total counter\n");
        let refused = self
            .inner
            .refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for (code, count) in refused {
            let _ = writeln!(
                out,
                "exo_api_txs_refused_total{{reason=\"{code}\"}} {count}"
            );
        }
        out.push_str("# HELP exo_api_event_streams Open event streams.\n");
        out.push_str("# TYPE exo_api_event_streams gauge\n");
        let _ = writeln!(out, "exo_api_event_streams {}", self.open_streams());
        out
    }
}

/// Escapes a Prometheus label value.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_bounds_streams() {
        let metrics = ApiMetrics::default();
        metrics.request("GET", "/v1/status", 200);
        metrics.request("GET", "/v1/status", 200);
        metrics.request("PATCH", "unmatched", 405);
        metrics.admitted();
        metrics.refused("bad_hex");
        let first = metrics.open_stream(1).unwrap();
        assert!(metrics.open_stream(1).is_none());
        let text = metrics.render();
        assert!(text.contains(
            "exo_api_requests_total{method=\"GET\",route=\"/v1/status\",status=\"200\"} 2"
        ));
        assert!(text.contains("method=\"OTHER\",route=\"unmatched\",status=\"405\"} 1"));
        assert!(text.contains("exo_api_txs_admitted_total 1"));
        assert!(text.contains("exo_api_txs_refused_total{reason=\"bad_hex\"} 1"));
        assert!(text.contains("exo_api_event_streams 1"));
        drop(first);
        assert_eq!(metrics.open_streams(), 0);
        assert!(metrics.open_stream(1).is_some());
    }
}
