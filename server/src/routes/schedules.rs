//! `/api/v1/schedules`: runs of a step started on a cron expression's ticks (design.md,
//! "Schedules").

use actix_web::{web, HttpRequest, HttpResponse};
use aetr_engine::parse::run_input;
use aetr_engine::{FieldError, FieldErrors};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use super::steps::{with_link, IdBody};
use crate::app::AppState;
use crate::http::query::Query;
use crate::http::{body, ApiError, ErrorBody};
use crate::schedules::cron::Ticks;
use crate::store::schedules::{self, Definition, Overlap, Schedule};
use crate::store::steps;
use crate::store::time::now_ms;

/// What a schedule body is called in a 413.
const SCHEDULE: &str = "a schedule (AETR_MAX_INPUT_BYTES)";
const FIELDS: [&str; 6] = ["stepId", "cron", "timezone", "input", "overlap", "enabled"];

pub fn configure(cfg: &mut web::ServiceConfig) {
    use super::resource;
    cfg.service(resource("/schedules").get(list).post(create))
        .service(resource("/schedules/{id}").get(get).put(replace).delete(delete));
}

/// A schedule, as a request gives it.
#[derive(Debug, ToSchema)]
#[schema(as = ScheduleBody)]
#[allow(dead_code)]
pub struct ScheduleBodyDoc {
    /// The step whose runs it starts.
    step_id: Uuid,
    /// 5 fields (minute hour day-of-month month day-of-week), or 6 with seconds first:
    /// `*/15 * * * *`, `0 0 9 * * MON-FRI`.
    #[schema(example = "0 9 * * MON-FRI")]
    cron: String,
    /// An IANA time zone name; UTC when absent.
    #[schema(example = "Europe/Berlin")]
    timezone: Option<String>,
    /// Each run's input: a string is passed on raw, anything else as its JSON text.
    input: Option<Value>,
    /// `skip`: a tick is skipped while the schedule's previous run is still going.
    #[schema(value_type = Option<OverlapDoc>)]
    overlap: Option<String>,
    /// `false` pauses it. Default `true`.
    enabled: Option<bool>,
}

#[derive(Debug, ToSchema)]
#[schema(as = Overlap, rename_all = "lowercase")]
#[allow(dead_code)]
pub enum OverlapDoc {
    Allow,
    Skip,
}

