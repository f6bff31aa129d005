//! Reading runs for the API: nodes down to a depth, one node, a page of children, a page of runs.

use aetr_engine::machine::{Phase, State};
use aetr_engine::NodeIdx;
use anyhow::{Context, Result};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use uuid::Uuid;

use super::nodes::phase_of;
use super::time::{from_system, opt_from_system};

/// A node's state as the API shows it.
#[derive(Debug, Clone)]
pub struct NodeRow {
    pub idx: NodeIdx,
    pub phase: Phase,
    pub input: Option<String>,
    pub result: Option<String>,
    pub output: Option<String>,
    pub error: Option<String>,
    pub attempt: u32,
    pub started_at: Option<i64>,
    pub completed_at: Option<i64>,
    /// Ready: not to be sent before. Executing (an action): its deadline.
    pub due_at: Option<i64>,
}

/// The columns that [`node_of`] reads.
macro_rules! node_columns {
    () => {
        "n.idx, n.phase, n.input, n.result, n.output, n.error, n.attempt, n.started_at, \
         n.completed_at, n.due_at"
    };
}

/// How many children of each parent are in each state.
#[derive(Debug, Clone, Copy)]
pub struct ChildCount {
    pub parent: NodeIdx,
    pub state: State,
    pub count: u32,
}

/// See [`nodes_to_depth`].
pub(crate) const NODES_TO_DEPTH_SQL: &str = concat!(
    "SELECT ",
    node_columns!(),
    " FROM run_nodes n WHERE n.run_id = $1 AND ($2::int IS NULL OR n.depth <= $2)
      ORDER BY n.idx"
);

/// A run's nodes down to `depth` levels below the root (all of them for `None`), in idx order.
#[tracing::instrument(level = "debug", skip_all, fields(run = %run))]
pub async fn nodes_to_depth(
    client: &impl GenericClient,
    run: Uuid,
    depth: Option<u32>,
) -> Result<Vec<NodeRow>> {
    let depth = depth.map(|d| d.min(i32::MAX as u32) as i32);
    let statement = client.prepare_cached(NODES_TO_DEPTH_SQL).await?;
    let rows = client.query(&statement, &[&run, &depth]).await?;
    rows.iter().map(node_of).collect()
}

/// See [`node`].
pub(crate) const NODE_SQL: &str =
    concat!("SELECT ", node_columns!(), " FROM run_nodes n WHERE n.run_id = $1 AND n.idx = $2");

/// One node.
#[tracing::instrument(level = "debug", skip_all, fields(run = %run, node = idx))]
pub async fn node(client: &impl GenericClient, run: Uuid, idx: NodeIdx) -> Result<Option<NodeRow>> {
    let statement = client.prepare_cached(NODE_SQL).await?;
    let row = client.query_opt(&statement, &[&run, &(idx as i32)]).await?;
    row.as_ref().map(node_of).transpose()
}

/// A page of a node's children (see [`children`]). Public for the tests that check its plan.
pub const CHILDREN_SQL: &str = concat!(
    "SELECT ",
    node_columns!(),
    " FROM run_nodes n WHERE n.run_id = $1 AND n.parent_idx = $2 AND n.idx > $3
      ORDER BY n.idx LIMIT $4"
);

/// A page of a node's children, after child `after` (by idx).
#[tracing::instrument(level = "debug", skip_all, fields(run = %run))]
pub async fn children(
    client: &impl GenericClient,
    run: Uuid,
    parent: NodeIdx,
    after: Option<NodeIdx>,
    limit: i64,
) -> Result<Vec<NodeRow>> {
    let after = after.map_or(-1, |a| a as i32);
    let statement = client.prepare_cached(CHILDREN_SQL).await?;
    let rows = client.query(&statement, &[&run, &(parent as i32), &after, &limit]).await?;
    rows.iter().map(node_of).collect()
}

/// See [`child_counts`].
pub(crate) const CHILD_COUNTS_SQL: &str = "SELECT parent_idx, phase, count(*) FROM run_nodes
    WHERE run_id = $1 AND parent_idx = ANY($2) GROUP BY parent_idx, phase";

/// The states of the children of `parents`.
#[tracing::instrument(level = "debug", skip_all, fields(run = %run))]
pub async fn child_counts(
    client: &impl GenericClient,
    run: Uuid,
    parents: &[NodeIdx],
) -> Result<Vec<ChildCount>> {
    if parents.is_empty() {
        return Ok(Vec::new());
    }
    let parents: Vec<i32> = parents.iter().map(|&p| p as i32).collect();
    let statement = client.prepare_cached(CHILD_COUNTS_SQL).await?;
    let rows = client.query(&statement, &[&run, &parents]).await?;
    rows.iter()
        .map(|r| {
            Ok(ChildCount {
                parent: r.try_get::<_, i32>(0)? as NodeIdx,
                state: phase_of(r.try_get(1)?)?.state(),
                count: r.try_get::<_, i64>(2)? as u32,
            })
        })
        .collect()
}

