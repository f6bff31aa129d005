//! Counts for the web UI's live views: how many runs are in each state (`GET /runs/counts`),
//! and how far one run's actions have got (`GET /runs/{id}/progress`).

use std::collections::BTreeMap;

use actix_web::{web, HttpRequest, HttpResponse};
use aetr_engine::machine::State;
use aetr_engine::{NodeIdx, StepType};
use serde::Serialize;
use utoipa::ToSchema;

use super::run_of;
use crate::app::AppState;
use crate::http::query::Query;
use crate::http::{ApiError, ErrorBody};
use crate::store::views;

/// How many runs are in each state; every state is present.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunCounts {
    /// Runs, by state.
    #[schema(value_type = BTreeMap<String, u64>)]
    counts: BTreeMap<&'static str, u64>,
    total: u64,
}

/// How many runs are in each state, for the runs list's filter.
#[utoipa::path(get, path = "/api/v1/runs/counts", tag = "runs",
    params(("stepId" = Option<Uuid>, Query, description = "Only runs of this root step.")),
    responses(
        (status = 200, description = "Runs in each state.", body = RunCounts),
        (status = 400, description = "A bad `stepId`.", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn counts(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let step = Query::of(&req)?.step_id()?;
    let client = state.pool.get().await?;
    let counts = by_state(&State::RUN, views::run_counts(&client, step).await?);
    let total = counts.values().sum();
    Ok(HttpResponse::Ok().json(RunCounts { counts, total }))
}

/// How far a run's actions have got.
#[derive(Debug, Serialize, ToSchema)]
pub struct Progress {
    /// The run's nodes, with reuse expanded.
    nodes: u64,
    /// The run's actions (leaves), with reuse expanded.
    actions: u64,
    /// Its actions, by state; every state is present.
    #[schema(value_type = BTreeMap<String, u64>)]
    counts: BTreeMap<&'static str, u64>,
}

/// How many of a run's actions are in each state: the progress bar of the run's page.
#[utoipa::path(get, path = "/api/v1/runs/{id}/progress", tag = "runs",
    params(("id" = Uuid, Path, description = "The run's id.")),
    responses(
        (status = 200, description = "The run's actions, by state.", body = Progress),
        (status = 404, description = "No such run.", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(run = %id.as_str()))]
pub async fn progress(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (run, snap) = run_of(&state, &id).await?;
    // Every Map's instances are nodes too.
    state.runs.know_all_instances(run, &snap).await?;
    let (nodes, actions) = snap.with_tree(|tree| {
        let mut nodes = 0;
        let mut actions: Vec<NodeIdx> = Vec::new();
        for node in tree.nodes() {
            nodes += 1;
            if node.step.step_type() == StepType::Action {
                actions.push(node.idx);
            }
        }
        (nodes, actions)
    });
    let client = state.pool.get().await?;
    let counts = by_state(&State::ALL, views::node_counts(&client, run, &actions).await?);
    Ok(HttpResponse::Ok().json(Progress {
        nodes: nodes as u64,
        actions: actions.len() as u64,
        counts,
    }))
}

/// Counts by state, with each of `states` present.
fn by_state(states: &[State], counts: Vec<(State, u64)>) -> BTreeMap<&'static str, u64> {
    let mut all: BTreeMap<&'static str, u64> = states.iter().map(|s| (s.as_str(), 0)).collect();
    for (state, n) in counts {
        *all.entry(state.as_str()).or_default() += n;
    }
    all
}