/// A schedule, with when it fires next and the run it started last.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleView {
    id: Uuid,
    step_id: Uuid,
    cron: String,
    timezone: String,
    input: Option<Value>,
    #[schema(value_type = OverlapDoc)]
    overlap: &'static str,
    enabled: bool,
    /// The next tick, in epoch milliseconds; null while paused or when there is none.
    next_fire_at: Option<i64>,
    /// The last tick that started a run.
    last_fire_at: Option<i64>,
    last_run_id: Option<Uuid>,
    /// Why the last tick started no run (a step whose input schema refuses the input, say).
    last_error: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl From<Schedule> for ScheduleView {
    fn from(s: Schedule) -> Self {
        let d = s.definition;
        ScheduleView {
            id: s.id,
            step_id: d.step_id,
            cron: d.cron,
            timezone: d.timezone,
            input: d.input,
            overlap: d.overlap.as_str(),
            enabled: d.enabled,
            next_fire_at: s.next_fire_at.filter(|_| d.enabled),
            last_fire_at: s.last_fire_at,
            last_run_id: s.last_run_id,
            last_error: s.last_error,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

/// Lists schedules, by id.
#[utoipa::path(get, path = "/api/v1/schedules", tag = "schedules",
    params(
        ("stepId" = Option<Uuid>, Query, description = "Only the schedules of this step."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Schedules per page: 1 to 1000, 50 by default."),
        ("after" = Option<Uuid>, Query, description = "The last id of the previous page."),
    ),
    responses(
        (status = 200, description = "A page of schedules.", body = [ScheduleView],
         headers(("Link" = String, description = "`<url>; rel=\"next\"` when another page follows."))),
        (status = 400, description = "A bad `stepId`, `limit` or `after`.", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn list(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let query = Query::of(&req)?;
    let page = query.page()?;
    let step = query.step_id().map_err(FieldErrors::from)?;
    let client = state.pool.get().await?;
    let rows = schedules::list(&client, page.after, step, page.fetch()).await?;
    let (rows, link) = page.finish(rows, |s| s.id, &query, &req);
    let views: Vec<ScheduleView> = rows.into_iter().map(ScheduleView::from).collect();
    Ok(with_link(HttpResponse::Ok(), link).json(views))
}

/// Creates a schedule.
#[utoipa::path(post, path = "/api/v1/schedules", tag = "schedules",
    request_body(content = ScheduleBodyDoc, description = "`{stepId, cron, timezone?, input?, overlap?, enabled?}`"),
    responses(
        (status = 201, description = "Created.", body = IdBody,
         headers(("Location" = String, description = "The schedule's URL."))),
        (status = 400, description = "A malformed body, naming each bad field.", body = ErrorBody),
        (status = 413, description = "The body is too large.", body = ErrorBody),
        (status = 422, description = "A bad cron expression or time zone, an unknown step, or an input that the step's input schema refuses, each at its field.", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn create(
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (definition, next) = read_definition(&state, payload).await?;
    let id = Uuid::now_v7();
    let client = state.pool.get().await?;
    schedules::insert(&client, id, &definition, next).await?;
    tracing::info!(schedule = %id, step = %definition.step_id, cron = %definition.cron, "schedule created");
    Ok(HttpResponse::Created()
        .insert_header((actix_web::http::header::LOCATION, format!("/api/v1/schedules/{id}")))
        .json(IdBody { id }))
}

/// One schedule.
#[utoipa::path(get, path = "/api/v1/schedules/{id}", tag = "schedules",
    params(("id" = Uuid, Path, description = "The schedule's id.")),
    responses(
        (status = 200, description = "The schedule.", body = ScheduleView),
        (status = 404, description = "No such schedule.", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn get(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = schedule_id(&id)?;
    let client = state.pool.get().await?;
    let schedule = schedules::get(&client, id).await?.ok_or_else(|| not_found(id))?;
    Ok(HttpResponse::Ok().json(ScheduleView::from(schedule)))
}

/// Replaces a schedule's definition; its next tick is counted from now.
#[utoipa::path(put, path = "/api/v1/schedules/{id}", tag = "schedules",
    params(("id" = Uuid, Path, description = "The schedule's id.")),
    request_body(content = ScheduleBodyDoc, description = "The whole definition, as for POST."),
    responses(
        (status = 200, description = "Replaced.", body = ScheduleView),
        (status = 400, description = "A malformed body, naming each bad field.", body = ErrorBody),
        (status = 404, description = "No such schedule.", body = ErrorBody),
        (status = 413, description = "The body is too large.", body = ErrorBody),
        (status = 422, description = "A bad cron expression or time zone, an unknown step, or an input that the step's input schema refuses, each at its field.", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn replace(
    state: web::Data<AppState>,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let id = schedule_id(&id)?;
    let (definition, next) = read_definition(&state, payload).await?;
    let client = state.pool.get().await?;
    if !schedules::replace(&client, id, &definition, next).await? {
        return Err(not_found(id));
    }
    let schedule = schedules::get(&client, id).await?.ok_or_else(|| not_found(id))?;
    Ok(HttpResponse::Ok().json(ScheduleView::from(schedule)))
}

/// Deletes a schedule. Its runs stay.
#[utoipa::path(delete, path = "/api/v1/schedules/{id}", tag = "schedules",
    params(("id" = Uuid, Path, description = "The schedule's id.")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "No such schedule.", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn delete(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = schedule_id(&id)?;
    let client = state.pool.get().await?;
    if !schedules::delete(&client, id).await? {
        return Err(not_found(id));
    }
    tracing::info!(schedule = %id, "schedule deleted");
    Ok(HttpResponse::NoContent().finish())
}

fn schedule_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::try_parse(raw).map_err(|_| not_found(format!("{raw:?}")))
}

fn not_found(id: impl std::fmt::Display) -> ApiError {
    ApiError::NotFound(format!("no schedule with id {id}"))
}

/// Reads and checks a schedule's body: every bad field named, shape and types first (400),
/// then what is refused (422): the cron expression, the zone, the step and the input.
async fn read_definition(
    state: &AppState,
    payload: web::Payload,
) -> Result<(Definition, Option<i64>), ApiError> {
    let value = body::json(payload, state.max_input_bytes, SCHEDULE).await?;
    let Value::Object(fields) = value else {
        return Err(ApiError::invalid("", "expected an object: {\"stepId\", \"cron\", ...}"));
    };
    let (definition, ticks) = shape(&fields)?;
    let client = state.pool.get().await?;
    let Some(step) = steps::get(&client, definition.step_id).await? else {
        let e = FieldError::refused("stepId", format!("no step with id {}", definition.step_id));
        return Err(FieldErrors::from(e).into());
    };
    if let Some(schema) = &step.input_schema {
        let input = definition.input.as_ref().and_then(run_input);
        schema.check_field(input.as_deref(), "input")?;
    }
    let next = ticks.next_after(now_ms());
    Ok((definition, next))
}

/// The body's fields, each checked alone.
fn shape(fields: &Map<String, Value>) -> Result<(Definition, Ticks), FieldErrors> {
    let mut errors = Vec::new();
    for name in fields.keys().filter(|k| !FIELDS.contains(&k.as_str())) {
        errors.push(FieldError::invalid(
            name,
            format!("unknown field; expected one of {}", FIELDS.join(", ")),
        ));
    }
    let text = |name: &str, errors: &mut Vec<FieldError>| match fields.get(name) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            errors.push(FieldError::invalid(name, "expected a string"));
            None
        }
    };
    let step_id = match text("stepId", &mut errors) {
        Some(raw) => Uuid::try_parse(&raw)
            .map_err(|_| {
                errors.push(FieldError::invalid(
                    "stepId",
                    format!("expected a step's id, found {raw:?}"),
                ))
            })
            .ok(),
        None => {
            if !fields.contains_key("stepId") {
                errors.push(FieldError::invalid("stepId", "required"));
            }
            None
        }
    };
    let cron = text("cron", &mut errors);
    if cron.is_none() && !fields.contains_key("cron") {
        errors.push(FieldError::invalid("cron", "required"));
    }
    let timezone = text("timezone", &mut errors).unwrap_or_else(|| "UTC".to_owned());
    let overlap = match text("overlap", &mut errors) {
        None => Overlap::default(),
        Some(raw) => Overlap::parse(&raw).unwrap_or_else(|| {
            errors.push(FieldError::invalid(
                "overlap",
                format!("expected \"allow\" or \"skip\", found {raw:?}"),
            ));
            Overlap::default()
        }),
    };
    let enabled = match fields.get("enabled") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            errors.push(FieldError::invalid("enabled", "expected true or false"));
            true
        }
    };
    let input = fields.get("input").filter(|v| !v.is_null()).cloned();
    let ticks = cron.as_deref().and_then(|c| {
        Ticks::parse(c, Some(&timezone))
            .map_err(|(field, why)| errors.push(FieldError::refused(field, why)))
            .ok()
    });
    if let Some(errors) = FieldErrors::from_vec(errors) {
        return Err(errors);
    }
    match (step_id, cron, ticks) {
        (Some(step_id), Some(cron), Some(ticks)) => {
            Ok((Definition { step_id, cron, timezone, input, overlap, enabled }, ticks))
        }
        _ => Err(FieldError::invalid("", "stepId and cron are required").into()),
    }
}
