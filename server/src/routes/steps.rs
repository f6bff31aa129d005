//! `/api/v1/steps`: define, read, compose and delete step trees.

use std::collections::HashMap;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse, HttpResponseBuilder};
use aetr_engine::{Action, Chooser, InputSchema, MapSpec, Mapper, Reducer, Step, StepType};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use super::docs::{ActionDoc, BranchDoc, MapDoc, MapperDoc, ReducerDoc, StepTypeDoc};
use crate::app::AppState;
use crate::definitions::{self, not_found, Change, Mode};
use crate::http::query::Query;
use crate::http::{body, ApiError, ErrorBody};
use crate::store::steps::{self, StepSummary};

/// What a definition body is called in a 413.
const DEFINITION: &str = "a step definition (AETR_MAX_DEFINITION_BYTES)";

pub fn configure(cfg: &mut web::ServiceConfig) {
    use super::resource;
    cfg.service(resource("/steps").get(list).post(create).put(put_tree))
        .service(resource("/steps/slim").put(put_slim))
        .service(resource("/steps/{id}").get(get_tree).delete(delete))
        .service(resource("/steps/{id}/slim").get(get_slim))
        .service(resource("/steps/{id}/children").post(set_children))
        .service(resource("/steps/{id}/parents").get(parents))
        .service(resource("/steps/{id}/clone").post(clone));
}

/// The id of a step that was written.
#[derive(Debug, Serialize, ToSchema)]
pub struct IdBody {
    pub id: Uuid,
}

/// A step with its whole tree below it ("fat"). In a request, ids are optional (they are made
/// when absent), and a child given only as `{id, mapper?}` refers to a stored step and leaves
/// it unchanged.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FatStep {
    id: Uuid,
    #[schema(min_length = 1)]
    name: String,
    #[schema(value_type = StepTypeDoc)]
    step_type: StepType,
    /// An Action's action.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<ActionDoc>)]
    action: Option<Action>,
    /// A Parallel or a Map step's reducer.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<ReducerDoc>)]
    reducer: Option<Reducer>,
    /// A Map's options.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<MapDoc>)]
    map: Option<MapSpec>,
    /// A Branch's function.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<BranchDoc>)]
    branch: Option<Chooser>,
    /// What the step's input must match: a JSON Schema (draft 2020-12). The input's text is
    /// parsed as JSON (text that is not JSON is a string; no input is `null`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    input_schema: Option<InputSchema>,
    #[schema(no_recursion)]
    children: Vec<FatStep>,
    /// On a child: the mapper on the link from its parent.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<MapperDoc>)]
    mapper: Option<Mapper>,
}

impl FatStep {
    /// The tree under `id`, with reused steps repeated in full wherever they appear. Every
    /// step below `id` must be in `steps`.
    fn of(id: Uuid, mapper: Option<&Mapper>, steps: &HashMap<Uuid, Step>) -> Option<FatStep> {
        let step = steps.get(&id)?;
        let children = step
            .children
            .iter()
            .map(|link| FatStep::of(link.id, link.mapper.as_ref(), steps))
            .collect::<Option<Vec<_>>>()?;
        Some(FatStep {
            id,
            name: step.name.clone(),
            step_type: step.step_type(),
            action: step.body.action().cloned(),
            reducer: step.body.reducer().cloned(),
            map: step.body.map().cloned(),
            branch: step.body.chooser().cloned(),
            input_schema: step.input_schema.clone(),
            children,
            mapper: mapper.cloned(),
        })
    }
}

/// One step, with its children given by id. `action` is null unless it is an Action, and
/// `reducer` unless it is a Parallel or a Map step; `map` is there only on a Map and `branch`
/// only on a Branch. In a request,
/// `id` is optional, and a child may be given as its bare id.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SlimStep {
    id: Uuid,
    #[schema(min_length = 1)]
    name: String,
    #[schema(value_type = StepTypeDoc)]
    step_type: StepType,
    #[schema(value_type = Option<ActionDoc>)]
    action: Option<Action>,
    #[schema(value_type = Option<ReducerDoc>)]
    reducer: Option<Reducer>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<MapDoc>)]
    map: Option<MapSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<BranchDoc>)]
    branch: Option<Chooser>,
    /// What the step's input must match: a JSON Schema (draft 2020-12).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    input_schema: Option<InputSchema>,
    children: Vec<SlimChild>,
}

