//! Request bodies: read with a size limit (413 past it), then parsed as JSON (400 if it is not).

use actix_web::web;
use futures_util::StreamExt;
use serde_json::Value;

use super::error::ApiError;

/// Reads a whole body, refusing it with a 413 that names the limit as soon as it is longer
/// than `limit` bytes (by its `Content-Length`, or as it arrives).
pub async fn read(
    mut payload: web::Payload,
    limit: usize,
    what: &str,
) -> Result<web::Bytes, ApiError> {
    let too_large = || {
        ApiError::TooLarge(format!("the body is larger than the limit of {limit} bytes for {what}"))
    };
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| match e {
            actix_web::error::PayloadError::Overflow => too_large(),
            other => ApiError::invalid("", format!("the body could not be read: {other}")),
        })?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Reads a body that must be JSON.
pub async fn json(payload: web::Payload, limit: usize, what: &str) -> Result<Value, ApiError> {
    let bytes = read(payload, limit, what).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid("", "the body is empty; expected JSON"));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::invalid("", format!("not valid JSON: {e}")))
}

/// Reads a body that must be UTF-8 text (a callback's result, say).
pub async fn text(payload: web::Payload, limit: usize, what: &str) -> Result<String, ApiError> {
    let bytes = read(payload, limit, what).await?;
    String::from_utf8(bytes.to_vec())
        .map_err(|e| ApiError::invalid("", format!("the body is not UTF-8 text: {e}")))
}
