//! A run's snapshot: its step tree with reuse expanded, taken when the run starts, so that later
//! edits never change a run in flight.
//!
//! Nodes are numbered in pre-order from 0 (the root). A node's number ([`NodeIdx`]) is stable
//! for the life of the run, and its `position` is its index among its parent's children.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::schema::InputSchema;
use crate::step::{Mapper, StepBody, StepType};

/// A node's number within its run: its place in the snapshot's pre-order.
pub type NodeIdx = u32;

/// One node of a run's tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapNode {
    /// The step this node was made from.
    pub step_id: Uuid,
    pub name: String,
    pub parent: Option<NodeIdx>,
    /// The index among the parent's children (0 for the root).
    pub position: u32,
    /// Levels below the root.
    pub depth: u32,
    /// The mapper on the link from the parent.
    pub mapper: Option<Mapper>,
    #[serde(flatten)]
    pub body: StepBody,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_schema: Option<InputSchema>,
    pub children: Vec<NodeIdx>,
}

impl SnapNode {
    pub fn step_type(&self) -> StepType {
        self.body.step_type()
    }

    /// The mapper's script, if the link to the parent has one.
    pub fn mapper_script(&self) -> Option<&str> {
        self.mapper.as_ref().and_then(Mapper::script)
    }
}

/// A dry run: no action calls anything. Each `api` action completes at once, with the result
/// given for its step's name, or else with its input; each `wait` ends at once; a `manual`
/// action still waits for a person. Scripts run for real.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DryRun {
    /// The result of each `api` action, by its step's name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub results: BTreeMap<String, String>,
}

impl DryRun {
    /// What the `api` action `name` completes with, given its input.
    pub fn result(&self, name: &str, input: Option<String>) -> Option<String> {
        self.results.get(name).cloned().or(input)
    }
}

/// The whole tree of a run. Its nodes are shared by its clones: a run's snapshot is a clone of
/// its tree's, which the server keeps for the next runs (a 100,000-node tree's nodes take
/// about 40 MB).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Stored")]
pub struct Snapshot {
    nodes: Arc<[SnapNode]>,
    /// For each node, the nearest Map above it, if any (see [`Snapshot::map_above`]): derived
    /// from `nodes`, not stored.
    map_above: Arc<[Option<NodeIdx>]>,
    /// Set on a dry run's snapshot, and kept by a redrive on new definitions.
    dry: Option<DryRun>,
}

/// A snapshot as stored, checked as it is read. Written as `steps` (each distinct step once:
/// its id, name, body and input schema) and `tree` (each node: its step's index in `steps`,
/// its parent and the mapper on its link), since a wide tree repeats a few steps many times:
/// a 100,000-node run's snapshot is about 5 MB of JSON this way, not 33. Snapshots stored
/// whole (`nodes`, before this form) are still read.
#[derive(Deserialize)]
struct Stored {
    #[serde(default)]
    nodes: Vec<SnapNode>,
    #[serde(default)]
    steps: Vec<StoredStep>,
    #[serde(default)]
    tree: Vec<StoredNode>,
    #[serde(default)]
    dry: Option<DryRun>,
}

/// A step of a stored snapshot.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredStep {
    step_id: Uuid,
    name: String,
    #[serde(flatten)]
    body: StepBody,
    #[serde(default)]
    input_schema: Option<InputSchema>,
}

/// A node of a stored snapshot, in pre-order: its position among its parent's children, its
/// depth and its children follow from the order.
#[derive(Deserialize)]
struct StoredNode {
    step: u32,
    #[serde(default)]
    parent: Option<NodeIdx>,
    #[serde(default)]
    mapper: Option<Mapper>,
}

/// A snapshot as it is stored, borrowed to be written (see [`Stored`]).
#[derive(Serialize)]
struct ToStore<'a> {
    steps: Vec<StepToStore<'a>>,
    tree: Vec<NodeToStore<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dry: Option<&'a DryRun>,
}

/// A [`StoredStep`], to be written.
#[derive(Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
struct StepToStore<'a> {
    step_id: Uuid,
    name: &'a str,
    #[serde(flatten)]
    body: &'a StepBody,
    #[serde(skip_serializing_if = "Option::is_none")]
    input_schema: Option<&'a InputSchema>,
}

/// A [`StoredNode`], to be written.
#[derive(Serialize)]
struct NodeToStore<'a> {
    step: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent: Option<NodeIdx>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mapper: Option<&'a Mapper>,
}

impl TryFrom<Stored> for Snapshot {
    type Error = String;

    fn try_from(stored: Stored) -> Result<Self, String> {
        let nodes = match stored.tree.is_empty() {
            true => stored.nodes,
            false => expand(stored.steps, stored.tree)?,
        };
        Ok(Snapshot::from_nodes(nodes)?.with_dry(stored.dry))
    }
}

