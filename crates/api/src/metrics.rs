//! The API's own counters, and `/metrics`: the node's metrics and these as one OpenMetrics
//! text.
//!
//! The runtime's registry writes OpenMetrics (counter families named without `_total`, the
//! text closed by `# EOF`), so the whole answer is OpenMetrics: the node's part loses its
//! `# EOF`, the API's families follow in the same format, and one `# EOF` closes the text. A
//! strict parser refuses anything after `# EOF`.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
};

/// The Content-Type of `/metrics`.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The blob store's counters, as `/metrics` shows them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlobStoreCounts {
    /// Durable commits of the store's database.
    pub commits: u64,
    /// Writes those commits carried.
    pub writes: u64,
}

/// The text of `/metrics`: `node` (OpenMetrics, with or without its closing `# EOF`), then the
/// API's families (with the blob store's, if the node has one), then one `# EOF`.
pub fn exposition(node: &str, api: &ApiMetrics, blobs: Option<BlobStoreCounts>) -> String {
    let node = node.trim_end();
    let node = node.strip_suffix("# EOF").unwrap_or(node).trim_end();
    let mut text = String::with_capacity(node.len() + 1024);
    text.push_str(node);
    if !text.is_empty() {
        text.push('\n');
    }
    text.push_str(&api.render());
    if let Some(blobs) = blobs {
        text.push_str(
            "# HELP exo_blob_store_commits Durable commits of the blob store's database.\n",
        );
        text.push_str("# TYPE exo_blob_store_commits counter\n");
        let _ = writeln!(text, "exo_blob_store_commits_total {}", blobs.commits);
        text.push_str(
            "# HELP exo_blob_store_writes Writes to the blob store's database, \
             grouped into its commits.\n",
        );
        text.push_str("# TYPE exo_blob_store_writes counter\n");
        let _ = writeln!(text, "exo_blob_store_writes_total {}", blobs.writes);
    }
    text.push_str("# EOF\n");
    text
}

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

    /// The counters' families in OpenMetrics text format (a counter family is named without
    /// its samples' `_total`), without the closing `# EOF`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP exo_api_requests HTTP requests answered, by route and status.\n");
        out.push_str("# TYPE exo_api_requests counter\n");
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
        out.push_str("# HELP exo_api_txs_admitted Transactions admitted to the mempool.\n");
        out.push_str("# TYPE exo_api_txs_admitted counter\n");
        let _ = writeln!(
            out,
            "exo_api_txs_admitted_total {}",
            self.inner.admitted.load(Ordering::Relaxed)
        );
        out.push_str("# HELP exo_api_txs_refused Transactions refused, by reason.\n");
        out.push_str("# TYPE exo_api_txs_refused counter\n");
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
    use crate::testing::check_openmetrics;

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

    /// The runtime's own registry (counters, gauges, histograms, labelled families) closes its
    /// text with `# EOF`: the API's families go before it, never after.
    #[test]
    fn the_runtime_and_the_api_make_one_openmetrics_text() {
        use commonware_runtime::{
            Metrics as _, Runner as _, deterministic,
            telemetry::metrics::raw::{Counter, Gauge, Histogram},
        };
        let node = deterministic::Runner::default().start(|context| async move {
            let votes = Counter::<u64>::default();
            let _votes = context.register("votes", "votes cast", votes.clone());
            votes.inc_by(3);
            let height = Gauge::<i64>::default();
            let _height = context.register("height", "finalized height", height.clone());
            height.set(7);
            let latency = Histogram::new([0.1, 1.0]);
            let _latency = context.register("latency", "seconds", latency.clone());
            latency.observe(0.5);
            context.encode()
        });
        assert!(node.ends_with("# EOF\n"), "{node}");
        // What /metrics answered before: the API's families after the runtime's `# EOF`.
        let api = ApiMetrics::default();
        api.request("GET", "/v1/status", 200);
        assert!(check_openmetrics(&format!("{node}{}", api.render())).is_err());

        let text = exposition(&node, &api, None);
        check_openmetrics(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let blobs = BlobStoreCounts {
            commits: 2,
            writes: 9,
        };
        let with_blobs = exposition(&node, &api, Some(blobs));
        check_openmetrics(&with_blobs).unwrap_or_else(|e| panic!("{e}\n{with_blobs}"));
        assert!(with_blobs.contains("exo_blob_store_commits_total 2\n"));
        assert!(with_blobs.contains("exo_blob_store_writes_total 9\n"));
        assert_eq!(text.matches("# EOF").count(), 1);
        assert!(text.contains("votes_total 3"));
        assert!(text.contains("exo_api_requests_total{"));
        // A node whose text has no `# EOF` of its own, or no metrics at all.
        check_openmetrics(&exposition("# TYPE h gauge\nh 1", &api, None)).unwrap();
        check_openmetrics(&exposition("", &api, Some(blobs))).unwrap();
    }

    #[test]
    fn the_strict_check_refuses_what_a_strict_parser_refuses() {
        for bad in [
            "a 1\n",
            "a 1\n# EOF\nb 2\n# EOF\n",
            "a 1\n\n# EOF\n",
            "# TYPE a_total counter\na_total 1\n# EOF\n",
            "# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\na 2\n# EOF\n",
            "# TYPE a gauge\n# TYPE a gauge\na 1\n# EOF\n",
            "# TYPE a gauge\na{x=\"1\",x=\"2\"} 1\n# EOF\n",
            "# TYPE a gauge\na{x=1} 1\n# EOF\n",
            "# TYPE a gauge\na one\n# EOF\n",
            "# some comment\n# EOF\n",
            "# TYPE a flavour\na 1\n# EOF\n",
            "# TYPE a gauge\na{x=\"\\q\"} 1\n# EOF\n",
        ] {
            assert!(check_openmetrics(bad).is_err(), "{bad:?}");
        }
        check_openmetrics(
            "# HELP a_seconds Seconds.\n# TYPE a_seconds histogram\n# UNIT a_seconds seconds\n\
             a_seconds_bucket{le=\"1.0\"} 1\na_seconds_bucket{le=\"+Inf\"} 1\n\
             a_seconds_sum 0.5\na_seconds_count 1\n# TYPE b counter\nb_total{x=\"\\\"\"} 2\n# EOF\n",
        )
        .unwrap();
        // A family described before its first sample, then another: two families.
        check_openmetrics("# TYPE a counter\n# TYPE b gauge\nb 1\n# EOF\n").unwrap();
        check_openmetrics("# EOF\n").unwrap();
    }
}
