//! One queue of events per run. The first event for a run makes its submitter's task the run's
//! leader, which applies the queued events in batches until the queue is empty; events that
//! arrive meanwhile join the next batch. So a run's concurrent events (10,000 sibling callbacks,
//! say) share transactions instead of queueing one by one on the run's lock. The batches of
//! different runs share transactions too, in groups (see [`super::group`]).

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use aetr_engine::machine::{Event, Reply};
use aetr_engine::script::ScriptError;
use aetr_engine::NodeIdx;
use tokio::sync::oneshot;
use uuid::Uuid;

use super::batch::RunBatch;
use super::{RunError, Shared};

/// The most events one transaction applies.
const MAX_BATCH: usize = 512;

/// The lease under which an event's reporter did its work: the event applies only if the node's
/// lease is still at this epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fence {
    pub idx: NodeIdx,
    pub epoch: i64,
}

/// An event queued for its run's next batch, and who waits for its answer.
#[derive(Debug)]
pub(crate) struct Queued {
    pub event: Event,
    pub fence: Option<Fence>,
    /// The HTTP status of the POST answer that the event reports, if any.
    pub http_status: Option<u16>,
    /// A result's mapper outcome, computed before the batch (see [`Premapped`]).
    pub premapped: Option<Premapped>,
    pub reply: oneshot::Sender<Result<Reply, RunError>>,
    /// When it was submitted: a callback's arrival.
    pub received: std::time::Instant,
}

/// The outcome of a result's mapper, run as the result arrived (outside any transaction), so
/// that the batch that records the result also records the mapping and moves the run on: one
/// transaction instead of two, and no script lease. Used only if the run's snapshot is still
/// at `rev` when the batch applies.
#[derive(Debug)]
pub(crate) struct Premapped {
    pub rev: i32,
    pub outcome: Result<Option<String>, ScriptError>,
}

impl Queued {
    /// Cancel and redrive touch the whole run: each is applied in a batch of its own.
    pub fn is_run_wide(&self) -> bool {
        matches!(self.event, Event::Cancel | Event::Redrive { .. })
    }
}

#[derive(Debug, Default)]
pub(crate) struct Mailboxes {
    /// A run is here while it has a leader.
    queues: Mutex<HashMap<Uuid, VecDeque<Queued>>>,
}

impl Mailboxes {
    pub async fn submit(
        &self,
        shared: &Arc<Shared>,
        run: Uuid,
        event: Event,
        fence: Option<Fence>,
        http_status: Option<u16>,
        premapped: Option<Premapped>,
    ) -> Result<Reply, RunError> {
        let (reply, answer) = oneshot::channel();
        let received = std::time::Instant::now();
        let queued = Queued { event, fence, http_status, premapped, reply, received };
        let lead = match self.lock().entry(run) {
            Entry::Occupied(mut queue) => {
                queue.get_mut().push_back(queued);
                false
            }
            Entry::Vacant(slot) => {
                slot.insert(VecDeque::from([queued]));
                true
            }
        };
        if lead {
            // The leader runs as a task of its own, so that a caller that goes away (a client
            // that hangs up) does not leave the run's events unapplied.
            let shared = Arc::clone(shared);
            shared.clone().spawn(async move { lead_run(&shared, run).await });
        }
        answer.await.unwrap_or_else(|_| {
            Err(RunError::internal(format!("the events of run {run} were dropped unapplied")))
        })
    }

    /// The next batch of a run's events; `None` (and the run has no leader any more) when none
    /// is queued.
    fn next_batch(&self, run: Uuid) -> Option<Vec<Queued>> {
        let mut queues = self.lock();
        let queue = queues.get_mut(&run)?;
        let Some(first) = queue.pop_front() else {
            queues.remove(&run);
            return None;
        };
        let mut batch = vec![first];
        if !batch[0].is_run_wide() {
            while batch.len() < MAX_BATCH && queue.front().is_some_and(|q| !q.is_run_wide()) {
                batch.extend(queue.pop_front());
            }
        }
        Some(batch)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, VecDeque<Queued>>> {
        self.queues.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Applies a run's queued events until there are none.
async fn lead_run(shared: &Arc<Shared>, run: Uuid) {
    // If this task ends early (a panic), the run must not keep a leader that is gone: the guard
    // removes its queue, whose waiters then get an error instead of waiting for ever.
    struct Leading<'a>(&'a Mailboxes, Uuid);
    impl Drop for Leading<'_> {
        fn drop(&mut self) {
            // On a normal end, `next_batch` removed the queue already, and another task may
            // lead the run by now.
            if std::thread::panicking() {
                self.0.lock().remove(&self.1);
            }
        }
    }
    let _leading = Leading(&shared.mailboxes, run);
    while let Some(events) = shared.mailboxes.next_batch(run) {
        shared.batches.commit(shared, RunBatch { run, events }).await;
    }
}
