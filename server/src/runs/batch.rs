//! Applying a group of runs' batches of events in one transaction (see [`super::group`]): read
//! the runs' snapshots, lock the nodes that the events involve, apply the events with the
//! engine, write what changed through [`changes::commit`], and answer.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use aetr_engine::machine::{self, Event, MachineError, Nodes, Reply, Work};
use aetr_engine::{Blocks, NodeIdx, Tree};
use futures_util::future::try_join;
use uuid::Uuid;

use super::apply::Applier;
use super::group::{Groups, Part};
use super::launch::Launch;
use super::mailbox::Queued;
use super::plan::Plan;
use super::{RunError, RunSnapshot, Shared};
use crate::store::changes::{self, Epochs, RunChanges};
use crate::store::nodes::{self, Revision, Stored};
use crate::store::runs::StateUpdate;
use crate::store::time::now_ms;
use crate::store::tx::{Tx, KEYED_LOOKUPS};

/// How many times a group is tried when PostgreSQL aborts it for a deadlock or a
/// serialization failure, or a run's snapshot changes under it.
const TRIES: usize = 3;

/// One run's batch of queued events, in a group.
#[derive(Debug)]
pub(crate) struct RunBatch {
    pub run: Uuid,
    pub events: Vec<Queued>,
}

impl Part for RunBatch {
    type Answer = BatchAnswer;
    type Error = RunError;

    fn events(&self) -> usize {
        self.events.len()
    }

    /// A cancel or a redrive, which touches the whole run: alone in its batch and its group.
    fn alone(&self) -> bool {
        self.events.iter().any(Queued::is_run_wide)
    }

    fn groups(shared: &Shared) -> &Groups<RunBatch> {
        &shared.batches
    }

    async fn commit(
        shared: &Arc<Shared>,
        group: &[RunBatch],
    ) -> Result<Vec<BatchAnswer>, RunError> {
        shared.commit_batches(group).await
    }

    fn failed(&self, shared: &Shared, error: RunError) -> BatchAnswer {
        Err(shared.failed(self.run, error))
    }

    /// Answers the batch's events, and starts the work it made.
    fn answer(self, shared: &Arc<Shared>, answer: BatchAnswer) {
        match answer {
            Ok((replies, launch)) => {
                for (queued, reply) in self.events.into_iter().zip(replies) {
                    let _ = queued.reply.send(Ok(reply));
                }
                launch.start(shared);
            }
            Err(error) => {
                for queued in self.events {
                    let _ = queued.reply.send(Err(error.clone()));
                }
            }
        }
    }
}

/// What becomes of a run's batch: its events' replies and the work it made, once committed.
type BatchAnswer = Result<(Vec<Reply>, Launch), RunError>;

/// A run's batch, applied by the engine but not yet written.
struct Applied {
    run: Uuid,
    snap: Arc<RunSnapshot>,
    loaded: HashMap<NodeIdx, Stored>,
    state: Nodes,
    plan: Plan,
    /// The run's blocks, if the batch started Maps (those known, and the new ones).
    blocks: Option<Blocks>,
    /// The run's new state, if the batch changed its root's.
    run_state: Option<StateUpdate>,
    replies: Vec<Reply>,
}

/// The nodes that a group locked, by run.
type Loaded = HashMap<Uuid, HashMap<NodeIdx, Stored>>;

impl Shared {
    /// The error that a run's events get when their batch failed; logged if it is a bug.
    fn failed(&self, run: Uuid, error: RunError) -> RunError {
        if error.is_bug() {
            tracing::error!(%run, error = %error, "a batch of events failed");
        }
        error
    }

    /// Commits a group of batches, tried again after a conflict. A batch whose events the
    /// engine refuses (a bug, or corrupt state) fails alone, and writes nothing.
    async fn commit_batches(&self, batches: &[RunBatch]) -> Result<Vec<BatchAnswer>, RunError> {
        let mut tries = 0;
        loop {
            tries += 1;
            match self.try_group(batches).await {
                Err(e) if tries < TRIES && e.is_transient() => {
                    tracing::debug!(error = %e, "a group of batches is tried again");
                }
                outcome => return outcome,
            }
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(runs = batches.len()))]
    async fn try_group(&self, batches: &[RunBatch]) -> Result<Vec<BatchAnswer>, RunError> {
        let tx = Tx::new(self.pool.get().await?);
        let snaps = self.read_snapshots(&tx, batches).await?;
        let (mut loaded, redrive) = self.lock_group(&tx, batches, &snaps).await?;
        let now = now_ms();
        let mut applied: Vec<Result<Applied, RunError>> = Vec::with_capacity(batches.len());
        for (batch, snap) in batches.iter().zip(snaps) {
            let loaded = loaded.remove(&batch.run).unwrap_or_default();
            let result = self.apply_batch(&tx, batch, snap, loaded, redrive.as_ref(), now).await;
            applied.push(result.map_err(|e| self.failed(batch.run, e)));
        }
        let done: Vec<&Applied> = applied.iter().filter_map(|a| a.as_ref().ok()).collect();
        let epochs = write(&tx, &done, now).await?;
        Ok(self.answers(batches, applied, &epochs))
    }

