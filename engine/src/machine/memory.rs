//! A whole run held in memory, driven the way the server drives a stored one: each event loads
//! only the nodes that [`involved`] names, so a test that reads beyond them fails. Used by the
//! engine's tests and benchmark.

use super::{apply, involved, Ctx, Event, MachineError, NodeState, Nodes, Outcome, Phase, Work};
use crate::script::{ScriptCall, ScriptRunner};
use crate::snapshot::{NodeIdx, Snapshot};
use crate::step::Reducer;

/// A run's snapshot and the state of all its nodes.
#[derive(Debug, Clone)]
pub struct MemoryRun {
    snapshot: Snapshot,
    states: Vec<NodeState>,
    pub ctx: Ctx,
}

impl MemoryRun {
    pub fn new(snapshot: Snapshot, ctx: Ctx) -> Self {
        let states = vec![NodeState::default(); snapshot.len()];
        MemoryRun { snapshot, states, ctx }
    }

    /// A run whose nodes are in these states (a redrive on new definitions makes them).
    pub fn with_states(snapshot: Snapshot, states: Vec<NodeState>, ctx: Ctx) -> Self {
        assert_eq!(snapshot.len(), states.len(), "one state per node");
        MemoryRun { snapshot, states, ctx }
    }

    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    pub fn node(&self, idx: NodeIdx) -> &NodeState {
        &self.states[idx as usize]
    }

    pub fn nodes(&self) -> &[NodeState] {
        &self.states
    }

    pub fn root(&self) -> &NodeState {
        &self.states[0]
    }

    /// Applies one event, loading only the nodes it involves, and writes back what changed.
    /// Returns the outcome and the nodes it changed. A [`Work::CancelUnfinished`] is done here.
    pub fn apply(&mut self, event: Event) -> Result<(Outcome, Vec<NodeIdx>), MachineError> {
        let mut nodes = Nodes::new();
        for idx in involved(&self.snapshot, &event)? {
            nodes.load(idx, self.states[idx as usize].clone());
        }
        let outcome = apply(&self.snapshot, &mut nodes, event, &self.ctx)?;
        let mut changed = Vec::new();
        for (idx, st) in nodes.changed() {
            self.states[idx as usize] = st.clone();
            changed.push(idx);
        }
        if outcome.work.contains(&Work::CancelUnfinished) {
            let now = self.ctx.now;
            for (idx, st) in self.states.iter_mut().enumerate() {
                if st.phase.is_unfinished() {
                    st.phase = Phase::Cancelled;
                    st.completed_at = Some(now);
                    st.due_at = None;
                    changed.push(idx as NodeIdx);
                }
            }
        }
        Ok((outcome, changed))
    }

    /// Runs a [`Work::Map`], [`Work::Reduce`] or [`Work::Choose`] and returns the event that reports it. Other
    /// work is the caller's.
    pub fn run_script(&self, work: Work, scripts: &mut dyn ScriptRunner) -> Option<Event> {
        match work {
            Work::Map { node } => {
                let snap = self.snapshot.node(node);
                let result = self.states[node as usize].result.as_deref();
                let outcome = match snap.mapper_script() {
                    Some(js) => scripts.call(js, ScriptCall::Map { data: result }),
                    None => Ok(result.map(str::to_owned)),
                };
                Some(Event::Mapped { node, outcome })
            }
            Work::Reduce { node } => {
                let outputs = self.children_outputs(node);
                let reducer = self.snapshot.node(node).body.reducer().cloned().unwrap_or_default();
                let outcome = match &reducer {
                    Reducer::Js { js } => {
                        scripts.call(js, ScriptCall::Reduce { results: &outputs })
                    }
                    builtin => Ok(builtin.apply_builtin(&outputs).flatten()),
                };
                Some(Event::Reduced { node, outcome })
            }
            Work::Choose { node } => {
                let input = self.states[node as usize].input.as_deref();
                let outcome = match self.snapshot.node(node).body.chooser() {
                    Some(chooser) => {
                        scripts.call(chooser.script(), ScriptCall::Map { data: input })
                    }
                    None => Ok(None),
                };
                Some(Event::Chosen { node, outcome })
            }
            Work::Dispatch { .. } | Work::CancelUnfinished => None,
        }
    }

    /// A parent's children's outputs, in child order: what its reducer gets.
    pub fn children_outputs(&self, idx: NodeIdx) -> Vec<Option<String>> {
        self.snapshot
            .node(idx)
            .children
            .iter()
            .map(|&c| self.states[c as usize].output.clone())
            .collect()
    }
}
