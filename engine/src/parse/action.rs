//! `action`: `{"type":"no-op"}`, `{"type":"wait","seconds"}`,
//! `{"type":"manual","callbackTimeoutSeconds"?}`, or `{"type":"api", url, headers?, retry?,
//! timeoutSeconds?, callbackTimeoutSeconds?, onTimeout?, mode?, pool?}`.

use serde_json::Value;

use super::reader::{type_name, Errors, Obj};
use super::PoolNames;
use crate::limits::Limits;
use crate::step::{Action, ApiAction, CallbackTimeout, ManualAction, Mode, OnTimeout, RetryPolicy};

const API_FIELDS: &[&str] = &[
    "type",
    "url",
    "headers",
    "retry",
    "timeoutSeconds",
    "callbackTimeoutSeconds",
    "onTimeout",
    "mode",
    "pool",
];

/// Headers that aetr sets itself and that an action may not replace.
const RESERVED_HEADERS: &[&str] = &[
    "content-length",
    "transfer-encoding",
    "host",
    "connection",
    "idempotency-key",
    "x-aetr-run",
    "traceparent",
];

/// The longest POST timeout: one hour.
const MAX_TIMEOUT_SECONDS: u64 = 3_600;
/// The longest `wait`: a year.
const MAX_WAIT_SECONDS: u64 = 31_536_000;
/// The longest callback timeout: ten years.
const MAX_CALLBACK_TIMEOUT_SECONDS: u64 = 10 * 366 * 24 * 3_600;
/// The most attempts a retry policy may make.
const MAX_ATTEMPTS: u64 = 100;
/// The longest backoff: one day.
const MAX_BACKOFF_MS: u64 = 24 * 3_600 * 1_000;

#[derive(Debug, Clone, Copy)]
enum Kind {
    Api,
    NoOp,
    Wait,
    Manual,
}

pub(crate) fn action(
    value: &Value,
    path: &str,
    limits: &Limits,
    pools: &dyn PoolNames,
    errs: &mut Errors,
) -> Option<Action> {
    let obj = Obj::new(value, path, errs)?;
    let kind = if obj.get("type").is_none() {
        errs.invalid(&obj.path_of("type"), "required");
        None
    } else {
        let kinds = [
            ("api", Kind::Api),
            ("no-op", Kind::NoOp),
            ("wait", Kind::Wait),
            ("manual", Kind::Manual),
        ];
        obj.choice("type", &kinds, errs)
    };
    match kind? {
        Kind::NoOp => {
            obj.deny_unknown(&["type"], errs);
            Some(Action::NoOp)
        }
        Kind::Wait => {
            obj.deny_unknown(&["type", "seconds"], errs);
            if obj.get("seconds").is_none() {
                errs.invalid(&obj.path_of("seconds"), "required for a wait");
                return None;
            }
            let seconds = obj.uint("seconds", 0, MAX_WAIT_SECONDS, errs)?;
            Some(Action::Wait { seconds: seconds as u32 })
        }
        Kind::Manual => {
            obj.deny_unknown(&["type", "callbackTimeoutSeconds"], errs);
            let callback_timeout_seconds = callback_timeout(obj, errs)?;
            Some(Action::Manual(ManualAction { callback_timeout_seconds }))
        }
        Kind::Api => api(obj, limits, pools, errs).map(Action::Api),
    }
}

/// `callbackTimeoutSeconds`: absent (the server's default), `null` (for ever), or seconds.
fn callback_timeout(obj: Obj<'_>, errs: &mut Errors) -> Option<CallbackTimeout> {
    Some(match obj.map.get("callbackTimeoutSeconds") {
        None => CallbackTimeout::Default,
        Some(Value::Null) => CallbackTimeout::Never,
        Some(_) => CallbackTimeout::Seconds(obj.uint(
            "callbackTimeoutSeconds",
            1,
            MAX_CALLBACK_TIMEOUT_SECONDS,
            errs,
        )?),
    })
}

fn api(
    obj: Obj<'_>,
    limits: &Limits,
    pools: &dyn PoolNames,
    errs: &mut Errors,
) -> Option<ApiAction> {
    let errors_before = errs.len();
    obj.deny_unknown(API_FIELDS, errs);
    let url =
        obj.required_str("url", errs).and_then(|u| check_url(u, &obj.path_of("url"), limits, errs));
    let headers = match obj.get("headers") {
        Some(h) => headers(h, &obj.path_of("headers"), limits, errs),
        None => Some(Vec::new()),
    };
    let retry = match obj.get("retry") {
        Some(r) => Some(retry(r, &obj.path_of("retry"), errs)?),
        None => None,
    };
    let timeout_seconds =
        obj.uint("timeoutSeconds", 1, MAX_TIMEOUT_SECONDS, errs).map(|n| n as u32);
    let callback_timeout_seconds = callback_timeout(obj, errs)?;
    let on_timeout =
        obj.choice("onTimeout", &[("fail", OnTimeout::Fail), ("retry", OnTimeout::Retry)], errs);
    let mode = obj.choice("mode", &[("callback", Mode::Callback), ("sync", Mode::Sync)], errs);
    let pool = obj.str("pool", errs).and_then(|name| pool(name, &obj.path_of("pool"), pools, errs));
    if errs.len() == errors_before {
        Some(ApiAction {
            url: url?,
            headers: headers?,
            retry,
            timeout_seconds,
            callback_timeout_seconds,
            on_timeout,
            mode,
            pool,
        })
    } else {
        None
    }
}

