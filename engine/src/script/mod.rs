//! Mappers and reducers: the [`ScriptRunner`] trait, its errors, and the in-process boa runner.
//!
//! A script is the source of a JavaScript function `apply`:
//! - a mapper's `apply(data)` gets a child's result as a string, or `null` for no result;
//! - a reducer's `apply(results)` gets an array of strings, with `null` where a child had none.
//!
//! A script returns a string, which is passed on as it is. Any other value is turned into its
//! JSON text. `null` and `undefined` mean "no result".
//!
//! The server runs scripts in isolated worker processes behind this same trait. The
//! [`BoaRunner`] serves compile checks when a tree is saved, tests, and the worker itself.

mod boa;

pub use boa::{BoaRunner, BoaRunnerConfig};

/// One call of a script's `apply` function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptCall<'a> {
    /// A mapper: `apply(data)`, where `data` is a string or `null`.
    Map { data: Option<&'a str> },
    /// A reducer: `apply(results)`, the children's mapped results in child order.
    Reduce { results: &'a [Option<String>] },
}

/// Why a script failed. The `Display` text is what a node's error shows after its prefix
/// (`mapper: ` or `reducer: `).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScriptError {
    /// The source does not parse, or does not define a function `apply`.
    #[error("{0}")]
    Compile(String),
    /// The script threw. The text is the thrown error's message (or the thrown value as text).
    #[error("{0}")]
    Thrown(String),
    /// A limit was hit: loop iterations, recursion, time, memory or result size.
    #[error("{0}")]
    Limit(String),
}

impl ScriptError {
    /// The same error with any NUL character in its text replaced by U+FFFD: the text is
    /// stored, and a script may throw anything.
    pub fn storable(self) -> ScriptError {
        let clean = |text: String| {
            if text.contains('\0') {
                text.replace('\0', "\u{FFFD}")
            } else {
                text
            }
        };
        match self {
            ScriptError::Compile(t) => ScriptError::Compile(clean(t)),
            ScriptError::Thrown(t) => ScriptError::Thrown(clean(t)),
            ScriptError::Limit(t) => ScriptError::Limit(clean(t)),
        }
    }
}

/// Runs scripts. Implementations compile each distinct source once and reuse it.
pub trait ScriptRunner {
    /// Checks that `source` parses and defines a function `apply`, without running it.
    fn check(&mut self, source: &str) -> Result<(), ScriptError>;

    /// Calls the script's `apply` and converts its return value as the module docs say.
    fn call(&mut self, source: &str, call: ScriptCall<'_>) -> Result<Option<String>, ScriptError>;
}
