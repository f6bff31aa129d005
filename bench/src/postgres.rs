//! The PostgreSQL the bench uses: the server `DATABASE_URL` names, or a throwaway cluster started
//! the way `aetr server` starts its own (a Unix socket only, removed when the bench exits).
//! Each use gets a fresh database.

use aetr_server::db::embedded::{Cluster, Keep};
use aetr_server::db::{connect, quote_ident};
use anyhow::{Context, Result};

pub enum Postgres {
    /// The server `DATABASE_URL` names.
    Url(String),
    /// A throwaway cluster; its watchdog removes it if the bench dies.
    Cluster(Cluster),
}

impl Postgres {
    /// `statements`: load pg_stat_statements in a throwaway cluster; `planning`: and have it
    /// count planning time too (`--profile`).
    pub fn locate(statements: bool, planning: bool) -> Result<Postgres> {
        match std::env::var("DATABASE_URL") {
            Ok(url) if !url.is_empty() => Ok(Postgres::Url(url)),
            _ => {
                let dir =
                    std::env::temp_dir().join(format!("aetr-bench-pg-{}", std::process::id()));
                let start = || {
                    Cluster::start(&dir, Keep::Nothing)
                        .context("cannot start a throwaway PostgreSQL (or set DATABASE_URL)")
                };
                let made = start()?;
                if !statements {
                    return Ok(Postgres::Cluster(made));
                }
                // Started again with pg_stat_statements loaded, to count statements.
                let settings = made.dir().join("postgresql.auto.conf");
                made.stop()?;
                let mut auto = std::fs::OpenOptions::new().append(true).open(&settings)?;
                let mut settings = "shared_preload_libraries = 'pg_stat_statements'\n".to_owned();
                if planning {
                    settings += "pg_stat_statements.track_planning = on\n";
                }
                std::io::Write::write_all(&mut auto, settings.as_bytes())?;
                Ok(Postgres::Cluster(start()?))
            }
        }
    }

