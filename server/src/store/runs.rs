//! Runs: one row each, with the snapshot of the tree that the run walks.

use std::collections::HashSet;

use aetr_engine::machine::State;
use aetr_engine::{NodeIdx, Snapshot};
use anyhow::{anyhow, Result};
use deadpool_postgres::GenericClient;
use tokio_postgres::types::Json;
use uuid::Uuid;

use super::time::{opt_to_system, to_system};

/// A run's row, to insert.
#[derive(Debug)]
pub struct RunRow<'a> {
    pub id: Uuid,
    pub snapshot: &'a Snapshot,
    pub state: State,
    pub idempotency_key: Option<&'a str>,
    pub created_at: i64,
    /// Set when the run completed as it started (a tree of no-op actions).
    pub completed_at: Option<i64>,
    /// The schedule that started it.
    pub schedule_id: Option<Uuid>,
}

/// See [`insert`].
pub(crate) const INSERT_SQL: &str =
    "INSERT INTO runs (id, step_id, step_name, step_type, state, snapshot,
        node_count, idempotency_key, created_at, completed_at, schedule_id, dry_run)
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[],
                         $6::json[], $7::int[], $8::text[], $9::timestamptz[],
                         $10::timestamptz[], $11::uuid[], $12::bool[])
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id";

/// Inserts runs. Returns the ids of those inserted: a run whose idempotency key another run
/// has (or an earlier one of `runs`) is not.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn insert(client: &impl GenericClient, runs: &[RunRow<'_>]) -> Result<HashSet<Uuid>> {
    let roots: Vec<_> = runs.iter().map(|r| r.snapshot.root()).collect();
    let ids: Vec<Uuid> = runs.iter().map(|r| r.id).collect();
    let steps: Vec<Uuid> = roots.iter().map(|root| root.step_id).collect();
    let names: Vec<&str> = roots.iter().map(|root| root.name.as_str()).collect();
    let types: Vec<&str> = roots.iter().map(|root| root.step_type().as_str()).collect();
    let states: Vec<&str> = runs.iter().map(|r| r.state.as_str()).collect();
    let snapshots: Vec<Json<&Snapshot>> = runs.iter().map(|r| Json(r.snapshot)).collect();
    let counts: Vec<i32> =
        runs.iter().map(|r| i32::try_from(r.snapshot.len())).collect::<Result<_, _>>()?;
    let keys: Vec<Option<&str>> = runs.iter().map(|r| r.idempotency_key).collect();
    let created: Vec<_> = runs.iter().map(|r| to_system(r.created_at)).collect();
    let completed: Vec<_> = runs.iter().map(|r| opt_to_system(r.completed_at)).collect();
    let schedules: Vec<Option<Uuid>> = runs.iter().map(|r| r.schedule_id).collect();
    let dry: Vec<bool> = runs.iter().map(|r| r.snapshot.dry().is_some()).collect();
    let statement = client.prepare_cached(INSERT_SQL).await?;
    let rows = client
        .query(
            &statement,
            &[
                &ids, &steps, &names, &types, &states, &snapshots, &counts, &keys, &created,
                &completed, &schedules, &dry,
            ],
        )
        .await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

/// See [`by_idempotency_key`].
pub(crate) const BY_IDEMPOTENCY_KEY_SQL: &str =
    "SELECT id, step_id FROM runs WHERE idempotency_key = $1";

/// The run made with an idempotency key: its id and its root step.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn by_idempotency_key(
    client: &impl GenericClient,
    key: &str,
) -> Result<Option<(Uuid, Uuid)>> {
    let statement = client.prepare_cached(BY_IDEMPOTENCY_KEY_SQL).await?;
    let row = client.query_opt(&statement, &[&key]).await?;
    row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
}

/// See [`snapshot`].
pub(crate) const SNAPSHOT_SQL: &str =
    "SELECT snapshot, created_at, snapshot_rev FROM runs WHERE id = $1";

