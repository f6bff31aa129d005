//! What a batch of events (or a run's start, or a redrive) asks of the shell, gathered while
//! the engine applies them (see [`super::apply`]): the nodes to write and their leases, the
//! attempts and history to record, and the work to start once the transaction commits. It
//! holds no connection and calls nothing: [`Plan::changes`] hands its rows to the one write
//! path, [`crate::store::changes`].

use std::collections::{BTreeMap, BTreeSet, HashMap};

use std::borrow::Cow;

use aetr_engine::machine::{
    Event, NewBlock, NodeState, Nodes, Outcome, Reply, RunChange, State, StateChange, Work,
};
use aetr_engine::{Action, NodeIdx, SnapNode, Snapshot, StepBody, Tree};
use uuid::Uuid;

use super::history;
use crate::dispatch::Slot;
use crate::store::attempts::{Ended, Status};
use crate::store::changes::RunChanges;
use crate::store::events::NewEvent;
use crate::store::nodes::{NewNodes, NewRow, Stored, Write};
use crate::store::runs::{FailedNode, StateUpdate};

/// How long a POST's sender holds its node beyond the POST's own timeout, before another
/// server may send the same attempt again.
const POST_LEASE_MARGIN_MS: i64 = 30_000;

/// A lease that a node takes in this batch.
#[derive(Debug, Clone, Copy)]
struct Lease {
    until: i64,
    /// A new holder (this server, for work it starts itself): the epoch grows.
    new_holder: bool,
}

#[derive(Debug)]
pub(crate) struct Plan {
    pub now: i64,
    leases: BTreeMap<NodeIdx, Lease>,
    /// Nodes to write even if unchanged: their reporter's lease ends.
    released: BTreeSet<NodeIdx>,
    /// POSTs to send after the commit, each with its slot.
    pub sends: Vec<(NodeIdx, u32, Slot)>,
    /// When the callbacks that made some of `sends` due arrived (for the metrics).
    pub woken_by: Vec<std::time::Instant>,
    /// Mappers and reducers to run after the commit.
    pub scripts: Vec<NodeIdx>,
    /// Attempts that are sent (or sent again).
    pub sent: Vec<(NodeIdx, u32)>,
    pub ended: Vec<Ended>,
    /// The run was cancelled: its unfinished nodes are to be made `Cancelled`.
    pub cancel: bool,
    /// Work waits in the database for a dispatcher (it is not due yet, or no slot was free).
    pub deferred: bool,
    /// What becomes of the run's failed node.
    pub failed_node: FailedNode,
    /// What happened, for the run's history.
    pub history: Vec<NewEvent>,
    /// Nodes whose attempts before the given one an operator's action superseded.
    pub superseded: Vec<(NodeIdx, u32)>,
    /// The Maps that started: their instances are new rows.
    pub blocks: Vec<NewBlock>,
}

impl Plan {
    pub fn new(now: i64) -> Plan {
        Plan {
            now,
            leases: BTreeMap::new(),
            released: BTreeSet::new(),
            sends: Vec::new(),
            woken_by: Vec::new(),
            scripts: Vec::new(),
            sent: Vec::new(),
            ended: Vec::new(),
            cancel: false,
            deferred: false,
            failed_node: FailedNode::Unchanged,
            history: Vec::new(),
            superseded: Vec::new(),
            blocks: Vec::new(),
        }
    }

