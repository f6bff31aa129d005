//! Runs: the imperative shell around the engine's state machine.
//!
//! An event (a callback, a POST's outcome, a script's result, a claimed timer) goes to its run's
//! [`mailbox`]. One task per run and server takes the run's queued events in batches, and the
//! batches of many runs are committed together, in [`group`]s of one transaction each
//! ([`batch`]): it locks the nodes the events involve (each run's root first), applies them
//! with the engine ([`apply`]), and writes what changed for all the group's runs through the
//! one write path, [`crate::store::changes`], which starts ([`start`]) and redrives on the
//! latest definitions ([`redrive_latest`]) share. Only then are the events answered and the
//! work they made started ([`launch`]): POSTs to services and scripts, which run outside any
//! transaction and report back as new events.
//!
//! Work that is due at once is taken in the same transaction (the node is recorded as
//! `Executing`, with a lease, before its POST is sent, in a slot of the dispatcher's
//! [`Outbox`]); the rest waits in the database for the [`crate::dispatch`]er, which claims it
//! when it is due ([`Runs::do_claimed`]), and takes over work whose lease ran out because its
//! server died.

mod apply;
mod batch;
mod claimed;
mod error;
pub mod finished;
mod group;
pub mod history;
mod launch;
mod mailbox;
pub mod node_id;
mod plan;
mod redrive_latest;
mod send;
mod snapshots;
mod start;
#[cfg(test)]
mod testing;
pub mod token;
mod trees;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use aetr_engine::graph;
use aetr_engine::machine::{Ctx, Event, Nodes, Reply, State};
use aetr_engine::{Limits, NodeIdx, Snapshot};
use deadpool_postgres::Pool;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::dispatch::Outbox;
use crate::scripts::{OwnedCall, ScriptPool};
use crate::store::changes::Epochs;
use crate::store::steps;
pub use error::RunError;
use group::Groups;
use launch::Launch;
pub use mailbox::Fence;
use mailbox::{Mailboxes, Premapped};
use plan::Plan;
pub use redrive_latest::RedrivenLatest;
use snapshots::Snapshots;
pub use snapshots::{Place, RunSnapshot};
pub use start::{StartRun, Started};
use token::TokenKey;
use trees::{Tree, Trees};

/// What runs need from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The base of callback URLs: `<public_url>/api/v1/runs/complete?token=...`.
    pub public_url: String,
    /// The callback timeout of actions that set none. `None`: wait for ever.
    pub default_callback_timeout_seconds: Option<u64>,
    /// The most items a Map may have (`AETR_MAX_MAP_ITEMS`).
    pub max_map_items: u32,
    pub limits: Limits,
    /// How many groups of runs' events (and, apart, of starts) may be committed at once (see
    /// [`group`]): an eighth of the database connections, since fewer committers make larger
    /// groups (bench/README.md has the measurements).
    pub group_committers: usize,
}

/// The runs of this server: start them, feed them events, read their snapshots. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Runs {
    shared: Arc<Shared>,
}

/// Everything that the shell's tasks share.
#[derive(Debug)]
struct Shared {
    pool: Pool,
    settings: Settings,
    key: TokenKey,
    snapshots: Snapshots,
    /// The snapshots of trees that runs start from.
    trees: Trees,
    mailboxes: Mailboxes,
    /// Runs' batches of events, waiting for their group's transaction.
    batches: Groups<batch::RunBatch>,
    /// Starts, waiting for their group's transaction.
    starts: Groups<start::Start>,
    scripts: ScriptPool,
    /// The dispatcher's POST slots and HTTP client, and its wake-up.
    outbox: Arc<Outbox>,
    /// Requests waiting for runs to end.
    finished: Arc<finished::Finished>,
    /// Every task that the shell starts, so that a shutdown can wait for them.
    tasks: TaskTracker,
    /// Cancelled when the server stops: take no new work.
    stopping: CancellationToken,
    /// The runtime that the shell's tasks run on (HTTP handlers run on others).
    runtime: tokio::runtime::Handle,
}

impl Runs {
    /// The runs of a server that uses `pool`, sending through `outbox`. Call from the runtime
    /// that the shell's tasks are to run on.
    pub fn new(
        pool: Pool,
        settings: Settings,
        key: Vec<u8>,
        scripts: ScriptPool,
        outbox: Arc<Outbox>,
    ) -> Runs {
        let shared = Shared {
            pool,
            batches: Groups::new(settings.group_committers),
            starts: Groups::new(settings.group_committers),
            settings,
            key: TokenKey::new(key),
            snapshots: Snapshots::default(),
            trees: Trees::default(),
            mailboxes: Mailboxes::default(),
            scripts,
            outbox,
            finished: Arc::default(),
            tasks: TaskTracker::new(),
            stopping: CancellationToken::new(),
            runtime: tokio::runtime::Handle::current(),
        };
        Runs { shared: Arc::new(shared) }
    }

