//! The run state machine.
//!
//! [`apply`] takes a run's snapshot, the state of the nodes that one event involves, and the
//! event. It changes those nodes in place and returns the [`Work`] to do next: POSTs to make,
//! scripts to run, reductions to make. The shell (the server, or [`MemoryRun`] in tests) loads
//! the nodes that [`involved`] names, calls [`apply`], writes the changed nodes, and does the
//! work, feeding script results back as events.
//!
//! The work per event is O(depth + the children that the event starts or joins): an event
//! reads its node and that node's ancestors, and nothing else. Nodes that an event starts are
//! `Waiting` by construction and need not be read. A Parallel step counts its children down in
//! `remaining`, so a join needs no sibling's state; only its reducer reads its children's
//! results, through [`Work::Reduce`].
//!
//! Scripts never run inside [`apply`]: a node whose mapper, reducer, Branch function or Map
//! items function is a script waits in `Received`, `Reducing`, `Choosing` or `Listing` until
//! the shell feeds back [`Event::Mapped`], [`Event::Reduced`], [`Event::Chosen`] or
//! [`Event::Listed`], so no script runs while a run's lock or a transaction is held.
//!
//! A Map that starts gets a [`Block`] of node numbers for its instances (see [`crate::tree`]):
//! the event returns it in [`Outcome::blocks`], with each instance's input, for the shell to
//! store the instances. Without `maxConcurrency` they all start with the Map; with it, each
//! instance that finishes starts the next, which is `Waiting` with its input in its row, so
//! the shell loads it too ([`preload`]). A Map counts its instances down in `remaining` like a
//! Parallel step, so the join reads no instance.
//!
//! A Branch ends the children it does not choose, and every node below them, in `Skipped`:
//! those nodes are `Waiting` by construction, so the event writes them without reading them.

mod memory;
mod nodes;
mod redrive_latest;
mod state;
mod transition;

pub use memory::MemoryRun;
pub use nodes::{Nodes, StateChange};
pub use redrive_latest::{redrive_latest, LatestRedrive};
pub use state::{Fault, NodeState, Phase, State};
pub use transition::apply;

use crate::script::ScriptError;
use crate::snapshot::NodeIdx;
use crate::step::StepBody;
use crate::tree::{Block, Tree};

/// What happened to a run.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Start the run with its input.
    Start { input: Option<String> },
    /// The shell is about to POST this attempt (it has recorded the node as executing). Also
    /// sent again, with the same attempt, when a POST whose outcome was never recorded is
    /// re-sent after a crash or an expired lease.
    Dispatched { node: NodeIdx, attempt: u32 },
    /// The node's result: a success callback, or a sync action's 2xx body.
    Result { node: NodeIdx, attempt: u32, result: Option<String> },
    /// A failure callback.
    Failure { node: NodeIdx, attempt: u32, error: String },
    /// The POST failed: a connection error, a timeout, or an answer that is not 2xx.
    PostFailed { node: NodeIdx, attempt: u32, error: String, retry: Retry },
    /// The callback timeout of this attempt passed.
    Timeout { node: NodeIdx, attempt: u32 },
    /// The node's mapper ran ([`Work::Map`]).
    Mapped { node: NodeIdx, outcome: Result<Option<String>, ScriptError> },
    /// The node's reducer ran ([`Work::Reduce`]).
    Reduced { node: NodeIdx, outcome: Result<Option<String>, ScriptError> },
    /// The Branch's function ran ([`Work::Choose`]): the name or index of the child to run, as
    /// text, or `None` for none.
    Chosen { node: NodeIdx, outcome: Result<Option<String>, ScriptError> },
    /// The Map's items function ran ([`Work::List`]): the JSON text of the list.
    Listed { node: NodeIdx, outcome: Result<Option<String>, ScriptError> },
    /// An operator settles an action by hand: its result, or its failure. Every attempt made so
    /// far is superseded, so later callbacks get 409.
    Settle { node: NodeIdx, outcome: Result<Option<String>, String> },
    /// An operator sends an action again now, as a new attempt that supersedes the others and
    /// starts a new round of the retry policy.
    Redispatch { node: NodeIdx },
    /// Cancel the run.
    Cancel,
    /// Resume a failed run from the nodes that failed. `nodes` are all the run's nodes in
    /// phase `Error`, `Held` or `Ready` (whose dispatch was skipped while the run had failed).
    Redrive { nodes: Vec<NodeIdx> },
}

impl Event {
    /// The node that the event is about; `None` for an event of the whole run.
    pub fn node(&self) -> Option<NodeIdx> {
        match self {
            Event::Dispatched { node, .. }
            | Event::Result { node, .. }
            | Event::Failure { node, .. }
            | Event::PostFailed { node, .. }
            | Event::Timeout { node, .. }
            | Event::Mapped { node, .. }
            | Event::Reduced { node, .. }
            | Event::Chosen { node, .. }
            | Event::Listed { node, .. }
            | Event::Settle { node, .. }
            | Event::Redispatch { node } => Some(*node),
            Event::Start { .. } | Event::Cancel | Event::Redrive { .. } => None,
        }
    }
}

/// Whether a failed POST may be tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// A 3xx or a 4xx other than 429: fail at once.
    Never,
    /// A connection error, a timeout, a 5xx or a 429: retry within the policy, after the
    /// given delay (a 429's `Retry-After`) or the policy's backoff.
    After(Option<u64>),
}

