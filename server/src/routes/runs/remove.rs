//! `DELETE /runs/{id}`: removing a finished run, with its nodes, attempts and history.

use actix_web::{web, HttpResponse};

use super::run_id;
use crate::app::AppState;
use crate::http::{ApiError, ErrorBody};
use crate::store::retention::{self, Deleted};

/// Deletes a run that has finished (Complete, Error or Cancelled), with its nodes, attempts
/// and history. A run in flight is kept (409): cancel it first. Callbacks for a deleted run's
/// nodes get 404. `AETR_RETENTION_DAYS` deletes old runs the same way.
#[utoipa::path(delete, path = "/api/v1/runs/{id}", tag = "runs",
    params(("id" = uuid::Uuid, Path, description = "The run's id.")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "No such run.", body = ErrorBody),
        (status = 409, description = "The run is still Pending or Executing.", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(run = %id.as_str()))]
pub async fn delete(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let run = run_id(&id)?;
    let client = state.pool.get().await?;
    match retention::delete_finished(&client, run).await? {
        Deleted::Deleted => Ok(HttpResponse::NoContent().finish()),
        Deleted::InFlight => Err(ApiError::Conflict(format!(
            "run {run} is still in flight; cancel it first, or wait for it to finish"
        ))),
        Deleted::NoSuchRun => Err(super::no_run(run)),
    }
}
