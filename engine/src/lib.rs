//! aetr's pure domain: step trees, their validation, run snapshots, the run state machine and
//! the script runner trait. This crate does no I/O: it is driven by the server, which loads
//! state, calls the engine, and writes the outcome.
#![forbid(unsafe_code)]

pub mod error;
pub mod graph;
pub mod limits;
pub mod machine;
pub mod parse;
pub mod schema;
pub mod script;
pub mod snapshot;
pub mod step;
pub mod tree;

pub use error::{FieldError, FieldErrors, Severity};
pub use limits::Limits;
pub use schema::InputSchema;
pub use snapshot::{DryRun, NodeIdx, SnapNode, Snapshot};
pub use step::{
    Action, ApiAction, ChildLink, Chooser, ManualAction, MapSpec, Mapper, Reducer, Step, StepBody,
    StepType,
};
pub use tree::{Block, Blocks, Instance, Tree};
