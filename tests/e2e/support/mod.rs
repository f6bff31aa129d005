//! The end-to-end harness: the real binary, a real PostgreSQL, a fresh database per test.
#![allow(dead_code)]

pub mod app;
pub mod postgres;
pub mod server;
pub mod service;

pub use app::{Answer, TestApp};
pub use service::{Received, Respond, TestService};