    /// Records what an applied event means for attempts, leases and the run. `fenced`: the event
    /// came from the holder of the node's lease, which it gives up unless it keeps working.
    pub fn record(
        &mut self,
        tree: &Tree<'_>,
        event: &Event,
        outcome: &Outcome,
        nodes: &Nodes,
        fenced: bool,
        http_status: Option<u16>,
    ) {
        let calls_a_service = |node: &NodeIdx| {
            matches!(tree.step(*node).body, StepBody::Action { action: Action::Api(_) })
        };
        self.history.extend(history::entry(tree, event, outcome, http_status));
        // A `wait` or `manual` action that begins waiting has a deadline that no dispatcher
        // knows of yet: wake them, so that they sleep until it and no longer.
        let waits = |c: &StateChange| {
            let body = &tree.step(c.node).body;
            let waiting = matches!(
                body,
                StepBody::Action { action: Action::Wait { .. } | Action::Manual(_) }
            );
            waiting && c.to == State::Executing
        };
        // A pooled action that stops Executing frees a slot of its pool, which a node may be
        // waiting for (in any run): wake the dispatchers, whose pools' claim gives it. So does
        // a cancel, which ends the run's nodes after this.
        let frees_a_slot = |c: &StateChange| {
            c.from == State::Executing
                && c.to != State::Executing
                && pool_of(tree.step(c.node)).is_some()
        };
        let cancels = outcome.work.contains(&Work::CancelUnfinished);
        if outcome.changes.iter().any(|c| waits(c) || frees_a_slot(c)) || cancels {
            self.deferred = true;
        }
        let done = outcome.reply == Reply::Done;
        let end = |idx, n, status, error: Option<&str>| Ended {
            idx,
            n,
            status,
            error: error.map(str::to_owned),
            http_status,
            at: self.now,
        };
        match event {
            // A claimed dispatch: the claimer sends it, under the lease it holds.
            Event::Dispatched { node, attempt } if outcome.reply == Reply::Send => {
                self.post(tree, *node, *attempt, !fenced);
            }
            Event::Result { node, attempt, .. } if done => {
                self.ended.push(end(*node, *attempt, Status::Complete, None));
            }
            Event::Failure { node, attempt, error } if done => {
                self.ended.push(end(*node, *attempt, Status::Error, Some(error)));
            }
            Event::PostFailed { node, attempt, error, .. } if done => {
                self.ended.push(end(*node, *attempt, Status::Error, Some(error)));
            }
            // A `wait` or `manual` action's deadline ends no attempt: it sent none.
            Event::Timeout { node, attempt } if done && calls_a_service(node) => {
                let error = "no callback before the deadline";
                self.ended.push(end(*node, *attempt, Status::TimedOut, Some(error)));
            }
            // An operator's action superseded the attempts before the node's live one.
            Event::Settle { node, .. } | Event::Redispatch { node } if done => {
                let live_from = nodes.get(*node).map_or(0, |st| st.live_from);
                self.superseded.push((*node, live_from));
            }
            // A callback after the deadline applied the timeout.
            Event::Result { node, attempt, .. } | Event::Failure { node, attempt, .. }
                if outcome.reply == Reply::Late =>
            {
                let error = "no callback before the deadline";
                self.ended.push(end(*node, *attempt, Status::TimedOut, Some(error)));
            }
            _ => {}
        }
        if fenced {
            if let Some(node) = event.node() {
                self.released.insert(node);
            }
        }
        match &outcome.run {
            Some(RunChange::Error { node, .. }) => self.failed_node = FailedNode::At(*node),
            Some(RunChange::Resumed) => self.failed_node = FailedNode::Cleared,
            _ => {}
        }
    }

