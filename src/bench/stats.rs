//! Counters and latency histograms, one set per client loop, and the report they add up to.
//!
//! Each loop writes only its own [`LoopStats`] (relaxed atomics, an uncontended mutex around
//! its histogram), and the main thread reads them for the progress line and the final report.

use hdrhistogram::Histogram;
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Latencies are recorded in nanoseconds, up to an hour, with 3 significant digits.
const MAX_LATENCY_NS: u64 = 3_600_000_000_000;

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).expect("valid histogram bounds")
}

/// One client loop's numbers.
pub struct LoopStats {
    /// Requests or messages sent, in every phase.
    pub sent: AtomicU64,
    /// Completions (acks, replies, deliveries), in every phase.
    pub done: AtomicU64,
    /// Completions inside the measured window.
    pub measured: AtomicU64,
    /// Error replies and unreadable frames.
    pub errors: AtomicU64,
    /// Connections that closed while the run still needed them.
    pub closed: AtomicU64,
    pub latency: Mutex<Histogram<u64>>,
}

impl LoopStats {
    fn new() -> LoopStats {
        LoopStats {
            sent: AtomicU64::new(0),
            done: AtomicU64::new(0),
            measured: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            closed: AtomicU64::new(0),
            latency: Mutex::new(histogram()),
        }
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn record(&self, latency_ns: u64) {
        let mut h = self.latency.lock().unwrap_or_else(|e| e.into_inner());
        h.saturating_record(latency_ns.max(1));
    }
}

/// The stats of every loop, indexed by loop index − 1 (the pool numbers loops from 1).
pub struct Stats {
    loops: Vec<LoopStats>,
}

/// Sums over all loops at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub sent: u64,
    pub done: u64,
    pub measured: u64,
    pub errors: u64,
    pub closed: u64,
}

impl Stats {
    pub fn new(loops: usize) -> Stats {
        Stats {
            loops: (0..loops).map(|_| LoopStats::new()).collect(),
        }
    }

    /// The stats of the loop with this index (1-based).
    pub fn of(&self, loop_index: usize) -> &LoopStats {
        &self.loops[loop_index.saturating_sub(1).min(self.loops.len() - 1)]
    }

    pub fn totals(&self) -> Totals {
        let sum = |f: fn(&LoopStats) -> &AtomicU64| {
            self.loops
                .iter()
                .map(|l| f(l).load(Ordering::Relaxed))
                .sum()
        };
        Totals {
            sent: sum(|l| &l.sent),
            done: sum(|l| &l.done),
            measured: sum(|l| &l.measured),
            errors: sum(|l| &l.errors),
            closed: sum(|l| &l.closed),
        }
    }

    /// Every loop's histogram added into one.
    pub fn latency(&self) -> Histogram<u64> {
        let mut all = histogram();
        for l in &self.loops {
            let h = l.latency.lock().unwrap_or_else(|e| e.into_inner());
            let _ = all.add(&*h);
        }
        all
    }
}

/// Latency percentiles in microseconds, or None when nothing was recorded.
pub fn latency_json(h: &Histogram<u64>) -> Value {
    if h.is_empty() {
        return Value::Null;
    }
    let us = |ns: u64| (ns as f64 / 1000.0 * 10.0).round() / 10.0;
    json!({
        "count": h.len(),
        "mean_us": (h.mean() / 1000.0 * 10.0).round() / 10.0,
        "p50_us": us(h.value_at_quantile(0.50)),
        "p90_us": us(h.value_at_quantile(0.90)),
        "p99_us": us(h.value_at_quantile(0.99)),
        "p999_us": us(h.value_at_quantile(0.999)),
        "max_us": us(h.max()),
    })
}

/// The result of a run: ordered key/value pairs, printed as a table or as one JSON object.
#[derive(Default)]
pub struct Report {
    fields: Vec<(String, Value)>,
}

impl Report {
    pub fn new() -> Report {
        Report::default()
    }

    pub fn set(&mut self, key: &str, value: impl Into<Value>) {
        let value = value.into();
        match self.fields.iter_mut().find(|(k, _)| k == key) {
            Some(field) => field.1 = value,
            None => self.fields.push((key.to_owned(), value)),
        }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.fields.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn to_json(&self) -> Value {
        let mut map = Map::new();
        for (k, v) in &self.fields {
            map.insert(k.clone(), v.clone());
        }
        Value::Object(map)
    }

    /// Two columns; nested objects (latency) become `key.sub` rows.
    pub fn to_table(&self) -> String {
        let mut rows: Vec<(String, String)> = Vec::new();
        for (k, v) in &self.fields {
            match v {
                Value::Object(inner) => {
                    // JSON objects keep their keys sorted; show percentiles in rank order.
                    let mut keys: Vec<&String> = inner.keys().collect();
                    keys.sort_by_key(|ik| (rank(ik), ik.as_str()));
                    for ik in keys {
                        rows.push((format!("{k}.{ik}"), plain(&inner[ik])));
                    }
                }
                _ => rows.push((k.clone(), plain(v))),
            }
        }
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        rows.iter()
            .map(|(k, v)| format!("{k:<width$}  {v}\n"))
            .collect()
    }
}

/// Latency fields in the order a reader expects; others after them.
fn rank(key: &str) -> usize {
    const ORDER: [&str; 7] = [
        "count", "mean_us", "p50_us", "p90_us", "p99_us", "p999_us", "max_us",
    ];
    ORDER.iter().position(|k| *k == key).unwrap_or(ORDER.len())
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_add_up_the_loops_and_percentiles_are_ordered() {
        let stats = Stats::new(2);
        LoopStats::add(&stats.of(1).sent, 3);
        LoopStats::add(&stats.of(2).sent, 4);
        for ns in [1_000, 2_000, 3_000, 50_000] {
            stats.of(2).record(ns);
        }
        assert_eq!(stats.totals().sent, 7);
        let lat = latency_json(&stats.latency());
        let p = |k: &str| lat[k].as_f64().unwrap();
        assert!(p("p50_us") <= p("p90_us") && p("p90_us") <= p("p99_us"));
        assert!(p("p99_us") <= p("p999_us") && p("p999_us") <= p("max_us"));
    }

    #[test]
    fn report_prints_nested_rows_and_json() {
        let mut r = Report::new();
        r.set("scenario", "chat");
        r.set("latency", json!({"p50_us": 1.5}));
        assert!(r.to_table().contains("latency.p50_us  1.5"));
        assert_eq!(r.to_json()["scenario"], "chat");
    }
}
