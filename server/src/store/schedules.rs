//! Schedules' rows. A due schedule is claimed with `FOR UPDATE SKIP LOCKED` by whichever
//! server looks first, and held while its tick's run starts, so replicas never both fire it.

use anyhow::Result;
use deadpool_postgres::GenericClient;
use serde_json::Value;
use tokio_postgres::types::Json;
use tokio_postgres::Row;
use uuid::Uuid;

use super::time::{from_system, opt_from_system, opt_to_system};

/// What a schedule's runs do when the previous one is still going at a tick.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Overlap {
    /// Start the tick's run anyway.
    #[default]
    Allow,
    /// Skip the tick.
    Skip,
}

impl Overlap {
    pub fn as_str(self) -> &'static str {
        match self {
            Overlap::Allow => "allow",
            Overlap::Skip => "skip",
        }
    }

    pub fn parse(s: &str) -> Option<Overlap> {
        match s {
            "allow" => Some(Overlap::Allow),
            "skip" => Some(Overlap::Skip),
            _ => None,
        }
    }
}

/// What a user defines.
#[derive(Debug, Clone, PartialEq)]
pub struct Definition {
    pub step_id: Uuid,
    pub cron: String,
    pub timezone: String,
    pub input: Option<Value>,
    pub overlap: Overlap,
    pub enabled: bool,
}

/// A schedule as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub id: Uuid,
    pub definition: Definition,
    pub next_fire_at: Option<i64>,
    pub last_fire_at: Option<i64>,
    pub last_run_id: Option<Uuid>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

fn schedule_of(row: &Row) -> Result<Schedule> {
    let overlap: String = row.try_get("overlap")?;
    Ok(Schedule {
        id: row.try_get("id")?,
        definition: Definition {
            step_id: row.try_get("step_id")?,
            cron: row.try_get("cron")?,
            timezone: row.try_get("timezone")?,
            input: row.try_get::<_, Option<Json<Value>>>("input")?.map(|Json(v)| v),
            overlap: Overlap::parse(&overlap).unwrap_or_default(),
            enabled: row.try_get("enabled")?,
        },
        next_fire_at: opt_from_system(row.try_get("next_fire_at")?),
        last_fire_at: opt_from_system(row.try_get("last_fire_at")?),
        last_run_id: row.try_get("last_run_id")?,
        last_error: row.try_get("last_error")?,
        created_at: from_system(row.try_get("created_at")?),
        updated_at: from_system(row.try_get("updated_at")?),
    })
}

/// See [`insert`].
pub(crate) const INSERT_SQL: &str = "INSERT INTO schedules
        (id, step_id, cron, timezone, input, overlap, enabled, next_fire_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

/// Stores a new schedule whose next tick is `next_fire_at`.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn insert(
    client: &impl GenericClient,
    id: Uuid,
    d: &Definition,
    next_fire_at: Option<i64>,
) -> Result<()> {
    write(client, INSERT_SQL, id, d, next_fire_at).await.map(drop)
}

/// See [`replace`].
pub(crate) const REPLACE_SQL: &str = "UPDATE schedules
    SET step_id = $2, cron = $3, timezone = $4, input = $5, overlap = $6, enabled = $7,
        next_fire_at = $8, last_error = NULL, updated_at = now()
    WHERE id = $1";

/// Replaces a schedule's definition, with its next tick. `false`: there is no such schedule.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn replace(
    client: &impl GenericClient,
    id: Uuid,
    d: &Definition,
    next_fire_at: Option<i64>,
) -> Result<bool> {
    Ok(write(client, REPLACE_SQL, id, d, next_fire_at).await? == 1)
}

/// [`INSERT_SQL`] or [`REPLACE_SQL`], which take the same parameters. Returns the rows written.
async fn write(
    client: &impl GenericClient,
    sql: &str,
    id: Uuid,
    d: &Definition,
    next_fire_at: Option<i64>,
) -> Result<u64> {
    let statement = client.prepare_cached(sql).await?;
    let input = d.input.as_ref().map(Json);
    let next = opt_to_system(next_fire_at);
    let overlap = d.overlap.as_str();
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 8] =
        [&id, &d.step_id, &d.cron, &d.timezone, &input, &overlap, &d.enabled, &next];
    Ok(client.execute(&statement, &params).await?)
}

/// See [`get`].
pub(crate) const GET_SQL: &str = "SELECT id, step_id, cron, timezone, input, overlap, enabled, \
    next_fire_at, last_fire_at, last_run_id, last_error, created_at, updated_at \
    FROM schedules WHERE id = $1";