    /// The nodes to write: those the engine changed, and those whose lease ends, but for the
    /// new instances of Maps (see [`Self::instances`]).
    pub fn writes<'a>(
        &self,
        nodes: &'a Nodes,
        loaded: &'a HashMap<NodeIdx, Stored>,
    ) -> Vec<Write<'a>> {
        let changed: BTreeSet<NodeIdx> = nodes.changed().map(|(idx, _)| idx).collect();
        let new = |idx: NodeIdx| {
            self.blocks.iter().any(|b| (b.block.base..b.block.end() as NodeIdx).contains(&idx))
        };
        changed
            .union(&self.released)
            .filter(|&&idx| !new(idx))
            .filter_map(|&idx| {
                let state: &NodeState = nodes.get(idx)?;
                let lease = self.leases.get(&idx);
                Some(Write {
                    idx,
                    state,
                    before: loaded.get(&idx).map(|s| &s.state),
                    lease_until: lease.map(|l| l.until),
                    new_holder: lease.is_some_and(|l| l.new_holder),
                })
            })
            .collect()
    }

    /// The new instances of the Maps that started, in their states after the events (those not
    /// started are `Waiting`, the first node of each with its item), at revision `rev`.
    pub fn instances<'a>(
        &'a self,
        run: Uuid,
        tree: &Tree<'a>,
        nodes: &'a Nodes,
        rev: crate::store::nodes::Revision,
    ) -> Option<NewNodes<'a>> {
        if self.blocks.is_empty() {
            return None;
        }
        let mut rows = Vec::new();
        for new in &self.blocks {
            for (idx, i, template) in new.block.nodes() {
                let Some(at) = tree.locate(idx) else { continue };
                let state = match nodes.get(idx) {
                    Some(st) => Cow::Borrowed(st),
                    None if template == new.block.template => {
                        let input = new.inputs.get(i as usize).cloned().flatten();
                        Cow::Owned(NodeState { input, ..NodeState::default() })
                    }
                    None => Cow::Owned(NodeState::default()),
                };
                let (parent, position, depth) = (at.parent, at.position, at.depth);
                let lease_until = self.lease_until(idx);
                let pool = pool_of(tree.step(idx));
                rows.push(NewRow { idx, state, pool, lease_until, parent, position, depth });
            }
        }
        let blocks = self.blocks.iter().map(|b| b.block).collect();
        Some(NewNodes { run, rev, rows, blocks })
    }

    /// Every node of a new run (or of a run's new snapshot) but the Maps' templates, and the
    /// instances of the Maps that its start started, in their states after the start.
    pub fn all_nodes<'a>(
        &'a self,
        run: Uuid,
        tree: &Tree<'a>,
        nodes: &'a Nodes,
        rev: crate::store::nodes::Revision,
    ) -> NewNodes<'a> {
        let snapshot = tree.snapshot();
        let mut rows: Vec<NewRow<'a>> = Vec::with_capacity(snapshot.len());
        for (idx, node) in snapshot.nodes().iter().enumerate() {
            let idx = idx as NodeIdx;
            if snapshot.in_template(idx) {
                continue;
            }
            let state =
                nodes.get(idx).map_or_else(|| Cow::Owned(NodeState::default()), Cow::Borrowed);
            let (parent, position, depth) = (node.parent, node.position, node.depth);
            let lease_until = self.lease_until(idx);
            let pool = pool_of(node);
            rows.push(NewRow { idx, state, pool, lease_until, parent, position, depth });
        }
        let instances = self.instances(run, tree, nodes, rev);
        let (more, blocks) = instances.map(|i| (i.rows, i.blocks)).unwrap_or_default();
        rows.extend(more);
        NewNodes { run, rev, rows, blocks }
    }

    /// The rows that this plan writes for `run`, besides its nodes and the run's own row.
    pub fn changes<'a>(
        &'a self,
        run: Uuid,
        written: Vec<Write<'a>>,
        inserted: Option<NewNodes<'a>>,
        state: Option<StateUpdate>,
    ) -> RunChanges<'a> {
        RunChanges {
            run,
            written,
            inserted,
            moved: None,
            superseded: &self.superseded,
            sent: &self.sent,
            ended: &self.ended,
            history: &self.history,
            state,
            cancel: self.cancel,
        }
    }

    /// The run's new state, if the batch changed its root's.
    pub fn run_state(&self, run: Uuid, snapshot: &Snapshot, nodes: &Nodes) -> Option<StateUpdate> {
        let root = nodes.changed().any(|(idx, _)| idx == 0).then(|| nodes.get(0))??;
        Some(StateUpdate {
            id: run,
            state: root.state(),
            failed_node: self.failed_node,
            completed_at: root.completed_at,
            dry: snapshot.dry().is_some(),
        })
    }

    /// The lease that a node takes in this plan, if any: its end.
    pub fn lease_until(&self, idx: NodeIdx) -> Option<i64> {
        self.leases.get(&idx).map(|l| l.until)
    }

    /// An attempt is sent: it is recorded, and its node leased for the POST's timeout and a
    /// margin.
    fn post(&mut self, tree: &Tree<'_>, node: NodeIdx, attempt: u32, new_holder: bool) {
        let timeout_ms = match &tree.step(node).body {
            StepBody::Action { action: Action::Api(api) } => {
                i64::from(api.effective_timeout_seconds()) * 1000
            }
            _ => 0,
        };
        self.sent.push((node, attempt));
        self.lease(node, self.now + timeout_ms + POST_LEASE_MARGIN_MS, new_holder);
    }

    /// A node is leased until `until`; `new_holder`: by a new holder, so its epoch grows.
    pub fn lease(&mut self, idx: NodeIdx, until: i64, new_holder: bool) {
        let lease = self.leases.entry(idx).or_insert(Lease { until, new_holder });
        lease.until = until;
        lease.new_holder |= new_holder;
    }
}

