//! The figures: a readable table, and one JSON object (the last line printed).

use serde_json::{json, Map, Value};

use crate::celery::PoolFigures;
use crate::dbos::DbosFigures;
use crate::meter::PerAction;
use crate::pgbench::Floors;
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
    /// deep's median time from the service's callback to the next step's POST: the part of a
    /// step that aetr spends (the rest is the POST, its answer and the callback's sending).
    pub deep_callback_to_post_ms: Option<f64>,
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
    /// The server's peak RSS over the largest scale point's run (100,001 nodes in full mode).
    pub large_run_rss_mb: Option<f64>,
    pub celery: Vec<PoolFigures>,
    pub dbos: Option<DbosFigures>,
    pub floors: Option<Floors>,
    /// Each scenario's costs per action: writing transactions and statements (every database
    /// of the cluster counts), PostgreSQL's and aetr's CPU time.
    pub costs: Vec<(&'static str, PerAction)>,
}

impl Figures {
    pub fn costs(&mut self, scenario: &'static str, per_action: PerAction) {
        self.costs.push((scenario, per_action));
    }

    fn cost(&self, scenario: &str) -> Option<&PerAction> {
        self.costs.iter().find(|(s, _)| *s == scenario).map(|(_, c)| c)
    }

    /// wide's actions a second over pgbench's commits a second with 8 clients (target >= 1).
    fn wide_over_floor(&self) -> Option<f64> {
        both(self.wide_actions_per_s, self.floors.map(|f| f.tps_8_clients)).map(|(w, f)| w / f)
    }

    /// A deep step's time over one client's commit (target <= 2.5).
    fn deep_step_over_commit(&self) -> Option<f64> {
        let step_ms = self.deep_seconds.map(|s| s * 1000.0 / self.deep_n as f64);
        both(step_ms, self.floors.map(|f| f.commit_ms_1_client)).map(|(s, c)| s / c)
    }

