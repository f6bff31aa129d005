//! Every `/api/v1/steps` endpoint, and its errors.

mod children;
mod clone;
mod delete;
mod errors;
mod fat;
mod list;
mod slim;

use serde_json::{json, Value};

/// An Action step calling `url`.
pub fn action(name: &str, url: &str) -> Value {
    json!({"name": name, "stepType": "Action", "action": {"type": "api", "url": url}})
}

/// A JS mapper.
pub fn js(source: &str) -> Value {
    json!({"type": "js", "js": source})
}