/// The pool that a node's attempts take a slot of, if it names one.
pub fn pool_of(node: &SnapNode) -> Option<&str> {
    match &node.body {
        StepBody::Action { action: Action::Api(api) } => api.pool.as_deref(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use aetr_engine::machine::Retry;

    use super::*;
    use crate::runs::testing::{idx, two_actions};
    use aetr_engine::Blocks;

    const NOW: i64 = 1_000_000;

    fn outcome(reply: Reply) -> Outcome {
        Outcome { reply, work: Vec::new(), run: None, changes: Vec::new(), blocks: Vec::new() }
    }

    /// `nodes` loaded (unchanged) in their default state, as a batch finds them.
    fn loaded(nodes: &[NodeIdx]) -> (Nodes, HashMap<NodeIdx, Stored>) {
        let mut state = Nodes::new();
        let mut stored = HashMap::new();
        for &idx in nodes {
            state.load(idx, NodeState::default());
            stored.insert(idx, Stored { idx, state: NodeState::default(), epoch: 3, rev: 0 });
        }
        (state, stored)
    }

    #[test]
    fn a_fenced_report_ends_its_reporters_lease_even_when_nothing_else_changed() {
        let snapshot = two_actions();
        let blocks = Blocks::default();
        let tree = Tree::new(&snapshot, &blocks);
        let a = idx(&snapshot, "a");
        let (nodes, stored) = loaded(&[0, a]);
        let mut plan = Plan::new(NOW);
        let failed =
            Event::PostFailed { node: a, attempt: 1, error: "x".into(), retry: Retry::Never };
        plan.record(&tree, &failed, &outcome(Reply::Ignored), &nodes, true, Some(503));
        let writes = plan.writes(&nodes, &stored);
        assert_eq!(writes.len(), 1, "{writes:?}");
        let w = &writes[0];
        assert_eq!((w.idx, w.lease_until, w.new_holder), (a, None, false));
        assert!(w.before.is_some(), "a node that was loaded is not a fresh start");

        let mut unfenced = Plan::new(NOW);
        unfenced.record(&tree, &failed, &outcome(Reply::Ignored), &nodes, false, None);
        assert!(unfenced.writes(&nodes, &stored).is_empty(), "no lease to end: nothing to write");
    }

    #[test]
    fn a_claimed_dispatch_keeps_its_claimers_lease_and_one_made_here_takes_a_new_one() {
        let snapshot = two_actions();
        let blocks = Blocks::default();
        let tree = Tree::new(&snapshot, &blocks);
        let b = idx(&snapshot, "b");
        let (nodes, stored) = loaded(&[0, b]);
        let dispatched = Event::Dispatched { node: b, attempt: 2 };

        let mut claimed = Plan::new(NOW);
        claimed.record(&tree, &dispatched, &outcome(Reply::Send), &nodes, true, None);
        assert_eq!(claimed.sent, [(b, 2)]);
        let until = NOW + 10_000 + POST_LEASE_MARGIN_MS;
        assert_eq!(claimed.lease_until(b), Some(until), "b's timeout and the margin");
        let w = &claimed.writes(&nodes, &stored)[0];
        assert_eq!((w.lease_until, w.new_holder), (Some(until), false), "the epoch stays");

        let mut own = Plan::new(NOW);
        own.post(&tree, b, 2, true);
        own.lease(b, NOW + 5, false);
        assert_eq!(own.lease_until(b), Some(NOW + 5), "the latest end counts");
        assert!(own.leases[&b].new_holder, "a new holder stays one: its epoch grows");
    }

    #[test]
    fn a_run_change_records_its_failed_node_and_a_redrive_clears_it() {
        let snapshot = two_actions();
        let blocks = Blocks::default();
        let tree = Tree::new(&snapshot, &blocks);
        let (nodes, _) = loaded(&[0]);
        let mut plan = Plan::new(NOW);
        assert_eq!(plan.failed_node, FailedNode::Unchanged);
        let error = RunChange::Error { node: 2, error: "x".into() };
        let failed = Outcome { run: Some(error), ..outcome(Reply::Done) };
        plan.record(&tree, &Event::Cancel, &failed, &nodes, false, None);
        assert_eq!(plan.failed_node, FailedNode::At(2));
        let resumed = Outcome { run: Some(RunChange::Resumed), ..outcome(Reply::Done) };
        plan.record(&tree, &Event::Cancel, &resumed, &nodes, false, None);
        assert_eq!(plan.failed_node, FailedNode::Cleared);
    }
}
