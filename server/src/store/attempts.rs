//! Attempts at actions: when each was sent, and how it ended.

use aetr_engine::NodeIdx;
use anyhow::Result;
use deadpool_postgres::GenericClient;
use futures_util::future::try_join3;
use uuid::Uuid;

use super::time::{from_system, opt_from_system, to_system};
use super::{flatten, PerRun};

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Executing,
    Complete,
    Error,
    TimedOut,
    Cancelled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Executing => "Executing",
            Status::Complete => "Complete",
            Status::Error => "Error",
            Status::TimedOut => "TimedOut",
            Status::Cancelled => "Cancelled",
        }
    }
}

/// The end of an attempt.
#[derive(Debug, Clone)]
pub struct Ended {
    pub idx: NodeIdx,
    pub n: u32,
    pub status: Status,
    pub error: Option<String>,
    pub http_status: Option<u16>,
    pub at: i64,
}

/// See [`insert`], [`supersede`] and [`finish`].
pub(crate) const INSERT_SQL: &str = "INSERT INTO attempts (run_id, idx, n, dispatched_at, status)
    SELECT u.run_id, u.idx, u.n, $4, 'Executing'
    FROM unnest($1::uuid[], $2::int[], $3::int[]) AS u(run_id, idx, n)
    ON CONFLICT DO NOTHING";
pub(crate) const SUPERSEDE_SQL: &str = "UPDATE attempts a
    SET status = 'Cancelled', error = 'superseded', finished_at = $4
    FROM unnest($1::uuid[], $2::int[], $3::int[]) AS u(run_id, idx, below)
    WHERE a.run_id = u.run_id AND a.idx = u.idx AND a.n < u.below
      AND a.status = 'Executing'";
pub(crate) const FINISH_SQL: &str = "UPDATE attempts a
    SET status = u.status, error = u.error,
        http_status = coalesce(u.http_status, a.http_status), finished_at = u.at
    FROM unnest($1::uuid[], $2::int[], $3::int[], $4::text[], $5::text[], $6::int[],
                $7::timestamptz[])
        AS u(run_id, idx, n, status, error, http_status, at)
    WHERE a.run_id = u.run_id AND a.idx = u.idx AND a.n = u.n";

/// Records what became of attempts of runs, in one round trip: the attempts `superseded`
/// (see [`supersede`]), those `sent` at `at` (see [`insert`]), and those `ended`, in this
/// order, so that an attempt sent and ended in one transaction is inserted, then finished.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn record(
    client: &impl GenericClient,
    superseded: &PerRun<'_, (NodeIdx, u32)>,
    sent: &PerRun<'_, (NodeIdx, u32)>,
    ended: &PerRun<'_, Ended>,
    at: i64,
) -> Result<()> {
    super::prepare(client, &[SUPERSEDE_SQL, INSERT_SQL, FINISH_SQL]).await?;
    try_join3(supersede(client, superseded, at), insert(client, sent, at), finish(client, ended))
        .await?;
    Ok(())
}

/// Records attempts of runs as sent at `at`. An attempt sent again (after its sender died)
/// keeps its first record.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn insert(
    client: &impl GenericClient,
    sent: &PerRun<'_, (NodeIdx, u32)>,
    at: i64,
) -> Result<()> {
    let (runs, idxs, ns) = columns(sent);
    if runs.is_empty() {
        return Ok(());
    }
    let statement = client.prepare_cached(INSERT_SQL).await?;
    client.execute(&statement, &[&runs, &idxs, &ns, &to_system(at)]).await?;
    Ok(())
}

/// Records that the attempts of nodes `(idx, below)` numbered below `below` that were still
/// executing were superseded (by an operator's action or a redrive): they end `Cancelled`.
#[tracing::instrument(level = "debug", skip_all)]
async fn supersede(
    client: &impl GenericClient,
    nodes: &PerRun<'_, (NodeIdx, u32)>,
    at: i64,
) -> Result<()> {
    let (runs, idxs, below) = columns(nodes);
    if runs.is_empty() {
        return Ok(());
    }
    let statement = client.prepare_cached(SUPERSEDE_SQL).await?;
    client.execute(&statement, &[&runs, &idxs, &below, &to_system(at)]).await?;
    Ok(())
}

/// The runs, nodes and attempt numbers of `rows`, as arrays.
fn columns(rows: &PerRun<'_, (NodeIdx, u32)>) -> (Vec<Uuid>, Vec<i32>, Vec<i32>) {
    let mut columns = (Vec::new(), Vec::new(), Vec::new());
    for (run, &(idx, n)) in flatten(rows) {
        columns.0.push(run);
        columns.1.push(idx as i32);
        columns.2.push(i32::try_from(n).unwrap_or(i32::MAX));
    }
    columns
}

/// Records how attempts of runs ended.
#[tracing::instrument(level = "debug", skip_all)]
async fn finish(client: &impl GenericClient, ended: &PerRun<'_, Ended>) -> Result<()> {
    let ended: Vec<(Uuid, &Ended)> = flatten(ended).collect();
    if ended.is_empty() {
        return Ok(());
    }
    let runs: Vec<Uuid> = ended.iter().map(|(run, _)| *run).collect();
    let idxs: Vec<i32> = ended.iter().map(|(_, e)| e.idx as i32).collect();
    let ns: Vec<i32> = ended.iter().map(|(_, e)| e.n as i32).collect();
    let statuses: Vec<&str> = ended.iter().map(|(_, e)| e.status.as_str()).collect();
    let errors: Vec<Option<&str>> = ended.iter().map(|(_, e)| e.error.as_deref()).collect();
    let http: Vec<Option<i32>> = ended.iter().map(|(_, e)| e.http_status.map(i32::from)).collect();
    let ats: Vec<std::time::SystemTime> = ended.iter().map(|(_, e)| to_system(e.at)).collect();
    let statement = client.prepare_cached(FINISH_SQL).await?;
    client.execute(&statement, &[&runs, &idxs, &ns, &statuses, &errors, &http, &ats]).await?;
    Ok(())
}

