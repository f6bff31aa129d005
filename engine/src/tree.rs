//! A run's tree: its snapshot, and the instances of its Maps.
//!
//! A Map's one child in the snapshot is a template: it never runs itself. When a Map starts
//! with `count` items, it is given a [`Block`] of `count × size` node numbers, above every
//! number given before (`size` is the number of nodes in the child's subtree). Instance `i` is
//! a copy of that subtree numbered from `base + i × size`, in the same pre-order, so a node of
//! an instance finds its template, parent and children by arithmetic. A Map inside an instance
//! gets a block of its own when it starts. Blocks are only ever added (a redrive on new
//! definitions starts a new snapshot revision, with none).
//!
//! The snapshot's nodes under a Map (the templates) have no state and no rows.

use std::borrow::Cow;
use std::collections::HashMap;

use crate::snapshot::{NodeIdx, SnapNode, Snapshot};
use crate::step::StepBody;

/// The node numbers of one Map's instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    /// The Map node.
    pub map: NodeIdx,
    /// The first node of instance 0.
    pub base: NodeIdx,
    /// Instances (items).
    pub count: u32,
    /// The snapshot node of the Map's child: the template of each instance's first node.
    pub template: NodeIdx,
    /// Nodes per instance.
    pub size: u32,
}

impl Block {
    /// The first node after the block.
    pub fn end(&self) -> u64 {
        u64::from(self.base) + u64::from(self.count) * u64::from(self.size)
    }

    /// The first node of instance `i`.
    pub fn instance(&self, i: u32) -> NodeIdx {
        self.base + i * self.size
    }

    /// Every number of the block, with its instance and its template (the copies of the
    /// templates of Maps inside the instance are numbered too, but are no nodes).
    pub fn nodes(self) -> impl Iterator<Item = (NodeIdx, u32, NodeIdx)> {
        (0..self.count).flat_map(move |i| {
            (0..self.size).map(move |o| (self.instance(i) + o, i, self.template + o))
        })
    }
}

/// The blocks of a run, in the order of their numbers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Blocks {
    by_base: Vec<Block>,
    by_map: HashMap<NodeIdx, usize>,
}

impl Blocks {
    /// Adds a block above the others. Blocks that overlap or come out of order are refused.
    pub fn add(&mut self, block: Block) -> Result<(), String> {
        if self.by_base.last().is_some_and(|last| last.end() > u64::from(block.base)) {
            return Err(format!("the block of Map node {} overlaps another", block.map));
        }
        if self.by_map.insert(block.map, self.by_base.len()).is_some() {
            return Err(format!("Map node {} has two blocks", block.map));
        }
        self.by_base.push(block);
        Ok(())
    }

    /// The first node number after every block (0 if none).
    pub fn end(&self) -> u64 {
        self.by_base.last().map_or(0, Block::end)
    }

    pub fn len(&self) -> usize {
        self.by_base.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_base.is_empty()
    }

    /// The blocks in the order of their numbers.
    pub fn iter(&self) -> impl Iterator<Item = Block> + '_ {
        self.by_base.iter().copied()
    }

    pub fn of_map(&self, map: NodeIdx) -> Option<&Block> {
        self.by_map.get(&map).map(|&i| &self.by_base[i])
    }

    /// The block that holds `idx`.
    fn holding(&self, idx: NodeIdx) -> Option<&Block> {
        let after = self.by_base.partition_point(|b| b.base <= idx);
        let block = self.by_base.get(after.checked_sub(1)?)?;
        (u64::from(idx) < block.end()).then_some(block)
    }
}

/// Where a node of a run is.
#[derive(Debug, Clone, Copy)]
pub struct Located<'a> {
    pub idx: NodeIdx,
    /// Its snapshot node: itself, or, in an instance, its template.
    pub step: &'a SnapNode,
    pub template: NodeIdx,
    pub parent: Option<NodeIdx>,
    /// Its index among its parent's children (an instance's: its item's index).
    pub position: u32,
    pub depth: u32,
    /// The Map's instance that it is in, if any.
    pub instance: Option<Instance>,
}

/// A Map's instance, as seen from one of its nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instance {
    pub map: NodeIdx,
    /// Its item's index.
    pub index: u32,
    /// The number of its first node.
    pub first: NodeIdx,
    /// The snapshot node of its first node: the Map's child.
    pub template: NodeIdx,
}

impl Instance {
    /// The number, in this instance, of a node of the template's subtree.
    fn number(&self, template: NodeIdx) -> NodeIdx {
        self.first + (template - self.template)
    }
}

/// A run's snapshot with its Maps' instances.
#[derive(Debug, Clone)]
pub struct Tree<'a> {
    snapshot: &'a Snapshot,
    blocks: Cow<'a, Blocks>,
}

impl<'a> Tree<'a> {
    pub fn new(snapshot: &'a Snapshot, blocks: &'a Blocks) -> Self {
        Tree { snapshot, blocks: Cow::Borrowed(blocks) }
    }

