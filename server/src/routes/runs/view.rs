//! The JSON shapes of runs and their nodes, as design.md gives them, built from stored rows and
//! the run's snapshot.

use std::collections::{BTreeMap, HashMap};

use aetr_engine::machine::Phase;
use aetr_engine::{Action, Chooser, InputSchema, MapSpec, Mapper, NodeIdx, Reducer};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::dispatch::request::{shown_url, trace_id};
use crate::routes::docs::{
    ActionDoc, ActionKindDoc, BranchDoc, MapDoc, MapperDoc, ReducerDoc, StateDoc, StepTypeDoc,
};
use crate::runs::node_id::node_id;
use crate::runs::{Place, RunSnapshot};
use crate::store::attempts::Attempt;
use crate::store::notify;
use crate::store::views::{ChildCount, NodeRow, RunRow};

/// The step a node was made from.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepRef {
    pub id: Uuid,
    pub name: String,
    #[schema(value_type = StepTypeDoc)]
    pub step_type: String,
    /// An Action's action type (`api`, `no-op`, `wait` or `manual`); absent on a run's root in
    /// lists, and on parents.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<ActionKindDoc>)]
    pub action_type: Option<&'static str>,
}

/// What every view of a node shows. Times are epoch milliseconds; `input`, `result` and `error`
/// are the raw text, or null.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeBase {
    pub id: Uuid,
    /// The run's id (which is also its root node's id).
    pub root: Uuid,
    pub parent: Option<Uuid>,
    /// Its index among its parent's children: a Map's instance's is its item's. Absent on a
    /// run's root.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    #[schema(value_type = StateDoc)]
    pub state: &'static str,
    pub input: Option<String>,
    /// The node's own result (before the mapper on its link to its parent).
    pub result: Option<String>,
    pub error: Option<String>,
    pub step_tree: StepRef,
    pub created_at: i64,
    /// When it started: an action when it was first sent.
    pub executed_at: Option<i64>,
    pub completed_at: Option<i64>,
    /// While an action is Executing, when its wait ends: a `wait` action's end, or the
    /// deadline of a callback or of a decision by hand. Absent when there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub due_at: Option<i64>,
}

/// A node of a run's tree.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunNode {
    #[serde(flatten)]
    pub base: NodeBase,
    /// The attempts made at an action, counted across retries and redrives.
    pub attempts: u32,
    pub child_count: usize,
    /// How many of its children are in each state.
    #[schema(value_type = BTreeMap<String, u32>)]
    pub counts: BTreeMap<&'static str, u32>,
    /// Its children, in order; absent where the tree was cut at `depth` (see `childCount`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(no_recursion)]
    pub children: Option<Vec<RunNode>>,
    /// On the root of a failed run: the node whose failure failed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_node: Option<Uuid>,
    /// On the root: the run's W3C trace id (its id's 32 hex digits). Every action POST
    /// carries it in its `traceparent`, with a span of its own for each attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// On the root: the trace in the operator's tracing UI (`AETR_TRACE_URL`, with
    /// `{traceId}` filled in), when one is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_url: Option<String>,
    /// On the root of a run started with `notify`: its webhook's delivery.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notify: Option<NotifyView>,
    /// On the root of a dry run: `true` (no action called anything).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

/// A run's completion webhook, as `GET /runs/{id}` shows it (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct NotifyView {
    /// Where it is POSTed, without the URL's query.
    pub url: String,
    /// Of the latest message: `Pending` until the run ends and while tries go on.
    #[schema(value_type = NotifyStateDoc)]
    pub state: String,
    /// The tries of the latest message so far.
    pub tries: i32,
}

/// A webhook message's delivery.
#[derive(Debug, ToSchema)]
#[schema(as = NotifyState)]
#[allow(dead_code)]
pub enum NotifyStateDoc {
    Pending,
    Delivered,
    Failed,
}

impl From<notify::Status> for NotifyView {
    fn from(s: notify::Status) -> Self {
        NotifyView { url: shown_url(&s.url), state: s.state, tries: s.tries }
    }
}

