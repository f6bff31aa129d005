//! `/api/v1/pools`: caps on how many attempts of the actions that name a pool are Executing at
//! once, and how many POSTs a second start (design.md, "Pools: protecting a service").

use actix_web::{web, HttpResponse};
use aetr_engine::parse::{is_pool_name, POOL_NAME_RULE};
use aetr_engine::{FieldError, FieldErrors};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::app::AppState;
use crate::http::{body, ApiError, ErrorBody};
use crate::store::pools::{self, Pool};
use crate::store::time::now_ms;

const POOL: &str = "a pool (AETR_MAX_INPUT_BYTES)";
/// The most slots a pool may have.
const MAX_SLOTS: i64 = 1_000_000;

pub fn configure(cfg: &mut web::ServiceConfig) {
    use super::resource;
    cfg.service(resource("/pools").get(list))
        .service(resource("/pools/{name}").get(get).put(put).delete(delete));
}

/// `PUT /pools/{name}`'s body.
#[derive(Debug, ToSchema)]
#[schema(as = PoolBody)]
#[allow(dead_code)]
pub struct PoolBodyDoc {
    /// At most this many attempts of the pool's actions are Executing at once.
    #[schema(minimum = 1, maximum = 1000000)]
    slots: u32,
    /// At most this many of the pool's POSTs start in a second.
    #[schema(exclusive_minimum = 0)]
    per_second: Option<f64>,
}

/// A pool, with how many of its slots are used and how many attempts wait for one.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolView {
    name: String,
    slots: i32,
    per_second: Option<f64>,
    /// Attempts that hold a slot: Executing, or being sent.
    used: i64,
    /// Attempts that are due and wait for a slot, first come first served.
    waiting: i64,
    created_at: i64,
    updated_at: i64,
}

