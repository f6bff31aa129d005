//! `GET /metrics`: the server's metrics in the Prometheus (OpenMetrics) text format (see
//! [`crate::metrics`]). Open like `/healthz`, unless `AETR_METRICS_REQUIRE_TOKEN` is set.

use actix_web::{web, HttpResponse};

use crate::app::AppState;
use crate::http::{ApiError, ErrorBody};
use crate::metrics::{PoolLabel, StateLabel, METRICS};
use crate::store::time::now_ms;
use crate::store::{pools, views};

/// The metrics, with the gauges of work waiting read from the database now.
#[utoipa::path(get, path = "/metrics", tag = "health", security(()),
    responses(
        (status = 200, description = "Every series, in the OpenMetrics text format.", body = String,
            content_type = "application/openmetrics-text"),
        (status = 503, description = "The database cannot be reached.", body = ErrorBody),
    ))]
pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let status = state.pool.status();
    METRICS.db_pool_connections.set(status.size as i64);
    METRICS.db_pool_idle.set(status.available as i64);
    METRICS.db_pool_waiting.set(status.waiting as i64);
    let client = state.pool.get().await?;
    let waiting = views::waiting_work(&client).await?;
    for (state, count) in
        [("Pending", waiting.pending_actions), ("Executing", waiting.executing_actions)]
    {
        METRICS.nodes.get_or_create(&StateLabel { state }).set(count);
    }
    for (state, count) in [("Pending", waiting.pending_runs), ("Executing", waiting.executing_runs)]
    {
        METRICS.runs_in_flight.get_or_create(&StateLabel { state }).set(count);
    }
    // Pools that were deleted are dropped from the series.
    let pools = pools::list(&client, None, now_ms()).await?;
    for family in [&METRICS.pool_used, &METRICS.pool_waiting, &METRICS.pool_slots] {
        family.clear();
    }
    for p in pools {
        let label = PoolLabel { pool: p.name };
        METRICS.pool_used.get_or_create(&label).set(p.used);
        METRICS.pool_waiting.get_or_create(&label).set(p.waiting);
        METRICS.pool_slots.get_or_create(&label).set(i64::from(p.slots));
    }
    Ok(HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(METRICS.encode()))
}
