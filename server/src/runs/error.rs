//! Why a run could not be started or moved: the domain's own errors, which `http/` turns into
//! statuses (see `ApiError`'s `From<RunError>`).

use std::sync::Arc;

use aetr_engine::machine::MachineError;
use aetr_engine::{FieldError, FieldErrors};
use tokio_postgres::error::SqlState;
use uuid::Uuid;

/// Why an event, a start or a redrive could not be applied. Cheap to clone: the events of a
/// batch that failed all get the same error.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RunError {
    #[error("no run with id {0}")]
    NoSuchRun(Uuid),
    #[error("no step with id {0}")]
    NoSuchStep(Uuid),
    /// The step's tree cannot be run as it is (it breaks a limit).
    #[error("{0}")]
    Refused(FieldError),
    /// The run's input does not match its root step's `inputSchema`: every mismatch, at
    /// `input.<place>`.
    #[error("{0}")]
    BadInput(FieldErrors),
    /// A start's idempotency key was used for a run of another step.
    #[error(
        "idempotencyKey {key:?} was used for run {run} of step {step}, not of step {requested}"
    )]
    KeyOfAnotherStep { key: String, run: Uuid, step: Uuid, requested: Uuid },
    /// A redrive on the latest definitions of a run whose root step was deleted.
    #[error(
        "the run's step {0} no longer exists; redrive the run on its own snapshot (POST \
         /runs/{{id}}/retry without ?definition=latest)"
    )]
    StepGone(Uuid),
    /// The run was given a new snapshot while the redrive read the old one.
    #[error("the run was redriven meanwhile")]
    RedrivenMeanwhile,
    #[error("only a run in Error can be redriven")]
    NotInError,
    /// The transaction conflicted with others (a deadlock, a serialization failure, a snapshot
    /// that changed under it) each time it was tried.
    #[error("the run's changes conflicted with others' each time they were tried")]
    Conflict,
    /// The database cannot be reached now.
    #[error("the database is unavailable: {0:#}")]
    Unavailable(Arc<anyhow::Error>),
    /// The engine refused an event: a bug, or corrupt state. Logged where it happened.
    #[error("run {run}: applying {event}: {error}")]
    Corrupt { run: Uuid, event: String, error: MachineError },
    /// A bug: logged where it happened.
    #[error("{0:#}")]
    Internal(Arc<anyhow::Error>),
}

impl RunError {
    /// A bug, with what it was about.
    pub fn internal(message: impl std::fmt::Display) -> RunError {
        RunError::Internal(Arc::new(anyhow::anyhow!("{message}")))
    }

    /// A deadlock, a serialization failure or a snapshot that changed: the transaction may
    /// simply be tried again.
    pub fn is_transient(&self) -> bool {
        matches!(self, RunError::Conflict)
    }

    /// A bug or corrupt state, rather than a refusal or an outage.
    pub fn is_bug(&self) -> bool {
        matches!(self, RunError::Corrupt { .. } | RunError::Internal(_))
    }
}

/// Errors of the store and the pool, sorted by what the caller can do about them.
impl From<anyhow::Error> for RunError {
    fn from(e: anyhow::Error) -> RunError {
        let code = e.downcast_ref::<tokio_postgres::Error>().and_then(tokio_postgres::Error::code);
        if code.is_some_and(|c| {
            *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
        }) {
            RunError::Conflict
        } else if crate::db::is_unavailable(&e) {
            RunError::Unavailable(Arc::new(e))
        } else {
            RunError::Internal(Arc::new(e))
        }
    }
}

impl From<tokio_postgres::Error> for RunError {
    fn from(e: tokio_postgres::Error) -> RunError {
        anyhow::Error::from(e).into()
    }
}

impl From<deadpool_postgres::PoolError> for RunError {
    fn from(e: deadpool_postgres::PoolError) -> RunError {
        anyhow::Error::from(e).into()
    }
}
