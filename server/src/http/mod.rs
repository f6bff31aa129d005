//! HTTP plumbing shared by the routes: errors, bodies, query strings.

pub mod body;
pub mod error;
pub mod query;

pub use error::{ApiError, ErrorBody};