    /// The uncapped Map's actions a second over wide's (target >= 1).
    fn map_over_wide(&self) -> Option<f64> {
        let map = self.map.iter().find(|(cap, _)| cap.is_none()).map(|(_, r)| *r);
        both(map, self.wide_actions_per_s).map(|(m, w)| m / w)
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

    /// aetr's ratios over DBOS, each > 1 where aetr is faster: wide and mixed as aetr's
    /// actions/s over DBOS's, deep (sync steps, then callbacks) as DBOS's seconds over aetr's.
    fn over_dbos(&self) -> [Option<f64>; 4] {
        let d = self.dbos.as_ref();
        [
            both(self.wide_actions_per_s, d.map(|d| d.wide_actions_per_s)).map(|(a, d)| a / d),
            both(self.deep_seconds, d.map(|d| d.deep_seconds)).map(|(a, d)| d / a),
            both(self.deep_seconds, d.map(|d| d.deep_callback_seconds)).map(|(a, d)| d / a),
            both(self.mixed_actions_per_s, d.map(|d| d.mixed_actions_per_s)).map(|(a, d)| a / d),
        ]
    }

    pub fn table(&self) -> String {
        let mut out = String::new();
        let line = |out: &mut String, cells: [&str; 5]| {
            out.push_str(&format!(
                "{:<40} {:>16} {:>20} {:>9}  {}\n",
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
        let wide = self.cost("wide");
        line(
            &mut out,
            [
                &format!("wide: {} leaves, actions/s", self.wide_n),
                &show(self.wide_actions_per_s, 0),
                &celery_wide.map_or("-".to_owned(), |c| format!("{c:.0}")),
                &ratio(both(self.wide_actions_per_s, celery_wide).map(|(a, c)| a / c)),
                "",
            ],
        );
        line(
            &mut out,
            ["  / pgbench's tx/s, 8 clients", &show(self.wide_over_floor(), 2), "", "", ">= 1.0"],
        );
        line(
            &mut out,
            [
                "  PostgreSQL's CPU, us an action",
                &show(wide.and_then(|c| c.pg_cpu_us), 0),
                "",
                "",
                "<= 80",
            ],
        );
        line(
            &mut out,
            ["  aetr's CPU, us an action", &show(wide.map(|c| c.aetr_cpu_us), 0), "", "", "<= 50"],
        );
        line(
            &mut out,
            [
                &format!("deep: {}-step chain, seconds", self.deep_n),
                &show(self.deep_seconds, 2),
                &celery_deep.map_or("-".to_owned(), |c| format!("{c:.2}")),
                &ratio(both(self.deep_seconds, celery_deep).map(|(a, c)| c / a)),
                "",
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
                "",
            ],
        );
        line(
            &mut out,
            [
                "  of it callback -> next POST, ms (p50)",
                &show(self.deep_callback_to_post_ms, 2),
                "",
                "",
                "",
            ],
        );
        line(
            &mut out,
            [
                "  / a commit's time, 1 client",
                &show(self.deep_step_over_commit(), 2),
                "",
                "",
                "<= 2.5",
            ],
        );
        line(
            &mut out,
            [
                &format!("mixed: {} runs, actions/s", self.mixed_runs),
                &show(self.mixed_actions_per_s, 0),
                "",
                "",
                "",
            ],
        );
        for (cap, rate) in &self.map {
            let cap = cap.map_or("no cap".to_owned(), |c| format!("maxConcurrency {c}"));
            line(
                &mut out,
                [
                    &format!("map: {} items, {cap}, actions/s", self.map_items),
                    &format!("{rate:.0}"),
                    "",
                    "",
                    "",
                ],
            );
        }
        line(&mut out, ["  map (no cap) / wide", &show(self.map_over_wide(), 2), "", "", ">= 1.0"]);
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
        line(
            &mut out,
            ["server's peak RSS at that rate, MiB", &show(self.peak_rss_mb, 0), "", "", ""],
        );
        line(
            &mut out,
            [
                "  over the largest scale run, MiB",
                &show(self.large_run_rss_mb, 0),
                "",
                "",
                "<= 150 MB",
            ],
        );
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
        if let Some(d) = &self.dbos {
            let [wide, deep, callback, mixed] = self.over_dbos();
            line(&mut out, ["DBOS 3.4.0 (one process)", "aetr", "dbos", "ratio", "aetr over DBOS"]);
            // Each row: its label, aetr's figure and DBOS's, their decimals, and the ratio.
            let rows = [
                (
                    format!("  wide: {} steps, actions/s", self.wide_n),
                    self.wide_actions_per_s,
                    d.wide_actions_per_s,
                    0,
                    wide,
                    "aetr / DBOS",
                ),
                (
                    format!("  deep: {} steps, s (sync steps)", self.deep_n),
                    self.deep_seconds,
                    d.deep_seconds,
                    2,
                    deep,
                    "DBOS / aetr",
                ),
                (
                    "  deep: s (callbacks: send/recv)".to_owned(),
                    self.deep_seconds,
                    d.deep_callback_seconds,
                    2,
                    callback,
                    "DBOS / aetr",
                ),
                (
                    format!("  mixed: {} runs, actions/s", self.mixed_runs),
                    self.mixed_actions_per_s,
                    d.mixed_actions_per_s,
                    0,
                    mixed,
                    "aetr / DBOS",
                ),
            ];
            for (label, aetr, dbos, decimals, over, how) in rows {
                let dbos = format!("{dbos:.decimals$}");
                line(&mut out, [&label, &show(aetr, decimals), &dbos, &ratio(over), how]);
            }
        }
        line(
            &mut out,
            ["an action's costs:", "commits", "statements", "", "CPU us: PostgreSQL, aetr"],
        );
        for (scenario, c) in &self.costs {
            line(
                &mut out,
                [
                    &format!("  {scenario}"),
                    &format!("{:.2}", c.commits),
                    &show(c.statements, 1),
                    "",
                    &format!("{}, {:.0}", show(c.pg_cpu_us, 0), c.aetr_cpu_us),
                ],
            );
        }
        if let Some(f) = self.floors {
            line(
                &mut out,
                [
                    "pgbench: one-row UPDATE, 8 clients, tx/s",
                    &format!("{:.0}", f.tps_8_clients),
                    "",
                    "",
                    "the floors",
                ],
            );
            line(
                &mut out,
                ["  1 client, ms a commit", &format!("{:.3}", f.commit_ms_1_client), "", "", ""],
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
        let mut object = json!({
            "wide_actions_per_s": self.wide_actions_per_s.map(round),
            "deep_seconds": self.deep_seconds.map(round),
            "deep_callback_to_post_ms": self.deep_callback_to_post_ms.map(round),
            "mixed_actions_per_s": self.mixed_actions_per_s.map(round),
            "map_actions_per_s": self.map.iter().find(|(cap, _)| cap.is_none()).map(|(_, r)| round(*r)),
            "map_capped_actions_per_s": self.map.iter().find(|(cap, _)| cap.is_some()).map(|(_, r)| round(*r)),
            "scale_ratio_100k_over_10k": self.scale_ratio().map(round),
            "p50_dispatch_ms": latency.map(|l| round(l.p50_ms)),
            "p99_dispatch_ms": latency.map(|l| round(l.p99_ms)),
            "peak_rss_mb": self.peak_rss_mb.map(round),
            "celery_wide_actions_per_s": celery_wide.map(round),
            "celery_deep_seconds": celery_deep.map(round),
            "pg_floor_tps": self.floors.map(|f| round(f.tps_8_clients)),
            "pg_commit_ms_1_client": self.floors.map(|f| round(f.commit_ms_1_client)),
            "wide_over_pg_floor": self.wide_over_floor().map(round),
            "deep_step_over_commit": self.deep_step_over_commit().map(round),
            "map_over_wide": self.map_over_wide().map(round),
            "large_run_peak_rss_mb": self.large_run_rss_mb.map(round),
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
            "commits_per_action": self.per_scenario(|c| Some(c.commits)),
            "statements_per_action": self.per_scenario(|c| c.statements),
            "pg_cpu_us_per_action": self.per_scenario(|c| c.pg_cpu_us),
            "aetr_cpu_us_per_action": self.per_scenario(|c| Some(c.aetr_cpu_us)),
        });
        // DBOS's figures and aetr's ratios over them (null where DBOS did not run).
        let d = self.dbos.as_ref();
        let [wide, deep, callback, mixed] = self.over_dbos();
        let dbos = json!({
            "dbos_wide_actions_per_s": d.map(|d| round(d.wide_actions_per_s)),
            "dbos_deep_seconds": d.map(|d| round(d.deep_seconds)),
            "dbos_deep_callback_seconds": d.map(|d| round(d.deep_callback_seconds)),
            "dbos_mixed_actions_per_s": d.map(|d| round(d.mixed_actions_per_s)),
            "wide_over_dbos": wide.map(round),
            "deep_speedup_over_dbos": deep.map(round),
            "deep_callback_speedup_over_dbos": callback.map(round),
            "mixed_over_dbos": mixed.map(round),
        });
        if let (Value::Object(all), Value::Object(dbos)) = (&mut object, dbos) {
            all.extend(dbos);
        }
        object
    }
}

impl Figures {
    /// One cost of each scenario, by name (null where it was not measured).
    fn per_scenario(&self, figure: impl Fn(&PerAction) -> Option<f64>) -> Map<String, Value> {
        self.costs.iter().map(|(k, c)| ((*k).to_owned(), json!(figure(c).map(round)))).collect()
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
