//! The nodes that one event reads and writes.

use std::collections::{BTreeSet, HashMap};

use super::{MachineError, NodeState, Phase};
use crate::snapshot::NodeIdx;

/// The state of the nodes loaded for an event, and which of them it changed.
#[derive(Debug, Default, Clone)]
pub struct Nodes {
    loaded: HashMap<NodeIdx, NodeState>,
    changed: BTreeSet<NodeIdx>,
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

    pub(crate) fn read(&self, idx: NodeIdx) -> Result<&NodeState, MachineError> {
        self.loaded.get(&idx).ok_or(MachineError::NotLoaded(idx))
    }

    pub(crate) fn write(&mut self, idx: NodeIdx) -> Result<&mut NodeState, MachineError> {
        let state = self.loaded.get_mut(&idx).ok_or(MachineError::NotLoaded(idx))?;
        self.changed.insert(idx);
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
        Ok(state)
    }
}
