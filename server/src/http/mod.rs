//! HTTP plumbing shared by the routes: errors, bodies, query strings.

pub mod auth;
pub mod body;
pub mod error;
pub mod headers;
pub mod query;
pub mod request_id;

pub use error::{ApiError, ErrorBody};