    /// The snapshots of the batches' runs.
    async fn read_snapshots(
        &self,
        tx: &Tx,
        batches: &[RunBatch],
    ) -> Result<Vec<Arc<RunSnapshot>>, RunError> {
        let mut snaps = Vec::with_capacity(batches.len());
        for RunBatch { run, events } in batches {
            let snap = self.snapshots.get(tx.client(), *run, None).await?;
            let snap = snap.ok_or(RunError::NoSuchRun(*run))?;
            let nodes = events.iter().filter_map(|q| q.event.node());
            snap.cover(tx.client(), *run, nodes).await?;
            snaps.push(snap);
        }
        Ok(snaps)
    }

    /// Begins the group's transaction and locks the nodes that its events involve, each run's
    /// root first. A redrive (alone in its batch and its group) resumes from the nodes that
    /// failed, read under the root's lock so that none changes before it applies: it comes back
    /// with them. A run whose snapshot another server replaced is a conflict: its new snapshot
    /// is read, and the group tried again.
    async fn lock_group(
        &self,
        tx: &Tx,
        batches: &[RunBatch],
        snaps: &[Arc<RunSnapshot>],
    ) -> Result<(Loaded, Option<Event>), RunError> {
        let db = tx.client();
        let mut redrive = None;
        if let [RunBatch { run, events }] = batches {
            if let [Queued { event: Event::Redrive { .. }, .. }] = events.as_slice() {
                let begin = async { anyhow::Ok(tx.begin(KEYED_LOOKUPS).await?) };
                try_join(begin, nodes::lock(db, &[(*run, 0)])).await?;
                let nodes = nodes::redrivable(db, *run).await?;
                snaps[0].cover(db, *run, nodes.iter().copied()).await?;
                redrive = Some(Event::Redrive { nodes });
            }
        }
        let mut involved = Vec::new();
        for (batch, snap) in batches.iter().zip(snaps) {
            let mut nodes = BTreeSet::from([0]);
            for queued in batch.events.iter().filter(|q| !gone(q, snap)) {
                let event = redrive.as_ref().unwrap_or(&queued.event);
                let more =
                    snap.with_tree(|tree| machine::involved(tree, event)).map_err(|error| {
                        RunError::Corrupt { run: batch.run, event: describe(event), error }
                    })?;
                nodes.extend(more);
            }
            involved.extend(nodes.into_iter().map(|idx| (batch.run, idx)));
        }
        involved.sort_unstable();
        // The transaction begins in the lock's round trip (unless a redrive began it).
        let begin = async {
            if redrive.is_none() {
                tx.begin(KEYED_LOOKUPS).await?;
            }
            anyhow::Ok(())
        };
        let (_, locked) = try_join(begin, nodes::lock(db, &involved)).await?;
        let mut loaded = Loaded::new();
        for (run, stored) in locked {
            loaded.entry(run).or_default().insert(stored.idx, stored);
        }
        self.lock_next_instances(tx, batches, snaps, &mut loaded).await?;
        for (batch, snap) in batches.iter().zip(snaps) {
            // A run deleted since its snapshot was read has no rows left.
            let root = loaded.get(&batch.run).and_then(|nodes| nodes.get(&0));
            let root = root.ok_or(RunError::NoSuchRun(batch.run))?;
            if root.rev != snap.rev {
                self.snapshots.get(db, batch.run, Some(root.rev)).await?;
                return Err(RunError::Conflict);
            }
        }
        Ok((loaded, redrive))
    }

