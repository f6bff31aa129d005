//! HTTP routes, laid out like the URL tree. Every endpoint is annotated for the OpenAPI
//! document ([`docs`]).

mod callbacks;
pub mod docs;
mod health;
mod metrics;
mod pools;
mod runs;
mod schedules;
mod scripts;
mod steps;
mod ui;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse, Resource, ResponseError};

use crate::http::ApiError;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/healthz").get(health::healthz))
        .service(resource("/readyz").get(health::readyz))
        .service(resource("/ping").get(health::ping))
        .service(resource("/metrics").get(metrics::metrics))
        .service(
            web::scope("/api/v1")
                .service(resource("/openapi.json").get(docs::openapi))
                .configure(steps::configure)
                // Before runs: `/runs/complete` would match `/runs/{id}`.
                .configure(callbacks::configure)
                .configure(runs::configure)
                .configure(schedules::configure)
                .configure(pools::configure)
                .configure(scripts::configure),
        )
        .configure(ui::configure)
        .default_service(web::to(no_such_endpoint));
}

/// A resource whose unknown methods get a 405 that names the allowed ones.
fn resource(path: &str) -> Resource {
    web::resource(path).default_service(web::to(method_not_allowed))
}

async fn no_such_endpoint(req: HttpRequest) -> HttpResponse {
    let e = ApiError::NotFound(format!("no such endpoint: {} {}", req.method(), req.path()));
    e.error_response()
}

async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    let allowed = req.match_pattern().and_then(|pattern| docs::allowed_methods(&pattern));
    let e = ApiError::MethodNotAllowed(match allowed {
        Some(allowed) => {
            format!("{} is not allowed on {}; use {allowed}", req.method(), req.path())
        }
        None => format!("{} is not allowed on {}", req.method(), req.path()),
    });
    let mut response = e.error_response();
    if let Some(Ok(allowed)) = allowed.map(HeaderValue::from_str) {
        response.headers_mut().insert(header::ALLOW, allowed);
    }
    response
}