impl From<Pool> for PoolView {
    fn from(p: Pool) -> Self {
        PoolView {
            name: p.name,
            slots: p.slots,
            per_second: p.per_second,
            used: p.used,
            waiting: p.waiting,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// Every pool, by name.
#[utoipa::path(get, path = "/api/v1/pools", tag = "pools",
    responses((status = 200, description = "Every pool, with its used and waiting counts.", body = [PoolView])))]
#[tracing::instrument(skip_all)]
pub async fn list(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let client = state.pool.get().await?;
    let all = pools::list(&client, None, now_ms()).await?;
    Ok(HttpResponse::Ok().json(all.into_iter().map(PoolView::from).collect::<Vec<_>>()))
}

/// One pool.
#[utoipa::path(get, path = "/api/v1/pools/{name}", tag = "pools",
    params(("name" = String, Path, description = "The pool's name.")),
    responses(
        (status = 200, description = "The pool.", body = PoolView),
        (status = 404, description = "No such pool.", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn get(
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let client = state.pool.get().await?;
    let found = pools::list(&client, Some(&name), now_ms()).await?.into_iter().next();
    let pool = found.ok_or_else(|| not_found(&name))?;
    Ok(HttpResponse::Ok().json(PoolView::from(pool)))
}

/// Creates or replaces a pool. Attempts already Executing keep their slots; a smaller pool
/// takes no new one until it has a free one.
#[utoipa::path(put, path = "/api/v1/pools/{name}", tag = "pools",
    params(("name" = String, Path, description = "The pool's name: 1 to 100 letters, digits, '.', '_' or '-'.")),
    request_body(content = PoolBodyDoc, description = "`{slots, perSecond?}`"),
    responses(
        (status = 201, description = "Created.", body = PoolView),
        (status = 200, description = "Replaced.", body = PoolView),
        (status = 400, description = "A malformed body, naming each bad field.", body = ErrorBody),
        (status = 413, description = "The body is too large.", body = ErrorBody),
        (status = 422, description = "A bad name, or slots or perSecond out of range.", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(pool = %name.as_str()))]
pub async fn put(
    state: web::Data<AppState>,
    name: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let value = body::json(payload, state.max_input_bytes, POOL).await?;
    let (slots, per_second) = definition(&name, &value)?;
    let client = state.pool.get().await?;
    let created = pools::put(&client, &name, slots, per_second).await?;
    tracing::info!(pool = %name, slots, per_second, created, "pool saved");
    let found = pools::list(&client, Some(&name), now_ms()).await?.into_iter().next();
    let pool = found.ok_or_else(|| not_found(&name))?;
    let mut response = if created { HttpResponse::Created() } else { HttpResponse::Ok() };
    Ok(response.json(PoolView::from(pool)))
}

/// Deletes a pool that no step and no unfinished run uses.
#[utoipa::path(delete, path = "/api/v1/pools/{name}", tag = "pools",
    params(("name" = String, Path, description = "The pool's name.")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "No such pool.", body = ErrorBody),
        (status = 409, description = "Steps name it (the error names them), or unfinished runs' actions use it.", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(pool = %name.as_str()))]
pub async fn delete(
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = name.into_inner();
    let client = state.pool.get().await?;
    let (steps, step_count, nodes) = pools::users(&client, &name).await?;
    if step_count > 0 {
        let more = if step_count > steps.len() as i64 {
            format!(" and {} more", step_count - steps.len() as i64)
        } else {
            String::new()
        };
        return Err(ApiError::Conflict(format!(
            "pool {name:?} is named by the action of {step_count} step(s): {}{more}; change them first",
            steps.join(", ")
        )));
    }
    if nodes > 0 {
        return Err(ApiError::Conflict(format!(
            "pool {name:?} is used by {nodes} unfinished action(s) of runs; let them finish or cancel the runs first"
        )));
    }
    if !pools::delete(&client, &name).await? {
        return Err(not_found(&name));
    }
    tracing::info!(pool = %name, "pool deleted");
    Ok(HttpResponse::NoContent().finish())
}

fn not_found(name: &str) -> ApiError {
    ApiError::NotFound(format!("no pool named {name:?}"))
}

/// The name and body of a PUT, checked: types are 400s, values out of range 422s.
fn definition(name: &str, value: &Value) -> Result<(i32, Option<f64>), FieldErrors> {
    let mut errors = Vec::new();
    if !is_pool_name(name) {
        errors.push(FieldError::refused("name", POOL_NAME_RULE));
    }
    let Value::Object(fields) = value else {
        return Err(FieldError::invalid(
            "",
            "expected an object: {\"slots\": N, \"perSecond\"?: R}",
        )
        .into());
    };
    for key in fields.keys().filter(|k| !["slots", "perSecond"].contains(&k.as_str())) {
        errors.push(FieldError::invalid(key, "unknown field; expected one of slots, perSecond"));
    }
    let slots = match fields.get("slots") {
        None | Some(Value::Null) => {
            errors.push(FieldError::invalid("slots", "required"));
            None
        }
        Some(Value::Number(n)) => match n.as_i64() {
            Some(s) if (1..=MAX_SLOTS).contains(&s) => Some(s as i32),
            Some(s) => {
                errors.push(FieldError::refused(
                    "slots",
                    format!("must be from 1 to {MAX_SLOTS}, not {s}"),
                ));
                None
            }
            None => {
                errors.push(FieldError::invalid(
                    "slots",
                    format!("expected a whole number, found {n}"),
                ));
                None
            }
        },
        Some(_) => {
            errors.push(FieldError::invalid("slots", "expected a whole number"));
            None
        }
    };
    let per_second = match fields.get("perSecond") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => match n.as_f64() {
            Some(r) if r > 0.0 && r.is_finite() => Some(r),
            _ => {
                errors.push(FieldError::refused(
                    "perSecond",
                    format!("must be more than 0, not {n}"),
                ));
                None
            }
        },
        Some(_) => {
            errors.push(FieldError::invalid("perSecond", "expected a number"));
            None
        }
    };
    match (FieldErrors::from_vec(errors), slots) {
        (None, Some(slots)) => Ok((slots, per_second)),
        (Some(errors), _) => Err(errors),
        (None, None) => Err(FieldError::invalid("slots", "required").into()),
    }
}
