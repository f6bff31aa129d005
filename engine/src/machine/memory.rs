//! A whole run held in memory, driven the way the server drives a stored one: each event loads
//! only the nodes that [`involved`] names, so a test that reads beyond them fails. Used by the
//! engine's tests and benchmark.

use super::{
    apply, involved, preload, Ctx, Event, MachineError, NodeState, Nodes, Outcome, Phase, Work,
};
use crate::script::{ScriptCall, ScriptRunner};
use crate::snapshot::{NodeIdx, Snapshot};
use crate::step::Reducer;
use crate::tree::{Blocks, Tree};

/// A run's snapshot, its Maps' instances, and the state of all its nodes, by number (a number
/// without a node, such as a Map's template, has the default state).
#[derive(Debug, Clone)]
pub struct MemoryRun {
    snapshot: Snapshot,
    blocks: Blocks,
    states: Vec<NodeState>,
    pub ctx: Ctx,
}

impl MemoryRun {
    pub fn new(snapshot: Snapshot, ctx: Ctx) -> Self {
        let states = vec![NodeState::default(); snapshot.len()];
        MemoryRun { snapshot, blocks: Blocks::default(), states, ctx }
    }

    /// A run whose nodes are in these states (a redrive on new definitions makes them), with
    /// the instances that its start started.
    pub fn with_states(
        snapshot: Snapshot,
        states: Vec<NodeState>,
        started: &Outcome,
        instances: Vec<(NodeIdx, NodeState)>,
        ctx: Ctx,
    ) -> Self {
        assert_eq!(snapshot.len(), states.len(), "one state per node");
        let mut run = MemoryRun { snapshot, blocks: Blocks::default(), states, ctx };
        run.add_blocks(started).expect("the blocks of a start fit");
        for (idx, st) in instances {
            run.states[idx as usize] = st;
        }
        run
    }

    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    pub fn tree(&self) -> Tree<'_> {
        Tree::new(&self.snapshot, &self.blocks)
    }

    /// Every node the run has (not the Maps' templates), by number.
    pub fn node_numbers(&self) -> Vec<NodeIdx> {
        self.tree().nodes().map(|n| n.idx).collect()
    }

    /// Stores the instances of the Maps that an event started: `Waiting`, with their inputs.
    fn add_blocks(&mut self, outcome: &Outcome) -> Result<(), MachineError> {
        for new in &outcome.blocks {
            let invariant = |what| MachineError::Invariant { node: new.block.map, what };
            self.blocks.add(new.block).map_err(invariant)?;
            let end = usize::try_from(new.block.end()).map_err(|e| invariant(e.to_string()))?;
            if self.states.len() < end {
                self.states.resize(end, NodeState::default());
            }
            for (i, input) in new.inputs.iter().enumerate() {
                self.states[new.block.instance(i as u32) as usize].input = input.clone();
            }
        }
        Ok(())
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
    /// Like the server, it loads a Map's instance that [`preload`] did not foresee (the ones
    /// before it ended as they started) and applies the event again.
    pub fn apply(&mut self, event: Event) -> Result<(Outcome, Vec<NodeIdx>), MachineError> {
        let tree = Tree::new(&self.snapshot, &self.blocks);
        let involved = involved(&tree, &event)?;
        let loaded = involved.iter().map(|&i| (i, &self.states[i as usize]));
        let ends = if event.node().is_some() { 1 } else { u32::MAX };
        let mut load = involved.clone();
        load.extend(preload(&tree, loaded, ends));
        let (outcome, nodes) = loop {
            let mut nodes = Nodes::new();
            for &idx in &load {
                nodes.load(idx, self.states[idx as usize].clone());
            }
            match apply(&tree, &mut nodes, event.clone(), &self.ctx) {
                Err(MachineError::NotLoaded(idx)) if tree.contains(idx) && !load.contains(&idx) => {
                    load.push(idx);
                }
                other => break (other?, nodes),
            }
        };
        self.add_blocks(&outcome)?;
        let mut changed = Vec::new();
        for (idx, st) in nodes.changed() {
            self.states[idx as usize] = st.clone();
            changed.push(idx);
        }
        if outcome.work.contains(&Work::CancelUnfinished) {
            let now = self.ctx.now;
            let tree = Tree::new(&self.snapshot, &self.blocks);
            for (idx, st) in self.states.iter_mut().enumerate() {
                if st.phase.is_unfinished() && tree.contains(idx as NodeIdx) {
                    st.phase = Phase::Cancelled;
                    st.completed_at = Some(now);
                    st.due_at = None;
                    changed.push(idx as NodeIdx);
                }
            }
        }
        Ok((outcome, changed))
    }

    /// Runs a [`Work::Map`], [`Work::Reduce`], [`Work::Choose`] or [`Work::List`] and returns
    /// the event that reports it. Other work is the caller's.
    pub fn run_script(&self, work: Work, scripts: &mut dyn ScriptRunner) -> Option<Event> {
        match work {
            Work::Map { node } => {
                let snap = self.tree().step(node);
                let result = self.states[node as usize].result.as_deref();
                let outcome = match snap.mapper_script() {
                    Some(js) => scripts.call(js, ScriptCall::Map { data: result }),
                    None => Ok(result.map(str::to_owned)),
                };
                Some(Event::Mapped { node, outcome })
            }
            Work::Reduce { node } => {
                let outputs = self.children_outputs(node);
                let reducer = self.tree().step(node).body.reducer().cloned().unwrap_or_default();
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
                let outcome = match self.tree().step(node).body.chooser() {
                    Some(chooser) => {
                        scripts.call(chooser.script(), ScriptCall::Map { data: input })
                    }
                    None => Ok(None),
                };
                Some(Event::Chosen { node, outcome })
            }
            Work::List { node } => {
                let input = self.states[node as usize].input.as_deref();
                let outcome = match self.tree().step(node).body.map() {
                    Some(map) => match &map.items {
                        Some(js) => scripts.call(js, ScriptCall::Map { data: input }),
                        None => Ok(input.map(str::to_owned)),
                    },
                    None => Ok(None),
                };
                Some(Event::Listed { node, outcome })
            }
            Work::Dispatch { .. } | Work::CancelUnfinished => None,
        }
    }

    /// A parent's children's outputs, in child order: what its reducer gets.
    pub fn children_outputs(&self, idx: NodeIdx) -> Vec<Option<String>> {
        let tree = self.tree();
        let children = tree.children(&tree.node(idx));
        children.iter().map(|&c| self.states[c as usize].output.clone()).collect()
    }
}
