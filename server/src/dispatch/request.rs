//! The POST to a service, exactly as design.md's contract says, and how its answer is read.
//!
//! `POST <url>?<the url's own query>&aetr=<callback url, percent-encoded>`, with the node's
//! input as the body (none for no input), `Content-Type: application/json` when the body parses
//! as JSON (else `text/plain; charset=utf-8`), then the action's own headers, which override
//! these, and `Idempotency-Key: <nodeId>:<attempt>`, `X-Aetr-Run: <runId>` and a W3C
//! `traceparent` (one trace per run, a span per attempt: see [`traceparent`]), so that a service
//! can join the run's trace.
//!
//! Errors never show the URL's query: it holds the callback token.

use std::time::Duration;

use aetr_engine::machine::Retry;
use aetr_engine::parse::service_result;
use aetr_engine::step::{ApiAction, Mode};
use reqwest::header::{HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Client, Response, StatusCode};
use url::Url;
use uuid::Uuid;

use crate::guard::{Refusal, Rules};

/// How much of an error answer's body a node's error quotes.
const QUOTED_BYTES: usize = 300;

/// One attempt's POST.
#[derive(Debug)]
pub struct Call<'a> {
    pub action: &'a ApiAction,
    pub input: Option<&'a str>,
    pub callback_url: &'a str,
    pub run: Uuid,
    pub node_id: Uuid,
    pub attempt: u32,
}

/// How a POST went.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// A 2xx to a callback action: the service will call back.
    Accepted { status: u16 },
    /// A 2xx to a sync action: its body is the result.
    Result { status: u16, body: Option<String> },
    /// Not sent, not answered, or not a 2xx.
    Failed { error: String, retry: Retry, status: Option<u16> },
}

/// A run's trace id: its id's 32 hex digits (a UUIDv7 is never all zeros).
pub fn trace_id(run: Uuid) -> String {
    run.simple().to_string()
}

/// The W3C `traceparent` of an attempt: version 00, the run's trace id, the attempt's span id
/// and the sampled flag. A node's id is its run's id with the node's number XORed into its
/// last 32 bits, so the span id (the node id's last 64 bits, with the attempt XORed into their
/// upper half) differs for every node and attempt of a run, and is the same when an attempt is
/// sent again.
pub fn traceparent(run: Uuid, node_id: Uuid, attempt: u32) -> String {
    format!("00-{}-{:016x}-01", trace_id(run), span_id(node_id, attempt))
}

/// An attempt's span id (see [`traceparent`]).
pub fn span_id(node_id: Uuid, attempt: u32) -> u64 {
    let low = node_id.as_u128() as u64;
    (low ^ (u64::from(attempt) << 32)).max(1)
}

/// The URL to POST to: the action's URL, its query kept as it is, with `aetr` added.
pub fn target(action_url: &str, callback_url: &str) -> Result<Url, String> {
    let mut url =
        Url::parse(action_url).map_err(|e| format!("the action's URL is invalid: {e}"))?;
    let aetr: String = url::form_urlencoded::byte_serialize(callback_url.as_bytes()).collect();
    let query = match url.query() {
        Some(own) if !own.is_empty() => format!("{own}&aetr={aetr}"),
        _ => format!("aetr={aetr}"),
    };
    url.set_query(Some(&query));
    url.set_fragment(None);
    Ok(url)
}

/// Sends the POST and reads its answer. `max_body`: the largest sync result accepted. A URL
/// that the rules refuse, as written or as resolved, fails the node at once.
#[tracing::instrument(level = "debug", skip_all, fields(run = %call.run, node = %call.node_id, attempt = call.attempt))]
pub async fn post(http: &Client, rules: &Rules, call: &Call<'_>, max_body: usize) -> Answer {
    let shown = shown_url(&call.action.url);
    let url = match target(&call.action.url, call.callback_url) {
        Ok(url) => url,
        Err(error) => return Answer::Failed { error, retry: Retry::Never, status: None },
    };
    if let Err(refusal) = rules.check_url(&url) {
        return refused(&shown, &refusal);
    }
    let body = call.input.unwrap_or_default().to_owned();
    let content_type = if serde_json::from_str::<serde::de::IgnoredAny>(&body).is_ok() {
        "application/json"
    } else {
        "text/plain; charset=utf-8"
    };
    let mut request = http
        .post(url)
        .timeout(Duration::from_secs(u64::from(call.action.effective_timeout_seconds())))
        .header(CONTENT_TYPE, content_type);
    for (name, value) in &call.action.headers {
        // Names and values were checked when the step was saved.
        if let (Ok(name), Ok(value)) =
            (HeaderName::try_from(name.as_str()), HeaderValue::try_from(value.as_str()))
        {
            request = request.header(name, value);
        }
    }
    let request = request
        .header("Idempotency-Key", format!("{}:{}", call.node_id, call.attempt))
        .header("X-Aetr-Run", call.run.to_string())
        .header("traceparent", traceparent(call.run, call.node_id, call.attempt))
        .body(body);
    let response = match request.send().await {
        Ok(response) => response,
        Err(e) => {
            if let Some(refusal) = Refusal::in_chain(&e) {
                return refused(&shown, refusal);
            }
            let why = if e.is_timeout() {
                format!(
                    "no answer within {} s (timeoutSeconds)",
                    call.action.effective_timeout_seconds()
                )
            } else {
                root_cause(&e)
            };
            return Answer::Failed {
                error: format!("POST {shown} failed: {why}"),
                retry: Retry::After(None),
                status: None,
            };
        }
    };
    let status = response.status();
    if status.is_success() {
        if call.action.effective_mode() == Mode::Callback {
            return Answer::Accepted { status: status.as_u16() };
        }
        return match read_body(response, max_body).await {
            Ok(body) if body.is_empty() => Answer::Result { status: status.as_u16(), body: None },
            Ok(body) => match String::from_utf8(body) {
                Ok(text) if text.contains('\0') => Answer::Failed {
                    error: format!(
                        "POST {shown} answered {status} with a body that contains a NUL \
                         character, which aetr cannot store"
                    ),
                    retry: Retry::Never,
                    status: Some(status.as_u16()),
                },
                Ok(text) => Answer::Result { status: status.as_u16(), body: service_result(text) },
                Err(_) => Answer::Failed {
                    error: format!("POST {shown} answered {status} with a body that is not UTF-8"),
                    retry: Retry::Never,
                    status: Some(status.as_u16()),
                },
            },
            Err((why, _)) => Answer::Failed {
                error: format!("POST {shown} answered {status}, but {why}"),
                retry: why.retry(),
                status: Some(status.as_u16()),
            },
        };
    }
    let retry = retry_of(&response);
    let quoted = match read_body(response, QUOTED_BYTES).await {
        Ok(body) | Err((_, body)) if !body.is_empty() => {
            format!(": {}", String::from_utf8_lossy(&body).trim().replace('\0', "\u{FFFD}"))
        }
        _ => String::new(),
    };
    Answer::Failed {
        error: format!("POST {shown} answered {status}{quoted}"),
        retry,
        status: Some(status.as_u16()),
    }
}

