//! Prometheus metrics in the text exposition format, without a metrics library: request
//! counts by route and status, queue depth, batch sizes, queue and inference time.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use std::sync::Arc;

use taiyi_core::TextCache;

use crate::engine::{Job, Work};

/// Upper bounds (seconds) of the time histograms.
const TIME_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Upper bounds of the batch-size histogram (items per forward batch).
const SIZE_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// A cumulative histogram.
#[derive(Debug, Clone)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, v: f64) {
        for (b, c) in self.bounds.iter().zip(&mut self.counts) {
            if v <= *b {
                *c += 1;
            }
        }
        self.sum += v;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {c}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

#[derive(Debug, Default)]
struct Inner {
    /// (route, status) → count.
    requests: BTreeMap<(String, u16), u64>,
    /// kind → items per batch.
    batch_items: BTreeMap<&'static str, Histogram>,
    /// kind → seconds a job waited in the queue.
    queue_time: BTreeMap<&'static str, Histogram>,
    inference_time: Option<Histogram>,
}

/// One unlabelled gauge or counter in the Prometheus text format: HELP, TYPE, value.
fn scalar(out: &mut String, name: &str, help: &str, kind: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    let _ = writeln!(out, "{name} {value}");
}

/// The server's metrics, shared by the HTTP side and the inference thread.
#[derive(Debug, Default)]
pub struct Metrics {
    queue_depth: AtomicI64,
    connections: AtomicI64,
    connections_refused: std::sync::atomic::AtomicU64,
    inner: Mutex<Inner>,
    /// The label cache whose hits, misses and size `/metrics` shows.
    cache: Option<Arc<TextCache>>,
}

impl Metrics {
    /// Metrics that also report `cache` (the label cache's hits, misses and entries).
    pub(crate) fn with_cache(cache: Arc<TextCache>) -> Self {
        Self {
            cache: Some(cache),
            ..Self::default()
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Count one answered request.
    pub(crate) fn request(&self, route: &str, status: u16) {
        *self
            .lock()
            .requests
            .entry((route.to_string(), status))
            .or_default() += 1;
    }

    /// Jobs waiting in the inference queue changed by `delta`.
    pub(crate) fn queue_depth_add(&self, delta: i64) {
        self.queue_depth.fetch_add(delta, Ordering::Relaxed);
    }

    /// Open connections changed by `delta`.
    pub(crate) fn connections_add(&self, delta: i64) {
        self.connections.fetch_add(delta, Ordering::Relaxed);
    }

    /// Open connections now.
    pub(crate) fn open_connections(&self) -> usize {
        usize::try_from(self.connections.load(Ordering::Relaxed)).unwrap_or(0)
    }

    /// A connection over `max_connections` was answered 503 and closed.
    pub(crate) fn connection_refused(&self) {
        self.connections_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// A batch of `jobs` of `kind` starts at `start`.
    pub(crate) fn observe_batch(&self, kind: &'static str, jobs: &[Job], start: Instant) {
        let items: usize = jobs
            .iter()
            .map(|j| match &j.work {
                Work::Texts { ids } | Work::TextsAlone { ids, .. } => ids.len(),
                Work::Images { pixels } => pixels.len(),
                Work::Logits { .. } | Work::Classify { .. } => 1,
            })
            .sum();
        let mut inner = self.lock();
        inner
            .batch_items
            .entry(kind)
            .or_insert_with(|| Histogram::new(SIZE_BUCKETS))
            .observe(items as f64);
        let queue = inner
            .queue_time
            .entry(kind)
            .or_insert_with(|| Histogram::new(TIME_BUCKETS));
        for j in jobs {
            queue.observe(start.saturating_duration_since(j.enqueued).as_secs_f64());
        }
    }

    /// A batch took `took` on the model.
    pub(crate) fn observe_inference(&self, took: Duration) {
        self.lock()
            .inference_time
            .get_or_insert_with(|| Histogram::new(TIME_BUCKETS))
            .observe(took.as_secs_f64());
    }

    /// Everything in the Prometheus text format.
    pub fn render(&self) -> String {
        let cache = self.cache.as_ref().map(|c| c.stats()).unwrap_or_default();
        let inner = self.lock();
        let mut out = String::new();
        out.push_str("# HELP taiyi_requests_total HTTP requests answered, by route and status.\n");
        out.push_str("# TYPE taiyi_requests_total counter\n");
        for ((route, status), n) in &inner.requests {
            let _ = writeln!(
                out,
                "taiyi_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        scalar(
            &mut out,
            "taiyi_queue_depth",
            "Jobs waiting for the inference thread.",
            "gauge",
            self.queue_depth.load(Ordering::Relaxed),
        );
        scalar(
            &mut out,
            "taiyi_open_connections",
            "HTTP connections open now.",
            "gauge",
            self.connections.load(Ordering::Relaxed),
        );
        scalar(
            &mut out,
            "taiyi_connections_refused_total",
            "Connections over max_connections (answered 503).",
            "counter",
            self.connections_refused.load(Ordering::Relaxed),
        );
        for (name, help, kind, v) in [
            (
                "taiyi_label_cache_hits_total",
                "Texts (/classify prompts, /logits texts) found in the label cache.",
                "counter",
                cache.hits,
            ),
            (
                "taiyi_label_cache_misses_total",
                "Texts looked up in the label cache and embedded.",
                "counter",
                cache.misses,
            ),
            (
                "taiyi_label_cache_entries",
                "Text features held by the label cache.",
                "gauge",
                cache.entries as u64,
            ),
        ] {
            scalar(&mut out, name, help, kind, v);
        }
        out.push_str(
            "# HELP taiyi_batch_items Items (texts, images, or 1 per single job) per batch.\n",
        );
        out.push_str("# TYPE taiyi_batch_items histogram\n");
        for (kind, h) in &inner.batch_items {
            h.render(&mut out, "taiyi_batch_items", &format!("kind=\"{kind}\""));
        }
        out.push_str("# HELP taiyi_queue_seconds Time a job waited before its batch ran.\n");
        out.push_str("# TYPE taiyi_queue_seconds histogram\n");
        for (kind, h) in &inner.queue_time {
            h.render(&mut out, "taiyi_queue_seconds", &format!("kind=\"{kind}\""));
        }
        out.push_str("# HELP taiyi_inference_seconds Time a batch took on the model.\n");
        out.push_str("# TYPE taiyi_inference_seconds histogram\n");
        if let Some(h) = &inner.inference_time {
            h.render(&mut out, "taiyi_inference_seconds", "");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative() {
        let mut h = Histogram::new(&[1.0, 2.0]);
        for v in [0.5, 1.5, 3.0] {
            h.observe(v);
        }
        let mut s = String::new();
        h.render(&mut s, "x", "k=\"a\"");
        assert!(s.contains("x_bucket{k=\"a\",le=\"1\"} 1\n"), "{s}");
        assert!(s.contains("x_bucket{k=\"a\",le=\"2\"} 2\n"), "{s}");
        assert!(s.contains("x_bucket{k=\"a\",le=\"+Inf\"} 3\n"), "{s}");
        assert!(s.contains("x_count{k=\"a\"} 3\n"), "{s}");
    }
}