    /// The requests waiting for runs to end, for the listener to wake them when another
    /// server ends a run.
    pub fn finished(&self) -> Arc<finished::Finished> {
        Arc::clone(&self.shared.finished)
    }

    /// Waits up to `wait` for a run to end (a long poll), holding no database connection while
    /// it waits. Returns at once if it has ended.
    pub async fn wait_for_end(&self, run: Uuid, wait: Duration) -> Result<(), RunError> {
        let shared = &self.shared;
        let ended = async {
            let ended = async {
                let client = shared.pool.get().await?;
                let state = crate::store::runs::state(&client, run).await?;
                anyhow::Ok(state.is_none_or(State::is_terminal))
            };
            // If it cannot be read, do not wait: the caller's own read will say why.
            ended.await.unwrap_or(true)
        };
        shared.finished.wait(run, wait, ended).await;
        Ok(())
    }

    /// The run and the number of the node whose id is `id` (a run's own id is its root's), if
    /// there is one: the node's id differs from its run's in its last 32 bits only (see
    /// [`node_id`]), so the run is found by a range of the primary key.
    pub async fn node_of(&self, id: Uuid) -> Result<Option<(Uuid, NodeIdx)>, RunError> {
        let client = self.shared.pool.get().await?;
        let candidates = crate::store::runs::of_node(&client, id).await?;
        Ok(candidates
            .into_iter()
            .find_map(|(run, count)| Some((run, node_id::node_idx(run, id, count as usize)?))))
    }

    /// Cancelled when the server stops: take no new work.
    pub fn stopping(&self) -> CancellationToken {
        self.shared.stopping.clone()
    }

    /// Runs a task on the shell's runtime, tracked for shutdown (see [`Runs::stop`]).
    pub fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.shared.spawn(task);
    }

    /// Runs a script on a worker, as a run's script runs, for a person trying it: nothing is
    /// recorded, counted or traced.
    pub async fn try_script(
        &self,
        source: String,
        call: OwnedCall,
    ) -> Result<Option<String>, aetr_engine::script::ScriptError> {
        self.shared.scripts.call(source, call).await
    }

    pub fn key(&self) -> &TokenKey {
        &self.shared.key
    }

    /// A run's snapshot, from memory or the database. `None`: no such run.
    pub async fn snapshot(&self, run: Uuid) -> Result<Option<Arc<RunSnapshot>>, RunError> {
        self.shared.snapshot_at(run, None, &[]).await
    }

    /// Makes sure that `snap` knows the Maps' instances that hold `idxs`, if the run has them.
    pub async fn cover(
        &self,
        run: Uuid,
        snap: &RunSnapshot,
        idxs: impl IntoIterator<Item = NodeIdx>,
    ) -> Result<(), RunError> {
        if snap.knows_all(idxs) {
            return Ok(());
        }
        let client = self.shared.pool.get().await?;
        Ok(snap.refresh(&client, run).await?)
    }

    /// Makes sure that `snap` knows every Map's instances that its run has so far.
    pub async fn know_all_instances(&self, run: Uuid, snap: &RunSnapshot) -> Result<(), RunError> {
        let client = self.shared.pool.get().await?;
        Ok(snap.refresh(&client, run).await?)
    }

    /// A run's snapshot, knowing the Maps' instances that hold `idxs` (nodes read from the
    /// database, or named by a request). `None`: no such run.
    pub async fn snapshot_covering(
        &self,
        run: Uuid,
        idxs: &[NodeIdx],
    ) -> Result<Option<Arc<RunSnapshot>>, RunError> {
        self.shared.snapshot_at(run, None, idxs).await
    }

    /// Applies an event from outside (a callback, a cancel, a redrive) and answers once its
    /// change is committed. A redrive's nodes are found under the run's lock: send it with none.
    pub async fn apply(&self, run: Uuid, event: Event) -> Result<Reply, RunError> {
        self.shared.submit(run, event, None, None).await
    }

    /// Stops taking new work, and waits (up to `deadline`) for the work in hand: POSTs in
    /// flight, scripts, and the events they report.
    pub async fn stop(&self, deadline: Duration) {
        self.shared.stopping.cancel();
        self.shared.tasks.close();
        if tokio::time::timeout(deadline, self.shared.tasks.wait()).await.is_err() {
            tracing::warn!(
                tasks = self.shared.tasks.len(),
                "work was still in hand at the shutdown deadline; its leases will expire and \
                 another server (or this one, restarted) will take it over"
            );
        }
    }
}

impl Shared {
    /// The engine's view of the outside world, now.
    fn ctx(&self, now: i64) -> Ctx {
        Ctx {
            now,
            jitter: rand::random::<f64>(),
            default_callback_timeout_seconds: self.settings.default_callback_timeout_seconds,
            max_map_items: self.settings.max_map_items,
        }
    }