    pub fn snapshot(&self) -> &'a Snapshot {
        self.snapshot
    }

    pub fn blocks(&self) -> &Blocks {
        &self.blocks
    }

    /// Adds a Map's new block.
    pub fn add(&mut self, block: Block) -> Result<(), String> {
        self.blocks.to_mut().add(block)
    }

    /// The block that a Map starting with `count` items gets at `base`.
    pub fn block_for(&self, map: NodeIdx, base: NodeIdx, count: u32) -> Option<Block> {
        let step = self.locate(map)?;
        let &template = step.step.children.first()?;
        let size = self.snapshot.subtree_len(template);
        Some(Block { map, base, count, template, size })
    }

    /// The first number free for a new block.
    pub fn first_free(&self) -> u64 {
        self.blocks.end().max(self.snapshot.len() as u64)
    }

    /// Whether the run has a node `idx` (a template under a Map has none).
    pub fn contains(&self, idx: NodeIdx) -> bool {
        self.locate(idx).is_some()
    }

    /// Where node `idx` is, or `None` if the run has no such node.
    pub fn locate(&self, idx: NodeIdx) -> Option<Located<'a>> {
        let snapshot: &'a Snapshot = self.snapshot;
        if (idx as usize) < snapshot.len() {
            if snapshot.in_template(idx) {
                return None;
            }
            let step = snapshot.node(idx);
            let (parent, position, depth) = (step.parent, step.position, step.depth);
            return Some(Located {
                idx,
                step,
                template: idx,
                parent,
                position,
                depth,
                instance: None,
            });
        }
        let block = *self.blocks.holding(idx)?;
        let map = self.locate(block.map)?;
        let offset = idx - block.base;
        let (i, o) = (offset / block.size, offset % block.size);
        let instance = Instance {
            map: block.map,
            index: i,
            first: block.instance(i),
            template: block.template,
        };
        let template = block.template + o;
        // A copy of a template of a Map inside the instance has no node either.
        if snapshot.map_above(template) != snapshot.map_above(block.template) {
            return None;
        }
        let step = snapshot.node(template);
        let top = snapshot.node(block.template);
        let (parent, position) = match o {
            0 => (block.map, i),
            _ => (instance.number(step.parent?), step.position),
        };
        let depth = map.depth + 1 + (step.depth - top.depth);
        let instance = Some(instance);
        Some(Located { idx, step, template, parent: Some(parent), position, depth, instance })
    }

    /// The snapshot node of `idx` (its template, in an instance). Panics if there is none.
    pub fn step(&self, idx: NodeIdx) -> &'a SnapNode {
        self.node(idx).step
    }

    /// Where node `idx` is. Panics if there is none: numbers come from this tree.
    pub fn node(&self, idx: NodeIdx) -> Located<'a> {
        self.locate(idx).unwrap_or_else(|| panic!("node {idx} is not in the run's tree"))
    }

    /// Every node of the run, in the order of their numbers.
    pub fn nodes(&self) -> impl Iterator<Item = Located<'a>> + '_ {
        let blocks = self.blocks.iter().flat_map(|b| b.nodes().map(|(idx, ..)| idx));
        (0..self.snapshot.len() as NodeIdx).chain(blocks).filter_map(|idx| self.locate(idx))
    }

    /// How many children a node has in the run (a Map's: its instances, once it started).
    pub fn child_count(&self, at: &Located<'_>) -> u32 {
        match at.step.body {
            StepBody::Map { .. } => self.blocks.of_map(at.idx).map_or(0, |b| b.count),
            _ => at.step.children.len() as u32,
        }
    }

    /// A node's children in the run: a Map's instances (none before it starts), or the copies
    /// of its template's children.
    pub fn children(&self, at: &Located<'_>) -> Vec<NodeIdx> {
        if matches!(at.step.body, StepBody::Map { .. }) {
            return match self.blocks.of_map(at.idx) {
                Some(b) => (0..b.count).map(|i| b.instance(i)).collect(),
                None => Vec::new(),
            };
        }
        match at.instance {
            None => at.step.children.clone(),
            Some(instance) => at.step.children.iter().map(|&c| instance.number(c)).collect(),
        }
    }

    /// The child at `position` among a node's children.
    pub fn child(&self, at: &Located<'_>, position: u32) -> Option<NodeIdx> {
        if matches!(at.step.body, StepBody::Map { .. }) {
            let b = self.blocks.of_map(at.idx)?;
            return (position < b.count).then(|| b.instance(position));
        }
        let &c = at.step.children.get(position as usize)?;
        Some(at.instance.map_or(c, |instance| instance.number(c)))
    }

    /// The ancestors of a node, nearest first.
    pub fn ancestors(&self, idx: NodeIdx) -> impl Iterator<Item = NodeIdx> + '_ {
        std::iter::successors(self.locate(idx).and_then(|n| n.parent), |&p| {
            self.locate(p).and_then(|n| n.parent)
        })
    }
}
