//! Completion webhooks (design.md, "Pushing the outcome to the client"): a run started with
//! `notify: {url, secret?, headers?}` gets its outcome POSTed to `url` when it ends, signed as
//! Standard Webhooks (<https://www.standardwebhooks.com/>) sign, so that their verifier
//! libraries accept it.
//!
//! The message is written by the transaction that ends the run ([`crate::store::notify`]) and
//! delivered by [`deliver`], on any server, at least once. The secret is stored, and used to
//! sign, but never shown: no endpoint returns it and [`Target`]'s `Debug` hides it.

pub mod deliver;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{KeyInit, Mac};
use reqwest::header::{HeaderName, HeaderValue};
use serde_json::{Map, Value};
use sha2::Sha256;
use url::Url;

use crate::guard::Rules;
use aetr_engine::{FieldError, FieldErrors};

type HmacSha256 = hmac::Hmac<Sha256>;

/// The prefix of a secret given as base64 bytes, as Standard Webhooks' secrets are.
const SECRET_PREFIX: &str = "whsec_";
/// The headers that aetr sets on every message, which `headers` may not set.
const OWN_HEADERS: [&str; 4] =
    ["webhook-id", "webhook-timestamp", "webhook-signature", "content-type"];
const FIELDS: [&str; 3] = ["url", "secret", "headers"];

/// Where a run's outcome goes.
#[derive(Clone, PartialEq, Eq)]
pub struct Target {
    pub url: String,
    pub secret: Option<String>,
    /// Sent with every message, in this order.
    pub headers: Vec<(String, String)>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("url", &crate::dispatch::request::shown_url(&self.url))
            .field("secret", &self.secret.as_ref().map(|_| "(hidden)"))
            .field("headers", &self.headers.iter().map(|(n, _)| n).collect::<Vec<_>>())
            .finish()
    }
}

impl Target {
    /// A start's `notify`, checked: shape and types are 400s, a URL that the action URL rules
    /// refuse a 422, each error at its path (`notify.url`).
    pub fn parse(value: &Value, rules: &Rules) -> Result<Target, FieldErrors> {
        let mut errors = Vec::new();
        let Value::Object(fields) = value else {
            return Err(FieldError::invalid(
                "notify",
                "expected an object {url, secret?, headers?}",
            )
            .into());
        };
        for name in fields.keys().filter(|k| !FIELDS.contains(&k.as_str())) {
            errors.push(FieldError::invalid(
                format!("notify.{name}"),
                "unknown field; expected one of url, secret, headers",
            ));
        }
        let url = match fields.get("url") {
            Some(Value::String(url)) => check_url(url, rules).map_err(|e| errors.push(e)).ok(),
            Some(_) => {
                errors.push(FieldError::invalid("notify.url", "expected a string"));
                None
            }
            None => {
                errors.push(FieldError::invalid("notify.url", "required"));
                None
            }
        };
        let secret = match fields.get("secret") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => match key_of(s) {
                Ok(_) => Some(s.clone()),
                Err(why) => {
                    errors.push(FieldError::invalid("notify.secret", why));
                    None
                }
            },
            Some(_) => {
                errors.push(FieldError::invalid("notify.secret", "expected a string"));
                None
            }
        };
        let headers = match fields.get("headers") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Object(map)) => headers_of(map, &mut errors),
            Some(_) => {
                errors.push(FieldError::invalid(
                    "notify.headers",
                    "expected an object of names to values",
                ));
                Vec::new()
            }
        };
        match (FieldErrors::from_vec(errors), url) {
            (None, Some(url)) => Ok(Target { url, secret, headers }),
            (Some(errors), _) => Err(errors),
            (None, None) => Err(FieldError::invalid("notify.url", "required").into()),
        }
    }

    /// A target as stored (checked when the run started).
    pub fn stored(url: String, secret: Option<String>, headers: &Value) -> Target {
        let headers = headers
            .as_object()
            .map(|m| {
                m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect()
            })
            .unwrap_or_default();
        Target { url, secret, headers }
    }

    /// The headers as the JSON object that is stored.
    pub fn headers_json(&self) -> Value {
        Value::Object(
            self.headers.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect(),
        )
    }

    /// The `webhook-signature` of a message, if the target has a secret.
    pub fn signature(&self, id: &str, timestamp: i64, body: &str) -> Option<String> {
        let key = key_of(self.secret.as_deref()?).ok()?;
        Some(signature(&key, id, timestamp, body))
    }
}

/// `v1,<base64 HMAC-SHA256 over "{id}.{timestamp}.{body}">`, as Standard Webhooks sign.
pub fn signature(key: &[u8], id: &str, timestamp: i64, body: &str) -> String {
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body.as_bytes());
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The signing key of a secret: `whsec_<base64>` is those bytes, anything else its UTF-8 bytes.
pub fn key_of(secret: &str) -> Result<Vec<u8>, String> {
    if secret.is_empty() {
        return Err("must not be empty".into());
    }
    match secret.strip_prefix(SECRET_PREFIX) {
        Some(b64) => match STANDARD.decode(b64) {
            Ok(key) if !key.is_empty() => Ok(key),
            _ => Err(format!("a secret that starts with {SECRET_PREFIX} is base64 after it")),
        },
        None => Ok(secret.as_bytes().to_vec()),
    }
}

fn check_url(url: &str, rules: &Rules) -> Result<String, FieldError> {
    let parsed = Url::parse(url)
        .map_err(|e| FieldError::invalid("notify.url", format!("not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        let why = format!("scheme {:?} is not supported; use http or https", parsed.scheme());
        return Err(FieldError::invalid("notify.url", why));
    }
    rules
        .check_url(&parsed)
        .map_err(|refusal| FieldError::refused("notify.url", refusal.to_string()))?;
    Ok(url.to_owned())
}

fn headers_of(map: &Map<String, Value>, errors: &mut Vec<FieldError>) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(map.len());
    for (name, value) in map {
        let path = format!("notify.headers.{name}");
        let Value::String(value) = value else {
            errors.push(FieldError::invalid(path, "expected a string"));
            continue;
        };
        if HeaderName::try_from(name.as_str()).is_err() {
            errors.push(FieldError::invalid(path, "not a valid header name"));
        } else if OWN_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            errors.push(FieldError::invalid(path, "set by aetr on every message"));
        } else if HeaderValue::try_from(value.as_str()).is_err() {
            errors.push(FieldError::invalid(path, "not a valid header value"));
        } else {
            out.push((name.clone(), value.clone()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of Standard Webhooks' specification and of its libraries' tests.
    #[test]
    fn signs_as_the_specification_example() {
        let key = key_of("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("a base64 key");
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            signature(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn a_secret_without_the_prefix_is_its_bytes() {
        assert_eq!(key_of("plain"), Ok(b"plain".to_vec()));
        assert!(key_of("whsec_!!!").is_err());
        assert!(key_of("").is_err());
    }
}
