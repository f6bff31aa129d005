//! Operators' hands on a run's nodes: settle a stuck action, or send it again. Each action is
//! recorded in the run's history.

use actix_web::{web, HttpResponse};
use aetr_engine::machine::{Event, Reply};

use super::view::NodeDetail;
use super::{node_detail, node_of, run_of};
use crate::app::AppState;
use crate::http::{body, ApiError, ErrorBody};
use crate::routes::callbacks::CALLBACK;

/// Completes an action by hand, with the body as its result (an empty body is no result), as
/// if its service had called back. The attempts made so far are superseded: their callbacks
/// get 409. A failed action of a failed run may be completed too; retrying the run then passes
/// its result on.
#[utoipa::path(post, path = "/api/v1/runs/{id}/nodes/{nodeId}/complete", tag = "runs",
    params(
        ("id" = uuid::Uuid, Path, description = "The run's id."),
        ("nodeId" = uuid::Uuid, Path, description = "The node's id: an action that calls a service, or a manual one (this approves it)."),
    ),
    request_body(content = String, content_type = "text/plain", description = "The result, raw."),
    responses(
        (status = 200, description = "Completed: the node.", body = NodeDetail),
        (status = 400, description = "The body is not UTF-8.", body = ErrorBody),
        (status = 404, description = "No such run or node.", body = ErrorBody),
        (status = 409, description = "The node is not an action that is Pending, Executing or failed.", body = ErrorBody),
        (status = 413, description = "The body is too large.", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(run = %path.0, node = %path.1))]
pub async fn complete(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let text = body::text(payload, state.max_callback_bytes, CALLBACK).await?;
    let result = (!text.is_empty()).then_some(text);
    act(&state, &path, |node| Event::Settle { node, outcome: Ok(result) }).await
}

/// Fails an action by hand, with the body as its error message. The run fails, as it would on
/// the service's own failure callback.
#[utoipa::path(post, path = "/api/v1/runs/{id}/nodes/{nodeId}/fail", tag = "runs",
    params(
        ("id" = uuid::Uuid, Path, description = "The run's id."),
        ("nodeId" = uuid::Uuid, Path, description = "The node's id: an action that calls a service, or a manual one (this rejects it)."),
    ),
    request_body(content = String, content_type = "text/plain", description = "The error message."),
    responses(
        (status = 200, description = "Failed: the node.", body = NodeDetail),
        (status = 400, description = "The body is not UTF-8.", body = ErrorBody),
        (status = 404, description = "No such run or node.", body = ErrorBody),
        (status = 409, description = "The node is not an action that is Pending or Executing.", body = ErrorBody),
        (status = 413, description = "The body is too large.", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(run = %path.0, node = %path.1))]
pub async fn fail(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let text = body::text(payload, state.max_callback_bytes, CALLBACK).await?;
    let error = if text.is_empty() { "failed by an operator".to_owned() } else { text };
    act(&state, &path, |node| Event::Settle { node, outcome: Err(error) }).await
}

/// Sends an action again now, as a new attempt with a new token. The attempts made so far are
/// superseded, and the retry policy starts a new round.
#[utoipa::path(post, path = "/api/v1/runs/{id}/nodes/{nodeId}/redispatch", tag = "runs",
    params(
        ("id" = uuid::Uuid, Path, description = "The run's id."),
        ("nodeId" = uuid::Uuid, Path, description = "The node's id: an action that calls a service."),
    ),
    responses(
        (status = 200, description = "Due now: the node.", body = NodeDetail),
        (status = 404, description = "No such run or node.", body = ErrorBody),
        (status = 409, description = "The run has stopped, or the node is not an action that is Pending or Executing.", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(run = %path.0, node = %path.1))]
pub async fn redispatch(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    act(&state, &path, |node| Event::Redispatch { node }).await
}

/// Applies an operator's event to a node, and answers with the node as it is after.
async fn act(
    state: &AppState,
    path: &(String, String),
    event: impl FnOnce(u32) -> Event,
) -> Result<HttpResponse, ApiError> {
    let (run, snap) = run_of(state, &path.0).await?;
    let idx = node_of(state, run, &snap, &path.1).await?;
    match state.runs.apply(run, event(idx)).await? {
        Reply::Done => Ok(HttpResponse::Ok().json(node_detail(state, run, &snap, idx).await?)),
        Reply::Conflict(why) => Err(ApiError::Conflict(why.to_owned())),
        other => {
            Err(ApiError::Internal(anyhow::anyhow!("an operator's event was answered {other:?}")))
        }
    }
}
