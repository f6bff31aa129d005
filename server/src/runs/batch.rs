//! Applying a group of runs' batches of events in one transaction (see [`super::group`]).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use aetr_engine::machine::{self, Event, Nodes, Reply, Work};
use aetr_engine::NodeIdx;
use anyhow::{Context, Result};
use futures_util::future::{try_join, try_join5, try_join_all};
use tokio_postgres::error::SqlState;
use uuid::Uuid;

use super::group::{Groups, Part};
use super::launch::Launch;
use super::mailbox::Job;
use super::plan::{Plan, NOTIFY_SQL};
use super::{RunError, RunSnapshot, Shared};
use crate::store::nodes::{Stored, Write};
use crate::store::runs::RunState;
use crate::store::time::now_ms;
use crate::store::tx::{Tx, KEYED_LOOKUPS};
use crate::store::{attempts, events, nodes, runs};

/// How many times a group is tried when PostgreSQL aborts it for a deadlock or a
/// serialization failure.
const TRIES: usize = 3;

/// One run's batch of events, in a group.
#[derive(Debug)]
pub(crate) struct Member {
    pub run: Uuid,
    pub jobs: Vec<Job>,
}

impl Part for Member {
    type Outcome = BatchOutcome;
    type Error = anyhow::Error;

    fn events(&self) -> usize {
        self.jobs.len()
    }

    /// A cancel or a redrive, which touches the whole run: alone in its batch and its group.
    fn alone(&self) -> bool {
        self.jobs.iter().any(Job::is_run_wide)
    }

    fn groups(shared: &Shared) -> &Groups<Member> {
        &shared.batches
    }

    async fn commit(shared: &Arc<Shared>, group: &[Member]) -> Result<Vec<Self::Outcome>> {
        shared.commit_batches(group).await
    }

    fn failed(&self, shared: &Shared, error: anyhow::Error) -> Self::Outcome {
        Err(shared.failed(self.run, &error))
    }

    /// Answers the batch's events, and starts the work it made.
    fn answer(self, shared: &Arc<Shared>, outcome: Self::Outcome) {
        match outcome {
            Ok((replies, launch)) => {
                for (job, reply) in self.jobs.into_iter().zip(replies) {
                    let _ = job.reply.send(Ok(reply));
                }
                launch.start(shared);
            }
            Err(error) => {
                for job in self.jobs {
                    let _ = job.reply.send(Err(error.clone()));
                }
            }
        }
    }
}

/// What becomes of a run's batch: its events' replies and the work it made, once committed.
type BatchOutcome = Result<(Vec<Reply>, Launch), RunError>;

/// A run's batch, applied by the engine but not yet written.
struct Applied {
    run: Uuid,
    snap: Arc<RunSnapshot>,
    loaded: HashMap<NodeIdx, Stored>,
    state: Nodes,
    plan: Plan,
    replies: Vec<Reply>,
}

impl Shared {
    /// The error that a run's events get when their batch failed; logged if it is a bug.
    fn failed(&self, run: Uuid, e: &anyhow::Error) -> RunError {
        let error = RunError::of(e);
        if let RunError::Internal(_) = error {
            tracing::error!(%run, error = format!("{e:#}"), "a batch of events failed");
        }
        error
    }

    /// Commits a group of batches, tried again after a conflict. A member whose events the
    /// engine refuses (a bug, or corrupt state) fails alone, and writes nothing.
    async fn commit_batches(&self, members: &[Member]) -> Result<Vec<BatchOutcome>> {
        let mut tries = 0;
        loop {
            tries += 1;
            match self.try_group(members).await {
                Err(e) if tries < TRIES && is_transient(&e) => {
                    tracing::debug!(error = format!("{e:#}"), "a group of batches is tried again");
                }
                outcome => return outcome,
            }
        }
    }

