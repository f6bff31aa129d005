//! aetr's benchmark: its own `aetr server` on a fresh database, its own fast callback service,
//! the scenarios of issue 8, Celery and DBOS beside it and pgbench's floor. Prints a table, then
//! one JSON object as the last line; a full run also writes that object to bench/results/.
//!
//! cargo run --release -p aetr-bench             # the full run (about 10 minutes)
//! cargo run -p aetr-bench -- --quick             # small sizes, no Celery, DBOS or pgbench (CI)
#![forbid(unsafe_code)]

mod celery;
mod client;
mod cpu;
mod dbos;
mod meter;
mod pgbench;
mod postgres;
mod report;
mod scenarios;
mod server;
mod service;

use anyhow::{bail, Context, Result};
use clap::Parser;

use client::Api;
use meter::Meter;
use postgres::Postgres;
use report::Figures;
use scenarios::Bench;
use server::Server;
use service::Service;

/// aetr's benchmark (see bench/README.md).
#[derive(Debug, Parser)]
struct Args {
    /// Small sizes, without Celery and pgbench: checks that the bench still works (CI).
    #[arg(long)]
    quick: bool,
    /// Leave Celery out.
    #[arg(long)]
    no_celery: bool,
    /// Leave DBOS out.
    #[arg(long)]
    no_dbos: bool,
    /// Leave pgbench out.
    #[arg(long)]
    no_pgbench: bool,
    /// Celery worker pools to try, as kind:concurrency; the best is compared.
    #[arg(long, value_delimiter = ',', default_value = "prefork:2,threads:8")]
    celery_pools: Vec<String>,
    /// Don't load pg_stat_statements in the bench's own cluster (to see what counting
    /// statements costs; there are then no statement figures).
    #[arg(long)]
    no_statements: bool,
    /// Print, after each of aetr's scenarios, the statements that took PostgreSQL the most time
    /// (pg_stat_statements, with planning time), per action.
    #[arg(long, conflicts_with = "no_statements")]
    profile: bool,
    /// Don't write `bench/results/<date>.json` after a full run.
    #[arg(long)]
    no_save: bool,
    /// Run only these parts (for profiling; nothing is saved): latency, wide, deep, mixed,
    /// map, scale, celery, dbos, pgbench. DBOS runs in --quick (at its sizes) only when named.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// A setting for the aetr server, as KEY=VALUE (repeatable; for profiling: nothing is
    /// saved), e.g. --set AETR_DB_POOL_SIZE=8.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    settings: Vec<String>,
    /// The wide scenario's leaves, instead of the mode's (for profiling; nothing is saved).
    #[arg(long)]
    wide: Option<usize>,
}

/// The sizes of one mode.
struct Sizes {
    wide: usize,
    deep: usize,
    mixed_runs: usize,
    /// A Map's items, run without a cap and with [`MAP_CAP`].
    map_items: usize,
    /// The scale points besides `wide` itself: a tenth of it and ten times it.
    scale: [usize; 2],
    latency_rate: u32,
    latency_seconds: u32,
    pgbench_seconds: u32,
}

/// The `maxConcurrency` of the capped Map.
const MAP_CAP: u32 = 100;

const FULL: Sizes = Sizes {
    wide: 10_000,
    deep: 1_000,
    mixed_runs: 1_000,
    map_items: 100_000,
    scale: [1_000, 100_000],
    latency_rate: 1_000,
    latency_seconds: 20,
    pgbench_seconds: 15,
};

