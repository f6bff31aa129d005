//! Counts for the web UI's live views: how many runs are in each state (`GET /runs/counts`),
//! and how far one run's actions have got (`GET /runs/{id}/progress`).

use std::collections::BTreeMap;

use actix_web::{web, HttpRequest, HttpResponse};
use aetr_engine::machine::{Phase, State};
use aetr_engine::{FieldError, NodeIdx, StepType};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::app::AppState;
use crate::http::query::Query;
use crate::http::{ApiError, ErrorBody};

/// Registered before `runs`, whose `/runs/{id}` would match `/runs/counts`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    use super::resource;
    cfg.service(resource("/runs/counts").get(counts))
        .service(resource("/runs/{id}/progress").get(progress));
}

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
pub async fn counts(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    const SQL: &str = "SELECT state, count(*) FROM runs
        WHERE ($1::uuid IS NULL OR step_id = $1) GROUP BY state";
    let step = match Query::of(&req)?.non_empty("stepId") {
        None => None,
        Some(raw) => Some(Uuid::try_parse(raw).map_err(|_| {
            ApiError::from(FieldError::invalid(
                "stepId",
                format!("expected a step's id, found {raw:?}"),
            ))
        })?),
    };
    let client = state.pool.get().await?;
    let statement = client.prepare_cached(SQL).await?;
    let rows = client.query(&statement, &[&step]).await?;
    let mut counts = all_states();
    for row in rows {
        let name: &str = row.try_get(0)?;
        let n: i64 = row.try_get(1)?;
        if let Some(parsed) = State::parse(name) {
            *counts.entry(parsed.as_str()).or_default() += n as u64;
        }
    }
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
pub async fn progress(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    const SQL: &str = "SELECT phase, count(*) FROM run_nodes
        WHERE run_id = $1 AND idx = ANY($2) GROUP BY phase";
    let no_run = || ApiError::NotFound(format!("no run {:?}", id.as_str()));
    let run = Uuid::try_parse(&id).map_err(|_| no_run())?;
    let snap = state.runs.snapshot(run).await?.ok_or_else(no_run)?;
    let actions: Vec<i32> = (0..snap.snapshot.len() as NodeIdx)
        .filter(|&i| snap.snapshot.node(i).step_type() == StepType::Action)
        .map(|i| i as i32)
        .collect();
    let client = state.pool.get().await?;
    let statement = client.prepare_cached(SQL).await?;
    let rows = client.query(&statement, &[&run, &actions]).await?;
    let mut counts = all_states();
    for row in rows {
        let phase: &str = row.try_get(0)?;
        let n: i64 = row.try_get(1)?;
        let phase = Phase::parse(phase)
            .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("unknown node phase {phase:?}")))?;
        *counts.entry(phase.state().as_str()).or_default() += n as u64;
    }
    Ok(HttpResponse::Ok().json(Progress {
        nodes: snap.snapshot.len() as u64,
        actions: actions.len() as u64,
        counts,
    }))
}

fn all_states() -> BTreeMap<&'static str, u64> {
    [State::Pending, State::Executing, State::Complete, State::Error, State::Cancelled]
        .iter()
        .map(|s| (s.as_str(), 0))
        .collect()
}
