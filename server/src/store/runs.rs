//! Runs: one row each, with the snapshot of the tree that the run walks.

use aetr_engine::machine::State;
use aetr_engine::{NodeIdx, Snapshot};
use anyhow::{anyhow, Result};
use deadpool_postgres::GenericClient;
use tokio_postgres::types::Json;
use uuid::Uuid;

use super::time::{opt_to_system, to_system};

/// A run to insert.
#[derive(Debug)]
pub struct NewRun<'a> {
    pub id: Uuid,
    pub snapshot: &'a Snapshot,
    pub state: State,
    pub idempotency_key: Option<&'a str>,
    pub created_at: i64,
    /// Set when the run completed as it started (a tree of no-op actions).
    pub completed_at: Option<i64>,
}

/// Inserts a run. `false` if a run with its idempotency key exists (nothing is written).
pub async fn insert(client: &impl GenericClient, run: &NewRun<'_>) -> Result<bool> {
    const SQL: &str = "INSERT INTO runs (id, step_id, step_name, step_type, state, snapshot,
            node_count, idempotency_key, created_at, completed_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
        ON CONFLICT (idempotency_key) DO NOTHING";
    let root = run.snapshot.root();
    let statement = client.prepare_cached(SQL).await?;
    let inserted = client
        .execute(
            &statement,
            &[
                &run.id,
                &root.step_id,
                &root.name,
                &root.step_type().as_str(),
                &run.state.as_str(),
                &Json(run.snapshot),
                &i32::try_from(run.snapshot.len())?,
                &run.idempotency_key,
                &to_system(run.created_at),
                &opt_to_system(run.completed_at),
            ],
        )
        .await?;
    Ok(inserted == 1)
}

/// The run made with an idempotency key: its id and its root step.
pub async fn by_idempotency_key(
    client: &impl GenericClient,
    key: &str,
) -> Result<Option<(Uuid, Uuid)>> {
    const SQL: &str = "SELECT id, step_id FROM runs WHERE idempotency_key = $1";
    let statement = client.prepare_cached(SQL).await?;
    let row = client.query_opt(&statement, &[&key]).await?;
    row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
}

/// A run's snapshot and when the run was made.
pub async fn snapshot(
    client: &impl GenericClient,
    id: Uuid,
) -> Result<Option<(Snapshot, i64, i32)>> {
    const SQL: &str = "SELECT snapshot, created_at, snapshot_rev FROM runs WHERE id = $1";
    let statement = client.prepare_cached(SQL).await?;
    let Some(row) = client.query_opt(&statement, &[&id]).await? else { return Ok(None) };
    let snapshot: Json<Snapshot> = row.try_get(0)?;
    Ok(Some((snapshot.0, super::time::from_system(row.try_get(1)?), row.try_get(2)?)))
}

/// The revision of a run's snapshot; `None` if there is no such run.
pub async fn snapshot_rev(client: &impl GenericClient, id: Uuid) -> Result<Option<i32>> {
    const SQL: &str = "SELECT snapshot_rev FROM runs WHERE id = $1";
    let statement = client.prepare_cached(SQL).await?;
    Ok(client.query_opt(&statement, &[&id]).await?.map(|r| r.try_get(0)).transpose()?)
}

/// Gives a run a new snapshot (a redrive on the latest definitions), resumed.
pub async fn replace_snapshot(
    client: &impl GenericClient,
    id: Uuid,
    snapshot: &Snapshot,
    rev: i32,
    state: State,
) -> Result<()> {
    const SQL: &str = "UPDATE runs SET snapshot = $2, node_count = $3, snapshot_rev = $4,
            step_name = $5, step_type = $6, state = $7, failed_node = NULL, completed_at = NULL
        WHERE id = $1";
    let statement = client.prepare_cached(SQL).await?;
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

/// A run's state, as its root's changed. `failed_node`: the node that failed it (`Some(None)`
/// when a redrive resumed it), or `None` to leave it as it is.
pub async fn set_state(
    client: &impl GenericClient,
    id: Uuid,
    state: State,
    failed_node: Option<Option<NodeIdx>>,
    completed_at: Option<i64>,
) -> Result<()> {
    const SQL: &str = "UPDATE runs SET state = $2, completed_at = $3,
            failed_node = CASE WHEN $4 THEN $5 ELSE failed_node END
        WHERE id = $1";
    let failed = failed_node.flatten().map(i32::try_from).transpose()?;
    let statement = client.prepare_cached(SQL).await?;
    client
        .execute(
            &statement,
            &[&id, &state.as_str(), &opt_to_system(completed_at), &failed_node.is_some(), &failed],
        )
        .await?;
    Ok(())
}

/// The key of the callback tokens' HMAC.
pub async fn callback_key(client: &impl GenericClient) -> Result<Vec<u8>> {
    let row = client
        .query_opt("SELECT key FROM callback_key", &[])
        .await?
        .ok_or_else(|| anyhow!("the callback key is missing from the database"))?;
    Ok(row.try_get(0)?)
}
