//! Starting the work that committed events made: POSTs and scripts, each under the lease that
//! its node took in the transaction, and each reporting back as a fenced event.

use std::sync::Arc;
use std::time::Instant;

use aetr_engine::machine::{Event, Nodes, Phase};
use aetr_engine::script::ScriptError;
use aetr_engine::{NodeIdx, Reducer};
use uuid::Uuid;

use super::node_id::node_id;
use super::plan::Plan;
use super::{Fence, RunSnapshot, Shared};
use crate::dispatch::Slot;
use crate::metrics::METRICS;
use crate::otel;
use crate::scripts::OwnedCall;
use crate::store::changes::Epochs;
use crate::store::nodes;

/// An attempt to send, under the lease its node holds at `epoch`, in one of the POST slots.
#[derive(Debug)]
pub(crate) struct SendJob {
    pub run: Uuid,
    pub idx: NodeIdx,
    pub attempt: u32,
    pub epoch: i64,
    pub input: Option<String>,
    pub slot: Slot,
}

/// A mapper or reducer to run, under the lease its node holds at `epoch`.
#[derive(Debug)]
pub(crate) struct ScriptJob {
    pub run: Uuid,
    pub idx: NodeIdx,
    pub epoch: i64,
    pub kind: ScriptKind,
}

#[derive(Debug)]
pub(crate) enum ScriptKind {
    /// The node's mapper, on its result.
    Map { data: Option<String> },
    /// The node's reducer, on its children's outputs (read when it runs).
    Reduce,
    /// The Branch's function, on its input.
    Choose { data: Option<String> },
    /// The Map's items function, on its input.
    List { data: Option<String> },
}

impl ScriptKind {
    /// The script that a node in `phase` waits for, given its result and its input.
    pub fn of(phase: Phase, result: Option<String>, input: Option<String>) -> Option<ScriptKind> {
        match phase {
            Phase::Received => Some(ScriptKind::Map { data: result }),
            Phase::Reducing => Some(ScriptKind::Reduce),
            Phase::Choosing => Some(ScriptKind::Choose { data: input }),
            Phase::Listing => Some(ScriptKind::List { data: input }),
            _ => None,
        }
    }
}

/// The work of a committed batch.
#[derive(Debug)]
pub(crate) struct Launch {
    snap: Arc<RunSnapshot>,
    sends: Vec<SendJob>,
    scripts: Vec<ScriptJob>,
    /// When the callbacks that made some of the sends due arrived.
    woken_by: Vec<Instant>,
}

impl Launch {
    /// The plan's work, with the node states and lease epochs that the transaction wrote.
    pub fn of(
        plan: Plan,
        state: &Nodes,
        epochs: &Epochs,
        run: Uuid,
        snap: Arc<RunSnapshot>,
    ) -> Launch {
        let epoch = |idx: NodeIdx| epochs.of(run, idx);
        let sends = plan
            .sends
            .into_iter()
            .map(|(idx, attempt, slot)| SendJob {
                run,
                idx,
                attempt,
                epoch: epoch(idx),
                input: state.get(idx).and_then(|s| s.input.clone()),
                slot,
            })
            .collect();
        let scripts = plan
            .scripts
            .into_iter()
            .filter_map(|idx| {
                let st = state.get(idx)?;
                let kind = ScriptKind::of(st.phase, st.result.clone(), st.input.clone())?;
                Some(ScriptJob { run, idx, epoch: epoch(idx), kind })
            })
            .collect();
        Launch { snap, sends, scripts, woken_by: plan.woken_by }
    }

    pub fn start(self, shared: &Arc<Shared>) {
        for at in &self.woken_by {
            METRICS.callback_to_dispatch_seconds.observe(at.elapsed().as_secs_f64());
        }
        for job in self.sends {
            let (shared, snap) = (Arc::clone(shared), Arc::clone(&self.snap));
            shared.clone().spawn(async move { shared.send(snap, job).await });
        }
        for job in self.scripts {
            let (shared, snap) = (Arc::clone(shared), Arc::clone(&self.snap));
            shared.clone().spawn(async move { shared.run_script(snap, job).await });
        }
    }
}

