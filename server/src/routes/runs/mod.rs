//! `/api/v1/runs`: start runs, read them as trees of nodes, cancel and retry them.

pub mod aetr;
pub mod by_hand;
pub mod history;
pub mod remove;
pub mod stats;
pub mod view;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use aetr_engine::machine::{Event, Reply, State};
use aetr_engine::parse::run_input;
use aetr_engine::{DryRun, FieldError, FieldErrors, NodeIdx};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use super::docs::StateDoc;
use super::steps::IdBody;
use crate::app::AppState;
use crate::guard::Rules;
use crate::http::query::Query;
use crate::http::{body, ApiError, ErrorBody};
use crate::notify::Target;
use crate::runs::node_id::node_idx;
use crate::runs::{RunSnapshot, StartRun};
use crate::store::{attempts, notify, views};
use view::{NodeDetail, RunNode, RunSummary};

/// What a run's input is called in a 413.
const INPUT: &str = "a run's input (AETR_MAX_INPUT_BYTES)";
/// The longest long poll (`GET /runs/{id}?wait=`).
const MAX_WAIT_SECONDS: u64 = 60;
/// The longest idempotency key.
const MAX_KEY_CHARS: usize = 255;

pub fn configure(cfg: &mut web::ServiceConfig) {
    use super::resource;
    cfg.service(resource("/runs").get(list))
        // Before `/runs/{id}`, which would match `/runs/counts`, `/runs/state` and `/runs/active`.
        .service(resource("/runs/counts").get(stats::counts))
        .service(resource("/runs/{id}/progress").get(stats::progress))
        .service(resource("/runs/state").get(aetr::by_state))
        .service(resource("/runs/active").get(aetr::active))
        .service(resource("/runs/partial/{id}").get(aetr::partial))
        .service(resource("/runs/related/step/{stepId}").get(aetr::related))
        .service(resource("/runs/step/{stepId}").post(start))
        .service(resource("/runs/{id}").get(get_run).delete(remove::delete))
        .service(resource("/runs/{id}/nodes/{nodeId}").get(get_node))
        .service(resource("/runs/{id}/nodes/{nodeId}/children").get(children))
        .service(resource("/runs/{id}/nodes/{nodeId}/complete").post(by_hand::complete))
        .service(resource("/runs/{id}/nodes/{nodeId}/fail").post(by_hand::fail))
        .service(resource("/runs/{id}/nodes/{nodeId}/redispatch").post(by_hand::redispatch))
        .service(resource("/runs/{id}/events").get(history::events))
        .service(resource("/runs/{id}/cancel").post(cancel))
        .service(resource("/runs/{id}/retry").post(retry));
}

/// The body of `POST /runs/step/{stepId}`: the one definition that both parses a start and
/// documents it (see [`parse_start`]).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StartBody {
    /// Any JSON: a string is passed on raw, anything else as its JSON text; null (or absent)
    /// is no input.
    input: Option<Value>,
    /// Starting again with the same key returns the first run (200) instead of making one.
    #[schema(min_length = 1, max_length = 255)]
    idempotency_key: Option<String>,
    /// Where to POST the run's outcome when it ends (a Standard Webhooks message).
    #[schema(value_type = Option<NotifyDoc>)]
    notify: Option<Value>,
    /// A dry run: no action calls anything. `true`, or `{"results": {...}}` to give actions'
    /// results.
    #[schema(value_type = Option<DryRunDoc>)]
    dry_run: Option<Value>,
}

/// A dry run: every `api` action completes at once, with the result given here for its step's
/// name, or else with its input; every `wait` ends at once; a `manual` action still waits for a
/// person. Mappers, reducers, Branches and Maps run for real. The run is marked `dryRun`, left
/// out of `GET /runs` and the counts unless asked for, and counted by no metric; it sends no
/// webhook.
#[derive(Debug, ToSchema)]
#[schema(as = DryRun)]
#[allow(dead_code)]
pub struct DryRunDoc {
    /// The result of each `api` action, by its step's name: a string is the result's text,
    /// anything else its JSON text. Each name must be that of an `api` action of the tree.
    results: Option<std::collections::BTreeMap<String, Value>>,
}