/// The nodes of a snapshot stored as steps and a tree.
fn expand(steps: Vec<StoredStep>, tree: Vec<StoredNode>) -> Result<Vec<SnapNode>, String> {
    let mut nodes: Vec<SnapNode> = Vec::with_capacity(tree.len());
    for (i, node) in tree.into_iter().enumerate() {
        let step = steps.get(node.step as usize).ok_or_else(|| {
            format!("snapshot node {i} names step {} of {}", node.step, steps.len())
        })?;
        let (position, depth) = match node.parent {
            None => (0, 0),
            Some(p) => {
                let parent = nodes
                    .get_mut(p as usize)
                    .ok_or_else(|| format!("snapshot node {i} comes before its parent {p}"))?;
                parent.children.push(i as NodeIdx);
                (parent.children.len() as u32 - 1, parent.depth + 1)
            }
        };
        nodes.push(SnapNode {
            step_id: step.step_id,
            name: step.name.clone(),
            parent: node.parent,
            position,
            depth,
            mapper: node.mapper,
            body: step.body.clone(),
            input_schema: step.input_schema.clone(),
            children: Vec::new(),
        });
    }
    Ok(nodes)
}

impl Serialize for Snapshot {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Nodes of one step share its index: a step's definition is the same in all its nodes
        // (a snapshot is made from one read of the steps). A node that differs all the same
        // gets an index of its own, so that nothing is lost.
        let mut steps: Vec<StepToStore<'_>> = Vec::new();
        let mut first: HashMap<Uuid, u32> = HashMap::new();
        let mut tree = Vec::with_capacity(self.nodes.len());
        for n in self.nodes.iter() {
            let stored = StepToStore {
                step_id: n.step_id,
                name: &n.name,
                body: &n.body,
                input_schema: n.input_schema.as_ref(),
            };
            let step = match first.get(&n.step_id) {
                Some(&i) if steps[i as usize] == stored => i,
                _ => {
                    let i = steps.len() as u32;
                    steps.push(stored);
                    first.entry(n.step_id).or_insert(i);
                    i
                }
            };
            tree.push(NodeToStore { step, parent: n.parent, mapper: n.mapper.as_ref() });
        }
        ToStore { steps, tree, dry: self.dry.as_ref() }.serialize(serializer)
    }
}

impl Snapshot {
    /// Builds a snapshot from nodes in pre-order, checking that they link up.
    pub fn from_nodes(nodes: Vec<SnapNode>) -> Result<Self, String> {
        if nodes.is_empty() {
            return Err("a snapshot has at least its root".into());
        }
        for (i, n) in nodes.iter().enumerate() {
            let parent_ok = match n.parent {
                None => i == 0,
                Some(p) => {
                    (p as usize) < i
                        && nodes[p as usize].children.get(n.position as usize) == Some(&(i as u32))
                }
            };
            if !parent_ok
                || n.children.iter().any(|&c| c as usize <= i || c as usize >= nodes.len())
            {
                return Err(format!(
                    "snapshot node {i} does not link up with its parent and children"
                ));
            }
        }
        // Pre-order: a parent comes before its children.
        let mut map_above: Vec<Option<NodeIdx>> = vec![None; nodes.len()];
        for (i, n) in nodes.iter().enumerate() {
            if let Some(p) = n.parent {
                let is_map = matches!(nodes[p as usize].body, StepBody::Map { .. });
                map_above[i] = if is_map { Some(p) } else { map_above[p as usize] };
            }
        }
        Ok(Snapshot { nodes: nodes.into(), map_above: map_above.into(), dry: None })
    }

    /// The same snapshot, for a dry run (`Some`) or a real one.
    pub fn with_dry(mut self, dry: Option<DryRun>) -> Self {
        self.dry = dry;
        self
    }

    /// Set on a dry run.
    pub fn dry(&self) -> Option<&DryRun> {
        self.dry.as_ref()
    }

    pub fn root(&self) -> &SnapNode {
        &self.nodes[0]
    }

    /// The node numbered `idx`. Panics if there is none: numbers come from this snapshot.
    pub fn node(&self, idx: NodeIdx) -> &SnapNode {
        &self.nodes[idx as usize]
    }

    pub fn get(&self, idx: NodeIdx) -> Option<&SnapNode> {
        self.nodes.get(idx as usize)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn nodes(&self) -> &[SnapNode] {
        &self.nodes
    }

    /// The ancestors of a node, nearest first.
    pub fn ancestors(&self, idx: NodeIdx) -> impl Iterator<Item = NodeIdx> + '_ {
        std::iter::successors(self.node(idx).parent, |&p| self.node(p).parent)
    }

    /// The number of nodes in the subtree of `idx`, itself included: in pre-order, they are
    /// numbered `idx..idx + subtree_len(idx)`.
    pub fn subtree_len(&self, idx: NodeIdx) -> u32 {
        let mut last = idx;
        while let Some(&child) = self.node(last).children.last() {
            last = child;
        }
        last - idx + 1
    }

    /// Whether `idx` is below a Map: a template of the Map's instances, which never runs.
    pub fn in_template(&self, idx: NodeIdx) -> bool {
        self.map_above(idx).is_some()
    }

    /// The nearest Map above `idx`, if any.
    pub fn map_above(&self, idx: NodeIdx) -> Option<NodeIdx> {
        self.map_above[idx as usize]
    }

    /// The number of `Action` leaves.
    pub fn action_count(&self) -> usize {
        self.nodes.iter().filter(|n| n.step_type() == StepType::Action).count()
    }
}
