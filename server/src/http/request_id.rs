//! Every request gets an id: the client's `X-Request-Id` when it is a short token, else a new
//! one. Logs of the request carry it (as the span field `request_id`), error bodies carry it as
//! `requestId`, and every response carries it in `X-Request-Id`, so that a client who reports
//! an error can point at the log lines that explain it. A handler that panics is answered with
//! an opaque 500 instead of a dropped connection.

use std::panic::AssertUnwindSafe;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::error::InternalError;
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, ResponseError};
use futures_util::FutureExt;
use tracing::Instrument;

use super::ApiError;

pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The longest client-given id that is kept.
const MAX_CLIENT_ID_CHARS: usize = 64;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being handled, when there is one.
pub fn current() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// The middleware (`actix_web::middleware::from_fn`).
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let id = req
        .headers()
        .get(&HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_token(v))
        .map_or_else(|| uuid::Uuid::new_v4().simple().to_string(), str::to_owned);
    let span = tracing::info_span!("request", request_id = %id);
    let handled = REQUEST_ID
        .scope(id.clone(), AssertUnwindSafe(next.call(req)).catch_unwind())
        .instrument(span.clone())
        .await;
    // Errors are answered here, inside the request's scope, so that their body has its id. (The
    // request itself cannot be kept for that: routing needs it unshared.)
    let failed = match handled {
        Ok(Ok(mut response)) => {
            set_header(response.headers_mut(), &id);
            return Ok(response.map_into_boxed_body());
        }
        Ok(Err(e)) => {
            let _entered = span.enter();
            let response = REQUEST_ID.sync_scope(id.clone(), || e.error_response());
            (e.to_string(), response)
        }
        Err(panic) => {
            let _entered = span.enter();
            let cause = format!("a handler panicked: {}", panic_text(&panic));
            let error = ApiError::Internal(anyhow::anyhow!(cause.clone()));
            (cause, REQUEST_ID.sync_scope(id.clone(), || error.error_response()))
        }
    };
    let (cause, mut response) = failed;
    set_header(response.headers_mut(), &id);
    Err(InternalError::from_response(cause, response).into())
}

fn set_header(headers: &mut HeaderMap, id: &str) {
    if let Ok(value) = HeaderValue::from_str(id) {
        headers.insert(HEADER, value);
    }
}

/// Whether a client's id is safe to log and echo: short, and letters, digits, `-`, `_`, `.`.
fn is_token(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_CLIENT_ID_CHARS
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

#[cfg(test)]
mod tests {
    use super::is_token;

    #[test]
    fn only_short_plain_ids_from_clients_are_kept() {
        assert!(is_token("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert!(is_token("req-1.2_3"));
        assert!(!is_token(""));
        assert!(!is_token("a b"));
        assert!(!is_token("x\ny"));
        assert!(!is_token(&"a".repeat(65)));
    }
}