#[tracing::instrument(level = "debug", skip_all)]
pub async fn get(client: &impl GenericClient, id: Uuid) -> Result<Option<Schedule>> {
    let statement = client.prepare_cached(GET_SQL).await?;
    client.query_opt(&statement, &[&id]).await?.as_ref().map(schedule_of).transpose()
}

/// See [`list`].
pub(crate) const LIST_SQL: &str = "SELECT id, step_id, cron, timezone, input, overlap, enabled, \
    next_fire_at, last_fire_at, last_run_id, last_error, created_at, updated_at \
    FROM schedules WHERE ($1::uuid IS NULL OR id > $1) AND ($2::uuid IS NULL OR step_id = $2) \
    ORDER BY id LIMIT $3";

/// A page of schedules, by id, optionally of one step.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn list(
    client: &impl GenericClient,
    after: Option<Uuid>,
    step: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Schedule>> {
    let statement = client.prepare_cached(LIST_SQL).await?;
    let rows = client.query(&statement, &[&after, &step, &limit]).await?;
    rows.iter().map(schedule_of).collect()
}

/// See [`delete`].
pub(crate) const DELETE_SQL: &str = "DELETE FROM schedules WHERE id = $1";

/// `false`: there was no such schedule.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn delete(client: &impl GenericClient, id: Uuid) -> Result<bool> {
    let statement = client.prepare_cached(DELETE_SQL).await?;
    Ok(client.execute(&statement, &[&id]).await? == 1)
}

/// See [`of_step`].
pub(crate) const OF_STEP_SQL: &str =
    "SELECT id FROM schedules WHERE step_id = $1 ORDER BY id LIMIT $2";

/// Up to `limit` schedules that run `step`.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn of_step(client: &impl GenericClient, step: Uuid, limit: i64) -> Result<Vec<Uuid>> {
    let statement = client.prepare_cached(OF_STEP_SQL).await?;
    let rows = client.query(&statement, &[&step, &limit]).await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

/// See [`claim_due`]. The runs' state tells whether the last run is still going.
pub(crate) const CLAIM_DUE_SQL: &str = "SELECT s.id, s.step_id, s.cron, s.timezone, s.input, \
    s.overlap, s.enabled, s.next_fire_at, s.last_fire_at, s.last_run_id, s.last_error, \
    s.created_at, s.updated_at, \
    coalesce(r.state IN ('Pending', 'Executing'), false) AS last_run_going \
    FROM schedules s LEFT JOIN runs r ON r.id = s.last_run_id \
    WHERE s.enabled AND s.next_fire_at <= $1 \
    ORDER BY s.next_fire_at LIMIT $2 \
    FOR UPDATE OF s SKIP LOCKED";

/// Due schedules, locked until the transaction ends, each with whether its last run is still
/// going.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn claim_due(
    client: &impl GenericClient,
    now: i64,
    limit: i64,
) -> Result<Vec<(Schedule, bool)>> {
    let statement = client.prepare_cached(CLAIM_DUE_SQL).await?;
    let rows = client.query(&statement, &[&super::time::to_system(now), &limit]).await?;
    rows.iter().map(|r| Ok((schedule_of(r)?, r.try_get("last_run_going")?))).collect()
}

/// See [`fired`].
pub(crate) const FIRED_SQL: &str = "UPDATE schedules
    SET next_fire_at = $2, last_fire_at = coalesce($3, last_fire_at),
        last_run_id = coalesce($4, last_run_id), last_error = $5
    WHERE id = $1";

/// Records a tick: the next one, and the run it started (or why it started none).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn fired(
    client: &impl GenericClient,
    id: Uuid,
    next_fire_at: Option<i64>,
    run: Option<(i64, Uuid)>,
    error: Option<&str>,
) -> Result<()> {
    let statement = client.prepare_cached(FIRED_SQL).await?;
    let (tick, run) = (run.map(|r| r.0), run.map(|r| r.1));
    client
        .execute(
            &statement,
            &[&id, &opt_to_system(next_fire_at), &opt_to_system(tick), &run, &error],
        )
        .await?;
    Ok(())
}

/// See [`next_due`].
pub(crate) const NEXT_DUE_SQL: &str = "SELECT min(next_fire_at) FROM schedules WHERE enabled";

/// When the next schedule is due, if any is.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn next_due(client: &impl GenericClient) -> Result<Option<i64>> {
    let statement = client.prepare_cached(NEXT_DUE_SQL).await?;
    Ok(opt_from_system(client.query_one(&statement, &[]).await?.try_get(0)?))
}

statements!(
    INSERT_SQL,
    REPLACE_SQL,
    GET_SQL,
    LIST_SQL,
    DELETE_SQL,
    OF_STEP_SQL,
    CLAIM_DUE_SQL,
    FIRED_SQL,
    NEXT_DUE_SQL
);
