//! Checks over the graph of steps (unknown children, cycles, expanded size and depth) and the
//! expansion of a step tree into a run's [`Snapshot`].
//!
//! Steps are read through [`StepSource`], so that the server can lay the steps of a request
//! over the stored ones it has loaded ([`Overlay`]).

use std::collections::{HashMap, HashSet};

use uuid::Uuid;

use crate::error::FieldError;
use crate::limits::Limits;
use crate::parse::Reference;
use crate::snapshot::{NodeIdx, SnapNode, Snapshot};
use crate::step::{Mapper, Step, StepBody, StepType};

/// Where steps are looked up by id.
pub trait StepSource {
    fn step(&self, id: &Uuid) -> Option<&Step>;
}

impl StepSource for HashMap<Uuid, Step> {
    fn step(&self, id: &Uuid) -> Option<&Step> {
        self.get(id)
    }
}

impl StepSource for [Step] {
    fn step(&self, id: &Uuid) -> Option<&Step> {
        self.iter().find(|s| s.id == *id)
    }
}

/// New definitions (`top`) laid over stored steps (`base`).
#[derive(Debug)]
pub struct Overlay<'a, T: ?Sized, B: ?Sized> {
    pub top: &'a T,
    pub base: &'a B,
}

impl<T: StepSource + ?Sized, B: StepSource + ?Sized> StepSource for Overlay<'_, T, B> {
    fn step(&self, id: &Uuid) -> Option<&Step> {
        self.top.step(id).or_else(|| self.base.step(id))
    }
}

/// A 422 for each reference to a step that does not exist.
pub fn unknown_references(
    references: &[Reference],
    source: &(impl StepSource + ?Sized),
) -> Vec<FieldError> {
    references
        .iter()
        .filter(|r| source.step(&r.id).is_none())
        .map(|r| FieldError::refused(&r.path, format!("no step with id {}", r.id)))
        .collect()
}

/// Checks the tree under `root`: no cycle, no unknown child, and, with reuse expanded, no more
/// nodes or levels than the limits allow.
pub fn check_tree(
    root: Uuid,
    source: &(impl StepSource + ?Sized),
    limits: &Limits,
) -> Result<Shape, FieldError> {
    if let Some(cycle) = find_cycle(root, source) {
        let names: Vec<String> = cycle
            .iter()
            .map(|id| source.step(id).map_or_else(|| id.to_string(), |s| format!("{:?}", s.name)))
            .collect();
        return Err(FieldError::refused(
            "",
            format!("the steps would form a cycle: {}", names.join(" → ")),
        ));
    }
    let shape = measure(root, source)?;
    if shape.nodes > limits.max_nodes {
        let n =
            if shape.nodes == u64::MAX { "too many".to_owned() } else { shape.nodes.to_string() };
        return Err(FieldError::refused(
            "",
            format!(
                "the tree has {n} nodes with reuse expanded, more than the limit of {} (AETR_MAX_NODES)",
                limits.max_nodes
            ),
        ));
    }
    if shape.depth > limits.max_depth {
        return Err(FieldError::refused(
            "",
            format!(
                "the tree is {} levels deep with reuse expanded, more than the limit of {} \
                 (AETR_MAX_DEPTH)",
                shape.depth, limits.max_depth
            ),
        ));
    }
    Ok(shape)
}

/// The size of a tree with reuse expanded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Nodes, saturating at `u64::MAX`.
    pub nodes: u64,
    /// Levels below the root.
    pub depth: u32,
}

/// The step `id`, or a 422 that names it.
fn lookup(source: &(impl StepSource + ?Sized), id: Uuid) -> Result<&Step, FieldError> {
    source.step(&id).ok_or_else(|| FieldError::refused("", format!("no step with id {id}")))
}

