//! `/api/v1/runs/complete` and `/api/v1/runs/fail`: services report an attempt's result or
//! failure. The token is the credential: it is checked (in constant time) before anything
//! else, and an unknown or forged one is a 404.

use actix_web::{web, HttpRequest, HttpResponse};
use aetr_engine::machine::{Event, Reply};
use aetr_engine::parse::service_result;
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::AppState;
use crate::http::query::Query;
use crate::http::{body, ApiError, ErrorBody};
use crate::metrics::{AnswerLabel, METRICS};
use crate::runs::history;

/// What a callback body is called in a 413.
pub(crate) const CALLBACK: &str = "a callback (AETR_MAX_CALLBACK_BYTES)";

pub fn configure(cfg: &mut web::ServiceConfig) {
    use super::resource;
    cfg.service(resource("/runs/complete").post(complete))
        .service(resource("/runs/fail").post(fail));
}

/// The answer to a callback that was taken: `{}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Taken {}

/// A service's result for an attempt. The body is the result, raw, trimmed of surrounding
/// whitespace as AETR did; a body that is empty or only whitespace is no result.
#[utoipa::path(post, path = "/api/v1/runs/complete", tag = "callbacks", security(()),
    params(("token" = String, Query, description = "The token from the `aetr` callback URL.")),
    request_body(content = String, description = "The result, as raw text (UTF-8).", content_type = "*/*"),
    responses(
        (status = 200, description = "Taken.", body = Taken),
        (status = 400, description = "The body is not UTF-8; the token stays usable.", body = ErrorBody),
        (status = 404, description = "An unknown or forged token.", body = ErrorBody),
        (status = 409, description = "A repeat, a superseded attempt, a callback after the node's deadline, or a cancelled run.", body = ErrorBody),
        (status = 413, description = "The body is too large.", body = ErrorBody),
    ))]
pub async fn complete(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    callback(&state, &req, payload, |node, attempt, text| Event::Result {
        node,
        attempt,
        result: service_result(text),
    })
    .await
}

/// A service's failure for an attempt. The body is the error message, trimmed of surrounding
/// whitespace.
#[utoipa::path(post, path = "/api/v1/runs/fail", tag = "callbacks", security(()),
    params(("token" = String, Query, description = "The token from the `aetr` callback URL.")),
    request_body(content = String, description = "The error message, as raw text (UTF-8).", content_type = "*/*"),
    responses(
        (status = 200, description = "Taken.", body = Taken),
        (status = 400, description = "The body is not UTF-8; the token stays usable.", body = ErrorBody),
        (status = 404, description = "An unknown or forged token.", body = ErrorBody),
        (status = 409, description = "A repeat, a superseded attempt, a callback after the node's deadline, or a cancelled run.", body = ErrorBody),
        (status = 413, description = "The body is too large.", body = ErrorBody),
    ))]
pub async fn fail(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    callback(&state, &req, payload, |node, attempt, text| Event::Failure {
        node,
        attempt,
        error: service_result(text)
            .unwrap_or_else(|| "the service reported a failure, with no message".into()),
    })
    .await
}

#[tracing::instrument(skip_all, fields(run, node, attempt))]
async fn callback(
    state: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
    event: impl FnOnce(u32, u32, String) -> Event,
) -> Result<HttpResponse, ApiError> {
    let token = Query::of(req)?.get("token").map(str::to_owned).unwrap_or_default();
    let claim = state
        .runs
        .key()
        .verify(&token)
        .ok_or_else(|| ApiError::NotFound("unknown callback token".into()))?;
    let span = tracing::Span::current();
    span.record("run", tracing::field::display(claim.run));
    span.record("node", claim.node);
    span.record("attempt", claim.attempt);
    let text = body::text(payload, state.max_callback_bytes, CALLBACK).await?;
    let reply = state.runs.apply(claim.run, event(claim.node, claim.attempt, text)).await?;
    METRICS.callbacks.get_or_create(&AnswerLabel { answer: answer_label(reply) }).inc();
    if reply == Reply::Done {
        return Ok(HttpResponse::Ok().json(Taken {}));
    }
    match history::refusal(reply) {
        Some(why) => Err(ApiError::Conflict(why.to_owned())),
        None => Err(ApiError::Internal(anyhow::anyhow!("a callback was answered {reply:?}"))),
    }
}

/// A callback's answer, as a metric's label.
fn answer_label(reply: Reply) -> &'static str {
    match reply {
        Reply::Done => "taken",
        Reply::Repeat => "repeat",
        Reply::Superseded => "superseded",
        Reply::NotWaiting => "not_waiting",
        Reply::Late => "late",
        _ => "refused",
    }
}
