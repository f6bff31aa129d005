//! End-to-end tests: the real `aetr` binary, a real PostgreSQL, real HTTP. One test binary, so
//! that it links once.
#![allow(clippy::unwrap_used)]

mod support;

mod aetr_clients;
mod bench;
mod cli;
mod cli_client;
mod cli_service;
mod docker;
mod embedded;
mod hardening;
mod metrics;
mod migrations;
mod openapi;
mod otel;
mod resilience;
mod runs;
mod schedules;
mod scripts;
mod steps;
mod store;
mod ui;