/// A completion webhook: when the run ends, aetr POSTs
/// `{"type":"run.finished","runId","stepId","state","result","error","failedNode","createdAt","completedAt"}`
/// to `url` with the headers `webhook-id`, `webhook-timestamp` and, with a `secret`,
/// `webhook-signature` (`v1,<base64 HMAC-SHA256 over "{id}.{timestamp}.{body}">`; a `whsec_`
/// secret is the base64 of the key). Anything but a 2xx is tried again, with backoff, for 24
/// hours. The action URL rules apply to `url`; the secret is never returned.
#[derive(Debug, ToSchema)]
#[schema(as = Notify)]
#[allow(dead_code)]
pub struct NotifyDoc {
    /// An http(s) URL.
    url: String,
    #[schema(min_length = 1)]
    secret: Option<String>,
    /// Sent with every message.
    headers: Option<std::collections::BTreeMap<String, String>>,
}

/// Which tree a retry runs on.
#[derive(Debug, ToSchema)]
#[schema(as = RetryDefinition, rename_all = "lowercase")]
#[allow(dead_code)]
pub enum DefinitionDoc {
    Snapshot,
    Latest,
}

/// A run's state after an operator's action.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunState {
    id: Uuid,
    #[schema(value_type = StateDoc)]
    state: &'static str,
}

/// Starts a run of a step tree: snapshots the tree, and makes the run and its first dispatches
/// in one transaction.
#[utoipa::path(post, path = "/api/v1/runs/step/{stepId}", tag = "runs",
    params(("stepId" = Uuid, Path, description = "The root step.")),
    request_body(content = StartBody, description = "`{input, idempotencyKey?, notify?, dryRun?}`; an empty body is no input."),
    responses(
        (status = 201, description = "Started.", body = IdBody,
         headers(("Location" = String, description = "The run's URL."))),
        (status = 200, description = "A run with this idempotencyKey was started before: that run.", body = IdBody),
        (status = 400, description = "A malformed body.", body = ErrorBody),
        (status = 404, description = "No such step.", body = ErrorBody),
        (status = 409, description = "The idempotencyKey was used for a run of another step.", body = ErrorBody),
        (status = 413, description = "The body is too large.", body = ErrorBody),
        (status = 422, description = "The input does not match the root step's `inputSchema` (each error names its place, `input.items[0]: ...`; no run is made), a `notify.url` that the action URL rules refuse, a `dryRun` result for a name that is no `api` action of the tree, or the tree is over a limit.", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(step = %step_id.as_str()))]
pub async fn start(
    state: web::Data<AppState>,
    step_id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let step_id = super::steps::step_id(&step_id)?;
    let bytes = body::read(payload, state.max_input_bytes, INPUT).await?;
    let Start { input, idempotency_key, notify, dry } = parse_start(&bytes, &state.url_rules)?;
    let request = StartRun { step_id, input, idempotency_key, notify, schedule_id: None, dry };
    let started = state.runs.start(request).await?;
    let mut response = if started.created { HttpResponse::Created() } else { HttpResponse::Ok() };
    Ok(response
        .insert_header((header::LOCATION, format!("/api/v1/runs/{}", started.id)))
        .json(IdBody { id: started.id }))
}

/// A start's input and idempotency key. Each field is read alone first, so that every bad one
/// is named, not only the first.
fn parse_start(bytes: &[u8], rules: &Rules) -> Result<Start, ApiError> {
    let Some(value) = body::parse_json(bytes)? else { return Ok(Start::default()) };
    let Value::Object(fields) = value else {
        return Err(ApiError::invalid(
            "",
            "expected an object: {\"input\": ..., \"idempotencyKey\": ..., \"notify\": ...}",
        ));
    };
    let mut errors: Vec<FieldError> = fields
        .iter()
        .filter_map(|(name, value)| {
            let alone = Value::Object([(name.clone(), value.clone())].into_iter().collect());
            let error = serde_json::from_value::<StartBody>(alone).err()?;
            Some(FieldError::invalid(name, error.to_string()))
        })
        .collect();
    let body: StartBody = match errors.is_empty() {
        true => serde_json::from_value(Value::Object(fields))
            .map_err(|e| ApiError::invalid("", e.to_string()))?,
        false => StartBody::default(),
    };
    let key = body.idempotency_key.filter(|k| {
        let fits = !k.is_empty() && k.chars().count() <= MAX_KEY_CHARS;
        if !fits {
            errors.push(FieldError::invalid(
                "idempotencyKey",
                format!("expected a string of 1 to {MAX_KEY_CHARS} characters"),
            ));
        }
        fits
    });
    let notify = body.notify.as_ref().filter(|n| !n.is_null()).and_then(|n| {
        Target::parse(n, rules).map_err(|bad| errors.extend(bad.errors().iter().cloned())).ok()
    });
    let dry = body.dry_run.as_ref().and_then(|d| dry_run(d, &mut errors));
    if dry.is_some() && notify.is_some() {
        errors.push(FieldError::refused("notify", "a dry run sends no webhook"));
    }
    if let Some(errors) = FieldErrors::from_vec(errors) {
        return Err(errors.into());
    }
    let input = body.input.as_ref().and_then(run_input);
    Ok(Start { input, idempotency_key: key, notify, dry })
}