/// A run's snapshot and when the run was made.
#[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
pub async fn snapshot(
    client: &impl GenericClient,
    id: Uuid,
) -> Result<Option<(Snapshot, i64, i32)>> {
    let statement = client.prepare_cached(SNAPSHOT_SQL).await?;
    let Some(row) = client.query_opt(&statement, &[&id]).await? else { return Ok(None) };
    let snapshot: Json<Snapshot> = row.try_get(0)?;
    Ok(Some((snapshot.0, super::time::from_system(row.try_get(1)?), row.try_get(2)?)))
}

/// See [`blocks`].
pub(crate) const BLOCKS_SQL: &str = "SELECT map_idx, base, count FROM run_blocks
    WHERE run_id = $1 AND rev = $2 AND base >= $3 ORDER BY base";

/// The blocks of a run's Maps' instances at snapshot revision `rev` from node number `from`
/// on: `(map, base, count)`, in the order of their numbers.
#[tracing::instrument(level = "debug", skip_all, fields(run = %run))]
pub async fn blocks(
    client: &impl GenericClient,
    run: Uuid,
    rev: i32,
    from: i32,
) -> Result<Vec<(NodeIdx, NodeIdx, u32)>> {
    let statement = client.prepare_cached(BLOCKS_SQL).await?;
    let rows = client.query(&statement, &[&run, &rev, &from]).await?;
    let number = |row: &tokio_postgres::Row, i| -> Result<u32> {
        Ok(u32::try_from(row.try_get::<_, i32>(i)?)?)
    };
    rows.iter().map(|r| Ok((number(r, 0)?, number(r, 1)?, number(r, 2)?))).collect()
}

/// See [`of_node`].
pub(crate) const OF_NODE_SQL: &str =
    "SELECT id, node_count FROM runs WHERE id BETWEEN $1 AND $2 ORDER BY id";

/// The runs that a node's id may be of, with their node counts: those whose ids differ from it
/// in their last 32 bits only (see `runs::node_id`). Found by the primary key.
#[tracing::instrument(level = "debug", skip_all, fields(node = %node))]
pub async fn of_node(client: &impl GenericClient, node: Uuid) -> Result<Vec<(Uuid, u32)>> {
    let low = u128::from(u32::MAX);
    let (first, last) =
        (Uuid::from_u128(node.as_u128() & !low), Uuid::from_u128(node.as_u128() | low));
    let statement = client.prepare_cached(OF_NODE_SQL).await?;
    let rows = client.query(&statement, &[&first, &last]).await?;
    rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get::<_, i32>(1)? as u32))).collect()
}

/// See [`state`].
pub(crate) const STATE_SQL: &str = "SELECT state FROM runs WHERE id = $1";

/// A run's state, from its own row (kept with its root's); `None` if there is no such run.
#[tracing::instrument(level = "debug", skip_all, fields(run = %id))]
pub async fn state(client: &impl GenericClient, id: Uuid) -> Result<Option<State>> {
    let statement = client.prepare_cached(STATE_SQL).await?;
    let Some(row) = client.query_opt(&statement, &[&id]).await? else { return Ok(None) };
    let name: &str = row.try_get(0)?;
    Ok(Some(State::parse(name).ok_or_else(|| anyhow!("unknown run state {name:?}"))?))
}

/// See [`snapshot_rev`].
pub(crate) const SNAPSHOT_REV_SQL: &str = "SELECT snapshot_rev FROM runs WHERE id = $1";

/// The revision of a run's snapshot; `None` if there is no such run.
#[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
pub async fn snapshot_rev(client: &impl GenericClient, id: Uuid) -> Result<Option<i32>> {
    let statement = client.prepare_cached(SNAPSHOT_REV_SQL).await?;
    Ok(client.query_opt(&statement, &[&id]).await?.map(|r| r.try_get(0)).transpose()?)
}

