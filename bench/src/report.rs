//! The figures: a readable table, and one JSON object (the last line printed).

use serde_json::{json, Map, Value};

use crate::celery::PoolFigures;
use crate::scenarios::Latency;

/// Everything one run of the bench measured. `None`: not measured in this mode.
#[derive(Default)]
pub struct Figures {
    pub mode: &'static str,
    pub machine: String,
    pub postgres: String,
    pub wide_n: usize,
    pub wide_actions_per_s: Option<f64>,
    pub deep_n: usize,
    pub deep_seconds: Option<f64>,
    pub mixed_runs: usize,
    pub mixed_actions_per_s: Option<f64>,
    pub map_items: usize,
    /// Actions per second of a Map of `map_items`: (its `maxConcurrency`, actions/s).
    pub map: Vec<(Option<u32>, f64)>,
    /// (leaves, seconds), smallest first.
    pub scale: Vec<(usize, f64)>,
    pub latency: Option<Latency>,
    pub latency_rate: u32,
    pub peak_rss_mb: Option<f64>,
    pub celery: Vec<PoolFigures>,
    pub pg_floor_tps: Option<f64>,
    /// Writing transactions per action, by scenario (every database of the cluster counts).
    pub commits_per_action: Vec<(&'static str, f64)>,
}

impl Figures {
    /// Records a scenario's writing transactions (two xid readings apart, less the reading's own).
    pub fn commits(&mut self, scenario: &'static str, xids: i64, actions: usize) {
        let per_action = (xids - 1).max(0) as f64 / actions.max(1) as f64;
        self.commits_per_action.push((scenario, per_action));
    }

    /// The time of the largest scale point over the one ten times smaller.
    pub fn scale_ratio(&self) -> Option<f64> {
        let (big, big_s) = *self.scale.last()?;
        let (_, small_s) = self.scale.iter().find(|(n, _)| n * 10 == big)?;
        Some(big_s / small_s)
    }

    fn best_celery_wide(&self) -> Option<f64> {
        self.celery.iter().map(|p| p.wide_actions_per_s).reduce(f64::max)
    }

    fn best_celery_deep(&self) -> Option<f64> {
        self.celery.iter().map(|p| p.deep_seconds).reduce(f64::min)
    }

    pub fn table(&self) -> String {
        let mut out = String::new();
        let line = |out: &mut String, cells: [&str; 5]| {
            out.push_str(&format!(
                "{:<34} {:>16} {:>20} {:>9}  {}\n",
                cells[0], cells[1], cells[2], cells[3], cells[4]
            ));
        };
        out.push_str(&format!(
            "aetr bench ({} mode) on {}; PostgreSQL {}\n\n",
            self.mode, self.machine, self.postgres
        ));
        line(&mut out, ["figure", "aetr", "celery (best pool)", "ratio", "target"]);
        let celery_wide = self.best_celery_wide();
        let celery_deep = self.best_celery_deep();
        let ratio = |r: Option<f64>| r.map_or("-".to_owned(), |r| format!("{r:.1}x"));
        line(
            &mut out,
            [
                &format!("wide: {} leaves, actions/s", self.wide_n),
                &show(self.wide_actions_per_s, 0),
                &celery_wide.map_or("-".to_owned(), |c| format!("{c:.0}")),
                &ratio(both(self.wide_actions_per_s, celery_wide).map(|(a, c)| a / c)),
                ">= 5,000/s; >= 7x celery",
            ],
        );
        line(
            &mut out,
            [
                &format!("deep: {}-step chain, seconds", self.deep_n),
                &show(self.deep_seconds, 2),
                &celery_deep.map_or("-".to_owned(), |c| format!("{c:.2}")),
                &ratio(both(self.deep_seconds, celery_deep).map(|(a, c)| c / a)),
                "<= 1 s (1,000 steps); >= 3x celery",
            ],
        );
        line(
            &mut out,
            [
                "  a step, ms",
                &show(self.deep_seconds.map(|s| s * 1000.0 / self.deep_n as f64), 2),
                &celery_deep
                    .map_or("-".to_owned(), |c| format!("{:.2}", c * 1000.0 / self.deep_n as f64)),
                "",
                "<= 1 ms",
            ],
        );
        line(
            &mut out,
            [
                &format!("mixed: {} runs, actions/s", self.mixed_runs),
                &show(self.mixed_actions_per_s, 0),
                "",
                "",
                ">= 4,000/s",
            ],
        );
        for (cap, rate) in &self.map {
            let cap = cap.map_or("no cap".to_owned(), |c| format!("maxConcurrency {c}"));
            let of_wide = self.wide_actions_per_s.map(|w| rate / w);
            line(
                &mut out,
                [
                    &format!("map: {} items, {cap}, actions/s", self.map_items),
                    &format!("{rate:.0}"),
                    "",
                    "",
                    &of_wide.map_or(String::new(), |r| format!("{r:.2} of wide's")),
                ],
            );
        }
        for (n, secs) in &self.scale {
            line(
                &mut out,
                [
                    &format!("scale: {n} leaves, s (actions/s)"),
                    &format!("{secs:.2} ({:.0})", *n as f64 / secs),
                    "",
                    "",
                    "",
                ],
            );
        }
        if let Some(r) = self.scale_ratio() {
            line(&mut out, ["scale: largest / a tenth of it", &format!("{r:.1}"), "", "", "<= 11"]);
        }
        if let Some(l) = &self.latency {
            line(
                &mut out,
                [
                    &format!("latency at {}/s: p50, ms", self.latency_rate),
                    &format!("{:.2}", l.p50_ms),
                    "",
                    "",
                    &format!("({} samples, {:.0} actions/s held)", l.samples, l.actions_per_s),
                ],
            );
            line(&mut out, ["latency: p99, ms", &format!("{:.2}", l.p99_ms), "", "", "<= 20 ms"]);
        }
        line(&mut out, ["server's peak RSS, MiB", &show(self.peak_rss_mb, 0), "", "", "<= 150 MB"]);
        for pool in &self.celery {
            line(
                &mut out,
                [
                    &format!("celery {}: wide/s, deep s", pool.pool),
                    "",
                    &format!("{:.0}, {:.2}", pool.wide_actions_per_s, pool.deep_seconds),
                    "",
                    "",
                ],
            );
        }
        for (scenario, per_action) in &self.commits_per_action {
            line(
                &mut out,
                [
                    &format!("{scenario}: commits an action"),
                    &format!("{per_action:.2}"),
                    "",
                    "",
                    "",
                ],
            );
        }
        if let Some(tps) = self.pg_floor_tps {
            line(
                &mut out,
                [
                    "pgbench: one-row UPDATE, tx/s",
                    &format!("{tps:.0}"),
                    "",
                    "",
                    "the floor: 8 clients",
                ],
            );
        }
        out
    }

