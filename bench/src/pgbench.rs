//! The physical floors: pgbench's one-row UPDATE transactions, 8 clients and then one, on the
//! same PostgreSQL instance as aetr.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::postgres::Postgres;

const DATABASE: &str = "aetr_bench_pgbench";
const SCRIPT: &str = "\\set aid random(1, 100000)\nUPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = :aid;\n";

/// `pgbench` on PATH, or under /usr/lib/postgresql/*/bin (the newest).
fn find() -> Result<PathBuf> {
    if Command::new("pgbench").arg("--version").output().is_ok() {
        return Ok(PathBuf::from("pgbench"));
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|d| d.path().join("bin/pgbench"))
        .filter(|p| p.exists())
        .collect();
    found.sort();
    found.pop().context("no pgbench on PATH or in /usr/lib/postgresql/*/bin")
}

/// The floors that aetr's figures are divided by, measured on the same PostgreSQL.
#[derive(Debug, Clone, Copy)]
pub struct Floors {
    /// One-row UPDATE transactions a second from 8 clients: what a database that commits
    /// once per event could do at most.
    pub tps_8_clients: f64,
    /// One client's one-row UPDATE transaction, in ms: a commit's latency.
    pub commit_ms_1_client: f64,
}

/// pgbench with 8 clients for `seconds`, then with one client for `seconds`.
pub async fn floors(pg: &Postgres, seconds: u32, logs: &std::path::Path) -> Result<Floors> {
    let pgbench = find()?;
    let conn = pg.fresh_database(DATABASE).await?;
    let init = Command::new(&pgbench).args(["-i", "-q", "-s", "1"]).arg(&conn).output()?;
    if !init.status.success() {
        bail!("pgbench -i failed: {}", String::from_utf8_lossy(&init.stderr));
    }
    let script = logs.join("pgbench-update.sql");
    std::fs::write(&script, SCRIPT)?;
    let run = |clients: &str, threads: &str| -> Result<f64> {
        let out = Command::new(&pgbench)
            .args(["-n", "-c", clients, "-j", threads, "-M", "prepared", "-T"])
            .arg(seconds.to_string())
            .arg("-f")
            .arg(&script)
            .arg(&conn)
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            bail!("pgbench failed: {}{}", text, String::from_utf8_lossy(&out.stderr));
        }
        text.lines()
            .find_map(|l| l.strip_prefix("tps = "))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("no tps in pgbench's output: {text}"))
    };
    let floors = run("8", "2").and_then(|tps_8_clients| {
        let one = run("1", "1")?;
        Ok(Floors { tps_8_clients, commit_ms_1_client: 1000.0 / one })
    });
    pg.drop_database(DATABASE).await?;
    floors
}
