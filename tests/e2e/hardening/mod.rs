//! API hardening: authentication, the SSRF guard, limits, and errors that show no internals.

mod auth;
mod errors;
mod fuzz;
mod limits;
mod ssrf;
