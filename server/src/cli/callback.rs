//! `aetr callback URL [--fail] [BODY]`, and the delivery of a callback as the contract asks
//! (again after a connection error or a 5xx, with exponential backoff and jitter, until aetr
//! answers 200, 404 or 409), which `aetr serve-command` shares.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use clap::Args;
use reqwest::{StatusCode, Url};
use serde_json::Value;

use super::client::cause;
use super::Exit;

#[derive(Debug, Clone, Args)]
pub struct CallbackArgs {
    /// The callback URL that the service was given (its `aetr` query parameter).
    pub url: String,
    /// Report a failure: the body is the error message.
    #[arg(long)]
    pub fail: bool,
    /// The result (or error); standard input when absent.
    pub body: Option<String>,
    /// Retry a connection error or a 5xx for up to this many seconds, then give up.
    #[arg(long, value_name = "SECONDS", default_value_t = 300.0)]
    pub give_up_after: f64,
}

pub async fn run(args: CallbackArgs) -> Exit {
    let url = match callback_url(&args.url, args.fail) {
        Ok(url) => url,
        Err(message) => return Exit::Usage(message),
    };
    let give_up_after = match seconds(args.give_up_after) {
        Some(wait) => wait,
        None => {
            return Exit::Usage("--give-up-after must be a number of seconds, 0 or more".into())
        }
    };
    let body = match args.body {
        Some(body) => body,
        None => match read_stdin() {
            Ok(body) => body,
            Err(exit) => return exit,
        },
    };
    let http = match http_client() {
        Ok(http) => http,
        Err(e) => return Exit::Failed(e),
    };
    let outcome = deliver(&http, &url, body, Instant::now() + give_up_after, |why, wait| {
        eprintln!("aetr: callback: {why}; again in {:.1} s", wait.as_secs_f64());
    })
    .await;
    match outcome {
        Delivery::Taken => Exit::Done,
        other => Exit::Failed(other.to_string()),
    }
}

/// The URL to post to: `url`, checked, with `/runs/complete` replaced by `/runs/fail` for a
/// failure. Why not, as one line.
pub fn callback_url(url: &str, fail: bool) -> Result<Url, String> {
    let parsed = match Url::parse(url) {
        Ok(parsed) if ["http", "https"].contains(&parsed.scheme()) => parsed,
        _ => return Err(format!("{url:?} is not an http(s) URL")),
    };
    match fail {
        true => fail_url(&parsed).ok_or_else(|| {
            format!("--fail: the URL's path {:?} does not end in /runs/complete", parsed.path())
        }),
        false => Ok(parsed),
    }
}

/// A callback URL with `/runs/complete` replaced by `/runs/fail` (a URL that is already at
/// `/runs/fail` is kept); `None` when it has neither.
pub fn fail_url(url: &Url) -> Option<Url> {
    let path = url.path();
    if path.ends_with("/runs/fail") {
        return Some(url.clone());
    }
    let base = path.strip_suffix("/runs/complete")?;
    let mut fail = url.clone();
    fail.set_path(&format!("{base}/runs/fail"));
    Some(fail)
}

/// A URL without its query (where the token is) and fragment: what may be logged.
pub fn without_query(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    let _ = shown.set_password(None);
    shown.to_string()
}

/// A number of seconds given on the command line, if it is one.
pub(crate) fn seconds(value: f64) -> Option<Duration> {
    Duration::try_from_secs_f64(value).ok()
}

/// All of standard input, which must be UTF-8.
fn read_stdin() -> Result<String, Exit> {
    if std::io::stdin().is_terminal() {
        eprintln!("aetr: reading the body from standard input (end it with Ctrl-D)");
    }
    super::read_stdin("a callback body")
}

/// The HTTP client for callbacks: no redirects (a 3xx is an answer), bounded waits.
pub fn http_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(ATTEMPT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("aetr/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot make an HTTP client: {e}"))
}

/// How long one attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);
/// The first wait before another attempt; it doubles each time, up to [`LONGEST_WAIT`].
const FIRST_WAIT: Duration = Duration::from_millis(200);
const LONGEST_WAIT: Duration = Duration::from_secs(10);

/// How a callback's delivery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// A 2xx: aetr took it.
    Taken,
    /// A final answer other than 2xx (404, 409, another 4xx, a 3xx), with the server's message.
    Refused {
        status: u16,
        message: String,
        /// Whether an earlier attempt may have reached aetr (its answer was lost), so that a
        /// 409 may be that attempt's own repeat.
        earlier_may_have_arrived: bool,
    },
    /// Still failing (connection errors, 5xx) at the deadline: the last failure.
    GaveUp { attempts: u32, last: String },
}

