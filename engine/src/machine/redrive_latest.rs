//! A redrive on the latest step definitions (`POST /runs/{id}/retry?definition=latest`).
//!
//! The run starts again on a new snapshot, with its first input, but a node whose snapshot
//! subtree and input are unchanged byte for byte keeps what it had: a completed node keeps its
//! result and its whole subtree, and is not run again. A node whose subtree is unchanged but
//! whose mapper changed (or failed) keeps its own result and runs only its mapper.
//!
//! Nodes are paired by their path from the root (the k-th child of the paired parent). A new
//! node takes the attempt count of both the old node at its number and the one at its path, so
//! that every token handed out before stays superseded (409), and the pair's attempt history
//! can move with it.
//!
//! A Map is never kept whole: it lists its items again, and its instances are numbered above
//! every node the run had, so that no token of an old instance names a new one. An instance is
//! paired with the old Map's instance of the same item index, and is kept like any node when
//! its input and its subtree (with no Map in it) are unchanged: a failed instance runs again,
//! and the others keep their results.

use super::transition::start_with;
use super::{Ctx, MachineError, NodeState, Nodes, Outcome, Phase};
use crate::snapshot::{NodeIdx, Snapshot};
use crate::step::StepBody;
use crate::tree::{Blocks, Tree};

/// The run on its new snapshot.
#[derive(Debug, Clone)]
pub struct LatestRedrive {
    /// Every node of the new snapshot, by number (a Map's template has the default state).
    pub states: Vec<NodeState>,
    /// The nodes of the Maps' instances that the start started (see [`Outcome::blocks`]).
    pub instances: Vec<(NodeIdx, NodeState)>,
    /// What starting the new tree asks of the shell.
    pub outcome: Outcome,
    /// For each new node, the old node at the same path, if there was one.
    pub paired: Vec<Option<NodeIdx>>,
    /// The instances' nodes that kept their old state: (old number, new number).
    pub kept_instances: Vec<(NodeIdx, NodeIdx)>,
    /// The nodes that run again (all but those that keep their old state), in node order.
    pub rerun: Vec<NodeIdx>,
}

/// What a node being started may reuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reuse {
    /// Its result, its output and its whole subtree: it is done.
    All(NodeIdx),
    /// Its result and its subtree: its mapper runs again.
    Result(NodeIdx),
}

/// What the new snapshot shares with the old run.
#[derive(Debug)]
pub(super) struct Memo<'a> {
    old: &'a [NodeState],
    /// The old run's Maps' instances.
    old_blocks: &'a Blocks,
    paired: Vec<Option<NodeIdx>>,
    /// The node and its subtree are the same, the link's mapper aside.
    same_result: Vec<bool>,
    /// ... and so is the mapper.
    same_link: Vec<bool>,
}

impl Memo<'_> {
    pub(super) fn reuse(
        &self,
        tree: &Tree<'_>,
        idx: NodeIdx,
        input: &Option<String>,
    ) -> Option<Reuse> {
        // An instance's node is judged by its template.
        let i = tree.locate(idx)?.template as usize;
        let old_idx = self.paired(tree, idx)?;
        let old = &self.old[old_idx as usize];
        if !self.same_result[i] || old.input != *input || old.started_at.is_none() {
            return None;
        }
        match old.phase {
            Phase::Complete | Phase::Held if self.same_link[i] => Some(Reuse::All(old_idx)),
            Phase::Complete | Phase::Held | Phase::Received => Some(Reuse::Result(old_idx)),
            Phase::Error if old.fault == Some(super::Fault::Mapper) => Some(Reuse::Result(old_idx)),
            _ => None,
        }
    }

    /// The old node paired with `idx`: at the same path, or, in a Map's instance, at the same
    /// place in the old Map's instance of the same item.
    pub(super) fn paired(&self, tree: &Tree<'_>, idx: NodeIdx) -> Option<NodeIdx> {
        let Some(instance) = tree.locate(idx)?.instance else {
            return *self.paired.get(idx as usize)?;
        };
        let old = self.old_blocks.of_map(self.paired(tree, instance.map)?)?;
        (instance.index < old.count).then(|| old.instance(instance.index) + (idx - instance.first))
    }

    pub(super) fn old(&self, idx: NodeIdx) -> &NodeState {
        &self.old[idx as usize]
    }
}

