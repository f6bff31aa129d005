//! A redrive on the latest definitions (`POST /runs/{id}/retry?definition=latest`): the run
//! gets a new snapshot of its tree, and starts again on it, keeping every node whose snapshot
//! subtree and input are unchanged (see `aetr_engine::machine::rebase`).
//!
//! It runs in one transaction that locks all of the run's nodes, the root first, like every
//! batch of the run's events. The nodes are written anew, at a new snapshot revision and above
//! every lease epoch they had, so that reports on earlier work change nothing; the attempts of
//! each node move with it to its new number.

use std::collections::HashMap;
use std::sync::Arc;

use aetr_engine::machine::{self, NodeState, Nodes, Phase, State};
use aetr_engine::NodeIdx;
use serde_json::json;
use uuid::Uuid;

use super::node_id::node_id;
use super::plan::Plan;
use super::{RunSnapshot, Runs};
use crate::http::ApiError;
use crate::store::events::NewEvent;
use crate::store::nodes::{NewNodes, Revision};
use crate::store::time::now_ms;
use crate::store::{attempts, events, nodes, runs};

/// What a redrive on the latest definitions did.
#[derive(Debug, Clone)]
pub struct Rebased {
    /// The run's state after it.
    pub state: State,
    /// The nodes that run again, in node order; all others kept their results.
    pub rerun: Vec<Uuid>,
}

impl Runs {
    pub async fn redrive_on_latest(&self, run: Uuid) -> Result<Rebased, ApiError> {
        let shared = &self.shared;
        let mut client = shared.pool.get().await?;
        let no_run = || ApiError::NotFound(format!("no run with id {run}"));
        let (old, created_at, rev) = runs::snapshot(&client, run).await?.ok_or_else(no_run)?;
        let step_id = old.root().step_id;
        let new = shared.snapshot_of_step(&client, step_id).await?.ok_or_else(|| {
            ApiError::Conflict(format!(
                "the run's step {step_id} no longer exists; retry the run on its own snapshot \
                 (without ?definition=latest)"
            ))
        })?;

        let now = now_ms();
        let tx = client.transaction().await?;
        let old_rows = nodes::lock_all(&tx, run).await?;
        let root = old_rows.first().ok_or_else(no_run)?;
        if root.rev != rev {
            return Err(ApiError::Conflict("the run was retried meanwhile".into()));
        }
        if root.state.phase != Phase::Error {
            return Err(ApiError::Conflict("only a run in Error can be retried".into()));
        }
        let old_states: Vec<NodeState> = old_rows.iter().map(|s| s.state.clone()).collect();
        let input = root.state.input.clone();
        let ctx = shared.ctx(now);
        let rebased = machine::rebase(&old, &old_states, &new, input, &ctx)
            .map_err(|e| ApiError::Internal(e.into()))?;
        let mut state = Nodes::new();
        for (idx, st) in rebased.states.iter().enumerate() {
            state.load(idx as NodeIdx, st.clone());
        }
        let mut plan = Plan::new(now);
        plan.take(shared, &new, &mut state, &rebased.outcome.work)
            .map_err(|e| ApiError::Internal(e.into()))?;
        let states: Vec<&NodeState> = (0..new.len() as NodeIdx)
            .map(|idx| state.get(idx).ok_or(machine::MachineError::NotLoaded(idx)))
            .collect::<Result<_, _>>()
            .map_err(|e| ApiError::Internal(e.into()))?;
        let rerun: Vec<Uuid> = rebased.rerun.iter().map(|&idx| node_id(run, idx)).collect();
        let changes = rebased
            .paired
            .iter()
            .zip(&states)
            .enumerate()
            .filter_map(|(idx, (pair, st))| {
                let from = pair.map_or(State::Pending, |o| old_states[o as usize].state());
                (from != st.state()).then_some((idx as NodeIdx, from, st.state()))
            })
            .collect();
        plan.history.insert(
            0,
            NewEvent {
                kind: "retried",
                idx: None,
                attempt: None,
                detail: Some(json!({"definition": "latest", "rerun": rerun})),
                changes,
            },
        );

        let held = attempts::hold_all(&tx, run).await?;
        nodes::delete_all(&tx, run).await?;
        let root_state = states[0].state();
        runs::replace_snapshot(&tx, run, &new, rev + 1, root_state).await?;
        let first_epoch = old_rows.iter().map(|s| s.epoch).max().unwrap_or(0) + 1;
        let revision = Revision { rev: rev + 1, first_epoch };
        let writes: Vec<_> = states
            .iter()
            .enumerate()
            .map(|(idx, st)| (idx as NodeIdx, *st, plan.lease_until(idx as NodeIdx)))
            .collect();
        let new_nodes = NewNodes { run, snapshot: &new, rev: revision, started: writes };
        let epochs: Vec<(NodeIdx, i64)> = nodes::insert_all(&tx, &[new_nodes])
            .await?
            .into_iter()
            .map(|(_, idx, epoch)| (idx, epoch))
            .collect();
        let moved: HashMap<NodeIdx, NodeIdx> = (0..new.len() as NodeIdx)
            .filter_map(|idx| Some((rebased.paired[idx as usize]?, idx)))
            .collect();
        attempts::put_back(&tx, run, held, |old| moved.get(&old).copied()).await?;
        let superseded: Vec<(NodeIdx, u32)> =
            states.iter().enumerate().map(|(idx, st)| (idx as NodeIdx, st.live_from)).collect();
        attempts::record(&tx, &[(run, &superseded)], &[(run, &plan.sent)], &[], now).await?;
        events::insert(&tx, &[(run, &plan.history)], now).await?;
        Plan::notify([&plan], &tx).await?;
        tx.commit().await?;

        tracing::info!(%run, nodes = new.len(), rerun = rerun.len(), "run retried on the latest definitions");
        let snap = Arc::new(RunSnapshot { snapshot: new, created_at, rev: rev + 1 });
        shared.launch_run(run, snap, plan, &state, epochs);
        Ok(Rebased { state: root_state, rerun })
    }
}
