//! `GET /runs/{id}/events`: a run's history.

use actix_web::{web, HttpRequest, HttpResponse};
use aetr_engine::NodeIdx;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use super::run_of;
use crate::app::AppState;
use crate::http::query::Query;
use crate::http::{ApiError, ErrorBody};
use crate::runs::node_id::node_id;
use crate::runs::RunSnapshot;
use crate::store::events::{self, Recorded};

/// One thing that happened to a run.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunEvent {
    /// The event's place in the run's history; pass the last one seen as `after`.
    seq: i64,
    /// When, in epoch milliseconds.
    at: i64,
    /// `started`, `dispatched` (an attempt was sent), `resent` (the same attempt sent again
    /// after its sender died), `postFailed`, `callback`, `timedOut`, `mapped`, `reduced`,
    /// `cancelled`, `retried`, `completedByHand`, `failedByHand` or `redispatchedByHand`.
    kind: String,
    /// The node it is about; absent for an event of the whole run.
    #[serde(skip_serializing_if = "Option::is_none")]
    node_id: Option<Uuid>,
    /// The node's step name.
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    attempt: Option<u32>,
    /// What the kind needs: `error`, `httpStatus`, `dispatchAt` (when a retry is due),
    /// `outcome` (`complete` or `fail`) and `refused` (why a callback got 409).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    detail: Option<Value>,
    /// The nodes whose state it changed.
    changes: Vec<Change>,
}

/// A node's state changed.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    node_id: Uuid,
    name: String,
    #[schema(value_type = crate::routes::docs::StateDoc)]
    from: String,
    #[schema(value_type = crate::routes::docs::StateDoc)]
    to: String,
}

/// A run's history, oldest first: every state change, attempt, callback and operator action.
#[utoipa::path(get, path = "/api/v1/runs/{id}/events", tag = "runs",
    params(
        ("id" = Uuid, Path, description = "The run's id."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Events per page: 1 to 1000, 50 by default."),
        ("after" = Option<i64>, Query, description = "The last `seq` of the previous page."),
    ),
    responses(
        (status = 200, description = "A page of events, oldest first.", body = [RunEvent],
         headers(("Link" = String, description = "`<url>; rel=\"next\"` when another page follows."))),
        (status = 400, description = "A bad `limit` or `after`.", body = ErrorBody),
        (status = 404, description = "No such run.", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(run = %id.as_str()))]
pub async fn events(
    state: web::Data<AppState>,
    id: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (run, snap) = run_of(&state, &id).await?;
    let query = Query::of(&req)?;
    let page = query.page_by::<i64>("the seq of the last event seen")?;
    let client = state.pool.get().await?;
    let rows = events::page(&client, run, page.after, page.fetch()).await?;
    let (rows, link) = page.finish(rows, |e| e.seq, &query, &req);
    let events: Vec<RunEvent> = rows.into_iter().map(|e| shown(run, &snap, e)).collect();
    Ok(super::super::steps::with_link(HttpResponse::Ok(), link).json(events))
}

fn shown(run: Uuid, snap: &RunSnapshot, e: Recorded) -> RunEvent {
    let name = |idx: NodeIdx| snap.snapshot.get(idx).map(|n| n.name.clone()).unwrap_or_default();
    let changes = e
        .changes
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| {
            let idx = NodeIdx::try_from(c.get("idx")?.as_u64()?).ok()?;
            Some(Change {
                node_id: node_id(run, idx),
                name: name(idx),
                from: c.get("from")?.as_str()?.to_owned(),
                to: c.get("to")?.as_str()?.to_owned(),
            })
        })
        .collect();
    RunEvent {
        seq: e.seq,
        at: e.at,
        kind: e.kind,
        node_id: e.idx.map(|idx| node_id(run, idx)),
        name: e.idx.map(name),
        attempt: e.attempt,
        detail: e.detail,
        changes,
    }
}
