//! `/healthz` (the process answers) and `/readyz` (it can reach its database).

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::app::AppState;
use crate::http::{ApiError, ErrorBody};

/// The process is alive.
#[utoipa::path(get, path = "/healthz", tag = "health", security(()),
    responses((status = 200, description = "Alive.")))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// The database is reachable (and migrations were applied before the server started serving).
#[utoipa::path(get, path = "/readyz", tag = "health", security(()),
    responses(
        (status = 200, description = "Ready."),
        (status = 503, description = "The database cannot be reached.", body = ErrorBody),
    ))]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let client = state.pool.get().await?;
    client.simple_query("SELECT 1").await?;
    Ok(HttpResponse::Ok().json(json!({ "status": "ready" })))
}