impl RunNode {
    /// Shows the run's trace on this, its root.
    pub fn with_trace(mut self, run: Uuid, template: Option<&str>) -> RunNode {
        let id = trace_id(run);
        self.trace_url = template.map(|t| t.replace("{traceId}", &id));
        self.trace_id = Some(id);
        self
    }
}

/// One node in full: its attempts, and its snapshot's action, mapper and reducer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeDetail {
    #[serde(flatten)]
    pub base: NodeBase,
    /// The result after the mapper on its link: what it passed on.
    pub output: Option<String>,
    /// Each attempt at an action: when it was sent and how it ended.
    pub attempts: Vec<Attempt>,
    pub child_count: usize,
    #[schema(value_type = BTreeMap<String, u32>)]
    pub counts: BTreeMap<&'static str, u32>,
    #[schema(value_type = Option<ActionDoc>)]
    pub action: Option<Action>,
    /// The mapper on the link from its parent.
    #[schema(value_type = Option<MapperDoc>)]
    pub mapper: Option<Mapper>,
    #[schema(value_type = Option<ReducerDoc>)]
    pub reducer: Option<Reducer>,
    /// A Branch's function.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<BranchDoc>)]
    pub branch: Option<Chooser>,
    /// A Map's options.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<MapDoc>)]
    pub map: Option<MapSpec>,
    /// What the node's input had to match (its snapshot's `inputSchema`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub input_schema: Option<InputSchema>,
}

/// A run in a list: its root node, without its children.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    #[serde(flatten)]
    pub base: NodeBase,
    pub attempts: u32,
    /// Nodes in its tree, with reuse expanded.
    pub node_count: u32,
    /// When it failed: the node whose failure failed it.
    pub failed_node: Option<Uuid>,
    /// The schedule that started it, if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule_id: Option<Uuid>,
    /// A dry run: `true` (no action called anything).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

/// Where a node of a row is (a row the run's snapshot does not place is a bug, shown as an
/// orphan root rather than a 500).
fn place(snap: &RunSnapshot, idx: NodeIdx) -> Place<'_> {
    snap.place(idx).unwrap_or_else(|| {
        tracing::error!(node = idx, "a node row that the run's tree does not have");
        Place { step: snap.snapshot.root(), parent: None, position: 0, depth: 0, child_count: 0 }
    })
}

fn base(run: Uuid, snap: &RunSnapshot, row: &NodeRow, at: &Place<'_>) -> NodeBase {
    let node = at.step;
    NodeBase {
        id: node_id(run, row.idx),
        root: run,
        parent: at.parent.map(|p| node_id(run, p)),
        index: at.parent.map(|_| at.position),
        state: row.phase.state().as_str(),
        input: row.input.clone(),
        result: row.result.clone(),
        error: row.error.clone(),
        step_tree: StepRef {
            id: node.step_id,
            name: node.name.clone(),
            step_type: node.step_type().as_str().to_owned(),
            action_type: node.body.action().map(Action::kind),
        },
        created_at: snap.created_at,
        executed_at: row.started_at,
        completed_at: row.completed_at,
        due_at: due_at(row),
    }
}

/// A node's deadline while it is Executing.
fn due_at(row: &NodeRow) -> Option<i64> {
    row.due_at.filter(|_| row.phase == Phase::Executing)
}

/// Counts of states, per parent.
pub fn counts_by_parent(counts: &[ChildCount]) -> HashMap<NodeIdx, BTreeMap<&'static str, u32>> {
    let mut out: HashMap<NodeIdx, BTreeMap<&'static str, u32>> = HashMap::new();
    for c in counts {
        *out.entry(c.parent).or_default().entry(c.state.as_str()).or_default() += c.count;
    }
    out
}

