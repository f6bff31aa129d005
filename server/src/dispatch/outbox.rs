//! What dispatching owns and shares with the runs: the HTTP client and its POST slots, the
//! accepted POSTs on their way to be recorded, and the wake-up of the claim loop. The runs send
//! at once the POSTs that their transactions took (in a free slot), and wake the loop for the
//! work they leave in the database; the dispatcher's tasks do the rest.

use std::sync::Arc;
use std::time::Duration;

use aetr_engine::NodeIdx;
use deadpool_postgres::Pool;
use tokio::sync::{mpsc, Notify, OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

use super::answered::Answered;
use super::request::{self, Answer, Call};
use crate::guard::Egress;
use crate::store::nodes::Accepted;

/// What the dispatcher needs from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where actions may POST, and how.
    pub egress: Egress,
    /// The largest answer of a sync action.
    pub max_result_bytes: usize,
    /// How many POSTs may be in flight at once.
    pub concurrency: usize,
    /// How often the dispatcher looks for due work when nothing wakes it.
    pub poll_interval: Duration,
}

/// A POST slot: one of `concurrency`, held while a POST is in flight.
pub type Slot = OwnedSemaphorePermit;

#[derive(Debug)]
pub struct Outbox {
    pub(super) pool: Pool,
    settings: Settings,
    http: reqwest::Client,
    slots: Arc<Semaphore>,
    wake: Notify,
    accepted: mpsc::UnboundedSender<Accepted>,
    pub(super) answered: Answered,
}

impl Outbox {
    /// The outbox, and the receiving end of its accepted POSTs, for the dispatcher to record.
    pub fn new(
        pool: Pool,
        settings: Settings,
    ) -> anyhow::Result<(Arc<Outbox>, mpsc::UnboundedReceiver<Accepted>)> {
        // The guard's resolver and redirect policy; no system proxies. Idle connections are
        // dropped after 4 s: many servers (actix-web, Node) close theirs after 5 s, and a POST
        // sent on a connection that the service is closing fails and waits out a retry.
        let http = settings
            .egress
            .client_builder()?
            .tcp_nodelay(true)
            .pool_max_idle_per_host(settings.concurrency)
            .pool_idle_timeout(Duration::from_secs(4))
            .user_agent(concat!("aetr/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let (accepted, received) = mpsc::unbounded_channel();
        let outbox = Outbox {
            pool,
            slots: Arc::new(Semaphore::new(settings.concurrency)),
            settings,
            http,
            wake: Notify::new(),
            accepted,
            answered: Answered::default(),
        };
        Ok((Arc::new(outbox), received))
    }

    /// A free POST slot, if there is one now.
    pub fn try_slot(&self) -> Option<Slot> {
        Arc::clone(&self.slots).try_acquire_owned().ok()
    }

    /// A POST slot, once one is free.
    pub async fn slot(&self) -> Option<Slot> {
        Arc::clone(&self.slots).acquire_owned().await.ok()
    }

    /// Wakes the claim loop: work waits in the database.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub(super) async fn woken(&self) {
        self.wake.notified().await;
    }

    pub(super) fn poll_interval(&self) -> Duration {
        self.settings.poll_interval
    }

    /// POSTs an attempt, and tells how it was answered.
    pub async fn post(&self, call: &Call<'_>) -> Answer {
        let settings = &self.settings;
        request::post(&self.http, &settings.egress.rules, call, settings.max_result_bytes).await
    }

    /// A POST was accepted: its recording is queued, unless a callback records it first (see
    /// [`Answered`]).
    pub fn accepted(&self, accepted: Accepted) {
        self.answered.insert(accepted.run, accepted.idx, accepted.attempt, accepted.http_status);
        let (run, node) = (accepted.run, accepted.idx);
        if self.accepted.send(accepted).is_err() {
            tracing::warn!(%run, node, "an accepted POST could not be recorded");
        }
    }

    /// The status of an accepted POST whose recording still waits, for its callback's batch.
    pub fn unrecorded_status(&self, run: Uuid, idx: NodeIdx, attempt: u32) -> Option<u16> {
        self.answered.status(run, idx, attempt)
    }

    /// A callback's batch that recorded the POST's status has committed.
    pub fn status_recorded(&self, run: Uuid, idx: NodeIdx, attempt: u32) {
        self.answered.recorded(run, idx, attempt);
    }
}