/// A start's `dryRun`: `true`, `false`, null or `{"results": {"<step name>": <result>}}`.
fn dry_run(value: &Value, errors: &mut Vec<FieldError>) -> Option<DryRun> {
    let results = match value {
        Value::Null | Value::Bool(false) => return None,
        Value::Bool(true) => return Some(DryRun::default()),
        Value::Object(fields) => {
            let unknown = fields.keys().filter(|k| *k != "results");
            errors.extend(unknown.map(|k| {
                FieldError::invalid(format!("dryRun.{k}"), "unknown field: expected results")
            }));
            match fields.get("results") {
                None | Some(Value::Null) => return Some(DryRun::default()),
                Some(Value::Object(results)) => results,
                Some(other) => {
                    let message =
                        format!("expected an object of results by step name, found {other}");
                    errors.push(FieldError::invalid("dryRun.results", message));
                    return None;
                }
            }
        }
        other => {
            let message = format!("expected true or {{\"results\": {{...}}}}, found {other}");
            errors.push(FieldError::invalid("dryRun", message));
            return None;
        }
    };
    let mut dry = DryRun::default();
    for (name, result) in results {
        match run_input(result) {
            Some(text) => _ = dry.results.insert(name.clone(), text),
            None => errors.push(FieldError::invalid(
                format!("dryRun.results.{name}"),
                "expected the result: a string is its text, anything else its JSON text",
            )),
        }
    }
    Some(dry)
}

/// What a start's body asks for.
#[derive(Debug, Default)]
struct Start {
    input: Option<String>,
    idempotency_key: Option<String>,
    notify: Option<Target>,
    dry: Option<DryRun>,
}