    pub fn json(&self, date: &str) -> Value {
        let latency = self.latency.as_ref();
        let celery_wide = self.best_celery_wide();
        let celery_deep = self.best_celery_deep();
        let mut pools = Map::new();
        for p in &self.celery {
            pools.insert(p.pool.clone(), json!({"wide_actions_per_s": round(p.wide_actions_per_s), "deep_seconds": round(p.deep_seconds)}));
        }
        let scale: Map<String, Value> =
            self.scale.iter().map(|(n, s)| (n.to_string(), json!(round(*s)))).collect();
        json!({
            "wide_actions_per_s": self.wide_actions_per_s.map(round),
            "deep_seconds": self.deep_seconds.map(round),
            "mixed_actions_per_s": self.mixed_actions_per_s.map(round),
            "map_actions_per_s": self.map.iter().find(|(cap, _)| cap.is_none()).map(|(_, r)| round(*r)),
            "map_capped_actions_per_s": self.map.iter().find(|(cap, _)| cap.is_some()).map(|(_, r)| round(*r)),
            "scale_ratio_100k_over_10k": self.scale_ratio().map(round),
            "p50_dispatch_ms": latency.map(|l| round(l.p50_ms)),
            "p99_dispatch_ms": latency.map(|l| round(l.p99_ms)),
            "peak_rss_mb": self.peak_rss_mb.map(round),
            "celery_wide_actions_per_s": celery_wide.map(round),
            "celery_deep_seconds": celery_deep.map(round),
            "pg_floor_tps": self.pg_floor_tps.map(round),
            "wide_over_celery": both(self.wide_actions_per_s, celery_wide).map(|(a, c)| round(a / c)),
            "deep_speedup_over_celery": both(self.deep_seconds, celery_deep).map(|(a, c)| round(c / a)),
            "date": date,
            "mode": self.mode,
            "machine": self.machine,
            "postgres": self.postgres,
            "sizes": {"wide": self.wide_n, "deep": self.deep_n, "mixed_runs": self.mixed_runs,
                      "map_items": self.map_items,
                      "latency_actions_per_s": self.latency_rate},
            "scale_seconds": scale,
            "latency_actions_per_s_held": latency.map(|l| round(l.actions_per_s)),
            "celery_pools": pools,
            "commits_per_action": self.commits_per_action.iter()
                .map(|(k, v)| ((*k).to_owned(), json!(round(*v)))).collect::<Map<String, Value>>(),
        })
    }
}

/// Three significant decimals are plenty.
fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// A figure, or `-` when it was not measured.
fn show(x: Option<f64>, decimals: usize) -> String {
    x.map_or("-".to_owned(), |x| format!("{x:.decimals$}"))
}

fn both(a: Option<f64>, b: Option<f64>) -> Option<(f64, f64)> {
    a.zip(b)
}