/// A link to a child, by the child's id, with the mapper on the link.
#[derive(Debug, Serialize, ToSchema)]
pub struct SlimChild {
    id: Uuid,
    #[schema(value_type = Option<MapperDoc>)]
    mapper: Option<Mapper>,
}

impl From<Step> for SlimStep {
    fn from(step: Step) -> Self {
        SlimStep {
            id: step.id,
            step_type: step.step_type(),
            action: step.body.action().cloned(),
            reducer: step.body.reducer().cloned(),
            map: step.body.map().cloned(),
            branch: step.body.chooser().cloned(),
            input_schema: step.input_schema,
            name: step.name,
            children: step
                .children
                .into_iter()
                .map(|l| SlimChild { id: l.id, mapper: l.mapper })
                .collect(),
        }
    }
}

/// The body of `POST /steps/{id}/children`: the new ordered child list.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChildrenBody {
    #[allow(dead_code)]
    children: Vec<SlimChild>,
}

/// Lists steps, by id: every one without `limit` (as AETR's clients, which never follow `Link`,
/// expect), or a page of them.
#[utoipa::path(get, path = "/api/v1/steps", tag = "steps",
    params(
        ("q" = Option<String>, Query, description = "Only steps whose name contains this, in any case."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Steps per page: 1 to 1000. Without it, every step, in one answer."),
        ("after" = Option<Uuid>, Query, description = "The last id of the previous page."),
    ),
    responses(
        (status = 200, description = "A page of steps.", body = [StepLine],
         headers(("Link" = String, description = "`<url>; rel=\"next\"` when another page follows."))),
        (status = 400, description = "A bad `limit` or `after`.", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn list(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let query = Query::of(&req)?;
    let page = query.page()?;
    let client = state.pool.get().await?;
    let name = query.non_empty("q");
    if query.non_empty("limit").is_none() {
        let rows = steps::list(&client, name, page.after, i64::MAX).await?;
        return Ok(HttpResponse::Ok().json(lines(rows)));
    }
    let rows = steps::list(&client, name, page.after, page.fetch()).await?;
    let (rows, link) = page.finish(rows, |s| s.id, &query, &req);
    Ok(with_link(HttpResponse::Ok(), link).json(lines(rows)))
}

/// Creates one step, whose children (if any) are stored steps given by id.
#[utoipa::path(post, path = "/api/v1/steps", tag = "steps",
    request_body(content = SlimStep, description = "The step; `id` is optional."),
    responses(
        (status = 201, description = "Created.", body = IdBody,
         headers(("Location" = String, description = "The new step's URL."))),
        (status = 400, description = "A malformed body, naming each bad field.", body = ErrorBody),
        (status = 409, description = "A step with this id exists.", body = ErrorBody),
        (status = 413, description = "The body is too large.", body = ErrorBody),
        (status = 422, description = "A script that does not compile, an `inputSchema` that is not a valid JSON Schema, an unknown child, a cycle, or a limit.", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn create(
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let id = save_slim(&state, payload, Mode::Create).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/steps/{id}")))
        .json(IdBody { id }))
}

/// Inserts or replaces a whole nested tree. Steps given without an id are made; a child given
/// only as `{id, mapper?}` refers to a stored step and leaves it unchanged.
#[utoipa::path(put, path = "/api/v1/steps", tag = "steps",
    request_body(content = FatStep, description = "The whole tree."),
    responses(
        (status = 200, description = "Saved: the root's id.", body = IdBody),
        (status = 400, description = "A malformed body, naming each bad field.", body = ErrorBody),
        (status = 413, description = "The body is too large.", body = ErrorBody),
        (status = 422, description = "A script that does not compile, an `inputSchema` that is not a valid JSON Schema, an unknown child, a cycle, or a limit.", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn put_tree(
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let value = body::json(payload, state.max_definition_bytes, DEFINITION).await?;
    let tree = definitions::parse(&state.pool, &state.limits, &state.url_rules, value, |p, v| {
        p.fat_tree(v)
    })
    .await?;
    let id = tree.root;
    let change = Change { root: id, steps: tree.steps, references: tree.references };
    definitions::save(&state.pool, &state.limits, change, Mode::Upsert).await?;
    Ok(HttpResponse::Ok().json(IdBody { id }))
}

/// Inserts or replaces one step, whose children are stored steps given by id.
#[utoipa::path(put, path = "/api/v1/steps/slim", tag = "steps",
    request_body(content = SlimStep, description = "The step; `id` is optional."),
    responses(
        (status = 200, description = "Saved.", body = IdBody),
        (status = 400, description = "A malformed body, naming each bad field.", body = ErrorBody),
        (status = 413, description = "The body is too large.", body = ErrorBody),
        (status = 422, description = "A script that does not compile, an `inputSchema` that is not a valid JSON Schema, an unknown child, a cycle, or a limit.", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn put_slim(
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let id = save_slim(&state, payload, Mode::Upsert).await?;
    Ok(HttpResponse::Ok().json(IdBody { id }))
}

/// A step with its whole tree below it.
#[utoipa::path(get, path = "/api/v1/steps/{id}", tag = "steps",
    params(("id" = Uuid, Path, description = "The step's id.")),
    responses(
        (status = 200, description = "The tree.", body = FatStep),
        (status = 404, description = "No such step.", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(step = %id.as_str()))]
pub async fn get_tree(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = step_id(&id)?;
    let client = state.pool.get().await?;
    let steps = steps::closure(&client, &[id]).await?;
    drop(client);
    let tree = FatStep::of(id, None, &steps).ok_or_else(|| not_found(id))?;
    Ok(HttpResponse::Ok().json(tree))
}

/// One step, with its children given by id.
#[utoipa::path(get, path = "/api/v1/steps/{id}/slim", tag = "steps",
    params(("id" = Uuid, Path, description = "The step's id.")),
    responses(
        (status = 200, description = "The step.", body = SlimStep),
        (status = 404, description = "No such step.", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(step = %id.as_str()))]
pub async fn get_slim(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = step_id(&id)?;
    let client = state.pool.get().await?;
    let step = steps::get(&client, id).await?.ok_or_else(|| not_found(id))?;
    Ok(HttpResponse::Ok().json(SlimStep::from(step)))
}

/// Replaces a step's ordered child list.
#[utoipa::path(post, path = "/api/v1/steps/{id}/children", tag = "steps",
    params(("id" = Uuid, Path, description = "The parent's id.")),
    request_body(content = ChildrenBody, description = "`{children:[{id, mapper?}]}`; a child may be given as its bare id."),
    responses(
        (status = 200, description = "Saved.", body = IdBody),
        (status = 400, description = "A malformed body, naming each bad field.", body = ErrorBody),
        (status = 404, description = "No such step.", body = ErrorBody),
        (status = 413, description = "The body is too large.", body = ErrorBody),
        (status = 422, description = "An Action parent, an unknown child, a cycle, a script that does not compile, or a limit.", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(step = %id.as_str()))]
pub async fn set_children(
    state: web::Data<AppState>,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let id = step_id(&id)?;
    let value = body::json(payload, state.max_definition_bytes, DEFINITION).await?;
    let (links, references) =
        definitions::parse(&state.pool, &state.limits, &state.url_rules, value, |p, v| {
            p.child_list(v)
        })
        .await?;
    definitions::set_children(&state.pool, &state.limits, id, links, references).await?;
    Ok(HttpResponse::Ok().json(IdBody { id }))
}

/// `POST /steps/{id}/clone`'s body.
#[derive(Debug, ToSchema)]
#[schema(as = CloneBody)]
#[allow(dead_code)]
pub struct CloneDoc {
    /// The copy's name. Absent: the tree's name with " (copy)" after it.
    #[schema(min_length = 1)]
    name: Option<String>,
}

/// Copies a whole tree under a new name: every step of it gets a new id, so that the copy can
/// be changed without changing the original (a step that the tree uses twice is copied once,
/// and used twice by the copy).
#[utoipa::path(post, path = "/api/v1/steps/{id}/clone", tag = "steps",
    params(("id" = Uuid, Path, description = "The root of the tree to copy.")),
    request_body(content = CloneDoc, description = "`{name?}`; an empty body names the copy after the tree."),
    responses(
        (status = 201, description = "Copied: the new root's id.", body = IdBody,
         headers(("Location" = String, description = "The new tree's URL."))),
        (status = 400, description = "A malformed body or name.", body = ErrorBody),
        (status = 404, description = "No such step.", body = ErrorBody),
        (status = 422, description = "A name over the limit.", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(step = %id.as_str()))]
pub async fn clone(
    state: web::Data<AppState>,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let id = step_id(&id)?;
    let bytes = body::read(payload, state.max_definition_bytes, DEFINITION).await?;
    let name = match body::parse_json(&bytes)? {
        None | Some(Value::Null) => None,
        Some(Value::Object(fields)) => {
            if let Some(other) = fields.keys().find(|k| *k != "name") {
                return Err(ApiError::invalid(other, "unknown field: expected name"));
            }
            match fields.get("name") {
                None | Some(Value::Null) => None,
                Some(Value::String(name)) => Some(name.clone()),
                Some(other) => {
                    return Err(ApiError::invalid(
                        "name",
                        format!("expected a string, found {other}"),
                    ))
                }
            }
        }
        Some(_) => return Err(ApiError::invalid("", "expected an object: {\"name\": ...}")),
    };
    let copy = definitions::clone_tree(&state.pool, &state.limits, id, name).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/steps/{copy}")))
        .json(IdBody { id: copy }))
}

/// The steps that use this one as a child.
#[utoipa::path(get, path = "/api/v1/steps/{id}/parents", tag = "steps",
    params(("id" = Uuid, Path, description = "The step's id.")),
    responses(
        (status = 200, description = "Its parents, each once.", body = [StepLine]),
        (status = 404, description = "No such step.", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(step = %id.as_str()))]
pub async fn parents(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = step_id(&id)?;
    let client = state.pool.get().await?;
    if !steps::exists(&client, id).await? {
        return Err(not_found(id));
    }
    Ok(HttpResponse::Ok().json(lines(steps::parents(&client, id).await?)))
}

/// One line of a list of steps.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = StepSummary)]
pub struct StepLine {
    id: Uuid,
    name: String,
    #[schema(value_type = StepTypeDoc)]
    step_type: StepType,
}

fn lines(rows: Vec<StepSummary>) -> Vec<StepLine> {
    rows.into_iter()
        .map(|StepSummary { id, name, step_type }| StepLine { id, name, step_type })
        .collect()
}

/// Deletes a step that no other step uses. Runs keep their snapshots.
#[utoipa::path(delete, path = "/api/v1/steps/{id}", tag = "steps",
    params(("id" = Uuid, Path, description = "The step's id.")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "No such step.", body = ErrorBody),
        (status = 409, description = "Another step still uses it as a child; the error names them.", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(step = %id.as_str()))]
pub async fn delete(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = step_id(&id)?;
    definitions::delete(&state.pool, id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Parses and saves one step whose children are given by id.
async fn save_slim(state: &AppState, payload: web::Payload, mode: Mode) -> Result<Uuid, ApiError> {
    let value = body::json(payload, state.max_definition_bytes, DEFINITION).await?;
    let slim = definitions::parse(&state.pool, &state.limits, &state.url_rules, value, |p, v| {
        p.slim_step(v)
    })
    .await?;
    let id = slim.step.id;
    let change = Change { root: id, steps: vec![slim.step], references: slim.references };
    definitions::save(&state.pool, &state.limits, change, mode).await?;
    Ok(id)
}

/// A step id from a path. A malformed id names no step: 404.
pub(crate) fn step_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::try_parse(raw).map_err(|_| not_found(format!("{raw:?}")))
}

pub(crate) fn with_link(
    mut response: HttpResponseBuilder,
    link: Option<String>,
) -> HttpResponseBuilder {
    if let Some(link) = link {
        response.insert_header((header::LINK, link));
    }
    response
}
