//! Validation errors that name the path to the field, and say how bad they are.

use std::fmt;

/// How the API answers an error: 400 for syntax, shape, type or enum errors; 422 for input
/// that is well-formed but refused (a script that does not compile, a cycle, an unknown child,
/// a refused URL, a limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Invalid,
    Refused,
}

impl Severity {
    pub fn http_status(self) -> u16 {
        match self {
            Severity::Invalid => 400,
            Severity::Refused => 422,
        }
    }
}

/// One error at one field, such as `children[2].mapper: unknown type "jss"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The path to the field: `children[2].mapper`, or empty for the whole body.
    pub path: String,
    pub message: String,
    pub severity: Severity,
}

impl FieldError {
    pub fn invalid(path: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError { path: path.into(), message: message.into(), severity: Severity::Invalid }
    }

    pub fn refused(path: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError { path: path.into(), message: message.into(), severity: Severity::Refused }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Every error found in one body. Never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldErrors(Vec<FieldError>);

impl FieldErrors {
    /// `None` when there are no errors.
    pub fn from_vec(errors: Vec<FieldError>) -> Option<Self> {
        (!errors.is_empty()).then_some(FieldErrors(errors))
    }

    pub fn errors(&self) -> &[FieldError] {
        &self.0
    }

    /// The status of the whole answer: 400 if any error is a 400, else 422.
    pub fn severity(&self) -> Severity {
        self.0.iter().map(|e| e.severity).min().unwrap_or(Severity::Invalid)
    }

    /// The texts for an `{"errors":[...]}` body.
    pub fn messages(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }
}

impl From<FieldError> for FieldErrors {
    fn from(e: FieldError) -> Self {
        FieldErrors(vec![e])
    }
}

impl fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for e in &self.0 {
            if !first {
                f.write_str("; ")?;
            }
            first = false;
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for FieldErrors {}
