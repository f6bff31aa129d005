//! Input schemas: a JSON Schema (draft 2020-12) that a step's input must match.
//!
//! A schema is checked against its meta-schema when a step is saved ([`InputSchema::new`]), and
//! compiled once per distinct schema: a snapshot's node compiles on its first check, through a
//! process-wide cache keyed by the schema's text, so that every run of a tree shares one
//! compiled validator. Validation is pure computation (no `$ref` is fetched from anywhere).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock};

use jsonschema::paths::LocationSegment;
use jsonschema::{Draft, Validator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::error::{FieldError, FieldErrors};

/// At most this many compiled schemas are kept; the cache starts afresh when it is full.
const CACHE_CAPACITY: usize = 1_024;
/// At most this many mismatches are reported for one input.
const MAX_MISMATCHES: usize = 20;
/// A mismatch's message is cut to this many characters (it may quote the input).
const MAX_MESSAGE_CHARS: usize = 200;

/// A step's `inputSchema`.
#[derive(Clone)]
pub struct InputSchema {
    value: Value,
    compiled: OnceLock<Result<Arc<Validator>, String>>,
}

/// One place where an input does not match its schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// The place in the input, as `items[0].name`; empty for the input as a whole.
    pub place: String,
    pub message: String,
}

impl InputSchema {
    /// A schema, checked against the draft 2020-12 meta-schema and compiled. `Err` names the
    /// first problem, with its place in the schema.
    pub fn new(value: Value) -> Result<Self, Mismatch> {
        let validator = build(&value).map_err(|e| Mismatch {
            place: place_of(e.instance_path().segments()),
            message: cut(&e.to_string()),
        })?;
        let compiled = cached(value.to_string(), Arc::new(validator));
        Ok(InputSchema { value, compiled: OnceLock::from(Ok(compiled)) })
    }

    /// The schema as the user gave it.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// Checks an input: its text parsed as JSON, or, if it is not JSON, as a string (as a
    /// Map passes a string item); no input is `null`. `Err` lists every mismatch (at most
    /// [`MAX_MISMATCHES`]), or one whose place is empty if the schema itself cannot be used.
    pub fn check(&self, input: Option<&str>) -> Result<(), Vec<Mismatch>> {
        let validator = match self.validator() {
            Ok(v) => v,
            Err(why) => {
                return Err(vec![Mismatch { place: String::new(), message: why.clone() }]);
            }
        };
        let value = match input {
            None => Value::Null,
            Some(text) => {
                serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
            }
        };
        let mismatches: Vec<Mismatch> = validator
            .iter_errors(&value)
            .take(MAX_MISMATCHES)
            .map(|e| Mismatch {
                place: place_of(e.instance_path().segments()),
                message: cut(&e.to_string()),
            })
            .collect();
        if mismatches.is_empty() {
            Ok(())
        } else {
            Err(mismatches)
        }
    }

    /// [`InputSchema::check`], with each mismatch as a 422 at its place under `field`
    /// (`input.items[0]`), as the API reports them.
    pub fn check_field(&self, input: Option<&str>, field: &str) -> Result<(), FieldErrors> {
        self.check(input).map_err(|mismatches| {
            let errors = mismatches.into_iter().map(|m| {
                let path = match m.place.as_str() {
                    "" => field.to_owned(),
                    p if p.starts_with('[') => format!("{field}{p}"),
                    p => format!("{field}.{p}"),
                };
                FieldError::refused(path, m.message)
            });
            FieldErrors::from_vec(errors.collect()).unwrap_or_else(|| {
                FieldError::refused(field, "does not match the input schema").into()
            })
        })
    }

    fn validator(&self) -> &Result<Arc<Validator>, String> {
        self.compiled.get_or_init(|| {
            let key = self.value.to_string();
            if let Some(v) = cache().lock().ok().and_then(|c| c.get(&key).cloned()) {
                return Ok(v);
            }
            let validator = build(&self.value)
                .map_err(|e| format!("the input schema cannot be used: {}", cut(&e.to_string())))?;
            Ok(cached(key, Arc::new(validator)))
        })
    }
}

/// Formats mismatches as one error text: `<place>: <message>; ...`.
pub fn describe(mismatches: &[Mismatch]) -> String {
    let mut out = String::new();
    for (i, m) in mismatches.iter().enumerate() {
        if i > 0 {
            out.push_str("; ");
        }
        if !m.place.is_empty() {
            let _ = write!(out, "{}: ", m.place);
        }
        out.push_str(&m.message);
    }
    out
}

fn build(value: &Value) -> Result<Validator, jsonschema::ValidationError<'static>> {
    jsonschema::options().with_draft(Draft::Draft202012).build(value)
}

fn cache() -> &'static Mutex<HashMap<String, Arc<Validator>>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<Validator>>>> = OnceLock::new();
    CACHE.get_or_init(Mutex::default)
}

/// Keeps `validator` as the compiled form of the schema whose text is `key`, unless another
/// thread already did.
fn cached(key: String, validator: Arc<Validator>) -> Arc<Validator> {
    let Ok(mut cache) = cache().lock() else { return validator };
    if cache.len() >= CACHE_CAPACITY {
        cache.clear();
    }
    cache.entry(key).or_insert(validator).clone()
}

/// `items[0].name` from a JSON pointer's segments.
fn place_of<'a>(segments: impl Iterator<Item = LocationSegment<'a>>) -> String {
    let mut out = String::new();
    for segment in segments {
        match segment {
            LocationSegment::Index(i) => {
                let _ = write!(out, "[{i}]");
            }
            LocationSegment::Property(name) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(&name);
            }
        }
    }
    out
}

fn cut(text: &str) -> String {
    match text.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

impl std::fmt::Debug for InputSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.value.fmt(f)
    }
}

impl PartialEq for InputSchema {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl Eq for InputSchema {}

impl Serialize for InputSchema {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(s)
    }
}

/// Stored schemas were checked when they were saved: reading one does not compile it.
impl<'de> Deserialize<'de> for InputSchema {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(InputSchema { value: Value::deserialize(d)?, compiled: OnceLock::new() })
    }
}