fn refused(shown: &str, refusal: &Refusal) -> Answer {
    Answer::Failed { error: format!("POST {shown} {refusal}"), retry: Retry::Never, status: None }
}

/// Whether a non-2xx answer may be retried: a 5xx or a 429 (after its `Retry-After`, in
/// seconds, if it gives one); a 3xx or another 4xx fails at once.
fn retry_of(response: &Response) -> Retry {
    let status = response.status();
    if status == StatusCode::TOO_MANY_REQUESTS {
        let after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|s| s.saturating_mul(1000));
        Retry::After(after)
    } else if status.is_server_error() {
        Retry::After(None)
    } else {
        Retry::Never
    }
}

/// Why an answer's body could not be read whole.
#[derive(Debug, thiserror::Error)]
enum BodyError {
    /// It is larger than the limit: trying again would not change that.
    #[error("its body is larger than the limit of {limit} bytes (AETR_MAX_CALLBACK_BYTES)")]
    TooLarge { limit: usize },
    /// The connection failed while it was read.
    #[error("its body could not be read: {0}")]
    Unreadable(String),
}

impl BodyError {
    /// Whether the POST may be tried again.
    fn retry(&self) -> Retry {
        match self {
            BodyError::TooLarge { .. } => Retry::Never,
            BodyError::Unreadable(_) => Retry::After(None),
        }
    }
}

/// Reads a body of at most `limit` bytes. Past the limit, or when the connection fails: an
/// error, with what was read.
async fn read_body(mut response: Response, limit: usize) -> Result<Vec<u8>, (BodyError, Vec<u8>)> {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > limit {
                    let room = limit - body.len();
                    body.extend_from_slice(&chunk[..room]);
                    return Err((BodyError::TooLarge { limit }, body));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => return Err((BodyError::Unreadable(root_cause(&e)), body)),
        }
    }
}

/// The innermost cause of an error: reqwest's own message names the URL, with its query.
pub(crate) fn root_cause(e: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    cause.to_string()
}

/// The URL as errors show it: without its query.
pub(crate) fn shown_url(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut u) => {
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => url.split(['?', '#']).next().unwrap_or_default().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_callback_url_is_one_percent_encoded_value_after_the_urls_own_query() {
        let callback = "http://aetr:9999/api/v1/runs/complete?token=a-b_c";
        let url = target("http://svc/x?b=1&a=%2F+2", callback).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            url.as_str(),
            "http://svc/x?b=1&a=%2F+2&aetr=http%3A%2F%2Faetr%3A9999%2Fapi%2Fv1%2Fruns%2Fcomplete%3Ftoken%3Da-b_c"
        );
        let url = target("https://svc/x#frag", callback).unwrap_or_else(|e| panic!("{e}"));
        assert!(url.as_str().starts_with("https://svc/x?aetr=http%3A%2F%2F"), "{url}");
        assert_eq!(shown_url("https://svc/x?secret=1#f"), "https://svc/x");
    }

    #[test]
    fn a_traceparent_has_the_runs_trace_and_a_span_for_each_node_and_attempt() {
        use crate::runs::node_id::node_id;
        let run = Uuid::now_v7();
        let trace = trace_id(run);
        let parent = |idx, attempt| traceparent(run, node_id(run, idx), attempt);
        let first = parent(3, 1);
        let parts: Vec<&str> = first.split('-').collect();
        assert_eq!(parts.len(), 4, "{first}");
        assert_eq!((parts[0], parts[1], parts[3]), ("00", trace.as_str(), "01"));
        assert_eq!(parts[2].len(), 16);
        assert!(parts[2].bytes().all(|b| b.is_ascii_hexdigit()), "{first}");
        let spans: std::collections::HashSet<String> =
            [parent(3, 1), parent(3, 2), parent(4, 1), parent(0, 1)].into_iter().collect();
        assert_eq!(spans.len(), 4, "a span per node and attempt: {spans:?}");
        assert_eq!(parent(3, 1), first, "an attempt sent again keeps its span");
    }
}
