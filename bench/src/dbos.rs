//! DBOS Transact (Python), the second peer: a private virtualenv with pinned packages from
//! PyPI, its system database a fresh database on the bench's PostgreSQL, and one process of
//! `bench/dbos/bench_dbos.py` per scenario (DBOS runs the workflows in the process that
//! launches it).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use std::os::unix::ffi::OsStrExt;

use anyhow::{bail, Context, Result};
use serde_json::Value;
use tokio_postgres::config::{Host, SslMode};

use crate::celery::virtualenv;
use crate::postgres::Postgres;
use crate::server::workspace_root;

/// What the virtualenv holds, pinned: DBOS, the HTTP client of the steps, and the database
/// stack under DBOS (the versions pip chose for dbos 3.4.0 when this was written).
const PACKAGES: &[&str] =
    &["dbos==3.4.0", "requests==2.32.3", "psycopg[binary]==3.3.9", "sqlalchemy==2.1.9"];
/// Whether the virtualenv is ready: Python exits 0.
const READY: &str =
    "import dbos, requests, importlib.metadata as m; assert m.version('dbos') == '3.4.0'";
/// What a scenario may take before it is called stuck (the driver gives up a little before).
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(1900);

/// DBOS's figures.
#[derive(Debug, Clone, Copy)]
pub struct DbosFigures {
    pub wide_actions_per_s: f64,
    /// The chain with each step's answer in its POST's response (the service's `/sync`).
    pub deep_seconds: f64,
    /// The chain with each step's answer in a callback: `DBOS.send` from an HTTP endpoint of
    /// the DBOS process, `DBOS.recv` in the workflow.
    pub deep_callback_seconds: f64,
    pub mixed_actions_per_s: f64,
}

/// The sizes of one run.
pub struct DbosSizes {
    pub wide: usize,
    pub deep: usize,
    pub mixed_runs: usize,
}

pub struct Dbos {
    python: PathBuf,
    logs: PathBuf,
}

impl Dbos {
    /// Makes the virtualenv (once; it is kept under target/).
    pub fn prepare(logs: &Path) -> Result<Dbos> {
        let python = virtualenv(&workspace_root().join("target/bench-venv-dbos"), PACKAGES, READY)?;
        Ok(Dbos { python, logs: logs.to_owned() })
    }

    /// Runs wide, deep (sync and callback) and mixed against `service` (the service's base
    /// URL), with DBOS's system database a fresh database on `pg`, dropped at the end.
    pub async fn measure(
        &self,
        pg: &Postgres,
        service: &str,
        sizes: &DbosSizes,
    ) -> Result<DbosFigures> {
        let database = format!("dbos_bench_{}", std::process::id());
        let url = sqlalchemy_url(&pg.fresh_database(&database).await?)?;
        let measured = self.scenarios(&url, service, sizes).await;
        let dropped = pg.drop_database(&database).await;
        let figures = measured?;
        dropped?;
        Ok(figures)
    }

    async fn scenarios(&self, url: &str, service: &str, sizes: &DbosSizes) -> Result<DbosFigures> {
        let wide_s = self.drive("wide", sizes.wide, url, service).await?;
        eprintln!("bench: dbos wide {wide_s:.2} s ({:.0} actions/s)", sizes.wide as f64 / wide_s);
        let deep_s = self.drive("deep", sizes.deep, url, service).await?;
        eprintln!("bench: dbos deep {deep_s:.2} s");
        let callback_s = self.drive("deep-callback", sizes.deep, url, service).await?;
        eprintln!("bench: dbos deep (callbacks) {callback_s:.2} s");
        let mixed_s = self.drive("mixed", sizes.mixed_runs, url, service).await?;
        let mixed = (3 * sizes.mixed_runs) as f64 / mixed_s;
        eprintln!("bench: dbos mixed {mixed_s:.2} s ({mixed:.0} actions/s)");
        Ok(DbosFigures {
            wide_actions_per_s: sizes.wide as f64 / wide_s,
            deep_seconds: deep_s,
            deep_callback_seconds: callback_s,
            mixed_actions_per_s: mixed,
        })
    }

