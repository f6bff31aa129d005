//! The client commands' HTTP client: the server's URL and token, and every failure as one line
//! that says what went wrong.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::{Exit, ServerUrl};

/// A client of one aetr server's API.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    /// The server's URL, without a trailing slash.
    url: String,
    token: Option<String>,
}

impl Client {
    pub fn new(server: &ServerUrl) -> Result<Client, Exit> {
        let url = server.url.trim_end_matches('/').to_owned();
        if reqwest::Url::parse(&url).is_err() {
            return Err(Exit::Usage(format!("AETR_URL {url:?} is not a URL")));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("aetr/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Exit::Failed(format!("cannot make an HTTP client: {e}")))?;
        Ok(Client { http, url, token: server.token.clone().filter(|t| !t.is_empty()) })
    }

    /// `GET /api/v1{path}`.
    pub async fn get(&self, path: &str) -> Result<Value, Exit> {
        self.call(Method::GET, path, None).await
    }

    /// `POST /api/v1{path}` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, Exit> {
        self.call(Method::POST, path, Some(Payload::Json(body))).await
    }

    /// `POST /api/v1{path}` with a raw text body.
    pub async fn post_text(&self, path: &str, body: String) -> Result<Value, Exit> {
        self.call(Method::POST, path, Some(Payload::Text(body))).await
    }

    /// `PUT /api/v1{path}` with a JSON body.
    pub async fn put(&self, path: &str, body: &Value) -> Result<Value, Exit> {
        self.call(Method::PUT, path, Some(Payload::Json(body))).await
    }

    /// `DELETE /api/v1{path}`.
    pub async fn delete(&self, path: &str) -> Result<Value, Exit> {
        self.call(Method::DELETE, path, None).await
    }

    /// Calls the API; a 2xx answer's JSON (or `null` for an empty one), or the failure as one
    /// line: the server's own error messages, or why it could not be reached.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Payload<'_>>,
    ) -> Result<Value, Exit> {
        let url = format!("{}/api/v1{path}", self.url);
        let mut request = self.http.request(method.clone(), &url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        request = match body {
            Some(Payload::Json(body)) => request.json(body),
            Some(Payload::Text(text)) => request.body(text),
            None => request,
        };
        let response = request.send().await.map_err(|e| {
            Exit::Failed(format!("cannot reach the aetr server at {}: {}", self.url, cause(&e)))
        })?;
        let status = response.status();
        let text = response.text().await.map_err(|e| {
            Exit::Failed(format!("{method} {path}: the answer could not be read: {}", cause(&e)))
        })?;
        let value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if status.is_success() {
            return Ok(value);
        }
        Err(Exit::Failed(refusal(status, &method, path, &value, self.token.is_some())))
    }
}

/// A request's body.
#[derive(Debug)]
pub enum Payload<'a> {
    Json(&'a Value),
    Text(String),
}

/// A refused request, as one line.
fn refusal(status: StatusCode, method: &Method, path: &str, body: &Value, token: bool) -> String {
    if status == StatusCode::UNAUTHORIZED {
        return match token {
            true => "the server refused the API token (AETR_TOKEN)".into(),
            false => "the server needs an API token: set AETR_TOKEN".into(),
        };
    }
    let errors: Vec<&str> =
        body["errors"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    match errors.is_empty() {
        true => format!("{method} {path} answered {status}"),
        false => format!("{method} {path} answered {}: {}", status.as_u16(), errors.join("; ")),
    }
}

/// The innermost cause of a failed request, which says what went wrong (refused, timed out),
/// without the URL (a callback URL carries its token).
pub(crate) fn cause(e: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    let what = if e.is_timeout() { "timed out: " } else { "" };
    format!("{what}{cause}")
}
