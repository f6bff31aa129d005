//! A small reader over `serde_json::Value` that names the path of every error it finds.

use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::FieldError;

/// At most this many errors are reported for one body.
const MAX_ERRORS: usize = 50;

/// The errors found so far in one body.
#[derive(Debug, Default)]
pub(crate) struct Errors(Vec<FieldError>);

impl Errors {
    pub fn push(&mut self, e: FieldError) {
        if self.0.len() < MAX_ERRORS {
            self.0.push(e);
        }
    }

    pub fn invalid(&mut self, path: &str, message: impl Into<String>) {
        self.push(FieldError::invalid(path, message));
    }

    pub fn refused(&mut self, path: &str, message: impl Into<String>) {
        self.push(FieldError::refused(path, message));
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn into_vec(self) -> Vec<FieldError> {
        self.0
    }
}

/// `parent.field`, or `field` at the top.
pub(crate) fn join(parent: &str, field: &str) -> String {
    if parent.is_empty() {
        field.to_owned()
    } else {
        format!("{parent}.{field}")
    }
}

/// `parent[i]`.
pub(crate) fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

/// The JSON type of a value, for messages.
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A JSON object at a path.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Obj<'a> {
    pub map: &'a Map<String, Value>,
    pub path: &'a str,
}

impl<'a> Obj<'a> {
    /// The object, or an error if the value is not one.
    pub fn new(value: &'a Value, path: &'a str, errs: &mut Errors) -> Option<Self> {
        match value {
            Value::Object(map) => Some(Obj { map, path }),
            other => {
                errs.invalid(path, format!("expected an object, found {}", type_name(other)));
                None
            }
        }
    }

    pub fn path_of(&self, field: &str) -> String {
        join(self.path, field)
    }

    /// A field that is present and not null.
    pub fn get(&self, field: &str) -> Option<&'a Value> {
        self.map.get(field).filter(|v| !v.is_null())
    }

    pub fn has_keys_within(&self, allowed: &[&str]) -> bool {
        self.map.keys().all(|k| allowed.contains(&k.as_str()))
    }

    /// Reports every field not in `allowed`.
    pub fn deny_unknown(&self, allowed: &[&str], errs: &mut Errors) {
        for key in self.map.keys().filter(|k| !allowed.contains(&k.as_str())) {
            errs.invalid(
                &self.path_of(key),
                format!("unknown field; expected one of {}", allowed.join(", ")),
            );
        }
    }

    pub fn str(&self, field: &str, errs: &mut Errors) -> Option<&'a str> {
        match self.get(field)? {
            Value::String(s) => Some(s),
            other => {
                errs.invalid(
                    &self.path_of(field),
                    format!("expected a string, found {}", type_name(other)),
                );
                None
            }
        }
    }

    pub fn required_str(&self, field: &str, errs: &mut Errors) -> Option<&'a str> {
        if self.get(field).is_none() {
            errs.invalid(&self.path_of(field), "required");
            return None;
        }
        self.str(field, errs)
    }

    /// A whole number in `min..=max`. Below `min` is a 400; above `max` a 422 (a limit).
    pub fn uint(&self, field: &str, min: u64, max: u64, errs: &mut Errors) -> Option<u64> {
        uint_at(self.get(field)?, &self.path_of(field), min, max, errs)
    }

    pub fn uuid(&self, field: &str, errs: &mut Errors) -> Option<Uuid> {
        let s = self.str(field, errs)?;
        parse_uuid(s, &self.path_of(field), errs)
    }

    /// One of `choices`, as a string.
    pub fn choice<T: Copy>(
        &self,
        field: &str,
        choices: &[(&str, T)],
        errs: &mut Errors,
    ) -> Option<T> {
        let s = self.str(field, errs)?;
        choice_of(s, &self.path_of(field), choices, errs)
    }
}

pub(crate) fn uint_at(v: &Value, path: &str, min: u64, max: u64, errs: &mut Errors) -> Option<u64> {
    match v.as_u64() {
        Some(n) if n < min => errs.invalid(path, format!("must be at least {min}")),
        Some(n) if n > max => errs.refused(path, format!("must be at most {max}")),
        Some(n) => return Some(n),
        None => errs.invalid(path, format!("expected a whole number, found {}", describe(v))),
    }
    None
}

fn describe(v: &Value) -> String {
    match v {
        Value::Number(n) => n.to_string(),
        other => type_name(other).to_owned(),
    }
}

pub(crate) fn parse_uuid(s: &str, path: &str, errs: &mut Errors) -> Option<Uuid> {
    match Uuid::try_parse(s) {
        Ok(id) => Some(id),
        Err(_) => {
            errs.invalid(path, format!("{s:?} is not a UUID"));
            None
        }
    }
}

pub(crate) fn choice_of<T: Copy>(
    s: &str,
    path: &str,
    choices: &[(&str, T)],
    errs: &mut Errors,
) -> Option<T> {
    if let Some((_, t)) = choices.iter().find(|(name, _)| *name == s) {
        return Some(*t);
    }
    let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
    errs.invalid(path, format!("unknown value {s:?}; expected one of {}", names.join(", ")));
    None
}