    /// Locks and loads the next instances of the loaded Maps that have a `maxConcurrency`,
    /// which the events may start (see [`machine::preload`]): one more round trip, only for
    /// the events below such a Map.
    async fn lock_next_instances(
        &self,
        tx: &Tx,
        batches: &[RunBatch],
        snaps: &[Arc<RunSnapshot>],
        loaded: &mut Loaded,
    ) -> Result<(), RunError> {
        let mut more = Vec::new();
        for (batch, snap) in batches.iter().zip(snaps) {
            let Some(nodes) = loaded.get(&batch.run) else { continue };
            let states = nodes.values().map(|s| (s.idx, &s.state));
            // A cancel or a redrive is alone in its batch.
            let events = match batch.events.iter().any(Queued::is_run_wide) {
                true => u32::MAX,
                false => u32::try_from(batch.events.len()).unwrap_or(u32::MAX),
            };
            let next = snap.with_tree(|tree| machine::preload(tree, states, events));
            more.extend(next.into_iter().map(|idx| (batch.run, idx)));
        }
        if more.is_empty() {
            return Ok(());
        }
        more.sort_unstable();
        for (run, stored) in nodes::lock(tx.client(), &more).await? {
            loaded.entry(run).or_default().insert(stored.idx, stored);
        }
        Ok(())
    }

    /// Applies one run's batch with the engine, to the nodes loaded (and locked) for it. An
    /// instance of a capped Map that the events start and [`machine::preload`] did not foresee
    /// (the instances before it ended as they started) is locked, and the batch applied again.
    async fn apply_batch(
        &self,
        tx: &Tx,
        batch: &RunBatch,
        snap: Arc<RunSnapshot>,
        mut loaded: HashMap<NodeIdx, Stored>,
        redrive: Option<&Event>,
        now: i64,
    ) -> Result<Applied, RunError> {
        loop {
            let missing = match self.apply_events(batch, &snap, &loaded, redrive, now) {
                Ok((state, plan, blocks, replies)) => {
                    let run_state = plan.run_state(batch.run, &snap.snapshot, &state);
                    let run = batch.run;
                    return Ok(Applied {
                        run,
                        snap,
                        loaded,
                        state,
                        plan,
                        blocks,
                        run_state,
                        replies,
                    });
                }
                Err(RunError::Corrupt { error: MachineError::NotLoaded(idx), .. })
                    if !loaded.contains_key(&idx) && is_map_instance(&snap, idx) =>
                {
                    idx
                }
                Err(e) => return Err(e),
            };
            for (_, stored) in nodes::lock(tx.client(), &[(batch.run, missing)]).await? {
                loaded.insert(stored.idx, stored);
            }
            if !loaded.contains_key(&missing) {
                return Err(RunError::internal(format!("run {}: no node {missing}", batch.run)));
            }
        }
    }

    /// Applies one run's batch of events with the engine: the nodes after them, the plan, the
    /// run's blocks if Maps started, and the events' replies.
    fn apply_events(
        &self,
        batch: &RunBatch,
        snap: &RunSnapshot,
        loaded: &HashMap<NodeIdx, Stored>,
        redrive: Option<&Event>,
        now: i64,
    ) -> Result<(Nodes, Plan, Option<Blocks>, Vec<Reply>), RunError> {
        let run = batch.run;
        let mut state = Nodes::new();
        for stored in loaded.values() {
            state.load(stored.idx, stored.state.clone());
        }
        let blocks = snap.blocks();
        let mut applier = Applier::new(self, &snap.snapshot, &blocks, state, now);
        let mut replies = Vec::with_capacity(batch.events.len());
        for queued in &batch.events {
            if let Some(reply) = refusal(queued, snap, loaded) {
                replies.push(reply);
                continue;
            }
            let event = match (&queued.event, redrive) {
                (Event::Redrive { .. }, Some(resolved)) => resolved,
                (event, _) => event,
            };
            let corrupt = |error| RunError::Corrupt { run, event: describe(event), error };
            let fenced = queued.fence.is_some();
            let outcome = applier.apply(event, fenced, queued.http_status).map_err(corrupt)?;
            if let (Some((node, attempt)), Reply::Done) = (callback_of(event), outcome.reply) {
                self.add_post_status(run, node, attempt, &mut applier.plan);
            }
            let work = apply_premapped(&mut applier, run, queued, snap, outcome.work)?;
            let sends_before = applier.plan.sends.len();
            applier.take(&work).map_err(corrupt)?;
            if callback_of(event).is_some() && applier.plan.sends.len() > sends_before {
                applier.plan.woken_by.push(queued.received);
            }
            replies.push(outcome.reply);
        }
        let (state, plan, blocks) = applier.finish();
        Ok((state, plan, blocks, replies))
    }

