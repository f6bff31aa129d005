//! Request bodies: read with a size limit (413 past it), then parsed as JSON (400 if it is not).
//! Text with a NUL character is refused (400): PostgreSQL cannot store it.

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
    parse_json(&bytes)?.ok_or_else(|| ApiError::invalid("", "the body is empty; expected JSON"))
}

/// Parses a body that was read as JSON: `None` if it is empty (or only whitespace).
pub fn parse_json(bytes: &[u8]) -> Result<Option<Value>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::invalid("", format!("not valid JSON: {e}")))?;
    storable(&value, "")?;
    Ok(Some(value))
}

const NUL: &str = "contains a NUL character (\\u0000), which aetr cannot store";

/// Refuses JSON with a NUL character in a string or a key, naming the first such field.
fn storable(value: &Value, path: &str) -> Result<(), ApiError> {
    let at = |key: &str| if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") };
    match value {
        Value::String(s) if s.contains('\0') => Err(ApiError::invalid(path, NUL)),
        Value::Array(items) => {
            items.iter().enumerate().try_for_each(|(i, v)| storable(v, &format!("{path}[{i}]")))
        }
        Value::Object(fields) => fields.iter().try_for_each(|(k, v)| {
            if k.contains('\0') {
                return Err(ApiError::invalid(path, format!("a key {NUL}")));
            }
            storable(v, &at(k))
        }),
        _ => Ok(()),
    }
}

/// Reads a body that must be UTF-8 text (a callback's result, say).
pub async fn text(payload: web::Payload, limit: usize, what: &str) -> Result<String, ApiError> {
    let bytes = read(payload, limit, what).await?;
    let text = String::from_utf8(bytes.to_vec())
        .map_err(|e| ApiError::invalid("", format!("the body is not UTF-8 text: {e}")))?;
    if text.contains('\0') {
        return Err(ApiError::invalid("", format!("the body {NUL}")));
    }
    Ok(text)
}
