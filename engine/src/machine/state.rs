//! The state of one run node.

use serde::{Deserialize, Serialize};

use crate::snapshot::NodeIdx;

/// A node's state as users see it (case-sensitive in the API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum State {
    /// Not yet sent. This includes waiting out a retry backoff.
    Pending,
    /// POSTed and waiting for the callback; for a parent, children in progress.
    Executing,
    Complete,
    Error,
    Cancelled,
    /// A child of a Branch that was not chosen, and the nodes below it.
    Skipped,
}

impl State {
    /// The states of a run: any but `Skipped`, which only a node below a Branch can be in.
    pub const RUN: [State; 5] =
        [State::Pending, State::Executing, State::Complete, State::Error, State::Cancelled];

    pub const ALL: [State; 6] = [
        State::Pending,
        State::Executing,
        State::Complete,
        State::Error,
        State::Cancelled,
        State::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "Pending",
            State::Executing => "Executing",
            State::Complete => "Complete",
            State::Error => "Error",
            State::Cancelled => "Cancelled",
            State::Skipped => "Skipped",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        State::ALL.into_iter().find(|p| p.as_str() == s)
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, State::Complete | State::Error | State::Cancelled | State::Skipped)
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a node is in its life. Finer than [`State`], which it maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Phase {
    /// Not reached yet: it has no input. (Pending)
    Waiting,
    /// An action with its input, due to be sent at `due_at`. (Pending)
    Ready,
    /// An action sent and waiting for its result, or a parent whose children are in progress.
    /// (Executing)
    Executing,
    /// Its own result is in, and its mapper is to run. (Executing)
    Received,
    /// A Parallel step whose children are all done, with its reducer to run. (Executing)
    Reducing,
    /// A Branch with its input, whose function is to choose the child to run. (Executing)
    Choosing,
    /// A Map with its input, whose items function is to list its items. (Executing)
    Listing,
    /// Done, but not yet passed on to its parent because the run had stopped; a redrive
    /// passes it on. (Complete)
    Held,
    /// Done and passed on. (Complete)
    Complete,
    Error,
    Cancelled,
    /// Not chosen by a Branch above it: it never runs. (Skipped)
    Skipped,
}

impl Phase {
    pub const ALL: [Phase; 12] = [
        Phase::Waiting,
        Phase::Ready,
        Phase::Executing,
        Phase::Received,
        Phase::Reducing,
        Phase::Choosing,
        Phase::Listing,
        Phase::Held,
        Phase::Complete,
        Phase::Error,
        Phase::Cancelled,
        Phase::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Waiting => "Waiting",
            Phase::Ready => "Ready",
            Phase::Executing => "Executing",
            Phase::Received => "Received",
            Phase::Reducing => "Reducing",
            Phase::Choosing => "Choosing",
            Phase::Listing => "Listing",
            Phase::Held => "Held",
            Phase::Complete => "Complete",
            Phase::Error => "Error",
            Phase::Cancelled => "Cancelled",
            Phase::Skipped => "Skipped",
        }
    }

    pub fn parse(s: &str) -> Option<Phase> {
        Phase::ALL.into_iter().find(|p| p.as_str() == s)
    }

    pub fn state(self) -> State {
        match self {
            Phase::Waiting | Phase::Ready => State::Pending,
            Phase::Executing
            | Phase::Received
            | Phase::Reducing
            | Phase::Choosing
            | Phase::Listing => State::Executing,
            Phase::Held | Phase::Complete => State::Complete,
            Phase::Error => State::Error,
            Phase::Cancelled => State::Cancelled,
            Phase::Skipped => State::Skipped,
        }
    }

    /// Not done yet: a cancel makes it `Cancelled`.
    pub fn is_unfinished(self) -> bool {
        !self.state().is_terminal()
    }
}

/// Why a node is in `Error`. It says what a redrive runs again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Fault {
    /// The action failed: its POST, its callback, or its callback timeout. Sent again.
    Action,
    /// Its mapper threw. Only the mapper runs again.
    Mapper,
    /// Its reducer threw. Only the reducer runs again.
    Reducer,
    /// Its Branch function threw or chose no child there is. Only the function runs again.
    Branch,
    /// A Map's list of items could not be had: its input is not a list, its items function
    /// threw, or there are too many. The Map starts again.
    Items,
    /// Its input does not match its `inputSchema`. The node starts again with the same input
    /// (a redrive on the latest definitions may bring a new schema).
    Input,
    /// This child failed.
    Child(NodeIdx),
}

/// The dynamic state of one node. Times are epoch milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeState {
    pub phase: Phase,
    pub input: Option<String>,
    /// The node's own result: its callback's body, its reducer's result, or, for a
    /// Sequential step, its last child's mapped result.
    pub result: Option<String>,
    /// The result after the mapper on the link to the parent: what moves on.
    pub output: Option<String>,
    pub error: Option<String>,
    pub fault: Option<Fault>,
    /// The attempt last made (or due), counted from 1. It keeps counting across a redrive.
    pub attempt: u32,
    /// The first attempt of the current round: the retry policy counts from here.
    pub round_from: u32,
    /// The oldest attempt whose callback is still accepted. A POST that failed may still have
    /// reached the service, so a retry keeps earlier attempts live; a callback timeout or a
    /// redrive supersedes them.
    pub live_from: u32,
    /// A Parallel step's children, or a Map's instances, that have not passed on their result
    /// yet.
    pub remaining: u32,
    /// A Map's instances started so far (they start in item order).
    pub started: u32,
    /// The root: the first node number not yet given to a Map's instances (0 before any).
    pub next_free: NodeIdx,
    /// When `Ready`: not to be sent before. When `Executing` (an action): the callback deadline.
    pub due_at: Option<i64>,
    pub started_at: Option<i64>,
    pub completed_at: Option<i64>,
}

impl Default for NodeState {
    fn default() -> Self {
        NodeState {
            phase: Phase::Waiting,
            input: None,
            result: None,
            output: None,
            error: None,
            fault: None,
            attempt: 0,
            round_from: 0,
            live_from: 0,
            remaining: 0,
            started: 0,
            next_free: 0,
            due_at: None,
            started_at: None,
            completed_at: None,
        }
    }
}

impl NodeState {
    pub fn state(&self) -> State {
        self.phase.state()
    }

    /// The attempts made in the current round, the one in flight included: what the retry
    /// policy's `maxAttempts` bounds.
    pub fn tries_this_round(&self) -> u32 {
        self.attempt.saturating_sub(self.round_from) + 1
    }
}