    /// A callback that ends its attempt records the status of the attempt's POST, if the
    /// answer came and its recording still waits (see [`crate::dispatch::Outbox::accepted`]).
    fn add_post_status(&self, run: Uuid, node: NodeIdx, attempt: u32, plan: &mut Plan) {
        let Some(status) = self.outbox.unrecorded_status(run, node, attempt) else { return };
        let ended = plan.ended.iter_mut().rev().find(|e| e.idx == node && e.n == attempt);
        if let Some(ended) = ended.filter(|e| e.http_status.is_none()) {
            ended.http_status = Some(status);
        }
    }

    /// What each batch is answered, once the group is committed; wakes the dispatcher if any
    /// batch left work in the database.
    fn answers(
        &self,
        batches: &[RunBatch],
        applied: Vec<Result<Applied, RunError>>,
        epochs: &Epochs,
    ) -> Vec<BatchAnswer> {
        let mut deferred = false;
        for (batch, applied) in batches.iter().zip(&applied) {
            let Ok(applied) = applied else { continue };
            // Committed: the Maps' new blocks are known from now on.
            let blocks = applied.plan.blocks.iter().map(|b| b.block);
            if let Err(e) = applied.snap.add_blocks(blocks) {
                tracing::error!(run = %batch.run, error = %e, "a Map's instances cannot be known");
            }
            if applied.run_state.is_some_and(|s| s.state.is_terminal()) {
                self.finished.ended(batch.run);
            }
            for (queued, reply) in batch.events.iter().zip(&applied.replies) {
                if let (Some((node, attempt)), Reply::Done) = (callback_of(&queued.event), reply) {
                    self.outbox.status_recorded(batch.run, node, attempt);
                }
            }
            deferred |= applied.plan.deferred;
        }
        if deferred {
            self.outbox.wake();
        }
        applied
            .into_iter()
            .map(|applied| {
                let Applied { run, snap, state, plan, replies, .. } = applied?;
                Ok((replies, Launch::of(plan, &state, epochs, run, snap)))
            })
            .collect()
    }
}

/// The work that an event made, once a result's mapper that ran already (see
/// [`super::mailbox::Premapped`]) is applied in place of the script it asks for.
fn apply_premapped(
    applier: &mut Applier<'_>,
    run: Uuid,
    queued: &Queued,
    snap: &RunSnapshot,
    mut work: Vec<Work>,
) -> Result<Vec<Work>, RunError> {
    let Some(premapped) = queued.premapped.as_ref().filter(|p| p.rev == snap.rev) else {
        return Ok(work);
    };
    let Some(node) = queued.event.node() else { return Ok(work) };
    let Some(at) = work.iter().position(|w| matches!(w, Work::Map { node: n } if *n == node))
    else {
        return Ok(work);
    };
    work.remove(at);
    let mapped = Event::Mapped { node, outcome: premapped.outcome.clone() };
    let corrupt = |event: &Event| {
        let event = describe(event);
        move |error| RunError::Corrupt { run, event, error }
    };
    applier.take(&work).map_err(corrupt(&queued.event))?;
    let then = applier.apply(&mapped, false, None).map_err(corrupt(&mapped))?;
    Ok(then.work)
}

/// Writes what a group's batches changed, and commits (see [`changes::commit`]).
async fn write(tx: &Tx, applied: &[&Applied], now: i64) -> Result<Epochs, RunError> {
    let changes: Vec<RunChanges<'_>> = applied
        .iter()
        .map(|a| {
            let written = a.plan.writes(&a.state, &a.loaded);
            // New rows start above every epoch of the run: the root's is the highest.
            let first_epoch = a.loaded.get(&0).map_or(0, |root| root.epoch);
            let rev = Revision { rev: a.snap.rev, first_epoch };
            let inserted = a.blocks.as_ref().and_then(|blocks| {
                let tree = Tree::new(&a.snap.snapshot, blocks);
                a.plan.instances(a.run, &tree, &a.state, rev)
            });
            a.plan.changes(a.run, written, inserted, a.run_state)
        })
        .collect();
    let notify = applied.iter().any(|a| a.plan.deferred);
    Ok(changes::commit(tx, &changes, notify, now).await?)
}

/// The answer of an event that does not apply: it is about a node that a redrive on new
/// definitions took away, or its reporter's lease changed hands.
fn refusal(
    queued: &Queued,
    snap: &RunSnapshot,
    loaded: &HashMap<NodeIdx, Stored>,
) -> Option<Reply> {
    if gone(queued, snap) {
        let callback = matches!(queued.event, Event::Result { .. } | Event::Failure { .. });
        return Some(if callback { Reply::Superseded } else { Reply::Ignored });
    }
    let fence = queued.fence?;
    (loaded.get(&fence.idx).map(|s| s.epoch) != Some(fence.epoch)).then_some(Reply::Ignored)
}