/// Starts the run again on `new`, with `input`, reusing what `old_states` (on `old`) have.
/// `old_states` are by node number, the old Maps' instances included (a number without a node
/// has the default state).
pub fn redrive_latest(
    old: &Snapshot,
    old_blocks: &Blocks,
    old_states: &[NodeState],
    new: &Snapshot,
    input: Option<String>,
    ctx: &Ctx,
) -> Result<LatestRedrive, MachineError> {
    if old_states.len() < old.len() {
        return Err(MachineError::Invariant {
            node: 0,
            what: format!("{} states for {} nodes", old_states.len(), old.len()),
        });
    }
    let paired = pair(old, new);
    let (same_result, same_link) = compare(old, new, &paired);
    let memo = Memo { old: old_states, old_blocks, paired, same_result, same_link };

    let mut nodes = Nodes::new();
    let next_free = old_states.len().max(new.len()) as NodeIdx;
    for idx in 0..new.len() as NodeIdx {
        if new.in_template(idx) {
            continue;
        }
        let attempt = [Some(idx), memo.paired[idx as usize]]
            .into_iter()
            .flatten()
            .filter_map(|i| old_states.get(i as usize))
            .map(|st| st.attempt)
            .max()
            .unwrap_or(0);
        let next_free = if idx == 0 { next_free } else { 0 };
        let fresh =
            NodeState { attempt, live_from: attempt + 1, next_free, ..NodeState::default() };
        nodes.load(idx, fresh);
    }
    let blocks = Blocks::default();
    let tree = Tree::new(new, &blocks);
    let (outcome, reused) = start_with(&tree, &mut nodes, input, ctx, &memo)?;
    let states = (0..new.len() as NodeIdx)
        .map(|idx| nodes.get(idx).cloned().unwrap_or_default())
        .collect::<Vec<_>>();
    let rerun = (0..new.len() as NodeIdx)
        .filter(|&idx| !reused.contains(&idx) && !new.in_template(idx))
        .collect();
    let mut new_blocks = Blocks::default();
    for new in &outcome.blocks {
        let invariant = |what| MachineError::Invariant { node: new.block.map, what };
        new_blocks.add(new.block).map_err(invariant)?;
    }
    let tree = Tree::new(new, &new_blocks);
    let instances: Vec<(NodeIdx, NodeState)> = new_blocks
        .iter()
        .flat_map(|b| b.nodes())
        .filter_map(|(idx, ..)| Some((idx, nodes.get(idx)?.clone())))
        .collect();
    let kept_instances = instances
        .iter()
        .filter(|(idx, _)| reused.contains(idx))
        .filter_map(|&(idx, _)| Some((memo.paired(&tree, idx)?, idx)))
        .collect();
    Ok(LatestRedrive { states, instances, outcome, paired: memo.paired, kept_instances, rerun })
}

/// Pairs each new node with the old node at the same path.
fn pair(old: &Snapshot, new: &Snapshot) -> Vec<Option<NodeIdx>> {
    let mut paired = vec![None; new.len()];
    paired[0] = Some(0);
    // Pre-order: a parent is paired before its children.
    for (idx, node) in new.nodes().iter().enumerate() {
        let Some(o) = paired[idx] else { continue };
        for (k, &child) in node.children.iter().enumerate() {
            paired[child as usize] = old.node(o).children.get(k).copied();
        }
    }
    paired
}

/// Which new nodes have the same subtree as their pair: without the mapper on their link, and
/// with it.
fn compare(old: &Snapshot, new: &Snapshot, paired: &[Option<NodeIdx>]) -> (Vec<bool>, Vec<bool>) {
    let (mut same_result, mut same_link) = (vec![false; new.len()], vec![false; new.len()]);
    // Children come after their parent in pre-order, so walk backwards.
    for idx in (0..new.len()).rev() {
        let Some(o) = paired[idx] else { continue };
        let (n, o) = (&new.nodes()[idx], old.node(o));
        same_result[idx] = !matches!(n.body, StepBody::Map { .. })
            && n.step_id == o.step_id
            && n.name == o.name
            && n.body == o.body
            && n.children.len() == o.children.len()
            && n.children.iter().all(|&c| same_link[c as usize]);
        same_link[idx] = same_result[idx] && n.mapper == o.mapper;
    }
    (same_result, same_link)
}