    /// Runs one scenario in a process of its own; returns its seconds.
    async fn drive(&self, scenario: &str, n: usize, url: &str, service: &str) -> Result<f64> {
        let log = self.logs.join(format!("dbos-{scenario}.log"));
        let file = std::fs::File::create(&log)
            .with_context(|| format!("cannot write {}", log.display()))?;
        let mut driver = tokio::process::Command::new(&self.python);
        driver
            .current_dir(workspace_root().join("bench/dbos"))
            .env("BENCH_DBOS_URL", url)
            .env("PYTHONUNBUFFERED", "1")
            .args(["bench_dbos.py", scenario, &n.to_string(), service])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(file)
            .kill_on_drop(true);
        // Not `output()`, which would pipe stderr too (tokio's sets both pipes).
        let run = driver.spawn().context("cannot run bench_dbos.py")?.wait_with_output();
        let out = tokio::time::timeout(SCENARIO_TIMEOUT, run)
            .await
            .with_context(|| format!("DBOS's {scenario} did not end; its log: {}", log.display()))?
            .context("cannot run bench_dbos.py")?;
        if !out.status.success() {
            bail!("DBOS's {scenario} failed ({}); its log: {}", out.status, log.display());
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let line: Value = serde_json::from_str(text.lines().last().unwrap_or_default())
            .with_context(|| format!("bench_dbos.py printed {text}"))?;
        line["seconds"].as_f64().context("no seconds in DBOS's answer")
    }
}

/// The URL form of a connection string, as SQLAlchemy (and so DBOS) reads it: a
/// `postgres://` URL as it is (in the scheme SQLAlchemy knows), and libpq's `key=value` pairs
/// (read by tokio-postgres; the bench's throwaway cluster: a Unix socket's directory as the
/// host) as `postgresql://user[:password]@[host[:port]]/dbname`, with a socket's directory and
/// its port in the query (`?host=/dir&port=N`), where psycopg takes them.
fn sqlalchemy_url(connection: &str) -> Result<String> {
    if let Some(rest) = connection.strip_prefix("postgres://") {
        return Ok(format!("postgresql://{rest}"));
    }
    if connection.starts_with("postgresql://") {
        return Ok(connection.to_owned());
    }
    let config: tokio_postgres::Config =
        connection.parse().with_context(|| format!("{connection:?} is not a connection string"))?;
    let dbname = config.get_dbname().context("no dbname in the connection string")?;
    let mut url = String::from("postgresql://");
    if let Some(user) = config.get_user() {
        url.push_str(&percent_encoded(user.as_bytes()));
        if let Some(password) = config.get_password() {
            url.push(':');
            url.push_str(&percent_encoded(password));
        }
        url.push('@');
    }
    let mut query = Vec::new();
    let port = config.get_ports().first();
    match config.get_hosts().first() {
        Some(Host::Unix(dir)) => {
            query.push(format!("host={}", percent_encoded(dir.as_os_str().as_bytes())));
            query.extend(port.map(|port| format!("port={port}")));
        }
        Some(Host::Tcp(host)) => {
            url.push_str(host);
            url.extend(port.map(|port| format!(":{port}")));
        }
        None => {}
    }
    url.push('/');
    url.push_str(&percent_encoded(dbname.as_bytes()));
    match config.get_ssl_mode() {
        SslMode::Disable => query.push("sslmode=disable".into()),
        SslMode::Require => query.push("sslmode=require".into()),
        _ => {}
    }
    if let Some(timeout) = config.get_connect_timeout() {
        query.push(format!("connect_timeout={}", timeout.as_secs()));
    }
    if let Some(name) = config.get_application_name() {
        query.push(format!("application_name={}", percent_encoded(name.as_bytes())));
    }
    if !query.is_empty() {
        url.push('?');
        url.push_str(&query.join("&"));
    }
    Ok(url)
}

/// Percent-encodes all but the unreserved characters (RFC 3986), for any part of a URL.
fn percent_encoded(s: &[u8]) -> String {
    s.iter()
        .map(|&b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_cluster_becomes_a_url_with_the_socket_in_the_query() -> Result<()> {
        let pairs = "host='/tmp/aetr pg/x' port=54329 user=postgres dbname='dbos_bench_1'";
        assert_eq!(
            sqlalchemy_url(pairs)?,
            "postgresql://postgres@/dbos_bench_1?host=%2Ftmp%2Faetr%20pg%2Fx&port=54329"
        );
        Ok(())
    }

    #[test]
    fn tcp_pairs_and_urls() -> Result<()> {
        let pairs = "host=db port=5433 user=u password='a b\\'c' dbname=x dbname=y";
        assert_eq!(sqlalchemy_url(pairs)?, "postgresql://u:a%20b%27c@db:5433/y");
        assert_eq!(
            sqlalchemy_url("postgres://postgres@127.0.0.1:5432/d")?,
            "postgresql://postgres@127.0.0.1:5432/d"
        );
        Ok(())
    }
}