    async fn try_group(&self, members: &[Member]) -> Result<Vec<BatchOutcome>> {
        let tx = Tx::new(self.pool.get().await?);
        let db = tx.client();
        let mut snaps = Vec::with_capacity(members.len());
        for member in members {
            let run = member.run;
            snaps.push(self.snapshots.get(db, run, None).await?.ok_or(RunError::NoSuchRun(run))?);
        }
        // A redrive resumes from the nodes that failed, read under the root's lock, so that
        // none changes before it applies. (A redrive is alone in its batch and its group.)
        let mut redrive = None;
        if let [Member { run, jobs }] = members {
            if let [Job { event: Event::Redrive { .. }, .. }] = jobs.as_slice() {
                let begin = async { anyhow::Ok(tx.begin(KEYED_LOOKUPS).await?) };
                try_join(begin, nodes::lock(db, &[(*run, 0)])).await?;
                redrive = Some(Event::Redrive { nodes: nodes::redrivable(db, *run).await? });
            }
        }
        let mut involved = Vec::new();
        for (member, snap) in members.iter().zip(&snaps) {
            let mut nodes = BTreeSet::from([0]);
            for job in member.jobs.iter().filter(|job| !gone(job, snap)) {
                let event = redrive.as_ref().unwrap_or(&job.event);
                nodes.extend(machine::involved(&snap.snapshot, event)?);
            }
            involved.extend(nodes.into_iter().map(|idx| (member.run, idx)));
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
        let mut loaded: HashMap<Uuid, HashMap<NodeIdx, Stored>> = HashMap::new();
        for (run, stored) in locked {
            loaded.entry(run).or_default().insert(stored.idx, stored);
        }
        for (member, snap) in members.iter().zip(&snaps) {
            let root = loaded.get(&member.run).and_then(|nodes| nodes.get(&0));
            if let Some(root) = root.filter(|root| root.rev != snap.rev) {
                // Another server gave the run a new snapshot: read it, and try again.
                self.snapshots.get(db, member.run, Some(root.rev)).await?;
                return Err(StaleSnapshot.into());
            }
        }

        let now = now_ms();
        let applied: Vec<Result<Applied, RunError>> = members
            .iter()
            .zip(snaps)
            .map(|(member, snap)| {
                let loaded = loaded.remove(&member.run).unwrap_or_default();
                self.apply_batch(member, snap, loaded, redrive.as_ref(), now)
                    .map_err(|e| self.failed(member.run, &e))
            })
            .collect();
        let done: Vec<&Applied> = applied.iter().filter_map(|a| a.as_ref().ok()).collect();
        let epochs = write_and_commit(&tx, &done, now).await?;

        let mut deferred = false;
        for (member, applied) in members.iter().zip(&applied) {
            let Ok(applied) = applied else { continue };
            for (job, reply) in member.jobs.iter().zip(&applied.replies) {
                if let (Some((node, attempt)), Reply::Done) = (callback_of(&job.event), reply) {
                    self.answered.recorded(member.run, node, attempt);
                }
            }
            deferred |= applied.plan.deferred;
        }
        if deferred {
            self.wake.notify_one();
        }
        Ok(applied
            .into_iter()
            .map(|applied| {
                let Applied { run, snap, state, plan, replies, .. } = applied?;
                let epochs = epochs.get(&run).cloned().unwrap_or_default();
                Ok((replies, Launch::of(plan, &state, &epochs, run, snap)))
            })
            .collect())
    }

    /// Applies one run's batch with the engine, to the nodes loaded (and locked) for it.
    fn apply_batch(
        &self,
        member: &Member,
        snap: Arc<RunSnapshot>,
        loaded: HashMap<NodeIdx, Stored>,
        redrive: Option<&Event>,
        now: i64,
    ) -> Result<Applied> {
        let (run, snapshot) = (member.run, &snap.snapshot);
        let mut state = Nodes::new();
        for stored in loaded.values() {
            state.load(stored.idx, stored.state.clone());
        }
        let mut plan = Plan::new(now);
        let mut replies = Vec::with_capacity(member.jobs.len());
        for job in &member.jobs {
            if gone(job, &snap) {
                let callback = matches!(job.event, Event::Result { .. } | Event::Failure { .. });
                replies.push(if callback { Reply::Superseded } else { Reply::Ignored });
                continue;
            }
            if let Some(fence) = job.fence {
                if loaded.get(&fence.idx).map(|s| s.epoch) != Some(fence.epoch) {
                    replies.push(Reply::Ignored);
                    continue;
                }
            }
            let event = match (&job.event, redrive) {
                (Event::Redrive { .. }, Some(resolved)) => resolved.clone(),
                (event, _) => event.clone(),
            };
            let outcome = machine::apply(snapshot, &mut state, event, &self.ctx(now))
                .with_context(|| format!("run {run}: applying {}", describe(&job.event)))?;
            let (fenced, http_status) = (job.fence.is_some(), job.http_status);
            plan.record(snapshot, &job.event, &outcome, &state, fenced, http_status);
            // A callback that ends its attempt records the status of the attempt's POST, if
            // the answer came and its recording still waits (see `Answered`).
            if let (Some((node, attempt)), Reply::Done) = (callback_of(&job.event), outcome.reply) {
                if let Some(status) = self.answered.status(run, node, attempt) {
                    let ended =
                        plan.ended.iter_mut().rev().find(|e| e.idx == node && e.n == attempt);
                    if let Some(ended) = ended.filter(|e| e.http_status.is_none()) {
                        ended.http_status = Some(status);
                    }
                }
            }
            let mut work = outcome.work;
            // The mapper ran already: its outcome applies here, instead of a script's lease.
            let premapped = job.premapped.as_ref().filter(|p| p.rev == snap.rev);
            let map_at = premapped.and_then(|_| {
                let node = job.event.node()?;
                let at =
                    work.iter().position(|w| matches!(w, Work::Map { node: n } if *n == node))?;
                Some((at, node))
            });
            if let (Some(premapped), Some((at, node))) = (premapped, map_at) {
                work.remove(at);
                plan.take(self, snapshot, &mut state, &work)?;
                let mapped = Event::Mapped { node, outcome: premapped.outcome.clone() };
                let then = machine::apply(snapshot, &mut state, mapped.clone(), &self.ctx(now))
                    .with_context(|| format!("run {run}: applying {}", describe(&mapped)))?;
                plan.record(snapshot, &mapped, &then, &state, false, None);
                work = then.work;
            }
            plan.take(self, snapshot, &mut state, &work)?;
            replies.push(outcome.reply);
        }
        Ok(Applied { run, snap, loaded, state, plan, replies })
    }
}

/// Every statement that [`write_and_commit`] may send, prepared before it sends any.
const WRITES: [&str; 9] = [
    nodes::WRITE_SQL,
    attempts::SUPERSEDE_SQL,
    attempts::INSERT_SQL,
    attempts::FINISH_SQL,
    events::INSERT_SQL,
    runs::SET_STATES_SQL,
    NOTIFY_SQL,
    nodes::CANCEL_NODES_SQL,
    nodes::CANCEL_ATTEMPTS_SQL,
];

/// Writes what a group's batches changed, and commits: each kind of row in one statement for
/// all their runs, and the COMMIT after them, all sent down the connection together, in one
/// round trip (see [`Tx::commit_with`]; none waits for another's answer). A statement that
/// fails turns the COMMIT into a rollback. Returns the written nodes' lease epochs, by run.
async fn write_and_commit(
    tx: &Tx,
    applied: &[&Applied],
    now: i64,
) -> Result<HashMap<Uuid, HashMap<NodeIdx, i64>>> {
    let client = tx.client();
    let writes: Vec<(Uuid, Vec<Write<'_>>)> =
        applied.iter().map(|a| (a.run, a.plan.writes(&a.state, &a.loaded))).collect();
    let writes: Vec<(Uuid, &[Write<'_>])> =
        writes.iter().map(|(run, writes)| (*run, writes.as_slice())).collect();
    let superseded: Vec<_> =
        applied.iter().map(|a| (a.run, a.plan.superseded.as_slice())).collect();
    let sent: Vec<_> = applied.iter().map(|a| (a.run, a.plan.sent.as_slice())).collect();
    let ended: Vec<_> = applied.iter().map(|a| (a.run, a.plan.ended.as_slice())).collect();
    let history: Vec<_> = applied.iter().map(|a| (a.run, a.plan.history.as_slice())).collect();
    let states: Vec<RunState> = applied
        .iter()
        .filter_map(|a| {
            let root = a.state.changed().any(|(idx, _)| idx == 0).then(|| a.state.get(0))??;
            Some(RunState {
                id: a.run,
                state: root.state(),
                failed_node: a.plan.failed_node,
                completed_at: root.completed_at,
            })
        })
        .collect();
    let attempts = attempts::record(client, &superseded, &sent, &ended, now);
    let run_states = runs::set_states(client, &states);
    let notify = Plan::notify(applied.iter().map(|a| &a.plan), client);
    let history = events::insert(client, &history, now);
    // A cancel (alone in its group) ends the nodes that its batch did not write, after them.
    let cancels = try_join_all(
        applied
            .iter()
            .filter(|a| a.plan.cancel)
            .map(|a| nodes::cancel_unfinished(client, a.run, now)),
    );
    let writes = try_join(
        try_join5(nodes::write(client, &writes), attempts, history, run_states, notify),
        cancels,
    );
    let ((written, ..), _) = tx.commit_with(&WRITES, writes).await?;
    let mut epochs: HashMap<Uuid, HashMap<NodeIdx, i64>> = HashMap::new();
    for (run, idx, epoch) in written {
        epochs.entry(run).or_default().insert(idx, epoch);
    }
    Ok(epochs)
}

/// An event about a node that a redrive on new definitions took away.
fn gone(job: &Job, snap: &RunSnapshot) -> bool {
    job.event.node().is_some_and(|n| n as usize >= snap.snapshot.len())
}

/// The run's snapshot changed while the batch read it.
#[derive(Debug, thiserror::Error)]
#[error("the run's snapshot changed")]
struct StaleSnapshot;

/// A deadlock, a serialization failure, or a snapshot that changed: the batch may simply be
/// tried again.
fn is_transient(e: &anyhow::Error) -> bool {
    e.is::<StaleSnapshot>()
        || e.downcast_ref::<tokio_postgres::Error>()
            .and_then(tokio_postgres::Error::code)
            .is_some_and(|c| {
                *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
            })
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
        Event::Settle { node, .. } => format!("the settling by hand of node {node}"),
        Event::Redispatch { node } => format!("the redispatch by hand of node {node}"),
        Event::Cancel => "a cancel".into(),
        Event::Redrive { .. } => "a redrive".into(),
    }
}
