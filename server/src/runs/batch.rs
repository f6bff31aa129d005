//! Applying a batch of one run's events in one transaction.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use aetr_engine::machine::{self, Event, Nodes, Reply, Work};
use aetr_engine::NodeIdx;
use anyhow::{Context, Result};
use futures_util::future::try_join4;
use tokio_postgres::error::SqlState;
use uuid::Uuid;

use super::launch::Launch;
use super::mailbox::Job;
use super::plan::Plan;
use super::{RunError, Shared};
use crate::store::nodes::Stored;
use crate::store::time::now_ms;
use crate::store::{attempts, events, nodes, runs};

/// How many times a batch is tried when PostgreSQL aborts it for a deadlock or a
/// serialization failure.
const TRIES: usize = 3;

impl Shared {
    /// Applies a batch, answers its events once it is committed, and starts the work it made.
    pub(crate) async fn apply_batch(self: &Arc<Self>, run: Uuid, jobs: Vec<Job>) {
        let mut tries = 0;
        let outcome = loop {
            tries += 1;
            match self.try_batch(run, &jobs).await {
                Err(e) if tries < TRIES && is_transient(&e) => {
                    tracing::debug!(%run, error = format!("{e:#}"), "a batch is tried again");
                }
                outcome => break outcome,
            }
        };
        match outcome {
            Ok((replies, launch)) => {
                for (job, reply) in jobs.into_iter().zip(replies) {
                    let _ = job.reply.send(Ok(reply));
                }
                launch.start(self);
            }
            Err(e) => {
                let error = RunError::of(&e);
                if let RunError::Internal(_) = error {
                    tracing::error!(%run, error = format!("{e:#}"), "a batch of events failed");
                }
                for job in jobs {
                    let _ = job.reply.send(Err(error.clone()));
                }
            }
        }
    }

    async fn try_batch(&self, run: Uuid, jobs: &[Job]) -> Result<(Vec<Reply>, Launch)> {
        let mut client = self.pool.get().await?;
        let snap = self.snapshots.get(&client, run, None).await?.ok_or(RunError::NoSuchRun(run))?;
        let snapshot = &snap.snapshot;
        let tx = client.transaction().await?;
        // An event about a node that a redrive on new definitions took away.
        let gone = |job: &Job| job.event.node().is_some_and(|n| n as usize >= snapshot.len());
        // A redrive resumes from the nodes that failed, read under the root's lock, so that
        // none changes before it applies. (A redrive is alone in its batch.)
        let mut redrive = None;
        if let [Job { event: Event::Redrive { .. }, .. }] = jobs {
            nodes::lock(&tx, run, &[0]).await?;
            redrive = Some(Event::Redrive { nodes: nodes::redrivable(&tx, run).await? });
        }
        let event_of = |job: &Job| match (&job.event, &redrive) {
            (Event::Redrive { .. }, Some(resolved)) => resolved.clone(),
            (event, _) => event.clone(),
        };
        let mut involved = BTreeSet::from([0]);
        for job in jobs.iter().filter(|job| !gone(job)) {
            let event = redrive.as_ref().unwrap_or(&job.event);
            involved.extend(machine::involved(snapshot, event)?);
        }
        let involved: Vec<NodeIdx> = involved.into_iter().collect();
        let loaded: HashMap<NodeIdx, Stored> =
            nodes::lock(&tx, run, &involved).await?.into_iter().map(|s| (s.idx, s)).collect();
        if let Some(root) = loaded.get(&0).filter(|root| root.rev != snap.rev) {
            // Another server gave the run a new snapshot: read it, and try again.
            self.snapshots.get(&tx, run, Some(root.rev)).await?;
            return Err(StaleSnapshot.into());
        }
        let mut state = Nodes::new();
        for stored in loaded.values() {
            state.load(stored.idx, stored.state.clone());
        }

        let now = now_ms();
        let mut plan = Plan::new(now);
        let mut replies = Vec::with_capacity(jobs.len());
        for job in jobs {
            if gone(job) {
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
            let outcome = machine::apply(snapshot, &mut state, event_of(job), &self.ctx(now))
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

        let epochs: HashMap<NodeIdx, i64> =
            nodes::write(&tx, run, &plan.writes(&state, &loaded)).await?.into_iter().collect();
        // The other writes do not depend on each other: they go down the connection together.
        let root = state.changed().any(|(idx, _)| idx == 0).then(|| state.get(0)).flatten();
        let attempts = async {
            attempts::supersede(&tx, run, &plan.superseded, now).await?;
            attempts::insert(&tx, run, &plan.sent, now).await?;
            attempts::finish(&tx, run, &plan.ended).await
        };
        let run_state = async {
            if plan.cancel {
                nodes::cancel_unfinished(&tx, run, now).await?;
            }
            if let Some(root) = root {
                runs::set_state(&tx, run, root.state(), plan.failed_node, root.completed_at)
                    .await?;
            }
            Ok(())
        };
        let notify = async { Ok(plan.notify(&tx).await?) };
        try_join4(attempts, events::insert(&tx, run, &plan.history, now), run_state, notify)
            .await?;
        tx.commit().await?;
        for (job, reply) in jobs.iter().zip(&replies) {
            if let (Some((node, attempt)), Reply::Done) = (callback_of(&job.event), reply) {
                self.answered.recorded(run, node, attempt);
            }
        }
        if plan.deferred {
            self.wake.notify_one();
        }
        let launch = Launch::of(plan, &state, &epochs, run, snap);
        Ok((replies, launch))
    }
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