/// A pool's name, as `PUT /pools/{name}` takes it, of a pool that exists.
fn pool(name: &str, path: &str, pools: &dyn PoolNames, errs: &mut Errors) -> Option<String> {
    if !is_pool_name(name) {
        errs.invalid(path, POOL_NAME_RULE);
        return None;
    }
    if !pools.exists(name) {
        errs.refused(
            path,
            format!("no pool named {name:?}; create it with PUT /api/v1/pools/{name}"),
        );
        return None;
    }
    Some(name.to_owned())
}

/// What a pool's name may be.
pub const POOL_NAME_RULE: &str =
    "a pool's name is 1 to 100 letters, digits, '.', '_' or '-', starting with a letter or a digit";

/// Whether `name` may name a pool (see [`POOL_NAME_RULE`]).
pub fn is_pool_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.len() <= 100
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// An absolute http or https URL with a host, and no `aetr` query parameter of its own.
fn check_url(raw: &str, path: &str, limits: &Limits, errs: &mut Errors) -> Option<String> {
    if raw.len() > limits.max_url_bytes {
        errs.refused(
            path,
            format!(
                "is {} bytes, more than the limit of {} (AETR_MAX_URL_BYTES)",
                raw.len(),
                limits.max_url_bytes
            ),
        );
        return None;
    }
    let parsed = match url::Url::parse(raw) {
        Ok(u) => u,
        Err(e) => {
            errs.invalid(path, format!("{raw:?} is not an absolute URL: {e}"));
            return None;
        }
    };
    if !matches!(parsed.scheme(), "http" | "https") {
        errs.invalid(
            path,
            format!("scheme {:?} is not supported; use http or https", parsed.scheme()),
        );
    } else if parsed.host_str().is_none_or(str::is_empty) {
        errs.invalid(path, "has no host");
    } else if parsed.query_pairs().any(|(k, _)| k == "aetr") {
        errs.invalid(
            path,
            "has its own \"aetr\" query parameter, which aetr sets to the callback URL",
        );
    } else {
        return Some(raw.to_owned());
    }
    None
}

fn headers(
    value: &Value,
    path: &str,
    limits: &Limits,
    errs: &mut Errors,
) -> Option<Vec<(String, String)>> {
    let obj = Obj::new(value, path, errs)?;
    if obj.map.len() > limits.max_headers {
        errs.refused(
            path,
            format!(
                "has {} headers, more than the limit of {} (AETR_MAX_HEADERS)",
                obj.map.len(),
                limits.max_headers
            ),
        );
        return None;
    }
    let mut out = Vec::with_capacity(obj.map.len());
    for (name, v) in obj.map {
        let at = obj.path_of(name);
        let valid_name = !name.is_empty() && name.bytes().all(is_token_byte);
        if !valid_name {
            errs.invalid(&at, "is not a valid header name");
            continue;
        }
        if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            errs.refused(&at, "is set by aetr and cannot be configured");
            continue;
        }
        match v {
            Value::String(s) if s.bytes().all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f)) => {
                out.push((name.clone(), s.clone()))
            }
            Value::String(_) => errs.invalid(&at, "contains a control character"),
            other => errs.invalid(&at, format!("expected a string, found {}", type_name(other))),
        }
    }
    Some(out)
}

/// The characters of an RFC 9110 token.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn retry(value: &Value, path: &str, errs: &mut Errors) -> Option<RetryPolicy> {
    let obj = Obj::new(value, path, errs)?;
    obj.deny_unknown(&["maxAttempts", "backoffMs", "maxBackoffMs"], errs);
    let d = RetryPolicy::default();
    let max_attempts =
        obj.uint("maxAttempts", 1, MAX_ATTEMPTS, errs).map_or(d.max_attempts, |n| n as u32);
    let backoff_ms = obj.uint("backoffMs", 0, MAX_BACKOFF_MS, errs).unwrap_or(d.backoff_ms);
    let max_backoff_ms = obj
        .uint("maxBackoffMs", 0, MAX_BACKOFF_MS, errs)
        .unwrap_or(d.max_backoff_ms.max(backoff_ms));
    if max_backoff_ms < backoff_ms {
        errs.invalid(&obj.path_of("maxBackoffMs"), "must be at least backoffMs");
    }
    Some(RetryPolicy { max_attempts, backoff_ms, max_backoff_ms })
}