impl std::fmt::Display for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Delivery::Taken => f.write_str("taken"),
            Delivery::Refused { status, message, earlier_may_have_arrived } => {
                match *status {
                    404 => write!(f, "unknown token: the callback was refused (404): {message}")?,
                    409 => write!(
                        f,
                        "already taken, late or cancelled: the callback was refused (409): \
                         {message}"
                    )?,
                    _ => write!(f, "the callback was refused ({status}): {message}")?,
                }
                if *earlier_may_have_arrived {
                    f.write_str(
                        " (an earlier attempt, whose answer was lost, may have been taken)",
                    )?;
                }
                Ok(())
            }
            Delivery::GaveUp { attempts, last } => {
                write!(f, "gave up on the callback after {attempts} attempts; the last: {last}")
            }
        }
    }
}

/// POSTs `body` to a callback URL until aetr answers 2xx, 404, 409 or another final status, or
/// `deadline` passes (there is always one attempt). A connection error, a timeout, a 5xx, a 408
/// or a 429 is tried again after a wait that starts at 0.2 s and doubles up to 10 s, with
/// jitter; `on_retry` is told why and how long the wait is. Nothing here names the URL's
/// query, where the token is.
pub async fn deliver(
    http: &reqwest::Client,
    url: &Url,
    body: String,
    deadline: Instant,
    mut on_retry: impl FnMut(&str, Duration),
) -> Delivery {
    let mut wait = FIRST_WAIT;
    let mut attempts = 0;
    let mut earlier_may_have_arrived = false;
    loop {
        attempts += 1;
        let request = http
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(body.clone());
        let why = match request.send().await {
            Ok(answer) => {
                let status = answer.status();
                if status.is_success() {
                    return Delivery::Taken;
                }
                let text = answer.text().await.unwrap_or_default();
                if !again(status) {
                    let message = message(status, &text);
                    let status = status.as_u16();
                    return Delivery::Refused { status, message, earlier_may_have_arrived };
                }
                earlier_may_have_arrived |= status == StatusCode::GATEWAY_TIMEOUT;
                format!("aetr answered {}", message(status, &text))
            }
            Err(e) => {
                // A request that timed out or broke after it was sent may have been taken.
                earlier_may_have_arrived |= !e.is_connect();
                cause(&e)
            }
        };
        let now = Instant::now();
        if now >= deadline {
            return Delivery::GaveUp { attempts, last: why };
        }
        // Jitter: somewhere between half the wait and all of it.
        let jittered = wait.mul_f64(0.5 + rand::random::<f64>() / 2.0).min(deadline - now);
        on_retry(&why, jittered);
        tokio::time::sleep(jittered).await;
        wait = (wait * 2).min(LONGEST_WAIT);
    }
}

/// Whether a status is worth another attempt.
fn again(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
}

/// A refusal's message: aetr's `{"errors": [...]}`, else the status and the start of the body.
fn message(status: StatusCode, text: &str) -> String {
    let errors = serde_json::from_str::<Value>(text).ok().and_then(|body| {
        let errors = body["errors"].as_array()?.iter().filter_map(Value::as_str);
        let errors: Vec<&str> = errors.collect();
        (!errors.is_empty()).then(|| errors.join("; "))
    });
    if let Some(errors) = errors {
        return errors;
    }
    let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let text: String = text.chars().take(200).collect();
    match text.is_empty() {
        true => status.to_string(),
        false => format!("{status}: {text}"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_fail_url_replaces_runs_complete_and_keeps_the_query() {
        let url = callback_url("http://h:1/x/api/v1/runs/complete?token=t", true).unwrap();
        assert_eq!(url.as_str(), "http://h:1/x/api/v1/runs/fail?token=t");
        assert!(callback_url("http://h:1/api/v1/other?token=t", true).is_err());
        assert!(callback_url("ftp://h/api/v1/runs/complete", false).is_err());
        assert!(callback_url("not a url", false).is_err());
        let url = Url::parse("http://u:p@h:1/api/v1/runs/complete?token=t#f").unwrap();
        assert_eq!(without_query(&url), "http://u@h:1/api/v1/runs/complete");
    }

    #[test]
    fn a_refusal_says_what_aetr_said() {
        let text = r#"{"errors":["this attempt's callback was already taken"]}"#;
        assert_eq!(
            message(StatusCode::CONFLICT, text),
            "this attempt's callback was already taken"
        );
        assert_eq!(message(StatusCode::BAD_GATEWAY, ""), "502 Bad Gateway");
        assert_eq!(message(StatusCode::BAD_REQUEST, "no\n good"), "400 Bad Request: no good");
    }
}
