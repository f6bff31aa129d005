//! Steps and their child links.
//!
//! Functions take any client or transaction, so that a caller can read and write in one
//! transaction. Writes to the step graph take [`lock_graph`] first: checks for cycles and sizes
//! read the stored graph, and must not race with another write that changes it.

use std::collections::HashMap;

use aetr_engine::{
    Action, ChildLink, Chooser, InputSchema, MapSpec, Mapper, Reducer, Step, StepBody, StepType,
};
use anyhow::{anyhow, Context, Result};
use deadpool_postgres::GenericClient;
use tokio_postgres::types::Json;
use tokio_postgres::Row;
use uuid::Uuid;

/// One line of a list of steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepSummary {
    pub id: Uuid,
    pub name: String,
    pub step_type: StepType,
}

/// The transaction-level advisory lock that serialises writes to the step graph: "aetr" and 2.
const GRAPH_LOCK: i64 = 0x6165_7472_0000_0002;

/// See [`lock_graph`].
pub(crate) const LOCK_GRAPH_SQL: &str = "SELECT pg_advisory_xact_lock($1)";
/// See [`lock_graph`].
pub(crate) const COUNT_GRAPH_WRITE_SQL: &str = "UPDATE graph_version SET n = n + 1";

/// Serialises writes to the step graph until the transaction ends, and counts the write in the
/// graph's version (see [`graph_version`]).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn lock_graph(tx: &impl GenericClient) -> Result<()> {
    let statement = tx.prepare_cached(LOCK_GRAPH_SQL).await?;
    tx.execute(&statement, &[&GRAPH_LOCK]).await?;
    let statement = tx.prepare_cached(COUNT_GRAPH_WRITE_SQL).await?;
    tx.execute(&statement, &[]).await?;
    Ok(())
}

/// See [`graph_version`].
pub(crate) const GRAPH_VERSION_SQL: &str = "SELECT n FROM graph_version";

/// The step graph's version: it grows with every committed write to the graph, so a tree read
/// at one version is still the same while the version is.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn graph_version(client: &impl GenericClient) -> Result<i64> {
    let statement = client.prepare_cached(GRAPH_VERSION_SQL).await?;
    Ok(client.query_one(&statement, &[]).await?.try_get(0)?)
}

/// Selects whole steps (with their children, in order) from `$from`, which names the steps as
/// `s`, and then `$filter`.
macro_rules! select_steps {
    ($from:literal, $filter:literal) => {
        concat!(
            "SELECT s.id, s.name, s.step_type, s.action, s.reducer, s.branch, s.map,
                    s.input_schema, coalesce(k.ids, '{}') AS child_ids, coalesce(k.mappers, '{}') AS mappers
             FROM ",
            $from,
            " LEFT JOIN LATERAL (
                 SELECT array_agg(c.child_id ORDER BY c.position) AS ids,
                        array_agg(c.mapper ORDER BY c.position) AS mappers
                 FROM step_children c WHERE c.parent_id = s.id
             ) k ON true ",
            $filter
        )
    };
}

/// See [`get`].
pub(crate) const GET_SQL: &str = select_steps!("steps s", "WHERE s.id = $1");

/// One step, or `None`.
#[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
pub async fn get(client: &impl GenericClient, id: Uuid) -> Result<Option<Step>> {
    let statement = client.prepare_cached(GET_SQL).await?;
    client.query_opt(&statement, &[&id]).await?.map(|row| step_of(&row)).transpose()
}

/// See [`exists`].
pub(crate) const EXISTS_SQL: &str = "SELECT 1 FROM steps WHERE id = $1";

/// Whether a step exists.
#[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
pub async fn exists(client: &impl GenericClient, id: Uuid) -> Result<bool> {
    let statement = client.prepare_cached(EXISTS_SQL).await?;
    Ok(client.query_opt(&statement, &[&id]).await?.is_some())
}

/// See [`closure`].
pub(crate) const CLOSURE_SQL: &str = select_steps!(
    "(WITH RECURSIVE reach(id) AS (
          SELECT unnest($1::uuid[])
        UNION
          SELECT c.child_id FROM step_children c JOIN reach r ON c.parent_id = r.id
      ) SELECT steps.* FROM steps JOIN reach USING (id)) s",
    ""
);

/// The steps `ids` and every step below them, each once.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn closure(client: &impl GenericClient, ids: &[Uuid]) -> Result<HashMap<Uuid, Step>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let statement = client.prepare_cached(CLOSURE_SQL).await?;
    let rows = client.query(&statement, &[&ids]).await?;
    rows.iter().map(|row| step_of(row).map(|s| (s.id, s))).collect()
}

