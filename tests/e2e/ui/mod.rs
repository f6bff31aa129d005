//! The bundled web UI: how its files are served, the counts its live views read, and the UI
//! itself in a real headless Chromium (`tests/browser/`).

mod browser;
mod serving;
mod stats;