    /// Where the figures were taken, for the table.
    pub fn describe(&self) -> &'static str {
        match self {
            Postgres::Url(_) => "the PostgreSQL of DATABASE_URL",
            Postgres::Cluster(_) => "a throwaway PostgreSQL cluster (default settings)",
        }
    }

    /// The connection string for database `name` (the bench's names need no quoting): a URL,
    /// or `key=value` pairs, as libpq (pgbench) and tokio-postgres both read them.
    pub fn connection_string(&self, name: &str) -> Result<String> {
        Ok(match self {
            Postgres::Url(url)
                if url.starts_with("postgres://") || url.starts_with("postgresql://") =>
            {
                let mut url = url::Url::parse(url).context("DATABASE_URL is not a URL")?;
                url.set_path(name);
                url.to_string()
            }
            // In `key=value` form, a later key wins.
            Postgres::Url(pairs) => format!("{pairs} dbname={name}"),
            Postgres::Cluster(cluster) => cluster.connection_string(name),
        })
    }

    async fn admin(&self) -> Result<tokio_postgres::Client> {
        let config = self
            .connection_string("postgres")?
            .parse::<tokio_postgres::Config>()
            .context("a connection string")?;
        connect(&config).await
    }

    /// Drops database `name` if it is there, and makes it anew. Returns its connection string.
    pub async fn fresh_database(&self, name: &str) -> Result<String> {
        let admin = self.admin().await?;
        let name = quote_ident(name);
        admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await?;
        admin.batch_execute(&format!("CREATE DATABASE {name}")).await?;
        self.connection_string(name.trim_matches('"'))
    }

    pub async fn drop_database(&self, name: &str) -> Result<()> {
        let admin = self.admin().await?;
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(name)))
            .await?;
        Ok(())
    }

    /// The cluster's next transaction id: the difference between two readings counts the
    /// transactions that wrote (each one a commit that is flushed), in every database of the
    /// cluster, plus one for the reading.
    pub async fn next_xid(&self) -> Result<i64> {
        let row = self.admin().await?.query_one("SELECT txid_current()", &[]).await?;
        Ok(row.get(0))
    }

    /// The postmaster's process id, when the cluster runs on this machine (its processes are in
    /// /proc): the parent of its checkpointer.
    pub async fn postmaster_pid(&self) -> Option<i32> {
        let sql = "SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'";
        let row = self.admin().await.ok()?.query_opt(sql, &[]).await.ok()??;
        crate::cpu::parent(row.get(0))
    }

    /// Makes `pg_stat_statements`' view, for [`Postgres::statements`]: false where the module
    /// is not loaded (`shared_preload_libraries`), as in most clusters. The bench's own cluster
    /// loads it.
    pub async fn count_statements(&self) -> bool {
        let Ok(admin) = self.admin().await else { return false };
        admin.batch_execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements").await.is_ok()
    }

    /// The statements run so far in the whole cluster, by `pg_stat_statements` (see
    /// [`Postgres::count_statements`]).
    pub async fn statements(&self) -> Option<i64> {
        let admin = self.admin().await.ok()?;
        let row = admin
            .query_one("SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_statements", &[])
            .await
            .ok()?;
        Some(row.get(0))
    }

    /// Starts pg_stat_statements' counts again from nothing (see [`Postgres::top_statements`]).
    pub async fn reset_statements(&self) -> Result<()> {
        self.admin().await?.batch_execute("SELECT pg_stat_statements_reset()").await?;
        Ok(())
    }

    /// The `limit` statements that took the most time since the last
    /// [`Postgres::reset_statements`], as a table: calls and rows per action, the mean and
    /// total time (execution, and planning where `track_planning` is on), the part of it spent
    /// compiling by JIT, shared buffers touched and WAL written per call, and the statement's
    /// start.
    pub async fn top_statements(&self, limit: i64, actions: usize) -> Result<String> {
        let sql = "SELECT calls, rows, total_exec_time + total_plan_time AS ms,
                shared_blks_hit + shared_blks_read + shared_blks_dirtied AS blocks,
                wal_bytes::float8 AS wal, jit_generation_time + jit_inlining_time
                    + jit_optimization_time + jit_emission_time AS jit,
                regexp_replace(query, '\\s+', ' ', 'g') AS query
            FROM pg_stat_statements ORDER BY ms DESC LIMIT $1";
        let rows = self.admin().await?.query(sql, &[&limit]).await?;
        let n = actions.max(1) as f64;
        let mut table = format!(
            "{:>9} {:>8} {:>9} {:>9} {:>7} {:>8} {:>9}  statement\n",
            "calls/act", "rows/act", "mean ms", "total ms", "JIT ms", "blk/call", "WAL/call"
        );
        for row in rows {
            let calls: i64 = row.get("calls");
            let per_call = |v: f64| v / calls.max(1) as f64;
            let ms: f64 = row.get("ms");
            let blocks: i64 = row.get("blocks");
            let wal: f64 = row.get("wal");
            let query: String = row.get("query");
            table += &format!(
                "{:>9.3} {:>8.3} {:>9.3} {:>9.0} {:>7.0} {:>8.1} {:>9.0}  {}\n",
                calls as f64 / n,
                row.get::<_, i64>("rows") as f64 / n,
                per_call(ms),
                ms,
                row.get::<_, f64>("jit"),
                per_call(blocks as f64),
                per_call(wal),
                query.chars().take(120).collect::<String>()
            );
        }
        Ok(table)
    }

    /// PostgreSQL's version, for the table.
    pub async fn version(&self) -> Result<String> {
        let row = self.admin().await?.query_one("SHOW server_version", &[]).await?;
        Ok(row.get(0))
    }

    /// Lets a throwaway cluster go: its watchdog stops it and removes its directory (its
    /// `stop` would keep the directory).
    pub fn release(self) {
        drop(self);
    }
}
