//! What a batch of events (or a run's start) asks of the shell, gathered while the engine
//! applies them: the nodes to write and their leases, the attempts to record, and the work to
//! start once the transaction commits.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use aetr_engine::machine::{
    self, Event, MachineError, NodeState, Nodes, Outcome, Reply, RunChange, Work,
};
use aetr_engine::{Action, NodeIdx, Snapshot, StepBody};
use deadpool_postgres::GenericClient;
use tokio::sync::OwnedSemaphorePermit;

use super::{history, Shared};
use crate::store::attempts::{Ended, Status};
use crate::store::events::NewEvent;
use crate::store::nodes::{Stored, Write};

/// The channel that wakes dispatchers (of every server) when work waits in the database.
pub const WORK_CHANNEL: &str = "aetr_work";

/// See [`Plan::notify`].
pub(crate) const NOTIFY_SQL: &str = "SELECT pg_notify($1, '')";

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
    pub sends: Vec<(NodeIdx, u32, OwnedSemaphorePermit)>,
    /// Mappers and reducers to run after the commit.
    pub scripts: Vec<NodeIdx>,
    /// Attempts that are sent (or sent again).
    pub sent: Vec<(NodeIdx, u32)>,
    pub ended: Vec<Ended>,
    /// The run was cancelled: its unfinished nodes are to be made `Cancelled`.
    pub cancel: bool,
    /// Work waits in the database for a dispatcher (it is not due yet, or no slot was free).
    pub deferred: bool,
    /// The run failed at this node (`Some(Some(n))`), or was resumed (`Some(None)`).
    pub failed_node: Option<Option<NodeIdx>>,
    /// What happened, for the run's history.
    pub history: Vec<NewEvent>,
    /// Nodes whose attempts before the given one an operator's action superseded.
    pub superseded: Vec<(NodeIdx, u32)>,
}

impl Plan {
    pub fn new(now: i64) -> Plan {
        Plan {
            now,
            leases: BTreeMap::new(),
            released: BTreeSet::new(),
            sends: Vec::new(),
            scripts: Vec::new(),
            sent: Vec::new(),
            ended: Vec::new(),
            cancel: false,
            deferred: false,
            failed_node: None,
            history: Vec::new(),
            superseded: Vec::new(),
        }
    }

    /// Wakes every server's dispatcher once the transaction commits, if work that one of
    /// `plans` made waits in the database.
    pub async fn notify<'a>(
        plans: impl IntoIterator<Item = &'a Plan>,
        client: &impl GenericClient,
    ) -> anyhow::Result<()> {
        if plans.into_iter().any(|plan| plan.deferred) {
            let statement = client.prepare_cached(NOTIFY_SQL).await?;
            client.execute(&statement, &[&WORK_CHANNEL]).await?;
        }
        Ok(())
    }

    /// Records what an applied event means for attempts, leases and the run. `fenced`: the event
    /// came from the holder of the node's lease, which it gives up unless it keeps working.
    pub fn record(
        &mut self,
        snapshot: &Snapshot,
        event: &Event,
        outcome: &Outcome,
        nodes: &Nodes,
        fenced: bool,
        http_status: Option<u16>,
    ) {
        self.history.extend(history::entry(event, outcome, http_status));
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
                self.take_post(snapshot, *node, *attempt, !fenced);
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
            Event::Timeout { node, attempt } if done => {
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
            Some(RunChange::Error { node, .. }) => self.failed_node = Some(Some(*node)),
            Some(RunChange::Resumed) => self.failed_node = Some(None),
            _ => {}
        }
    }

    /// Takes the work that an event made: a dispatch that is due is made at once if a POST slot
    /// is free (the engine records the node as `Executing`, in this transaction); scripts are
    /// leased to this server and run after the commit.
    pub fn take(
        &mut self,
        shared: &Shared,
        snapshot: &Snapshot,
        nodes: &mut Nodes,
        work: &[Work],
    ) -> Result<(), MachineError> {
        for w in work {
            match *w {
                Work::Dispatch { node, attempt, not_before } => {
                    let permit = (not_before <= self.now && !shared.stopping.is_cancelled())
                        .then(|| shared.permits.clone().try_acquire_owned().ok())
                        .flatten();
                    let Some(permit) = permit else {
                        self.deferred = true;
                        continue;
                    };
                    let ctx = shared.ctx(self.now);
                    let event = Event::Dispatched { node, attempt };
                    let outcome = machine::apply(snapshot, nodes, event.clone(), &ctx)?;
                    self.history.extend(history::entry(&event, &outcome, None));
                    if outcome.reply == Reply::Send {
                        self.take_post(snapshot, node, attempt, true);
                        self.sends.push((node, attempt, permit));
                    }
                }
                Work::Map { node } | Work::Reduce { node } => {
                    self.scripts.push(node);
                    let lease =
                        i64::try_from(shared.scripts.lease().as_millis()).unwrap_or(i64::MAX);
                    self.lease(node, self.now.saturating_add(lease), true);
                }
                Work::CancelUnfinished => self.cancel = true,
            }
        }
        Ok(())
    }

    /// The nodes to write: those the engine changed, and those whose lease ends.
    pub fn writes<'a>(
        &self,
        nodes: &'a Nodes,
        loaded: &'a HashMap<NodeIdx, Stored>,
    ) -> Vec<Write<'a>> {
        let changed: BTreeSet<NodeIdx> = nodes.changed().map(|(idx, _)| idx).collect();
        changed
            .union(&self.released)
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

    /// The lease that a node takes in this plan, if any: its end.
    pub fn lease_until(&self, idx: NodeIdx) -> Option<i64> {
        self.leases.get(&idx).map(|l| l.until)
    }

    /// An attempt is sent: it is recorded, and its node leased for the POST's timeout and a
    /// margin.
    fn take_post(&mut self, snapshot: &Snapshot, node: NodeIdx, attempt: u32, new_holder: bool) {
        let timeout_ms = match &snapshot.node(node).body {
            StepBody::Action { action: Action::Api(api) } => {
                i64::from(api.effective_timeout_seconds()) * 1000
            }
            _ => 0,
        };
        self.sent.push((node, attempt));
        self.lease(node, self.now + timeout_ms + POST_LEASE_MARGIN_MS, new_holder);
    }

    fn lease(&mut self, idx: NodeIdx, until: i64, new_holder: bool) {
        let lease = self.leases.entry(idx).or_insert(Lease { until, new_holder });
        lease.until = until;
        lease.new_holder |= new_holder;
    }
}
