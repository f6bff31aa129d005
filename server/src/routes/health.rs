//! `/healthz` (the process answers), `/readyz` (it can reach its database), and AETR's `/ping`.

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

/// AETR's liveness check: `pong`, as plain text.
#[utoipa::path(get, path = "/ping", tag = "health", security(()),
    responses((status = 200, description = "`pong`.", body = String, content_type = "text/plain")))]
pub async fn ping() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; charset=utf-8").body("pong")
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