impl Shared {
    /// Runs a node's mapper, reducer or Branch function and reports its outcome. If it cannot
    /// report, the node's lease runs out and a dispatcher runs the script again.
    #[tracing::instrument(level = "debug", skip_all, fields(run = %job.run, node = job.idx))]
    pub(crate) async fn run_script(self: Arc<Self>, snap: Arc<RunSnapshot>, job: ScriptJob) {
        let (run, idx) = (job.run, job.idx);
        let Some(node) = snap.step(idx) else {
            tracing::error!(%run, node = idx, "a script of a node the run does not have");
            return;
        };
        let event = match job.kind {
            ScriptKind::Map { data } => {
                let outcome = match node.mapper_script() {
                    Some(js) => {
                        self.call_script(run, idx, "mapper", js.to_owned(), OwnedCall::Map(data))
                            .await
                    }
                    None => Ok(data),
                };
                Event::Mapped { node: job.idx, outcome }
            }
            ScriptKind::Reduce => {
                let reducer = node.body.reducer().cloned().unwrap_or_default();
                let outputs = match self.reducer_inputs(job.run, job.idx, &reducer).await {
                    Ok(outputs) => outputs,
                    Err(e) => {
                        tracing::warn!(run = %job.run, node = job.idx, error = format!("{e:#}"),
                            "cannot read a reducer's inputs; it will be tried again");
                        return;
                    }
                };
                let outcome = match reducer {
                    Reducer::Js { js } => {
                        self.call_script(run, idx, "reducer", js, OwnedCall::Reduce(outputs)).await
                    }
                    builtin => Ok(builtin.apply_builtin(&outputs).flatten()),
                };
                Event::Reduced { node: job.idx, outcome }
            }
            ScriptKind::Choose { data } => {
                let outcome = match node.body.chooser() {
                    Some(chooser) => {
                        let js = chooser.script().to_owned();
                        self.call_script(run, idx, "branch", js, OwnedCall::Map(data)).await
                    }
                    None => Ok(None),
                };
                Event::Chosen { node: job.idx, outcome }
            }
            ScriptKind::List { data } => {
                let outcome = match node.body.map().and_then(|m| m.items.clone()) {
                    Some(js) => self.call_script(run, idx, "items", js, OwnedCall::Map(data)).await,
                    None => Ok(data),
                };
                Event::Listed { node: job.idx, outcome }
            }
        };
        let fence = Fence { idx: job.idx, epoch: job.epoch };
        if let Err(e) = self.submit(job.run, event, Some(fence), None).await {
            tracing::warn!(run = %job.run, node = job.idx, error = %e,
                "cannot record a script's outcome; it will be run again");
        }
    }

    /// Calls a node's script (a `mapper`, `reducer` or `branch` function), and counts and
    /// traces the call.
    pub(crate) async fn call_script(
        &self,
        run: Uuid,
        idx: NodeIdx,
        kind: &'static str,
        source: String,
        call: OwnedCall,
    ) -> Result<Option<String>, ScriptError> {
        let started = Instant::now();
        let outcome = self.scripts.call(source, call).await;
        let took = started.elapsed();
        METRICS.script_called(kind, took);
        otel::script(run, kind, node_id(run, idx), outcome.is_err(), took);
        outcome
    }

    /// What a reducer combines: its children's outputs in child order. The built-in `last`
    /// needs only the last one, and `no-op` none, so a wide node's children are not all read.
    async fn reducer_inputs(
        &self,
        run: Uuid,
        idx: NodeIdx,
        reducer: &Reducer,
    ) -> anyhow::Result<Vec<Option<String>>> {
        let client = self.pool.get().await?;
        match reducer {
            Reducer::Js { .. } | Reducer::Collect => {
                nodes::children_outputs(&client, run, idx).await
            }
            Reducer::Last => Ok(vec![nodes::last_child_output(&client, run, idx).await?]),
            Reducer::NoOp => Ok(Vec::new()),
        }
    }
}
