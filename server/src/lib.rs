//! The `aetr` server: HTTP API (actix-web), storage (tokio-postgres, deadpool-postgres), the
//! embedded PostgreSQL, and the CLI's commands. The engine (`aetr-engine`) holds the domain.
#![forbid(unsafe_code)]

pub mod app;
pub mod check;
pub mod cli;
pub mod config;
pub mod db;
pub mod definitions;
pub mod dispatch;
pub mod guard;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod otel;
pub mod retention;
pub mod routes;
pub mod runs;
pub mod schedules;
pub mod scripts;
pub mod store;