/// A run's tree from its rows (in idx order), down to `depth` levels. `deeper`: the counts of
/// the children of the nodes at the last level.
pub fn tree(
    run: Uuid,
    snap: &RunSnapshot,
    rows: &[NodeRow],
    depth: Option<u32>,
    deeper: &HashMap<NodeIdx, BTreeMap<&'static str, u32>>,
    failed_node: Option<NodeIdx>,
) -> Option<RunNode> {
    let by_idx: HashMap<NodeIdx, &NodeRow> = rows.iter().map(|r| (r.idx, r)).collect();
    let mut root = build(run, snap, &by_idx, 0, 0, depth, deeper)?;
    root.failed_node = failed_node.map(|n| node_id(run, n));
    Some(root)
}

fn build(
    run: Uuid,
    snap: &RunSnapshot,
    rows: &HashMap<NodeIdx, &NodeRow>,
    idx: NodeIdx,
    level: u32,
    depth: Option<u32>,
    deeper: &HashMap<NodeIdx, BTreeMap<&'static str, u32>>,
) -> Option<RunNode> {
    let row = rows.get(&idx)?;
    let at = place(snap, idx);
    let (children, counts) = if depth.is_none_or(|d| level < d) {
        let children: Vec<RunNode> = snap
            .children(idx)
            .into_iter()
            .filter_map(|c| build(run, snap, rows, c, level + 1, depth, deeper))
            .collect();
        let mut counts = BTreeMap::new();
        for child in &children {
            *counts.entry(child.base.state).or_default() += 1;
        }
        (Some(children), counts)
    } else {
        (None, deeper.get(&idx).cloned().unwrap_or_default())
    };
    Some(RunNode {
        base: base(run, snap, row, &at),
        attempts: row.attempt,
        child_count: at.child_count as usize,
        counts,
        children,
        failed_node: None,
        trace_id: None,
        trace_url: None,
        notify: None,
        dry_run: false,
    })
}

/// A node of a page of children: no children of its own, but their counts.
pub fn leaf(
    run: Uuid,
    snap: &RunSnapshot,
    row: &NodeRow,
    counts: Option<&BTreeMap<&'static str, u32>>,
) -> RunNode {
    let at = place(snap, row.idx);
    RunNode {
        base: base(run, snap, row, &at),
        attempts: row.attempt,
        child_count: at.child_count as usize,
        counts: counts.cloned().unwrap_or_default(),
        children: None,
        failed_node: None,
        trace_id: None,
        trace_url: None,
        notify: None,
        dry_run: false,
    }
}

pub fn detail(
    run: Uuid,
    snap: &RunSnapshot,
    row: NodeRow,
    attempts: Vec<Attempt>,
    counts: BTreeMap<&'static str, u32>,
) -> NodeDetail {
    let at = place(snap, row.idx);
    let node = at.step;
    NodeDetail {
        base: base(run, snap, &row, &at),
        output: row.output,
        attempts,
        child_count: at.child_count as usize,
        counts,
        action: node.body.action().cloned(),
        mapper: node.mapper.clone(),
        reducer: node.body.reducer().cloned(),
        branch: node.body.chooser().cloned(),
        map: node.body.map().cloned(),
        input_schema: node.input_schema.clone(),
    }
}

pub fn summary(row: RunRow) -> RunSummary {
    let run = row.id;
    let due_at = due_at(&row.root);
    RunSummary {
        base: NodeBase {
            id: run,
            root: run,
            parent: None,
            index: None,
            state: row.root.phase.state().as_str(),
            input: row.root.input,
            result: row.root.result,
            error: row.root.error,
            step_tree: StepRef {
                id: row.step_id,
                name: row.step_name,
                step_type: row.step_type,
                action_type: None,
            },
            created_at: row.created_at,
            executed_at: row.root.started_at,
            completed_at: row.root.completed_at,
            due_at,
        },
        attempts: row.root.attempt,
        node_count: row.node_count,
        failed_node: row.failed_node.map(|n| node_id(run, n)),
        schedule_id: row.schedule_id,
        dry_run: row.dry_run,
    }
}