/// See [`run_counts`].
pub(crate) const RUN_COUNTS_SQL: &str = "SELECT state, count(*) FROM runs
    WHERE ($1::uuid IS NULL OR step_id = $1) AND NOT dry_run GROUP BY state";

/// How many runs are in each state, of one root step or of all.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn run_counts(
    client: &impl GenericClient,
    step: Option<Uuid>,
) -> Result<Vec<(State, u64)>> {
    let statement = client.prepare_cached(RUN_COUNTS_SQL).await?;
    let rows = client.query(&statement, &[&step]).await?;
    rows.iter()
        .map(|r| {
            let name: &str = r.try_get(0)?;
            let state =
                State::parse(name).with_context(|| format!("unknown run state {name:?}"))?;
            Ok((state, r.try_get::<_, i64>(1)? as u64))
        })
        .collect()
}

/// See [`node_counts`].
pub(crate) const NODE_COUNTS_SQL: &str = "SELECT phase, count(*) FROM run_nodes
    WHERE run_id = $1 AND idx = ANY($2) GROUP BY phase";

/// How many of a run's nodes `idxs` are in each state.
#[tracing::instrument(level = "debug", skip_all, fields(run = %run))]
pub async fn node_counts(
    client: &impl GenericClient,
    run: Uuid,
    idxs: &[NodeIdx],
) -> Result<Vec<(State, u64)>> {
    let idxs: Vec<i32> = idxs.iter().map(|&i| i as i32).collect();
    let statement = client.prepare_cached(NODE_COUNTS_SQL).await?;
    let rows = client.query(&statement, &[&run, &idxs]).await?;
    rows.iter()
        .map(|r| Ok((phase_of(r.try_get(0)?)?.state(), r.try_get::<_, i64>(1)? as u64)))
        .collect()
}

/// A run, as its list shows it: its own row and its root node.
#[derive(Debug, Clone)]
pub struct RunRow {
    pub id: Uuid,
    pub step_id: Uuid,
    pub step_name: String,
    pub step_type: String,
    pub created_at: i64,
    pub node_count: u32,
    pub failed_node: Option<NodeIdx>,
    pub schedule_id: Option<Uuid>,
    pub dry_run: bool,
    pub root: NodeRow,
}

/// A page of runs (see [`runs`]). Public for the tests that check its plan.
pub const RUNS_SQL: &str = concat!(
    "SELECT r.id, r.step_id, r.step_name, r.step_type, r.created_at, r.node_count,
            r.failed_node, r.schedule_id, r.dry_run, ",
    node_columns!(),
    " FROM runs r JOIN run_nodes n ON n.run_id = r.id AND n.idx = 0
      WHERE ($1::text IS NULL OR r.state = $1) AND ($2::uuid IS NULL OR r.step_id = $2)
        AND ($3::uuid IS NULL OR r.id < $3) AND ($5::uuid IS NULL OR r.schedule_id = $5)
        AND ($6::bool IS NULL OR r.dry_run = $6)
      ORDER BY r.id DESC LIMIT $4"
);

/// Which runs a list shows.
#[derive(Debug, Clone, Copy)]
pub struct RunFilter {
    pub state: Option<State>,
    pub step: Option<Uuid>,
    pub schedule: Option<Uuid>,
    /// Only dry runs (`Some(true)`), only real ones (`Some(false)`, the default), or both.
    pub dry: Option<bool>,
}

impl Default for RunFilter {
    fn default() -> Self {
        RunFilter { state: None, step: None, schedule: None, dry: Some(false) }
    }
}

/// A page of runs, newest first, filtered by state, root step and schedule.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn runs(
    client: &impl GenericClient,
    filter: RunFilter,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<RunRow>> {
    let state = filter.state.map(State::as_str);
    let statement = client.prepare_cached(RUNS_SQL).await?;
    let rows = client
        .query(&statement, &[&state, &filter.step, &before, &limit, &filter.schedule, &filter.dry])
        .await?;
    rows.iter()
        .map(|r| {
            Ok(RunRow {
                id: r.try_get("id")?,
                step_id: r.try_get("step_id")?,
                step_name: r.try_get("step_name")?,
                step_type: r.try_get("step_type")?,
                created_at: from_system(r.try_get("created_at")?),
                node_count: r.try_get::<_, i32>("node_count")? as u32,
                failed_node: r.try_get::<_, Option<i32>>("failed_node")?.map(|n| n as NodeIdx),
                schedule_id: r.try_get("schedule_id")?,
                dry_run: r.try_get("dry_run")?,
                root: node_of(r)?,
            })
        })
        .collect()
}

/// An action node that is Pending or Executing, with its run.
#[derive(Debug, Clone)]
pub struct ActiveNode {
    pub run: Uuid,
    pub run_created_at: i64,
    pub node: NodeRow,
}