/// The answer to an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// Applied.
    Done,
    /// [`Event::Dispatched`]: make the POST.
    Send,
    /// [`Event::Dispatched`]: do not send (the run has stopped, or the node is not due).
    Skip,
    /// A callback for a node whose result is already in (409).
    Repeat,
    /// A callback from an attempt that a callback timeout or a redrive superseded (409).
    Superseded,
    /// A callback for a node that is not waiting for one: cancelled, failed, or not sent (409).
    NotWaiting,
    /// A callback after its attempt's callback deadline (409). The deadline is applied at once.
    Late,
    /// The event no longer applies (a stale POST outcome, timer or script result).
    Ignored,
    /// A run-level event that the run's state does not allow (409).
    Conflict(&'static str),
}

/// What the shell must do after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// POST this attempt of an action, not before `not_before`.
    Dispatch { node: NodeIdx, attempt: u32, not_before: i64 },
    /// Run the node's mapper on its `result`, then feed [`Event::Mapped`].
    Map { node: NodeIdx },
    /// Reduce the node's children's outputs, in child order, with its reducer, then feed
    /// [`Event::Reduced`].
    Reduce { node: NodeIdx },
    /// Run the Branch's function on its input, then feed [`Event::Chosen`].
    Choose { node: NodeIdx },
    /// Run the Map's items function on its input, then feed [`Event::Listed`].
    List { node: NodeIdx },
    /// Make every unfinished node of the run `Cancelled` (the root already is).
    CancelUnfinished,
}

/// How the run as a whole changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunChange {
    Complete {
        result: Option<String>,
    },
    /// The first node failed.
    Error {
        node: NodeIdx,
        error: String,
    },
    Cancelled,
    /// A redrive resumed it.
    Resumed,
}

/// The outcome of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub reply: Reply,
    pub work: Vec<Work>,
    pub run: Option<RunChange>,
    /// The nodes whose state (as users see it) the event changed, in node order.
    pub changes: Vec<StateChange>,
    /// The Maps that started, with their instances' inputs in item order. The instances'
    /// nodes are new: those that started are among the changed nodes, the others `Waiting`
    /// (an instance's first node with its input).
    pub blocks: Vec<NewBlock>,
}

/// A Map's instances, made by an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBlock {
    pub block: Block,
    pub inputs: Vec<Option<String>>,
}

/// What the machine needs from the outside world.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ctx {
    /// Now, in epoch milliseconds.
    pub now: i64,
    /// A uniform draw from `[0, 1)`, for the backoff's jitter.
    pub jitter: f64,
    /// The callback timeout of actions that do not set one (`AETR_CALLBACK_TIMEOUT_SECONDS`).
    pub default_callback_timeout_seconds: Option<u64>,
    /// The most items a Map may have (`AETR_MAX_MAP_ITEMS`).
    pub max_map_items: u32,
}

/// The default of [`Ctx::max_map_items`].
pub const DEFAULT_MAX_MAP_ITEMS: u32 = 100_000;

/// A broken assumption: the shell did not load a node, or the stored state is corrupt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MachineError {
    #[error("node {0} is not in this run's snapshot")]
    NoSuchNode(NodeIdx),
    #[error("node {0} was needed but not loaded")]
    NotLoaded(NodeIdx),
    #[error("node {node}: {what}")]
    Invariant { node: NodeIdx, what: String },
}

/// The nodes whose state [`apply`] needs for `event`: the node and its ancestors (for a run
/// event, the root). [`preload`] names more, once these are loaded.
pub fn involved(tree: &Tree<'_>, event: &Event) -> Result<Vec<NodeIdx>, MachineError> {
    let with_ancestors = |nodes: &[NodeIdx]| -> Result<Vec<NodeIdx>, MachineError> {
        let mut out = Vec::new();
        for &n in nodes {
            if !tree.contains(n) {
                return Err(MachineError::NoSuchNode(n));
            }
            out.push(n);
            out.extend(tree.ancestors(n));
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    };
    match (event, event.node()) {
        (Event::Redrive { nodes }, _) => with_ancestors(&[&[0], &nodes[..]].concat()),
        (_, Some(node)) => with_ancestors(&[node]),
        (_, None) => Ok(vec![0]),
    }
}

/// The nodes that [`apply`] may start besides those [`involved`] names, given the state of
/// those: the next instances of the loaded Maps that have a `maxConcurrency`, which are
/// `Waiting` with their inputs in their rows. Each instance that finishes starts one, and at
/// most `maxConcurrency` are running: `events` events about nodes may finish as many (one
/// each), a redrive as many as run (`u32::MAX`). Those not loaded already are returned.
pub fn preload<'s>(
    tree: &Tree<'_>,
    loaded: impl IntoIterator<Item = (NodeIdx, &'s NodeState)>,
    events: u32,
) -> Vec<NodeIdx> {
    // Until a Map has started, there is no instance to start.
    if tree.blocks().is_empty() {
        return Vec::new();
    }
    let loaded: Vec<(NodeIdx, &NodeState)> = loaded.into_iter().collect();
    let mut more = Vec::new();
    for &(idx, st) in &loaded {
        let Some(node) = tree.locate(idx) else { continue };
        let StepBody::Map { map, .. } = &node.step.body else { continue };
        let (Some(cap), Some(block)) = (map.max_concurrency, tree.blocks().of_map(idx)) else {
            continue;
        };
        let until = st.started.saturating_add(cap.min(events)).min(block.count);
        more.extend((st.started..until).map(|i| block.instance(i)));
    }
    more.retain(|n| loaded.iter().all(|(l, _)| l != n));
    more
}