    /// A run's current snapshot, from memory or the database, at revision `rev` if given (that
    /// of a node row just read). `None`: no such run.
    /// It knows the Maps' instances that hold `idxs`, if the run has them.
    pub async fn snapshot_at(
        &self,
        run: Uuid,
        rev: Option<i32>,
        idxs: &[NodeIdx],
    ) -> Result<Option<Arc<RunSnapshot>>, RunError> {
        let client = self.pool.get().await?;
        let snap = match rev {
            Some(_) => self.snapshots.get(&client, run, rev).await?,
            None => self.snapshots.current(&client, run).await?,
        };
        if let Some(snap) = &snap {
            snap.cover(&client, run, idxs.iter().copied()).await?;
        }
        Ok(snap)
    }

    /// The snapshot of the tree rooted at `step_id`, as its steps are defined now; `None` if
    /// there is no such step.
    async fn snapshot_of_step(
        &self,
        client: &impl deadpool_postgres::GenericClient,
        step_id: Uuid,
    ) -> Result<Option<Snapshot>, RunError> {
        let mut found = self.snapshots_of_steps(client, BTreeSet::from([step_id])).await?;
        found.remove(&step_id).map(Arc::unwrap_or_clone).transpose().map_err(RunError::Refused)
    }

    /// The snapshots of the trees rooted at `step_ids`, as their steps are defined now: from
    /// memory while the step graph has not changed, else read in one query. A step that does
    /// not exist is missing.
    async fn snapshots_of_steps(
        &self,
        client: &impl deadpool_postgres::GenericClient,
        step_ids: BTreeSet<Uuid>,
    ) -> Result<HashMap<Uuid, Arc<Tree>>, RunError> {
        let ids: Vec<Uuid> = step_ids.into_iter().collect();
        let version = steps::graph_version(client).await?;
        let (mut found, missing) = self.trees.get(version, &ids);
        if missing.is_empty() {
            return Ok(found);
        }
        let steps = steps::closure(client, &missing).await?;
        let limits = self.settings.limits.clone();
        let read: HashMap<Uuid, Arc<Tree>> = tokio::task::spawn_blocking(move || {
            missing
                .into_iter()
                .filter(|id| steps.contains_key(id))
                .map(|id| (id, Arc::new(graph::snapshot(id, &steps, &limits))))
                .collect()
        })
        .await
        .map_err(|e| RunError::internal(format!("reading the trees of steps: {e}")))?;
        self.trees.keep(version, &read);
        found.extend(read);
        Ok(found)
    }

    /// After the transaction that wrote a run's whole snapshot and nodes (a start, a redrive on
    /// new definitions) has committed: keeps the snapshot in memory, wakes the dispatcher if
    /// work waits, and starts the work in hand.
    fn launch_run(
        self: &Arc<Self>,
        run: Uuid,
        snap: Arc<RunSnapshot>,
        plan: Plan,
        state: &Nodes,
        epochs: &Epochs,
    ) {
        self.snapshots.insert(run, Arc::clone(&snap));
        if plan.deferred {
            self.outbox.wake();
        }
        Launch::of(plan, state, epochs, run, snap).start(self);
    }

    /// Runs a task of the shell on the shell's runtime, tracked for shutdown.
    pub fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.tasks.spawn_on(task, &self.runtime);
    }

    /// Applies an event through the run's mailbox. `fence`: the event reports on work whose
    /// lease the reporter held at that epoch; it is ignored if the lease changed hands.
    pub async fn submit(
        self: &Arc<Self>,
        run: Uuid,
        event: Event,
        fence: Option<Fence>,
        http_status: Option<u16>,
    ) -> Result<Reply, RunError> {
        let premapped = self.premap(run, &event).await;
        self.mailboxes.submit(self, run, event, fence, http_status, premapped).await
    }

    /// Runs a result's mapper now, before its batch, when the node has a JS mapper and the
    /// run's snapshot is in memory (see [`Premapped`]). A result that turns out to be refused
    /// (a repeat, a superseded attempt) wastes its mapper call, and nothing else.
    async fn premap(&self, run: Uuid, event: &Event) -> Option<Premapped> {
        let Event::Result { node, result, .. } = event else { return None };
        let snap = self.snapshots.cached(run)?;
        let js = snap.step(*node)?.mapper_script()?.to_owned();
        let outcome =
            self.call_script(run, *node, "mapper", js, OwnedCall::Map(result.clone())).await;
        Some(Premapped { rev: snap.rev, outcome })
    }

    /// The URL a service calls back for this attempt.
    pub fn callback_url(&self, run: Uuid, node: NodeIdx, attempt: u32) -> String {
        let token = self.key.issue(token::Claim { run, node, attempt });
        format!("{}/api/v1/runs/complete?token={token}", self.settings.public_url)
    }
}