/// An event about a node that the run does not have: a redrive on new definitions took it
/// away.
fn gone(queued: &Queued, snap: &RunSnapshot) -> bool {
    queued.event.node().is_some_and(|n| snap.step(n).is_none())
}

/// Whether `idx` is the first node of a Map's instance.
fn is_map_instance(snap: &RunSnapshot, idx: NodeIdx) -> bool {
    let parent = snap.place(idx).and_then(|at| at.parent);
    parent.and_then(|p| snap.step(p)).is_some_and(|p| p.body.map().is_some())
}

/// The node and attempt of a service's callback.
fn callback_of(event: &Event) -> Option<(NodeIdx, u32)> {
    match *event {
        Event::Result { node, attempt, .. } | Event::Failure { node, attempt, .. } => {
            Some((node, attempt))
        }
        _ => None,
    }
}

/// An event, for an error message (without its data).
fn describe(event: &Event) -> String {
    match event {
        Event::Start { .. } => "the start".into(),
        Event::Dispatched { node, attempt } => {
            format!("the dispatch of node {node}, attempt {attempt}")
        }
        Event::Result { node, attempt, .. } => {
            format!("the result of node {node}, attempt {attempt}")
        }
        Event::Failure { node, attempt, .. } => {
            format!("the failure of node {node}, attempt {attempt}")
        }
        Event::PostFailed { node, attempt, .. } => {
            format!("the failed POST of node {node}, attempt {attempt}")
        }
        Event::Timeout { node, attempt } => {
            format!("the timeout of node {node}, attempt {attempt}")
        }
        Event::Mapped { node, .. } => format!("the mapper of node {node}"),
        Event::Reduced { node, .. } => format!("the reducer of node {node}"),
        Event::Chosen { node, .. } => format!("the Branch function of node {node}"),
        Event::Listed { node, .. } => format!("the items function of node {node}"),
        Event::Settle { node, .. } => format!("the settling by hand of node {node}"),
        Event::Redispatch { node } => format!("the redispatch by hand of node {node}"),
        Event::Cancel => "a cancel".into(),
        Event::Redrive { .. } => "a redrive".into(),
    }
}

#[cfg(test)]
mod tests {
    use aetr_engine::machine::NodeState;
    use tokio::sync::oneshot;

    use super::*;
    use crate::runs::testing::{idx, two_actions};
    use crate::runs::Fence;

    fn queued(event: Event, fence: Option<Fence>) -> Queued {
        let (reply, _) = oneshot::channel();
        let received = std::time::Instant::now();
        Queued { event, fence, http_status: None, premapped: None, reply, received }
    }

    fn stored(idx: NodeIdx, epoch: i64) -> (NodeIdx, Stored) {
        (idx, Stored { idx, state: NodeState::default(), epoch, rev: 0 })
    }

    #[test]
    fn a_report_applies_only_under_the_lease_it_was_made_under() {
        let snap = RunSnapshot::new(two_actions(), 0, 0);
        let b = idx(&snap.snapshot, "b");
        let loaded: HashMap<NodeIdx, Stored> = [stored(0, 1), stored(b, 7)].into();
        let result = Event::Result { node: b, attempt: 1, result: None };

        let held = queued(result.clone(), Some(Fence { idx: b, epoch: 7 }));
        assert_eq!(refusal(&held, &snap, &loaded), None, "the lease is still at its epoch");
        let stale = queued(result.clone(), Some(Fence { idx: b, epoch: 6 }));
        assert_eq!(refusal(&stale, &snap, &loaded), Some(Reply::Ignored), "another took it");
        let unloaded = queued(result.clone(), Some(Fence { idx: 1, epoch: 7 }));
        assert_eq!(refusal(&unloaded, &snap, &loaded), Some(Reply::Ignored));
        // A service's callback carries no fence: its token is checked by the engine.
        assert_eq!(refusal(&queued(result, None), &snap, &loaded), None);
    }

    #[test]
    fn an_event_about_a_node_that_a_redrive_took_away_does_not_apply() {
        let snap = RunSnapshot::new(two_actions(), 0, 1);
        let loaded = HashMap::from([stored(0, 1)]);
        let gone = 3;
        let callback = Event::Failure { node: gone, attempt: 1, error: "x".into() };
        assert_eq!(refusal(&queued(callback, None), &snap, &loaded), Some(Reply::Superseded));
        let timer = Event::Timeout { node: gone, attempt: 1 };
        assert_eq!(refusal(&queued(timer, None), &snap, &loaded), Some(Reply::Ignored));
    }
}