/// See [`roots_above`].
pub(crate) const ROOTS_ABOVE_SQL: &str = "WITH RECURSIVE up(id) AS (
        SELECT unnest($1::uuid[])
      UNION
        SELECT c.parent_id FROM step_children c JOIN up ON c.child_id = up.id
    )
    SELECT id FROM up
    WHERE NOT EXISTS (SELECT 1 FROM step_children c WHERE c.child_id = up.id)";

/// The topmost steps above `ids`: those from which one of `ids` can be reached and that no
/// step uses. A step of `ids` that nothing uses is one of them.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn roots_above(client: &impl GenericClient, ids: &[Uuid]) -> Result<Vec<Uuid>> {
    let statement = client.prepare_cached(ROOTS_ABOVE_SQL).await?;
    let rows = client.query(&statement, &[&ids]).await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// See [`list`].
pub(crate) const LIST_SQL: &str = "SELECT id, name, step_type FROM steps
    WHERE ($1::uuid IS NULL OR id > $1)
      AND ($2::text IS NULL OR name ILIKE $2 ESCAPE '\\')
    ORDER BY id LIMIT $3";

/// A page of steps by id, whose names contain `name_contains` (any case) when it is given.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn list(
    client: &impl GenericClient,
    name_contains: Option<&str>,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<StepSummary>> {
    let pattern = name_contains.map(|q| format!("%{}%", escape_like(q)));
    let statement = client.prepare_cached(LIST_SQL).await?;
    let rows = client.query(&statement, &[&after, &pattern, &limit]).await?;
    rows.iter().map(summary_of).collect()
}

/// See [`parents`].
pub(crate) const PARENTS_SQL: &str = "SELECT s.id, s.name, s.step_type FROM steps s
    WHERE s.id IN (SELECT parent_id FROM step_children WHERE child_id = $1)
    ORDER BY s.id";

/// The steps that have `id` among their children, each once.
#[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
pub async fn parents(client: &impl GenericClient, id: Uuid) -> Result<Vec<StepSummary>> {
    let statement = client.prepare_cached(PARENTS_SQL).await?;
    let rows = client.query(&statement, &[&id]).await?;
    rows.iter().map(summary_of).collect()
}

/// See [`upsert`].
pub(crate) const UPSERT_CHILDREN_SQL: &str =
    "INSERT INTO step_children (parent_id, position, child_id, mapper)
    SELECT * FROM unnest($1::uuid[], $2::int[], $3::uuid[], $4::json[])";

/// See [`upsert`].
pub(crate) const UPSERT_CLEAR_CHILDREN_SQL: &str =
    "DELETE FROM step_children WHERE parent_id = ANY($1)";

/// See [`upsert`].
pub(crate) const UPSERT_STEPS_SQL: &str =
    "INSERT INTO steps AS s (id, name, step_type, action, reducer, branch, map, input_schema)
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::json[], $5::json[], $6::json[],
                         $7::json[], $8::json[])
    ON CONFLICT (id) DO UPDATE
    SET name = excluded.name, step_type = excluded.step_type, action = excluded.action,
        reducer = excluded.reducer, branch = excluded.branch, map = excluded.map,
        input_schema = excluded.input_schema, updated_at = now()
    WHERE (s.name, s.step_type, s.action::text, s.reducer::text, s.branch::text, s.map::text,
           s.input_schema::text)
          IS DISTINCT FROM
          (excluded.name, excluded.step_type, excluded.action::text, excluded.reducer::text,
           excluded.branch::text, excluded.map::text, excluded.input_schema::text)";