/// See [`replace_snapshot`].
pub(crate) const REPLACE_SNAPSHOT_SQL: &str =
    "UPDATE runs SET snapshot = $2, node_count = $3, snapshot_rev = $4,
        step_name = $5, step_type = $6, state = $7, failed_node = NULL, completed_at = NULL
    WHERE id = $1";

/// Gives a run a new snapshot (a redrive on the latest definitions), resumed.
#[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
pub async fn replace_snapshot(
    client: &impl GenericClient,
    id: Uuid,
    snapshot: &Snapshot,
    rev: i32,
    state: State,
) -> Result<()> {
    let statement = client.prepare_cached(REPLACE_SNAPSHOT_SQL).await?;
    let count = i32::try_from(snapshot.len())?;
    let root = snapshot.root();
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 7] = [
        &id,
        &Json(snapshot),
        &count,
        &rev,
        &root.name,
        &root.step_type().as_str(),
        &state.as_str(),
    ];
    client.execute(&statement, &params).await?;
    Ok(())
}

/// A run's new state, as its root's changed.
#[derive(Debug, Clone, Copy)]
pub struct StateUpdate {
    pub id: Uuid,
    pub state: State,
    pub failed_node: FailedNode,
    pub completed_at: Option<i64>,
    /// The run is a dry run: its end is not counted as a real run's.
    pub dry: bool,
}

/// What becomes of the node recorded as the one that failed a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailedNode {
    /// It stays as it is.
    Unchanged,
    /// This node failed the run.
    At(NodeIdx),
    /// A redrive resumed the run: none.
    Cleared,
}

/// See [`set_states`].
pub(crate) const SET_STATES_SQL: &str =
    "UPDATE runs r SET state = u.state, completed_at = u.completed_at,
        failed_node = CASE WHEN u.set_failed THEN u.failed_node ELSE r.failed_node END
    FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::bool[], $5::int[])
        AS u(id, state, completed_at, set_failed, failed_node)
    WHERE r.id = u.id";

/// Records runs' states.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn set_states(client: &impl GenericClient, states: &[StateUpdate]) -> Result<()> {
    if states.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = states.iter().map(|s| s.id).collect();
    let names: Vec<&str> = states.iter().map(|s| s.state.as_str()).collect();
    let completed: Vec<_> = states.iter().map(|s| opt_to_system(s.completed_at)).collect();
    let set_failed: Vec<bool> =
        states.iter().map(|s| s.failed_node != FailedNode::Unchanged).collect();
    let failed: Vec<Option<i32>> = states
        .iter()
        .map(|s| match s.failed_node {
            FailedNode::At(idx) => i32::try_from(idx).map(Some),
            FailedNode::Unchanged | FailedNode::Cleared => Ok(None),
        })
        .collect::<Result<_, _>>()?;
    let statement = client.prepare_cached(SET_STATES_SQL).await?;
    client.execute(&statement, &[&ids, &names, &completed, &set_failed, &failed]).await?;
    Ok(())
}

/// See [`callback_key`].
pub(crate) const CALLBACK_KEY_SQL: &str = "SELECT key FROM callback_key";

/// The key of the callback tokens' HMAC.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn callback_key(client: &impl GenericClient) -> Result<Vec<u8>> {
    let row = client
        .query_opt(CALLBACK_KEY_SQL, &[])
        .await?
        .ok_or_else(|| anyhow!("the callback key is missing from the database"))?;
    Ok(row.try_get(0)?)
}

statements!(
    BLOCKS_SQL,
    OF_NODE_SQL,
    STATE_SQL,
    INSERT_SQL,
    BY_IDEMPOTENCY_KEY_SQL,
    SNAPSHOT_SQL,
    SNAPSHOT_REV_SQL,
    REPLACE_SNAPSHOT_SQL,
    SET_STATES_SQL,
    CALLBACK_KEY_SQL
);
