//! `GET /metrics`: what the server has done since it started, in the Prometheus (OpenMetrics)
//! text format, with prometheus-client. Counting is an atomic add, so the hot path does not
//! feel it; the gauges of work waiting are read from the database when the metrics are.
//!
//! Labels are low-cardinality: a state, an HTTP status class, a callback's answer, a script's
//! kind. Never a run's id or a URL.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// The server's metrics: one set per process.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabel {
    pub pool: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClassLabel {
    /// `2xx`, `3xx`, `4xx`, `5xx`, or `error` (no answer: a connection error or a timeout).
    pub class: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AnswerLabel {
    pub answer: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScriptLabel {
    /// `mapper`, `reducer` or `branch`.
    pub kind: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every series that aetr exports.
pub struct Metrics {
    registry: Registry,
    pub runs_started: Counter,
    pub runs_finished: Family<StateLabel, Counter>,
    pub actions_dispatched: Counter,
    pub post_outcomes: Family<ClassLabel, Counter>,
    pub callbacks: Family<AnswerLabel, Counter>,
    pub post_seconds: Histogram,
    pub callback_to_dispatch_seconds: Histogram,
    pub script_seconds: Histograms<ScriptLabel>,
    pub group_commit_runs: Histogram,
    pub nodes: Family<StateLabel, Gauge>,
    pub runs_in_flight: Family<StateLabel, Gauge>,
    pub pool_used: Family<PoolLabel, Gauge>,
    pub pool_waiting: Family<PoolLabel, Gauge>,
    pub pool_slots: Family<PoolLabel, Gauge>,
    pub db_pool_connections: Gauge,
    pub db_pool_idle: Gauge,
    pub db_pool_waiting: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// Latencies from 0.5 ms to about 65 s.
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 18))
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("aetr");
        let m = Metrics {
            runs_started: Counter::default(),
            runs_finished: Family::default(),
            actions_dispatched: Counter::default(),
            post_outcomes: Family::default(),
            callbacks: Family::default(),
            post_seconds: latency(),
            callback_to_dispatch_seconds: latency(),
            script_seconds: Family::new_with_constructor(latency),
            group_commit_runs: Histogram::new(exponential_buckets(1.0, 2.0, 9)),
            nodes: Family::default(),
            pool_used: Family::default(),
            pool_waiting: Family::default(),
            pool_slots: Family::default(),
            runs_in_flight: Family::default(),
            db_pool_connections: Gauge::default(),
            db_pool_idle: Gauge::default(),
            db_pool_waiting: Gauge::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register("runs_started", "Runs started", m.runs_started.clone());
        r.register("runs_finished", "Runs that ended, by state", m.runs_finished.clone());
        r.register("actions_dispatched", "Action POSTs sent", m.actions_dispatched.clone());
        r.register(
            "post_outcomes",
            "Action POSTs by how they were answered: an HTTP status class, or error",
            m.post_outcomes.clone(),
        );
        r.register(
            "callbacks",
            "Callbacks by answer: taken, or why they were refused",
            m.callbacks.clone(),
        );
        r.register("post_seconds", "How long action POSTs took", m.post_seconds.clone());
        r.register(
            "callback_to_dispatch_seconds",
            "From a callback's arrival to the start of the POST that it made due",
            m.callback_to_dispatch_seconds.clone(),
        );
        r.register("script_seconds", "Mapper, reducer and Branch calls", m.script_seconds.clone());
        r.register(
            "group_commit_runs",
            "Runs whose events one transaction (a group commit) wrote",
            m.group_commit_runs.clone(),
        );
        r.register(
            "nodes",
            "Actions Pending (due, backing off, or parked) and Executing with a deadline, in \
             every run of the database",
            m.nodes.clone(),
        );
        r.register("runs_in_flight", "Runs Pending or Executing", m.runs_in_flight.clone());
        r.register(
            "pool_used",
            "Attempts of a pool's actions that hold one of its slots (Executing, or being sent)",
            m.pool_used.clone(),
        );
        r.register(
            "pool_waiting",
            "Attempts of a pool's actions that are due and wait for a slot",
            m.pool_waiting.clone(),
        );
        r.register("pool_slots", "A pool's slots", m.pool_slots.clone());
        r.register(
            "db_pool_connections",
            "This server's database connections",
            m.db_pool_connections.clone(),
        );
        r.register("db_pool_idle", "Idle database connections", m.db_pool_idle.clone());
        r.register(
            "db_pool_waiting",
            "Tasks waiting for a database connection",
            m.db_pool_waiting.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Counts an action POST's answer: its status, or none.
    pub fn post_answered(&self, status: Option<u16>, took: Duration) {
        let class = match status {
            Some(200..=299) => "2xx",
            Some(300..=399) => "3xx",
            Some(400..=499) => "4xx",
            Some(_) => "5xx",
            None => "error",
        };
        self.post_outcomes.get_or_create(&ClassLabel { class }).inc();
        self.post_seconds.observe(took.as_secs_f64());
    }

    /// Counts a script call of a node: a `mapper`, `reducer` or `branch` function.
    pub fn script_called(&self, kind: &'static str, took: Duration) {
        self.script_seconds.get_or_create(&ScriptLabel { kind }).observe(took.as_secs_f64());
    }

    /// The text of every series.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
