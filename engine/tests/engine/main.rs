//! The engine's tests, in one binary.
#![allow(clippy::unwrap_used)]

mod graph;
mod machine;
mod no_io;
mod parse;
mod properties;
mod script_runner;
mod support;