/// A page of runs, newest first.
#[utoipa::path(get, path = "/api/v1/runs", tag = "runs",
    params(
        ("state" = Option<StateDoc>, Query, description = "Only runs in this state: Pending, Executing, Complete, Error or Cancelled."),
        ("stepId" = Option<Uuid>, Query, description = "Only runs of this root step."),
        ("scheduleId" = Option<Uuid>, Query, description = "Only runs that this schedule started."),
        ("dryRun" = Option<String>, Query, description = "`false` (the default): real runs only; `true`: dry runs only; `any`: both."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Runs per page: 1 to 1000, 50 by default."),
        ("after" = Option<Uuid>, Query, description = "The last id of the previous page."),
    ),
    responses(
        (status = 200, description = "A page of runs.", body = [RunSummary],
         headers(("Link" = String, description = "`<url>; rel=\"next\"` when another page follows."))),
        (status = 400, description = "A bad filter, `limit` or `after`.", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn list(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let query = Query::of(&req)?;
    let page = query.page()?;
    let mut errors = Vec::new();
    let run_state = query.state().unwrap_or_else(|e| {
        errors.push(e);
        None
    });
    let step = query.step_id().unwrap_or_else(|e| {
        errors.push(e);
        None
    });
    let schedule = query.uuid("scheduleId", "a schedule's id").unwrap_or_else(|e| {
        errors.push(e);
        None
    });
    let dry = match query.non_empty("dryRun") {
        None | Some("false") => Some(false),
        Some("true") => Some(true),
        Some("any") => None,
        Some(other) => {
            errors.push(FieldError::invalid(
                "dryRun",
                format!("expected true, false or any, found {other:?}"),
            ));
            None
        }
    };
    if let Some(errors) = FieldErrors::from_vec(errors) {
        return Err(errors.into());
    }
    let client = state.pool.get().await?;
    let filter = views::RunFilter { state: run_state, step, schedule, dry };
    let rows = views::runs(&client, filter, page.after, page.fetch()).await?;
    let (rows, link) = page.finish(rows, |r| r.id, &query, &req);
    let runs: Vec<RunSummary> = rows.into_iter().map(view::summary).collect();
    Ok(super::steps::with_link(HttpResponse::Ok(), link).json(runs))
}

/// A run as a tree of nodes: the whole tree, or cut `depth` levels below the root. Given the id
/// of any node of the run, it answers the run's whole tree, as AETR did.
#[utoipa::path(get, path = "/api/v1/runs/{id}", tag = "runs",
    params(
        ("id" = Uuid, Path, description = "The run's id, or the id of any of its nodes."),
        ("depth" = Option<u32>, Query, description = "How many levels below the root to include; the nodes at the last level carry `childCount` and `counts` but no `children`."),
        ("wait" = Option<u32>, Query, maximum = 60, description = "A long poll: answer as soon as the run has ended, or after this many seconds (at most 60), whichever comes first."),
    ),
    responses(
        (status = 200, description = "The run's root node, with its children.", body = RunNode),
        (status = 400, description = "A bad `depth` or `wait`.", body = ErrorBody),
        (status = 404, description = "No such run.", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(run = %id.as_str()))]
pub async fn get_run(
    state: web::Data<AppState>,
    id: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (run, snap, _) = run_of_any(&state, &id).await?;
    let query = Query::of(&req)?;
    let depth = match query.non_empty("depth") {
        None => None,
        Some(raw) => Some(raw.parse::<u32>().map_err(|_| {
            ApiError::invalid("depth", format!("expected a whole number of levels, found {raw:?}"))
        })?),
    };
    if let Some(raw) = query.non_empty("wait") {
        let seconds =
            raw.parse::<u64>().ok().filter(|s| *s <= MAX_WAIT_SECONDS).ok_or_else(|| {
                let expected =
                    format!("expected a whole number of seconds from 0 to {MAX_WAIT_SECONDS}");
                ApiError::invalid("wait", format!("{expected}, found {raw:?}"))
            })?;
        state.runs.wait_for_end(run, std::time::Duration::from_secs(seconds)).await?;
    }
    let client = state.pool.get().await?;
    let rows = views::nodes_to_depth(&client, run, depth).await?;
    state.runs.cover(run, &snap, rows.iter().map(|r| r.idx)).await?;
    let last_level: Vec<NodeIdx> = match depth {
        Some(d) => rows
            .iter()
            .filter(|r| snap.place(r.idx).is_some_and(|at| at.depth == d && at.child_count > 0))
            .map(|r| r.idx)
            .collect(),
        None => Vec::new(),
    };
    let deeper = view::counts_by_parent(&views::child_counts(&client, run, &last_level).await?);
    let (failed, webhook) =
        futures_util::try_join!(views::failed_node(&client, run), notify::status(&client, run))?;
    let mut tree =
        view::tree(run, &snap, &rows, depth, &deeper, failed).ok_or_else(|| no_run(run))?;
    tree.notify = webhook.map(view::NotifyView::from);
    tree.dry_run = snap.snapshot.dry().is_some();
    Ok(HttpResponse::Ok().json(tree.with_trace(run, state.trace_url.as_deref())))
}

/// One node, with its attempts and its snapshot's action, mapper and reducer.
#[utoipa::path(get, path = "/api/v1/runs/{id}/nodes/{nodeId}", tag = "runs",
    params(
        ("id" = Uuid, Path, description = "The run's id."),
        ("nodeId" = Uuid, Path, description = "The node's id."),
    ),
    responses(
        (status = 200, description = "The node.", body = NodeDetail),
        (status = 404, description = "No such run or node.", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(run = %path.0, node = %path.1))]
pub async fn get_node(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (run, snap) = run_of(&state, &path.0).await?;
    let idx = node_of(&state, run, &snap, &path.1).await?;
    Ok(HttpResponse::Ok().json(node_detail(&state, run, &snap, idx).await?))
}

/// A node as `GET /runs/{id}/nodes/{nodeId}` shows it.
async fn node_detail(
    state: &AppState,
    run: Uuid,
    snap: &RunSnapshot,
    idx: NodeIdx,
) -> Result<NodeDetail, ApiError> {
    let client = state.pool.get().await?;
    let id = crate::runs::node_id::node_id(run, idx);
    let row = views::node(&client, run, idx).await?.ok_or_else(|| no_node(&id.to_string()))?;
    let attempts = attempts::of_node(&client, run, idx).await?;
    let counts = view::counts_by_parent(&views::child_counts(&client, run, &[idx]).await?)
        .remove(&idx)
        .unwrap_or_default();
    Ok(view::detail(run, snap, row, attempts, counts))
}

/// A page of a node's children, in order.
#[utoipa::path(get, path = "/api/v1/runs/{id}/nodes/{nodeId}/children", tag = "runs",
    params(
        ("id" = Uuid, Path, description = "The run's id."),
        ("nodeId" = Uuid, Path, description = "The parent node's id."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Children per page: 1 to 1000, 50 by default."),
        ("after" = Option<Uuid>, Query, description = "The last node id of the previous page."),
    ),
    responses(
        (status = 200, description = "A page of children, each with the counts of its own children.", body = [RunNode],
         headers(("Link" = String, description = "`<url>; rel=\"next\"` when another page follows."))),
        (status = 400, description = "A bad `limit` or `after`.", body = ErrorBody),
        (status = 404, description = "No such run or node.", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(run = %path.0, node = %path.1))]
pub async fn children(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (run, snap) = run_of(&state, &path.0).await?;
    let idx = node_of(&state, run, &snap, &path.1).await?;
    let query = Query::of(&req)?;
    let page = query.page()?;
    let after = match page.after {
        None => None,
        Some(id) => Some(node_idx(run, id, i32::MAX as usize).ok_or_else(|| {
            ApiError::invalid("after", format!("{id} is not a node of run {run}"))
        })?),
    };
    let client = state.pool.get().await?;
    let rows = views::children(&client, run, idx, after, page.fetch()).await?;
    state.runs.cover(run, &snap, rows.iter().map(|r| r.idx)).await?;
    let (rows, link) =
        page.finish(rows, |r| crate::runs::node_id::node_id(run, r.idx), &query, &req);
    let parents: Vec<NodeIdx> = rows.iter().map(|r| r.idx).collect();
    let counts = view::counts_by_parent(&views::child_counts(&client, run, &parents).await?);
    let nodes: Vec<RunNode> =
        rows.iter().map(|r| view::leaf(run, &snap, r, counts.get(&r.idx))).collect();
    Ok(super::steps::with_link(HttpResponse::Ok(), link).json(nodes))
}

/// Cancels a run: it and its unfinished nodes become `Cancelled`, and later callbacks get 409.
#[utoipa::path(post, path = "/api/v1/runs/{id}/cancel", tag = "runs",
    params(("id" = Uuid, Path, description = "The run's id.")),
    responses(
        (status = 200, description = "Cancelled.", body = RunState),
        (status = 404, description = "No such run.", body = ErrorBody),
        (status = 409, description = "The run has already finished.", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(run = %id.as_str()))]
pub async fn cancel(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    operate(&state, &id, Event::Cancel, State::Cancelled).await
}

/// A run's state after a redrive on the latest definitions, and the nodes that run again.
#[derive(Debug, Serialize, ToSchema)]
pub struct Redriven {
    id: Uuid,
    #[schema(value_type = StateDoc)]
    state: &'static str,
    /// The ids of the nodes that run again, in pre-order (only with `?definition=latest`; the
    /// run's other nodes keep their results).
    #[serde(skip_serializing_if = "Option::is_none")]
    rerun: Option<Vec<Uuid>>,
}

/// Resumes a failed run from the nodes that failed: failed actions are sent again as a new
/// attempt, a failed mapper or reducer runs again, and completed nodes keep their results.
/// With `?definition=latest`, the run is first given a new snapshot of its tree's current
/// definitions; nodes whose snapshot subtree and input are unchanged keep their results, and
/// the answer lists the nodes that run again.
#[utoipa::path(post, path = "/api/v1/runs/{id}/retry", tag = "runs",
    params(
        ("id" = Uuid, Path, description = "The run's id."),
        ("definition" = Option<DefinitionDoc>, Query, description = "`snapshot` (the default): the tree the run started with; `latest`: the tree's current definitions."),
    ),
    responses(
        (status = 200, description = "Resumed.", body = Redriven),
        (status = 400, description = "A bad `definition`.", body = ErrorBody),
        (status = 404, description = "No such run.", body = ErrorBody),
        (status = 409, description = "The run is not in Error, or (with `latest`) its step was deleted.", body = ErrorBody),
        (status = 422, description = "With `latest`: the current tree is over a limit.", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(run = %id.as_str()))]
pub async fn retry(
    state: web::Data<AppState>,
    id: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    match Query::of(&req)?.non_empty("definition") {
        None | Some("snapshot") => {
            // The nodes to resume from are found under the run's lock.
            operate(&state, &id, Event::Redrive { nodes: Vec::new() }, State::Executing).await
        }
        Some("latest") => {
            let run = run_id(&id)?;
            let rebased = state.runs.redrive_latest(run).await?;
            let state = rebased.state.as_str();
            Ok(HttpResponse::Ok().json(Redriven { id: run, state, rerun: Some(rebased.rerun) }))
        }
        Some(other) => Err(ApiError::invalid(
            "definition",
            format!("expected snapshot or latest, found {other:?}"),
        )),
    }
}

async fn operate(
    state: &AppState,
    id: &str,
    event: Event,
    after: State,
) -> Result<HttpResponse, ApiError> {
    let run = run_id(id)?;
    match state.runs.apply(run, event).await? {
        Reply::Done => Ok(HttpResponse::Ok().json(RunState { id: run, state: after.as_str() })),
        Reply::Conflict(why) => Err(ApiError::Conflict(why.to_owned())),
        other => {
            Err(ApiError::Internal(anyhow::anyhow!("a run-wide event was answered {other:?}")))
        }
    }
}

/// The run of a path, and its snapshot.
async fn run_of(
    state: &AppState,
    raw: &str,
) -> Result<(Uuid, std::sync::Arc<RunSnapshot>), ApiError> {
    let run = run_id(raw)?;
    let snap = state.runs.snapshot(run).await?.ok_or_else(|| no_run(run))?;
    Ok((run, snap))
}

/// The run of a path's id, which may be the id of any node of the run, its snapshot, and that
/// node's number.
async fn run_of_any(
    state: &AppState,
    raw: &str,
) -> Result<(Uuid, std::sync::Arc<RunSnapshot>, NodeIdx), ApiError> {
    let id = run_id(raw)?;
    if let Some(snap) = state.runs.snapshot(id).await? {
        return Ok((id, snap, 0));
    }
    let (run, idx) = state.runs.node_of(id).await?.ok_or_else(|| no_run(id))?;
    let snap = state.runs.snapshot_covering(run, &[idx]).await?.ok_or_else(|| no_run(id))?;
    snap.step(idx).ok_or_else(|| no_run(id))?;
    Ok((run, snap, idx))
}

/// A node of a run, from its id in a path.
async fn node_of(
    state: &AppState,
    run: Uuid,
    snap: &RunSnapshot,
    raw: &str,
) -> Result<NodeIdx, ApiError> {
    let idx = Uuid::try_parse(raw)
        .ok()
        .and_then(|id| node_idx(run, id, i32::MAX as usize))
        .ok_or_else(|| no_node(raw))?;
    state.runs.cover(run, snap, [idx]).await?;
    snap.step(idx).map(|_| idx).ok_or_else(|| no_node(raw))
}

fn run_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::try_parse(raw).map_err(|_| ApiError::NotFound(format!("no run with id {raw:?}")))
}

fn no_run(run: Uuid) -> ApiError {
    ApiError::NotFound(format!("no run with id {run}"))
}

fn no_node(raw: &str) -> ApiError {
    ApiError::NotFound(format!("no node with id {raw:?} in this run"))
}