/// A cycle reachable from `root`, as the ids along it (the first repeated at the end).
pub fn find_cycle(root: Uuid, source: &(impl StepSource + ?Sized)) -> Option<Vec<Uuid>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        OnPath,
        Done,
    }
    let mut marks: HashMap<Uuid, Mark> = HashMap::new();
    // Each frame: a step, and the index of its next child to visit.
    let mut path: Vec<(Uuid, usize)> = vec![(root, 0)];
    marks.insert(root, Mark::OnPath);
    while let Some((id, next)) = path.last_mut() {
        let children = source.step(id).map_or(&[][..], |s| &s.children[..]);
        let Some(link) = children.get(*next) else {
            marks.insert(*id, Mark::Done);
            path.pop();
            continue;
        };
        *next += 1;
        let child = link.id;
        match marks.get(&child) {
            Some(Mark::Done) => {}
            Some(Mark::OnPath) => {
                let start = path.iter().position(|(p, _)| *p == child).unwrap_or(0);
                let mut cycle: Vec<Uuid> = path[start..].iter().map(|(p, _)| *p).collect();
                cycle.push(child);
                return Some(cycle);
            }
            None => {
                marks.insert(child, Mark::OnPath);
                path.push((child, 0));
            }
        }
    }
    None
}

/// Nodes and depth with reuse expanded, computed once per distinct step. The graph must be
/// acyclic ([`find_cycle`] first).
fn measure(root: Uuid, source: &(impl StepSource + ?Sized)) -> Result<Shape, FieldError> {
    let mut memo: HashMap<Uuid, Shape> = HashMap::new();
    let mut stack: Vec<(Uuid, bool)> = vec![(root, false)];
    while let Some((id, children_done)) = stack.pop() {
        if memo.contains_key(&id) {
            continue;
        }
        let step = lookup(source, id)?;
        if children_done {
            distinct_branch_names(step, source)?;
            if let Some(why) = map_children(&step.body, step.children.len()) {
                return Err(FieldError::invalid("", format!("the Map {:?}: {why}", step.name)));
            }
            let mut shape = Shape { nodes: 1, depth: 0 };
            for link in &step.children {
                let c = memo[&link.id];
                shape.nodes = shape.nodes.saturating_add(c.nodes);
                shape.depth = shape.depth.max(c.depth + 1);
            }
            memo.insert(id, shape);
        } else {
            stack.push((id, true));
            stack.extend(
                step.children.iter().filter(|l| !memo.contains_key(&l.id)).map(|l| (l.id, false)),
            );
        }
    }
    Ok(memo[&root])
}

/// Why a Map with `n` children cannot be saved, if it cannot: it has exactly one.
pub fn map_children(body: &StepBody, n: usize) -> Option<String> {
    (matches!(body, StepBody::Map { .. }) && n != 1)
        .then(|| format!("a Map step has exactly one child; it has {n}"))
}

/// A Branch chooses its child by name, so no two of its children may share one.
fn distinct_branch_names(
    step: &Step,
    source: &(impl StepSource + ?Sized),
) -> Result<(), FieldError> {
    if step.step_type() != StepType::Branch {
        return Ok(());
    }
    let mut seen = HashSet::new();
    for link in &step.children {
        let name = &lookup(source, link.id)?.name;
        if !seen.insert(name) {
            return Err(FieldError::invalid(
                "",
                format!(
                    "the Branch {:?} has two children named {name:?}: a Branch chooses a child \
                     by its name, so its children's names must differ",
                    step.name
                ),
            ));
        }
    }
    Ok(())
}

/// Expands the tree under `root` into a run's snapshot, after [`check_tree`].
pub fn snapshot(
    root: Uuid,
    source: &(impl StepSource + ?Sized),
    limits: &Limits,
) -> Result<Snapshot, FieldError> {
    let shape = check_tree(root, source, limits)?;
    let mut nodes: Vec<SnapNode> = Vec::with_capacity(shape.nodes as usize);
    // Pre-order: (step, parent, position, mapper on the link).
    let mut stack: Vec<(Uuid, Option<NodeIdx>, u32, Option<Mapper>)> = vec![(root, None, 0, None)];
    while let Some((id, parent, position, mapper)) = stack.pop() {
        let step = lookup(source, id)?;
        let idx = nodes.len() as NodeIdx;
        let depth = parent.map_or(0, |p| nodes[p as usize].depth + 1);
        if let Some(p) = parent {
            nodes[p as usize].children.push(idx);
        }
        nodes.push(SnapNode {
            step_id: step.id,
            name: step.name.clone(),
            parent,
            position,
            depth,
            mapper,
            body: step.body.clone(),
            input_schema: step.input_schema.clone(),
            children: Vec::with_capacity(step.children.len()),
        });
        for (i, link) in step.children.iter().enumerate().rev() {
            stack.push((link.id, Some(idx), i as u32, link.mapper.clone()));
        }
    }
    Snapshot::from_nodes(nodes).map_err(|e| FieldError::refused("", e))
}
