//! A run's history (`run_events`): what happened to it, in order.

use aetr_engine::machine::State;
use aetr_engine::NodeIdx;
use anyhow::Result;
use deadpool_postgres::GenericClient;
use serde_json::{json, Value};
use tokio_postgres::types::Json;
use uuid::Uuid;

use super::time::{from_system, to_system};
use super::{flatten, PerRun};

/// One thing that happened to a run, to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub kind: &'static str,
    pub idx: Option<NodeIdx>,
    pub attempt: Option<u32>,
    pub detail: Option<Value>,
    /// The nodes whose state it changed: `(idx, from, to)`.
    pub changes: Vec<(NodeIdx, State, State)>,
}

/// See [`insert`].
pub(crate) const INSERT_SQL: &str =
    "INSERT INTO run_events (run_id, at, kind, idx, attempt, detail, changes)
    SELECT u.run_id, $1, u.kind, u.idx, u.attempt, u.detail, u.changes
    FROM unnest($2::uuid[], $3::text[], $4::int[], $5::int[], $6::jsonb[], $7::jsonb[])
        WITH ORDINALITY AS u(run_id, kind, idx, attempt, detail, changes, ord)
    ORDER BY u.ord";

/// Records events of runs that happened at `at`, in the order given.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn insert(
    client: &impl GenericClient,
    events: &PerRun<'_, NewEvent>,
    at: i64,
) -> Result<()> {
    let events: Vec<(Uuid, &NewEvent)> = flatten(events).collect();
    if events.is_empty() {
        return Ok(());
    }
    let runs: Vec<Uuid> = events.iter().map(|(run, _)| *run).collect();
    let kinds: Vec<&str> = events.iter().map(|(_, e)| e.kind).collect();
    let idxs: Vec<Option<i32>> = events.iter().map(|(_, e)| e.idx.map(|i| i as i32)).collect();
    let attempts: Vec<Option<i32>> =
        events.iter().map(|(_, e)| e.attempt.map(|n| n as i32)).collect();
    let details: Vec<Option<Json<&Value>>> =
        events.iter().map(|(_, e)| e.detail.as_ref().map(Json)).collect();
    let changes: Vec<Json<Value>> = events
        .iter()
        .map(|(_, e)| {
            Json(Value::Array(
                e.changes
                    .iter()
                    .map(|(idx, from, to)| json!({"idx": idx, "from": from.as_str(), "to": to.as_str()}))
                    .collect(),
            ))
        })
        .collect();
    let statement = client.prepare_cached(INSERT_SQL).await?;
    client
        .execute(&statement, &[&to_system(at), &runs, &kinds, &idxs, &attempts, &details, &changes])
        .await?;
    Ok(())
}

/// A recorded event, as stored.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub seq: i64,
    pub at: i64,
    pub kind: String,
    pub idx: Option<NodeIdx>,
    pub attempt: Option<u32>,
    pub detail: Option<Value>,
    pub changes: Value,
}

/// See [`page`].
pub(crate) const PAGE_SQL: &str =
    "SELECT seq, at, kind, idx, attempt, detail, changes FROM run_events
    WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3";

/// A page of a run's events, oldest first, after event `after`.
#[tracing::instrument(level = "debug", skip_all, fields(run = %run))]
pub async fn page(
    client: &impl GenericClient,
    run: Uuid,
    after: Option<i64>,
    limit: i64,
) -> Result<Vec<Recorded>> {
    let statement = client.prepare_cached(PAGE_SQL).await?;
    let rows = client.query(&statement, &[&run, &after.unwrap_or(0), &limit]).await?;
    rows.iter()
        .map(|r| {
            Ok(Recorded {
                seq: r.try_get(0)?,
                at: from_system(r.try_get(1)?),
                kind: r.try_get(2)?,
                idx: r.try_get::<_, Option<i32>>(3)?.map(|i| i as NodeIdx),
                attempt: r.try_get::<_, Option<i32>>(4)?.map(|n| n as u32),
                detail: r.try_get(5)?,
                changes: r.try_get(6)?,
            })
        })
        .collect()
}

statements!(INSERT_SQL, PAGE_SQL);
