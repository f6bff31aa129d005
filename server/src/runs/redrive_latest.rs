//! A redrive on the latest definitions (`POST /runs/{id}/retry?definition=latest`): the run
//! gets a new snapshot of its tree, and starts again on it, keeping every node whose snapshot
//! subtree and input are unchanged (see [`aetr_engine::machine::redrive_latest`]).
//!
//! It runs in one transaction that locks all of the run's nodes, the root first, like every
//! batch of the run's events. The nodes are written anew, at a new snapshot revision and above
//! every lease epoch they had, so that reports on earlier work change nothing; the attempts of
//! each node move with it to its new number.

use std::collections::HashMap;
use std::sync::Arc;

use aetr_engine::machine::{self, NodeState, Nodes, Phase, State};
use aetr_engine::{Blocks, NodeIdx, Tree};
use futures_util::future::{try_join, try_join3};
use serde_json::json;
use uuid::Uuid;

use super::apply::Applier;
use super::node_id::node_id;
use super::{RunError, RunSnapshot, Runs};
use crate::store::changes::{self, RunChanges};
use crate::store::events::NewEvent;
use crate::store::nodes::Revision;
use crate::store::time::now_ms;
use crate::store::tx::Tx;
use crate::store::{attempts, nodes, runs};

/// What a redrive on the latest definitions did.
#[derive(Debug, Clone)]
pub struct RedrivenLatest {
    /// The run's state after it.
    pub state: State,
    /// The nodes that run again, in node order; all others kept their results.
    pub rerun: Vec<Uuid>,
}

/// Statements that replace a run's nodes, sent together before the new ones are written.
const REPLACE: [&str; 3] =
    [attempts::HOLD_ALL_SQL, nodes::DELETE_ALL_SQL, runs::REPLACE_SNAPSHOT_SQL];

impl Runs {
    #[tracing::instrument(skip(self), fields(run = %run))]
    pub async fn redrive_latest(&self, run: Uuid) -> Result<RedrivenLatest, RunError> {
        let shared = &self.shared;
        let tx = Tx::new(shared.pool.get().await?);
        let (old, created_at, rev) =
            runs::snapshot(tx.client(), run).await?.ok_or(RunError::NoSuchRun(run))?;
        let step_id = old.root().step_id;
        let new = shared
            .snapshot_of_step(tx.client(), step_id)
            .await?
            .ok_or(RunError::StepGone(step_id))?
            // A dry run stays one.
            .with_dry(old.dry().cloned());

        // The transaction begins in the lock's round trip.
        let begin = async { anyhow::Ok(tx.begin("").await?) };
        let (_, old_rows) = try_join(begin, nodes::lock_all(tx.client(), run)).await?;
        let root = old_rows.first().ok_or(RunError::NoSuchRun(run))?;
        if root.rev != rev {
            return Err(RunError::RedrivenMeanwhile);
        }
        if root.state.phase != Phase::Error {
            return Err(RunError::NotInError);
        }
        // The old Maps' instances, whose unchanged items keep their results.
        let old = RunSnapshot::new(old, created_at, rev);
        old.refresh(tx.client(), run).await?;
        let old_blocks = old.blocks();
        let old = &old.snapshot;
        let now = now_ms();
        // By number: the snapshot's, and the instances of Maps above them.
        let numbers = old_rows.iter().map(|s| s.idx as usize + 1).max().unwrap_or_default();
        let mut old_states = vec![NodeState::default(); numbers.max(old.len())];
        for row in &old_rows {
            old_states[row.idx as usize] = row.state.clone();
        }
        let input = root.state.input.clone();
        let internal = |e: machine::MachineError| RunError::internal(format!("run {run}: {e}"));
        let mut redriven =
            machine::redrive_latest(old, &old_blocks, &old_states, &new, input, &shared.ctx(now))
                .map_err(internal)?;
        let mut state = Nodes::new();
        for (idx, st) in redriven.states.iter().enumerate() {
            state.load(idx as NodeIdx, st.clone());
        }
        for (idx, st) in &redriven.instances {
            state.load(*idx, st.clone());
        }
        let none = Blocks::default();
        let mut applier = Applier::new(shared, &new, &none, state, now);
        applier.adopt(&mut redriven.outcome.blocks).map_err(internal)?;
        applier.take(&redriven.outcome.work).map_err(internal)?;
        let (state, mut plan, blocks) = applier.finish();
        let blocks = blocks.unwrap_or_default();
        let states: Vec<&NodeState> = (0..new.len() as NodeIdx)
            .map(|idx| state.get(idx).ok_or(machine::MachineError::NotLoaded(idx)))
            .collect::<Result<_, _>>()
            .map_err(internal)?;
        let rerun: Vec<Uuid> = redriven.rerun.iter().map(|&idx| node_id(run, idx)).collect();
        plan.history.insert(0, redriven_event(&redriven.paired, &old_states, &states, &rerun));

        // The old nodes go (and their attempts, held to be put back), the new snapshot comes.
        let root_state = states[0].state();
        crate::store::prepare(tx.client(), &REPLACE).await?;
        let (held, ..) = try_join3(
            attempts::hold_all(tx.client(), run),
            nodes::delete_all(tx.client(), run),
            runs::replace_snapshot(tx.client(), run, &new, rev + 1, root_state),
        )
        .await?;
        let moved: HashMap<NodeIdx, NodeIdx> = (0..new.len() as NodeIdx)
            .filter_map(|idx| Some((redriven.paired[idx as usize]?, idx)))
            .chain(redriven.kept_instances.iter().copied())
            .collect();
        let held = held.move_to(|old| moved.get(&old).copied());
        let superseded: Vec<(NodeIdx, u32)> =
            states.iter().enumerate().map(|(idx, st)| (idx as NodeIdx, st.live_from)).collect();
        let first_epoch = old_rows.iter().map(|s| s.epoch).max().unwrap_or(0) + 1;
        let revision = Revision { rev: rev + 1, first_epoch };
        let nodes = plan.all_nodes(run, &Tree::new(&new, &blocks), &state, revision);
        let changes = RunChanges {
            moved: Some(&held),
            superseded: &superseded,
            ..plan.changes(run, Vec::new(), Some(nodes), None)
        };
        let epochs = changes::commit(&tx, &[changes], plan.deferred, now).await?;

        tracing::info!(%run, nodes = new.len(), rerun = rerun.len(), "run redriven on the latest definitions");
        let snap = Arc::new(RunSnapshot::new(new, created_at, rev + 1));
        snap.add_blocks(blocks.iter()).map_err(|e| RunError::internal(format!("{e:#}")))?;
        shared.launch_run(run, snap, plan, &state, &epochs);
        Ok(RedrivenLatest { state: root_state, rerun })
    }
}

/// The history's record of the redrive: the nodes that run again, and every node whose state
/// it changed.
fn redriven_event(
    paired: &[Option<NodeIdx>],
    old_states: &[NodeState],
    states: &[&NodeState],
    rerun: &[Uuid],
) -> NewEvent {
    let changes = paired
        .iter()
        .zip(states)
        .enumerate()
        .filter_map(|(idx, (pair, st))| {
            let from = pair.map_or(State::Pending, |o| old_states[o as usize].state());
            (from != st.state()).then_some((idx as NodeIdx, from, st.state()))
        })
        .collect();
    NewEvent {
        kind: "retried",
        idx: None,
        attempt: None,
        detail: Some(json!({"definition": "latest", "rerun": rerun})),
        changes,
    }
}