/// Inserts or replaces `steps`, with their child lists. The children must exist, or be among
/// `steps`.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn upsert(tx: &impl GenericClient, steps: &[Step]) -> Result<()> {
    // Only a step whose contents changed gets a new row version and `updated_at`. `json` has no
    // equality, so the definitions are compared as text.

    let ids: Vec<Uuid> = steps.iter().map(|s| s.id).collect();
    let names: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
    let types: Vec<&str> = steps.iter().map(|s| s.step_type().as_str()).collect();
    let actions: Vec<Option<Json<&Action>>> =
        steps.iter().map(|s| s.body.action().map(Json)).collect();
    let reducers: Vec<Option<Json<&Reducer>>> =
        steps.iter().map(|s| s.body.reducer().map(Json)).collect();
    let branches: Vec<Option<Json<&Chooser>>> =
        steps.iter().map(|s| s.body.chooser().map(Json)).collect();
    let maps: Vec<Option<Json<&MapSpec>>> = steps.iter().map(|s| s.body.map().map(Json)).collect();
    let schemas: Vec<Option<Json<&InputSchema>>> =
        steps.iter().map(|s| s.input_schema.as_ref().map(Json)).collect();
    let statement = tx.prepare_cached(UPSERT_STEPS_SQL).await?;
    tx.execute(
        &statement,
        &[&ids, &names, &types, &actions, &reducers, &branches, &maps, &schemas],
    )
    .await?;

    let statement = tx.prepare_cached(UPSERT_CLEAR_CHILDREN_SQL).await?;
    tx.execute(&statement, &[&ids]).await?;

    let links: Vec<(Uuid, i32, &ChildLink)> = steps
        .iter()
        .flat_map(|s| s.children.iter().enumerate().map(move |(i, l)| (s.id, i as i32, l)))
        .collect();
    if links.is_empty() {
        return Ok(());
    }
    let parents: Vec<Uuid> = links.iter().map(|l| l.0).collect();
    let positions: Vec<i32> = links.iter().map(|l| l.1).collect();
    let children: Vec<Uuid> = links.iter().map(|l| l.2.id).collect();
    let mappers: Vec<Option<Json<&Mapper>>> =
        links.iter().map(|l| l.2.mapper.as_ref().map(Json)).collect();
    let statement = tx.prepare_cached(UPSERT_CHILDREN_SQL).await?;
    tx.execute(&statement, &[&parents, &positions, &children, &mappers]).await?;
    Ok(())
}

/// See [`delete`].
pub(crate) const DELETE_SQL: &str = "DELETE FROM steps WHERE id = $1";

/// Deletes a step and its child links. `false` if there was none. The caller checks first that
/// no step uses it; the foreign key refuses it otherwise.
#[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
pub async fn delete(tx: &impl GenericClient, id: Uuid) -> Result<bool> {
    let statement = tx.prepare_cached(DELETE_SQL).await?;
    Ok(tx.execute(&statement, &[&id]).await? == 1)
}

fn summary_of(row: &Row) -> Result<StepSummary> {
    Ok(StepSummary {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        step_type: step_type_of(row.try_get("step_type")?)?,
    })
}

fn step_type_of(s: &str) -> Result<StepType> {
    StepType::ALL
        .into_iter()
        .find(|t| t.as_str() == s)
        .ok_or_else(|| anyhow!("unknown step_type {s:?}"))
}

fn step_of(row: &Row) -> Result<Step> {
    let id: Uuid = row.try_get("id")?;
    read_step(id, row).with_context(|| format!("step {id} cannot be read"))
}

fn read_step(id: Uuid, row: &Row) -> Result<Step> {
    let body = match step_type_of(row.try_get("step_type")?)? {
        StepType::Sequential => StepBody::Sequential,
        StepType::Parallel => {
            StepBody::Parallel { reducer: row.try_get::<_, Json<Reducer>>("reducer")?.0 }
        }
        StepType::Map => StepBody::Map {
            map: row.try_get::<_, Json<MapSpec>>("map")?.0,
            reducer: row.try_get::<_, Json<Reducer>>("reducer")?.0,
        },
        StepType::Branch => {
            StepBody::Branch { branch: row.try_get::<_, Json<Chooser>>("branch")?.0 }
        }
        StepType::Action => {
            StepBody::Action { action: row.try_get::<_, Json<Action>>("action")?.0 }
        }
    };
    let ids: Vec<Uuid> = row.try_get("child_ids")?;
    let mappers: Vec<Option<Json<Mapper>>> = row.try_get("mappers")?;
    let children = ids
        .into_iter()
        .zip(mappers)
        .map(|(id, mapper)| ChildLink { id, mapper: mapper.map(|m| m.0) })
        .collect();
    let input_schema =
        row.try_get::<_, Option<Json<InputSchema>>>("input_schema")?.map(|Json(s)| s);
    Ok(Step { id, name: row.try_get("name")?, body, input_schema, children })
}

/// Escapes `%`, `_` and `\` for a LIKE pattern.
fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

statements!(
    LOCK_GRAPH_SQL,
    COUNT_GRAPH_WRITE_SQL,
    GRAPH_VERSION_SQL,
    GET_SQL,
    EXISTS_SQL,
    CLOSURE_SQL,
    ROOTS_ABOVE_SQL,
    LIST_SQL,
    PARENTS_SQL,
    UPSERT_CHILDREN_SQL,
    UPSERT_CLEAR_CHILDREN_SQL,
    UPSERT_STEPS_SQL,
    DELETE_SQL
);
