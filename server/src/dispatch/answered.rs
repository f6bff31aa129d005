//! POSTs that services accepted (2xx), between the answer and its recording. The recorder
//! ([`super::accepted`]) waits a few milliseconds before it records each: a callback that
//! comes meanwhile (a fast service) records the POST's HTTP status in its own batch, whose
//! write of the node also ends the POST's lease, and so makes that recording needless. In a
//! chain of fast services this is one commit a step fewer.

use std::collections::HashMap;
use std::sync::Mutex;

use aetr_engine::NodeIdx;
use uuid::Uuid;

type Key = (Uuid, NodeIdx, u32);

#[derive(Debug, Default)]
pub(crate) struct Answered {
    statuses: Mutex<HashMap<Key, u16>>,
}

impl Answered {
    /// An attempt's POST was accepted with `status`; its recording is queued.
    pub fn insert(&self, run: Uuid, idx: NodeIdx, attempt: u32, status: u16) {
        self.lock().insert((run, idx, attempt), status);
    }

    /// The status of an accepted POST not yet recorded, for its callback's batch.
    pub fn status(&self, run: Uuid, idx: NodeIdx, attempt: u32) -> Option<u16> {
        self.lock().get(&(run, idx, attempt)).copied()
    }

    /// A callback's batch that recorded the POST's status has committed.
    pub fn recorded(&self, run: Uuid, idx: NodeIdx, attempt: u32) {
        self.lock().remove(&(run, idx, attempt));
    }

    /// For the recorder: whether the POST still needs recording (no callback batch recorded
    /// it). Either way it is forgotten here.
    pub fn take(&self, run: Uuid, idx: NodeIdx, attempt: u32) -> bool {
        self.lock().remove(&(run, idx, attempt)).is_some()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, u16>> {
        self.statuses.lock().unwrap_or_else(|e| e.into_inner())
    }
}
