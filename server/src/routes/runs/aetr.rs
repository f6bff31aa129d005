//! The run endpoints that AETR's own web UI and clients call, with AETR's shapes (design.md,
//! "Drop-in for AETR's clients"): a run or node by any id (`partial`), runs by state, the
//! actions in flight, and the runs of a step. None of them ever shows a token.

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::run_of_any;
use crate::app::AppState;
use crate::http::query::Query;
use crate::http::{ApiError, ErrorBody};
use crate::routes::docs::StateDoc;
use crate::runs::node_id::node_id;
use crate::runs::RunSnapshot;
use crate::store::views;

/// A run, or one node of a run, as AETR's `partial` and `related` answers show it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunData {
    id: Uuid,
    #[schema(value_type = StateDoc)]
    state: &'static str,
    /// When the run was made, in epoch milliseconds.
    created_at: i64,
    /// The step that the run (or the node) was made from.
    step_tree_id: Uuid,
    /// The raw result, or null.
    result: Option<String>,
}

/// One line of AETR's lists of runs and of active nodes.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunListItem {
    /// The run's id, or the node's.
    id: Uuid,
    /// The run's id.
    root: Uuid,
    #[schema(value_type = StateDoc)]
    state: &'static str,
    step_tree_id: Uuid,
    /// The name of the step that the run (or node) was made from.
    node_name: String,
    result: Option<String>,
    /// Its last change, in epoch milliseconds: when it completed, else started, else was made.
    last_updated_at: i64,
}

/// The runs of a step, as AETR's `related` answers them.
#[derive(Debug, Serialize, ToSchema)]
pub struct RelatedRuns {
    runs: Vec<RunData>,
}

/// A run's state, or one node's, by the id of the run or of any of its nodes (AETR's partial
/// view: only that node's own state, not its tree's).
#[utoipa::path(get, path = "/api/v1/runs/partial/{id}", tag = "runs",
    params(("id" = Uuid, Path, description = "The id of a run or of any node of one.")),
    responses(
        (status = 200, description = "The run or node.", body = RunData),
        (status = 404, description = "No run has a node with this id.", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(id = %id.as_str()))]
pub async fn partial(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (run, snap, idx) = run_of_any(&state, &id).await?;
    let client = state.pool.get().await?;
    let node = views::node(&client, run, idx).await?.ok_or_else(|| super::no_run(run))?;
    Ok(HttpResponse::Ok().json(RunData {
        id: node_id(run, idx),
        state: node.phase.state().as_str(),
        created_at: snap.created_at,
        step_tree_id: snap.step(idx).map_or(snap.snapshot.root().step_id, |n| n.step_id),
        result: node.result,
    }))
}

