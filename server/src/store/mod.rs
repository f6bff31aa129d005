//! Storage: SQL next to the code that uses it, prepared and cached per connection. Functions
//! take `&impl GenericClient`, so that a caller can group them in one transaction.

pub mod attempts;
pub mod events;
pub mod nodes;
pub mod runs;
pub mod steps;
pub mod time;
pub mod views;
