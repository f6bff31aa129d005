//! The limit on a request's headers (`AETR_MAX_HEADER_BYTES`): a request with more is answered
//! 431 with a message that names the limit, before any handler reads it.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, Error};

use super::ApiError;

/// The most bytes in a request's headers.
#[derive(Debug, Clone, Copy)]
pub struct MaxHeaderBytes(pub usize);

/// The middleware (`actix_web::middleware::from_fn`).
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    if let Some(limit) = req.app_data::<web::Data<MaxHeaderBytes>>().map(|m| m.0) {
        let size: usize =
            req.headers().iter().map(|(name, value)| name.as_str().len() + value.len()).sum();
        if size > limit {
            return Err(ApiError::HeadersTooLarge(format!(
                "the request's headers are {size} bytes, more than the limit of {limit} bytes \
                 (AETR_MAX_HEADER_BYTES)"
            ))
            .into());
        }
    }
    next.call(req).await
}
