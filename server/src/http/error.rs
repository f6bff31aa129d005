//! The API's errors: one enum, answered as `{"errors":[...], "requestId": "..."}` with the
//! status design.md gives. Anything unexpected is logged in full, with the request's id, and
//! answered with an opaque 500 (a bug) or 503 that shows no internal text: no SQL, no paths.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use aetr_engine::{FieldError, FieldErrors};
use serde::Serialize;
use utoipa::ToSchema;

use super::request_id;

/// How long a client should wait before retrying a request that found the database unavailable.
const RETRY_AFTER_SECONDS: &str = "2";

/// An error body: each message names the path to its field, such as
/// `children[2].mapper.js: SyntaxError: ...`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    pub errors: Vec<String>,
    /// The request's id, as in the `X-Request-Id` header: the server's log lines about this
    /// request carry it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 (syntax, shape, type or enum) or 422 (well-formed but refused), by the errors'
    /// severity.
    #[error("{0}")]
    Fields(FieldErrors),
    /// 401, with `WWW-Authenticate: Bearer`.
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    TooLarge(String),
    /// 431: the request's headers are larger than the limit.
    #[error("{0}")]
    HeadersTooLarge(String),
    /// 503, with `Retry-After`.
    #[error("the database is unavailable; try again shortly")]
    Unavailable(#[source] anyhow::Error),
    /// 500: a bug.
    #[error("internal error: the server's log holds the details under this request's id")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    /// A 400 at one field.
    pub fn invalid(path: &str, message: impl Into<String>) -> Self {
        ApiError::Fields(FieldError::invalid(path, message).into())
    }
}

impl From<FieldErrors> for ApiError {
    fn from(e: FieldErrors) -> Self {
        ApiError::Fields(e)
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        ApiError::Fields(e.into())
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        if crate::db::is_unavailable(&e) {
            ApiError::Unavailable(e)
        } else {
            ApiError::Internal(e)
        }
    }
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(e: tokio_postgres::Error) -> Self {
        if crate::db::database_unavailable(&e) {
            ApiError::Unavailable(e.into())
        } else {
            ApiError::Internal(e.into())
        }
    }
}

impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        use deadpool_postgres::PoolError;
        match e {
            PoolError::Backend(db) => db.into(),
            PoolError::Timeout(_) | PoolError::Closed => ApiError::Unavailable(e.into()),
            other => ApiError::Internal(other.into()),
        }
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        ApiError::Internal(anyhow::anyhow!("a blocking task failed: {e}"))
    }
}

impl From<crate::runs::RunError> for ApiError {
    fn from(e: crate::runs::RunError) -> Self {
        use crate::runs::RunError;
        let message = e.to_string();
        match e {
            RunError::NoSuchRun(_) | RunError::NoSuchStep(_) => ApiError::NotFound(message),
            RunError::Refused(field) => ApiError::Fields(field.into()),
            RunError::BadInput(fields) => ApiError::Fields(fields),
            RunError::KeyOfAnotherStep { .. }
            | RunError::StepGone(_)
            | RunError::RedrivenMeanwhile
            | RunError::NotInError => ApiError::Conflict(message),
            RunError::Conflict => ApiError::Unavailable(anyhow::anyhow!(message)),
            RunError::Unavailable(cause) => ApiError::Unavailable(anyhow::anyhow!("{cause:#}")),
            RunError::Corrupt { .. } | RunError::Internal(_) => {
                ApiError::Internal(anyhow::anyhow!(message))
            }
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Fields(e) => {
                StatusCode::from_u16(e.severity().http_status()).unwrap_or(StatusCode::BAD_REQUEST)
            }
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let messages = match self {
            ApiError::Fields(e) => e.messages(),
            ApiError::Unavailable(cause) => {
                tracing::warn!(error = format!("{cause:#}"), "the database is unavailable");
                vec![self.to_string()]
            }
            ApiError::Internal(cause) => {
                tracing::error!(error = format!("{cause:#}"), "internal error");
                vec![self.to_string()]
            }
            other => vec![other.to_string()],
        };
        let mut response = HttpResponse::build(self.status_code());
        match self {
            ApiError::Unavailable(_) => {
                response.insert_header((header::RETRY_AFTER, RETRY_AFTER_SECONDS));
            }
            ApiError::Unauthorized(_) => {
                response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            _ => {}
        }
        response.json(ErrorBody { errors: messages, request_id: request_id::current() })
    }
}
