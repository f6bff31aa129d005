//! What a scenario cost: the cluster's writing transactions (commits), its statements, and the
//! CPU time of PostgreSQL's processes and of the aetr server's, read before and after it.

use anyhow::Result;

use crate::cpu;
use crate::postgres::Postgres;

/// How many statements `--profile` shows a scenario.
const PROFILE_LINES: i64 = 15;

/// Reads the costs of one cluster and one server.
pub struct Meter {
    server: i32,
    /// `None`: the cluster is not on this machine, and its CPU is not known.
    postmaster: Option<i32>,
    /// pg_stat_statements is loaded: statements are counted.
    statements: bool,
    /// Print each scenario's costliest statements (`--profile`).
    profile: bool,
}

/// The counters at one moment.
#[derive(Debug, Clone, Copy)]
pub struct Reading {
    xid: i64,
    statements: Option<i64>,
    pg_cpu_s: Option<f64>,
    aetr_cpu_s: f64,
}

/// A scenario's costs, per action.
#[derive(Debug, Clone, Copy)]
pub struct PerAction {
    pub commits: f64,
    pub statements: Option<f64>,
    pub pg_cpu_us: Option<f64>,
    pub aetr_cpu_us: f64,
}

impl Meter {
    pub async fn new(pg: &Postgres, server: i32, profile: bool) -> Meter {
        let postmaster = pg.postmaster_pid().await;
        if postmaster.is_none() {
            eprintln!(
                "bench: PostgreSQL's processes are not on this machine: no CPU figures for it"
            );
        }
        let statements = pg.count_statements().await;
        if profile && !statements {
            eprintln!("bench: --profile needs pg_stat_statements: no statements will be shown");
        }
        Meter { server, postmaster, statements, profile: profile && statements }
    }

    /// The reading before a scenario. With `--profile`, pg_stat_statements starts again from
    /// nothing first, so that [`Meter::end`] shows this scenario's statements alone.
    pub async fn begin(&self, pg: &Postgres) -> Result<Reading> {
        if self.profile {
            pg.reset_statements().await?;
        }
        self.read(pg).await
    }

    /// A scenario's costs per action since `before`; with `--profile`, its costliest
    /// statements are printed.
    pub async fn end(
        &self,
        pg: &Postgres,
        before: &Reading,
        actions: usize,
        scenario: &str,
    ) -> Result<PerAction> {
        let after = self.read(pg).await?;
        if self.profile {
            eprintln!("bench: {scenario}: the statements that took the most time");
            eprintln!("{}", pg.top_statements(PROFILE_LINES, actions).await?);
        }
        Ok(after.since(before, actions))
    }

    async fn read(&self, pg: &Postgres) -> Result<Reading> {
        let xid = pg.next_xid().await?;
        let statements = match self.statements {
            true => pg.statements().await,
            false => None,
        };
        let roots: Vec<i32> = std::iter::once(self.server).chain(self.postmaster).collect();
        let cpu = cpu::seconds(&roots)?;
        Ok(Reading { xid, statements, aetr_cpu_s: cpu[0], pg_cpu_s: cpu.get(1).copied() })
    }
}

impl Reading {
    /// What happened since `before`, per action. The readings' own transaction and statements
    /// (one xid, and the few statements of a reading) are left out.
    pub fn since(&self, before: &Reading, actions: usize) -> PerAction {
        /// The statements that one reading runs, as pg_stat_statements counts them: its
        /// `txid_current()` and its sum of the counts.
        const READING_STATEMENTS: i64 = 2;
        let n = actions.max(1) as f64;
        let statements = self.statements.zip(before.statements);
        PerAction {
            commits: (self.xid - before.xid - 1).max(0) as f64 / n,
            statements: statements.map(|(a, b)| (a - b - READING_STATEMENTS).max(0) as f64 / n),
            pg_cpu_us: self.pg_cpu_s.zip(before.pg_cpu_s).map(|(a, b)| (a - b) * 1e6 / n),
            aetr_cpu_us: (self.aetr_cpu_s - before.aetr_cpu_s) * 1e6 / n,
        }
    }
}