/// The runs in a state, newest first, paged like every list.
#[utoipa::path(get, path = "/api/v1/runs/state", tag = "runs",
    params(
        ("state" = StateDoc, Query, description = "The runs' state."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Runs per page: 1 to 1000, 50 by default."),
        ("after" = Option<Uuid>, Query, description = "The last id of the previous page."),
    ),
    responses(
        (status = 200, description = "A page of runs.", body = [RunListItem],
         headers(("Link" = String, description = "`<url>; rel=\"next\"` when another page follows."))),
        (status = 400, description = "A missing or unknown `state`, or a bad `limit` or `after`.", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn by_state(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let query = Query::of(&req)?;
    let page = query.page()?;
    let Some(run_state) = query.state()? else {
        return Err(ApiError::invalid(
            "state",
            "required: Pending, Executing, Complete, Error or Cancelled",
        ));
    };
    let client = state.pool.get().await?;
    let rows = views::runs(
        &client,
        views::RunFilter { state: Some(run_state), ..Default::default() },
        page.after,
        page.fetch(),
    )
    .await?;
    let (rows, link) = page.finish(rows, |r| r.id, &query, &req);
    let items: Vec<RunListItem> = rows
        .into_iter()
        .map(|r| RunListItem {
            id: r.id,
            root: r.id,
            state: r.root.phase.state().as_str(),
            step_tree_id: r.step_id,
            node_name: r.step_name,
            last_updated_at: r.root.completed_at.or(r.root.started_at).unwrap_or(r.created_at),
            result: r.root.result,
        })
        .collect();
    Ok(crate::routes::steps::with_link(HttpResponse::Ok(), link).json(items))
}

/// The actions that are Pending or Executing, in every run: the newest runs first, each run's in
/// tree order, paged like every list.
#[utoipa::path(get, path = "/api/v1/runs/active", tag = "runs",
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Nodes per page: 1 to 1000, 50 by default."),
        ("after" = Option<Uuid>, Query, description = "The last id of the previous page."),
    ),
    responses(
        (status = 200, description = "A page of action nodes.", body = [RunListItem],
         headers(("Link" = String, description = "`<url>; rel=\"next\"` when another page follows."))),
        (status = 400, description = "A bad `limit` or `after`.", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn active(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let query = Query::of(&req)?;
    let page = query.page()?;
    let after =
        match page.after {
            None => None,
            Some(id) => Some(state.runs.node_of(id).await?.ok_or_else(|| {
                ApiError::invalid("after", format!("{id} is not a node of any run"))
            })?),
        };
    let client = state.pool.get().await?;
    let rows = views::active_nodes(&client, after, page.fetch()).await?;
    let (rows, link) = page.finish(rows, |r| node_id(r.run, r.node.idx), &query, &req);
    let mut items = Vec::with_capacity(rows.len());
    let mut snaps: HashMap<Uuid, Arc<RunSnapshot>> = HashMap::new();
    for row in rows {
        let snap = match snaps.get(&row.run) {
            Some(snap) => Arc::clone(snap),
            None => match state.runs.snapshot(row.run).await? {
                Some(snap) => Arc::clone(snaps.entry(row.run).or_insert(snap)),
                None => continue,
            },
        };
        state.runs.cover(row.run, &snap, [row.node.idx]).await?;
        let Some(step) = snap.step(row.node.idx) else { continue };
        items.push(RunListItem {
            id: node_id(row.run, row.node.idx),
            root: row.run,
            state: row.node.phase.state().as_str(),
            step_tree_id: step.step_id,
            node_name: step.name.clone(),
            last_updated_at: row.node.started_at.unwrap_or(row.run_created_at),
            result: row.node.result,
        });
    }
    Ok(crate::routes::steps::with_link(HttpResponse::Ok(), link).json(items))
}

/// The runs whose root is a step, newest first: at most `limit` (50 by default).
#[utoipa::path(get, path = "/api/v1/runs/related/step/{stepId}", tag = "runs",
    params(
        ("stepId" = Uuid, Path, description = "The runs' root step."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "The most runs: 1 to 1000, 50 by default."),
    ),
    responses(
        (status = 200, description = "The step's runs.", body = RelatedRuns),
        (status = 400, description = "A bad `limit`.", body = ErrorBody),
        (status = 404, description = "A malformed step id.", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(step = %step_id.as_str()))]
pub async fn related(
    state: web::Data<AppState>,
    step_id: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let step = crate::routes::steps::step_id(&step_id)?;
    let page = Query::of(&req)?.page()?;
    let client = state.pool.get().await?;
    let rows = views::runs(
        &client,
        views::RunFilter { step: Some(step), ..Default::default() },
        None,
        i64::from(page.limit),
    )
    .await?;
    let runs = rows
        .into_iter()
        .map(|r| RunData {
            id: r.id,
            state: r.root.phase.state().as_str(),
            created_at: r.created_at,
            step_tree_id: r.step_id,
            result: r.root.result,
        })
        .collect();
    Ok(HttpResponse::Ok().json(RelatedRuns { runs }))
}