/// One attempt, as the API shows it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    pub n: u32,
    /// When it was sent, in epoch milliseconds.
    pub dispatched_at: i64,
    /// Executing, Complete, Error, TimedOut or Cancelled.
    pub status: String,
    pub error: Option<String>,
    /// The HTTP status of the POST's answer, when there was one.
    pub http_status: Option<u16>,
    pub finished_at: Option<i64>,
}

/// See [`of_node`].
pub(crate) const OF_NODE_SQL: &str =
    "SELECT n, dispatched_at, status, error, http_status, finished_at
    FROM attempts WHERE run_id = $1 AND idx = $2 ORDER BY n";

/// A node's attempts, first to last.
#[tracing::instrument(level = "debug", skip_all, fields(run = %run, node = idx))]
pub async fn of_node(client: &impl GenericClient, run: Uuid, idx: NodeIdx) -> Result<Vec<Attempt>> {
    let statement = client.prepare_cached(OF_NODE_SQL).await?;
    let rows = client.query(&statement, &[&run, &i32::try_from(idx)?]).await?;
    rows.iter()
        .map(|r| {
            Ok(Attempt {
                n: r.try_get::<_, i32>(0)? as u32,
                dispatched_at: from_system(r.try_get(1)?),
                status: r.try_get(2)?,
                error: r.try_get(3)?,
                http_status: r.try_get::<_, Option<i32>>(4)?.map(|s| s as u16),
                finished_at: opt_from_system(r.try_get(5)?),
            })
        })
        .collect()
}

/// A run's attempts, held while its nodes are replaced (a redrive on the latest definitions),
/// each to be put back on the node that its node became.
#[derive(Debug, Default)]
pub struct Held {
    /// The node of each attempt: where it was, then (after [`Held::move_to`]) where it goes;
    /// `None` drops it.
    idx: Vec<Option<i32>>,
    n: Vec<i32>,
    dispatched_at: Vec<std::time::SystemTime>,
    status: Vec<String>,
    error: Vec<Option<String>>,
    http_status: Vec<Option<i32>>,
    finished_at: Vec<Option<std::time::SystemTime>>,
}

impl Held {
    /// Moves each attempt to the node that `moved` maps its node to; the attempts of nodes that
    /// map to none are dropped.
    pub fn move_to(mut self, moved: impl Fn(NodeIdx) -> Option<NodeIdx>) -> Held {
        for idx in &mut self.idx {
            *idx = idx.and_then(|old| moved(old as NodeIdx)).map(|new| new as i32);
        }
        self
    }
}

/// See [`hold_all`].
pub(crate) const HOLD_ALL_SQL: &str =
    "SELECT idx, n, dispatched_at, status, error, http_status, finished_at
    FROM attempts WHERE run_id = $1 ORDER BY idx, n";

/// Reads all of a run's attempts, to put them back with [`put_back`].
#[tracing::instrument(level = "debug", skip_all, fields(run = %run))]
pub async fn hold_all(client: &impl GenericClient, run: Uuid) -> Result<Held> {
    let statement = client.prepare_cached(HOLD_ALL_SQL).await?;
    let mut held = Held::default();
    for r in client.query(&statement, &[&run]).await? {
        held.idx.push(Some(r.try_get(0)?));
        held.n.push(r.try_get(1)?);
        held.dispatched_at.push(r.try_get(2)?);
        held.status.push(r.try_get(3)?);
        held.error.push(r.try_get(4)?);
        held.http_status.push(r.try_get(5)?);
        held.finished_at.push(r.try_get(6)?);
    }
    Ok(held)
}

/// See [`put_back`].
pub(crate) const PUT_BACK_SQL: &str = "INSERT INTO attempts
        (run_id, idx, n, dispatched_at, status, error, http_status, finished_at)
    SELECT $1, u.idx, u.n, u.dispatched_at, u.status, u.error, u.http_status, u.finished_at
    FROM unnest($2::int[], $3::int[], $4::timestamptz[], $5::text[], $6::text[], $7::int[],
                $8::timestamptz[])
        AS u(idx, n, dispatched_at, status, error, http_status, finished_at)
    WHERE u.idx IS NOT NULL";

/// Puts held attempts back, each on the node it was moved to (see [`Held::move_to`]).
#[tracing::instrument(level = "debug", skip_all, fields(run = %run))]
pub async fn put_back(client: &impl GenericClient, run: Uuid, held: &Held) -> Result<()> {
    let statement = client.prepare_cached(PUT_BACK_SQL).await?;
    client
        .execute(
            &statement,
            &[
                &run,
                &held.idx,
                &held.n,
                &held.dispatched_at,
                &held.status,
                &held.error,
                &held.http_status,
                &held.finished_at,
            ],
        )
        .await?;
    Ok(())
}

statements!(INSERT_SQL, SUPERSEDE_SQL, FINISH_SQL, OF_NODE_SQL, HOLD_ALL_SQL, PUT_BACK_SQL);
