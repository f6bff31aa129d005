//! The physical floor: pgbench's one-row UPDATE transactions per second, 8 clients, on the same
//! PostgreSQL instance as aetr.

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

/// Transactions per second over `seconds`.
pub async fn floor_tps(pg: &Postgres, seconds: u32, logs: &std::path::Path) -> Result<f64> {
    let pgbench = find()?;
    let conn = pg.fresh_database(DATABASE).await?;
    let init = Command::new(&pgbench).args(["-i", "-q", "-s", "1"]).arg(&conn).output()?;
    if !init.status.success() {
        bail!("pgbench -i failed: {}", String::from_utf8_lossy(&init.stderr));
    }
    let script = logs.join("pgbench-update.sql");
    std::fs::write(&script, SCRIPT)?;
    let out = Command::new(&pgbench)
        .args(["-n", "-c", "8", "-j", "2", "-M", "prepared", "-T", &seconds.to_string(), "-f"])
        .arg(&script)
        .arg(&conn)
        .output()?;
    pg.drop_database(DATABASE).await?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("pgbench failed: {}{}", text, String::from_utf8_lossy(&out.stderr));
    }
    text.lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no tps in pgbench's output: {text}"))
}