const QUICK: Sizes = Sizes {
    wide: 500,
    deep: 100,
    mixed_runs: 100,
    map_items: 500,
    scale: [50, 5_000],
    latency_rate: 200,
    latency_seconds: 3,
    pgbench_seconds: 0,
};

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let runtime =
        match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
            Ok(r) => r,
            Err(e) => {
                eprintln!("bench: no runtime: {e}");
                return std::process::ExitCode::FAILURE;
            }
        };
    match runtime.block_on(bench(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench FAILED: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn bench(args: Args) -> Result<()> {
    let mut sizes = if args.quick { QUICK } else { FULL };
    if let Some(wide) = args.wide {
        sizes.wide = wide;
    }
    let when = now_utc();
    let logs = server::workspace_root().join("target/bench-logs").join(&when.stamp);
    std::fs::create_dir_all(&logs)?;
    eprintln!("bench: building aetr");
    let aetr = server::build_aetr()?;
    let pg = Postgres::locate(!args.no_statements, args.profile)?;
    let mut figures = Figures {
        mode: if args.quick { "quick" } else { "full" },
        machine: machine(),
        postgres: format!("{} ({})", pg.version().await?, pg.describe()),
        wide_n: sizes.wide,
        deep_n: sizes.deep,
        mixed_runs: sizes.mixed_runs,
        map_items: sizes.map_items,
        latency_rate: sizes.latency_rate,
        ..Figures::default()
    };
    let database = format!("aetr_bench_{}", std::process::id());
    let url = pg.fresh_database(&database).await?;
    let service = Service::start().await?;
    eprintln!("bench: server log in {}", logs.join("aetr.log").display());
    let settings = args
        .settings
        .iter()
        .map(|kv| kv.split_once('=').with_context(|| format!("--set {kv}: not KEY=VALUE")))
        .collect::<Result<Vec<_>>>()?;
    let mut server = Server::start(&aetr, &url, &settings, logs.join("aetr.log")).await?;
    let meter = Meter::new(&pg, server.pid(), args.profile).await;
    let outcome =
        aetr_scenarios(&mut server, &service, &pg, &meter, &sizes, &args.only, &mut figures).await;
    let stopped = server.stop();
    outcome?;
    stopped?;
    ensure_no_lost_callbacks(&service)?;

    let chosen = |name: &str| args.only.is_empty() || args.only.iter().any(|o| o == name);
    if !args.quick && !args.no_celery && chosen("celery") {
        eprintln!("bench: Celery ({})", args.celery_pools.join(", "));
        let celery = celery::Celery::prepare(&logs)?;
        for pool in &args.celery_pools {
            let got = celery.measure(pool, &service.at("/sync"), sizes.wide, sizes.deep)?;
            eprintln!(
                "bench: celery {pool}: wide {:.0}/s, deep {:.2} s",
                got.wide_actions_per_s, got.deep_seconds
            );
            figures.celery.push(got);
        }
    }
    // DBOS is not part of --quick unless named (`--quick --only dbos`: DBOS at small sizes).
    let dbos_named = args.only.iter().any(|o| o == "dbos");
    if !args.no_dbos && (if args.quick { dbos_named } else { chosen("dbos") }) {
        eprintln!("bench: DBOS 3.4.0");
        let dbos = dbos::Dbos::prepare(&logs)?;
        let dbos_sizes =
            dbos::DbosSizes { wide: sizes.wide, deep: sizes.deep, mixed_runs: sizes.mixed_runs };
        figures.dbos = Some(dbos.measure(&pg, &service.url, &dbos_sizes).await?);
        ensure_no_lost_callbacks(&service)?;
    }
    if !args.quick && !args.no_pgbench && chosen("pgbench") {
        eprintln!("bench: pgbench, 8 clients then 1, {} s each", sizes.pgbench_seconds);
        figures.floors = Some(pgbench::floors(&pg, sizes.pgbench_seconds, &logs).await?);
    }
    service.stop().await;
    pg.drop_database(&database).await?;
    pg.release();

    let object = figures.json(&when.iso);
    print!("{}", figures.table());
    if !args.quick
        && !args.no_save
        && args.only.is_empty()
        && args.wide.is_none()
        && args.settings.is_empty()
    {
        let path =
            server::workspace_root().join("bench/results").join(format!("{}.json", when.stamp));
        std::fs::write(&path, format!("{}\n", serde_json::to_string_pretty(&object)?))
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("\nwritten to bench/results/{}.json", when.stamp);
    }
    println!("{object}");
    Ok(())
}

async fn aetr_scenarios(
    server: &mut Server,
    service: &Service,
    pg: &Postgres,
    meter: &Meter,
    sizes: &Sizes,
    only: &[String],
    figures: &mut Figures,
) -> Result<()> {
    let api = Api::new(server.api())?;
    let bench = Bench::new(&api, service).await?;
    let runs = |name: &str| only.is_empty() || only.iter().any(|o| o == name);

    // A first wide run warms the server (connections, script workers).
    bench.wide(sizes.scale[0]).await?;
    if runs("latency") {
        eprintln!(
            "bench: latency, {} actions/s for {} s",
            sizes.latency_rate, sizes.latency_seconds
        );
        let reset = server.reset_peak_rss();
        let latency = bench.latency(sizes.latency_rate, sizes.latency_seconds).await?;
        let rss = server.peak_rss_mb()?;
        if !reset {
            eprintln!(
                "bench: could not reset the peak RSS; it covers the server's whole life so far"
            );
        }
        eprintln!(
            "bench: p50 {:.2} ms, p99 {:.2} ms, peak RSS {rss:.0} MiB",
            latency.p50_ms, latency.p99_ms
        );
        figures.peak_rss_mb = Some(rss);
        figures.latency = Some(latency);
        server.check_alive()?;
    }
    let mut wide_s = None;
    if runs("wide") || runs("scale") {
        eprintln!("bench: wide, {} leaves", sizes.wide);
        let step = bench.wide_tree(sizes.wide).await?;
        let before = meter.begin(pg).await?;
        let secs = bench.run_wide(&step, sizes.wide).await?;
        figures.costs("wide", meter.end(pg, &before, sizes.wide, "wide").await?);
        figures.wide_actions_per_s = Some(sizes.wide as f64 / secs);
        eprintln!("bench: wide {secs:.2} s ({:.0} actions/s)", sizes.wide as f64 / secs);
        wide_s = Some(secs);
    }
    if runs("deep") {
        eprintln!("bench: deep, {} steps", sizes.deep);
        let step = bench.deep_tree(sizes.deep).await?;
        let before = meter.begin(pg).await?;
        let (secs, callback_to_post_ms) = bench.run_deep(&step, sizes.deep).await?;
        figures.costs("deep", meter.end(pg, &before, sizes.deep, "deep").await?);
        figures.deep_seconds = Some(secs);
        figures.deep_callback_to_post_ms = callback_to_post_ms;
        eprintln!("bench: deep {secs:.2} s");
    }
    if runs("mixed") {
        eprintln!("bench: mixed, {} runs", sizes.mixed_runs);
        let step = bench.mixed_tree().await?;
        let before = meter.begin(pg).await?;
        let rate = bench.run_mixed(&step, sizes.mixed_runs).await?;
        figures.costs("mixed", meter.end(pg, &before, 3 * sizes.mixed_runs, "mixed").await?);
        figures.mixed_actions_per_s = Some(rate);
        eprintln!("bench: mixed {rate:.0} actions/s");
    }
    if runs("map") {
        let n = sizes.map_items;
        for cap in [None, Some(MAP_CAP)] {
            eprintln!("bench: map, {n} items, maxConcurrency {cap:?}");
            let step = bench.map_tree(cap).await?;
            let before = meter.begin(pg).await?;
            let secs = bench.run_map(&step, n).await?;
            let scenario = if cap.is_some() { "map (capped)" } else { "map" };
            figures.costs(scenario, meter.end(pg, &before, n, scenario).await?);
            figures.map.push((cap, n as f64 / secs));
            eprintln!("bench: {scenario} {secs:.2} s ({:.0} actions/s)", n as f64 / secs);
        }
    }
    if let (true, Some(wide_s)) = (runs("scale"), wide_s) {
        let [small, big] = sizes.scale;
        eprintln!("bench: scale, {small} and {big} leaves");
        let small_s = bench.wide(small).await?;
        // The server's peak memory over a run of `big` leaves (100,001 nodes in the full run).
        let step = bench.wide_tree(big).await?;
        let reset = server.reset_peak_rss();
        let before = meter.begin(pg).await?;
        let big_s = bench.run_wide(&step, big).await?;
        figures.costs("scale (largest)", meter.end(pg, &before, big, "scale (largest)").await?);
        figures.large_run_rss_mb = reset.then(|| server.peak_rss_mb()).transpose()?;
        figures.scale = vec![(small, small_s), (sizes.wide, wide_s), (big, big_s)];
        eprintln!("bench: scale {small_s:.2} s, {wide_s:.2} s, {big_s:.2} s");
    }
    server.check_alive()
}

fn ensure_no_lost_callbacks(service: &Service) -> Result<()> {
    let failed = service.callbacks_failed();
    if failed > 0 {
        bail!("{failed} callbacks were not accepted by aetr");
    }
    Ok(())
}

/// The machine, for the record: cores and CPU model.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores, {model}")
}

struct When {
    /// 2026-11-25T02:10:00Z
    iso: String,
    /// 2026-11-25T0210Z, for file names
    stamp: String,
}

fn now_utc() -> When {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (h, m, s) = (rest / 3600, rest % 3600 / 60, rest % 60);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    When {
        iso: format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z"),
        stamp: format!("{year:04}-{month:02}-{day:02}T{h:02}{m:02}Z"),
    }
}
