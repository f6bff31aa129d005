//! The nodes that one event reads and writes.

use std::collections::{BTreeSet, HashMap};

use super::{MachineError, NodeState, Phase, State};
use crate::snapshot::NodeIdx;

/// The state of the nodes loaded for an event, and which of them it changed.
#[derive(Debug, Default, Clone)]
pub struct Nodes {
    loaded: HashMap<NodeIdx, NodeState>,
    changed: BTreeSet<NodeIdx>,
    /// The state that each node written by the current event had before it.
    before: HashMap<NodeIdx, State>,
}

/// A node's state as users see it changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateChange {
    pub node: NodeIdx,
    pub from: State,
    pub to: State,
}

impl Nodes {
    pub fn new() -> Self {
        Nodes::default()
    }

    /// Adds a node as loaded (unchanged).
    pub fn load(&mut self, idx: NodeIdx, state: NodeState) {
        self.loaded.insert(idx, state);
    }

    pub fn get(&self, idx: NodeIdx) -> Option<&NodeState> {
        self.loaded.get(&idx)
    }

    /// The nodes changed so far, in node order.
    pub fn changed(&self) -> impl Iterator<Item = (NodeIdx, &NodeState)> + '_ {
        self.changed.iter().map(|i| (*i, &self.loaded[i]))
    }

    /// Forgets which nodes changed, after the shell has written them.
    pub fn clear_changed(&mut self) {
        self.changed.clear();
    }

    /// Starts an event: the changes it makes are counted from here.
    pub(crate) fn begin_event(&mut self) {
        self.before.clear();
    }

    /// How the current event changed the states of nodes, in node order.
    pub(crate) fn state_changes(&self) -> Vec<StateChange> {
        let mut changes: Vec<StateChange> = self
            .before
            .iter()
            .filter_map(|(&node, &from)| {
                let to = self.loaded.get(&node)?.state();
                (to != from).then_some(StateChange { node, from, to })
            })
            .collect();
        changes.sort_unstable_by_key(|c| c.node);
        changes
    }

    pub(crate) fn read(&self, idx: NodeIdx) -> Result<&NodeState, MachineError> {
        self.loaded.get(&idx).ok_or(MachineError::NotLoaded(idx))
    }

    pub(crate) fn write(&mut self, idx: NodeIdx) -> Result<&mut NodeState, MachineError> {
        let state = self.loaded.get_mut(&idx).ok_or(MachineError::NotLoaded(idx))?;
        self.changed.insert(idx);
        self.before.entry(idx).or_insert(state.phase.state());
        Ok(state)
    }

    /// A node that is being started. It must be `Waiting`; if it was not loaded, it is by
    /// construction (nothing starts a node twice), and the shell fences its write on that.
    pub(crate) fn start(&mut self, idx: NodeIdx) -> Result<&mut NodeState, MachineError> {
        let state = self.loaded.entry(idx).or_default();
        if state.phase != Phase::Waiting {
            return Err(MachineError::Invariant {
                node: idx,
                what: format!("started while {:?}", state.phase),
            });
        }
        self.changed.insert(idx);
        self.before.entry(idx).or_insert(State::Pending);
        Ok(state)
    }
}