/// See [`active_nodes`]. A run that is not Pending or Executing has no such node, so the runs'
/// state index narrows the search; a node with no children is a leaf.
pub(crate) const ACTIVE_NODES_SQL: &str = concat!(
    "SELECT r.id AS run_id, r.created_at AS run_created_at, ",
    node_columns!(),
    " FROM runs r JOIN run_nodes n ON n.run_id = r.id
      WHERE r.state IN ('Pending', 'Executing')
        AND n.phase IN ('Waiting', 'Ready', 'Executing', 'Received')
        AND NOT EXISTS (SELECT 1 FROM run_nodes c WHERE c.run_id = n.run_id AND c.parent_idx = n.idx)
        AND ($1::uuid IS NULL OR r.id < $1 OR (r.id = $1 AND n.idx > $2))
      ORDER BY r.id DESC, n.idx LIMIT $3"
);

/// A page of the leaf nodes that are Pending or Executing: the newest runs first, each run's in
/// node order, after `after` (a run and a node of it).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn active_nodes(
    client: &impl GenericClient,
    after: Option<(Uuid, NodeIdx)>,
    limit: i64,
) -> Result<Vec<ActiveNode>> {
    let (run, idx) = (after.map(|a| a.0), after.map_or(0, |a| a.1 as i32));
    let statement = client.prepare_cached(ACTIVE_NODES_SQL).await?;
    let rows = client.query(&statement, &[&run, &idx, &limit]).await?;
    rows.iter()
        .map(|r| {
            Ok(ActiveNode {
                run: r.try_get("run_id")?,
                run_created_at: from_system(r.try_get("run_created_at")?),
                node: node_of(r)?,
            })
        })
        .collect()
}

/// See [`failed_node`].
pub(crate) const FAILED_NODE_SQL: &str = "SELECT failed_node FROM runs WHERE id = $1";

/// The node that failed a run, if it failed.
#[tracing::instrument(level = "debug", skip_all, fields(run = %run))]
pub async fn failed_node(client: &impl GenericClient, run: Uuid) -> Result<Option<NodeIdx>> {
    let statement = client.prepare_cached(FAILED_NODE_SQL).await?;
    let row = client.query_opt(&statement, &[&run]).await?;
    Ok(row.and_then(|r| r.get::<_, Option<i32>>(0)).map(|n| n as NodeIdx))
}

/// Work waiting in the whole database, for the metrics' gauges.
#[derive(Debug, Clone, Copy, Default)]
pub struct WaitingWork {
    /// Actions due, backing off, or parked (`Ready`).
    pub pending_actions: i64,
    /// Actions sent (or waiting) with a deadline: most api actions, waits, manual ones.
    pub executing_actions: i64,
    pub pending_runs: i64,
    pub executing_runs: i64,
}

/// See [`waiting_work`]. Each count reads a partial index (`run_nodes_due`,
/// `run_nodes_deadline`) or `runs_state`, so it costs the rows counted, not the tables.
pub(crate) const WAITING_WORK_SQL: &str = "SELECT
        (SELECT count(*) FROM run_nodes WHERE phase = 'Ready'),
        (SELECT count(*) FROM run_nodes WHERE phase = 'Executing' AND due_at IS NOT NULL),
        (SELECT count(*) FROM runs WHERE state = 'Pending' AND NOT dry_run),
        (SELECT count(*) FROM runs WHERE state = 'Executing' AND NOT dry_run)";

/// How much work waits: see [`WaitingWork`].
#[tracing::instrument(level = "debug", skip_all)]
pub async fn waiting_work(client: &impl GenericClient) -> Result<WaitingWork> {
    let statement = client.prepare_cached(WAITING_WORK_SQL).await?;
    let row = client.query_one(&statement, &[]).await?;
    Ok(WaitingWork {
        pending_actions: row.try_get(0)?,
        executing_actions: row.try_get(1)?,
        pending_runs: row.try_get(2)?,
        executing_runs: row.try_get(3)?,
    })
}

fn node_of(row: &Row) -> Result<NodeRow> {
    Ok(NodeRow {
        idx: row.try_get::<_, i32>("idx")? as NodeIdx,
        phase: phase_of(row.try_get("phase")?)?,
        input: row.try_get("input")?,
        result: row.try_get("result")?,
        output: row.try_get("output")?,
        error: row.try_get("error")?,
        attempt: row.try_get::<_, i32>("attempt")? as u32,
        started_at: opt_from_system(row.try_get("started_at")?),
        completed_at: opt_from_system(row.try_get("completed_at")?),
        due_at: opt_from_system(row.try_get("due_at")?),
    })
}

statements!(
    WAITING_WORK_SQL,
    ACTIVE_NODES_SQL,
    NODES_TO_DEPTH_SQL,
    NODE_SQL,
    CHILDREN_SQL,
    CHILD_COUNTS_SQL,
    RUN_COUNTS_SQL,
    NODE_COUNTS_SQL,
    RUNS_SQL,
    FAILED_NODE_SQL
);
