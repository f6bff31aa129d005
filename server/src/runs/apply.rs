//! Applying events to one run with the engine, and recording in its [`Plan`] what they ask of
//! the shell. Used alike by a batch of events, a start and a redrive on the latest definitions.

use std::borrow::Cow;

use aetr_engine::machine::{self, Event, MachineError, NewBlock, Nodes, Outcome, Reply, Work};
use aetr_engine::{Blocks, Snapshot, Tree};

use super::plan::{pool_of, Plan};
use super::Shared;

/// A run's nodes as the events applied so far left them, and the plan they made.
#[derive(Debug)]
pub(crate) struct Applier<'a> {
    shared: &'a Shared,
    snapshot: &'a Snapshot,
    /// The blocks of the run's Maps' instances: those known, and those the events made.
    blocks: Cow<'a, Blocks>,
    pub state: Nodes,
    pub plan: Plan,
}

impl<'a> Applier<'a> {
    pub fn new(
        shared: &'a Shared,
        snapshot: &'a Snapshot,
        blocks: &'a Blocks,
        state: Nodes,
        now: i64,
    ) -> Self {
        let blocks = Cow::Borrowed(blocks);
        Applier { shared, snapshot, blocks, state, plan: Plan::new(now) }
    }

    /// Applies an event, and records what it means in the plan. `fenced`: the event came from
    /// the holder of the node's lease; `http_status`: that of the POST answer it reports.
    pub fn apply(
        &mut self,
        event: &Event,
        fenced: bool,
        http_status: Option<u16>,
    ) -> Result<Outcome, MachineError> {
        let ctx = self.shared.ctx(self.plan.now);
        let tree = Tree::new(self.snapshot, &self.blocks);
        let mut outcome = machine::apply(&tree, &mut self.state, event.clone(), &ctx)?;
        self.know(&outcome.blocks)?;
        let tree = Tree::new(self.snapshot, &self.blocks);
        self.plan.record(&tree, event, &outcome, &self.state, fenced, http_status);
        self.plan.blocks.append(&mut outcome.blocks);
        Ok(outcome)
    }

    /// Takes the Maps that a start on new definitions started (outside [`Self::apply`]): their
    /// instances are known from now on, and their inputs move to the plan, which writes them.
    pub fn adopt(&mut self, started: &mut Vec<NewBlock>) -> Result<(), MachineError> {
        self.know(started)?;
        self.plan.blocks.append(started);
        Ok(())
    }

    fn know(&mut self, started: &[NewBlock]) -> Result<(), MachineError> {
        for new in started {
            let invariant = |what| MachineError::Invariant { node: new.block.map, what };
            self.blocks.to_mut().add(new.block).map_err(invariant)?;
        }
        Ok(())
    }

    /// The nodes and the plan, and the run's blocks if the events made any (those known, and
    /// the new ones).
    pub fn finish(self) -> (Nodes, Plan, Option<Blocks>) {
        let blocks = match self.blocks {
            Cow::Owned(blocks) => Some(blocks),
            Cow::Borrowed(_) => None,
        };
        (self.state, self.plan, blocks)
    }

    /// Takes the work that an event made: a dispatch that is due is made at once if a POST slot
    /// is free (the engine records the node as `Executing`, in this transaction); scripts are
    /// leased to this server and run after the commit; the rest waits in the database.
    pub fn take(&mut self, work: &[Work]) -> Result<(), MachineError> {
        let now = self.plan.now;
        for w in work {
            match *w {
                Work::Dispatch { node, attempt, not_before } => {
                    let shared = self.shared;
                    // A pooled action waits for a slot of its pool, which only the pools'
                    // claim gives (see `store::pools`).
                    let pooled =
                        pool_of(Tree::new(self.snapshot, &self.blocks).step(node)).is_some();
                    let slot = (not_before <= now && !pooled && !shared.stopping.is_cancelled())
                        .then(|| shared.outbox.try_slot())
                        .flatten();
                    let Some(slot) = slot else {
                        self.plan.deferred = true;
                        continue;
                    };
                    // Recorded as a claimed dispatch is, but made here: a new holder's lease.
                    let outcome = self.apply(&Event::Dispatched { node, attempt }, false, None)?;
                    if outcome.reply == Reply::Send {
                        self.plan.sends.push((node, attempt, slot));
                    }
                }
                Work::Map { node }
                | Work::Reduce { node }
                | Work::Choose { node }
                | Work::List { node } => {
                    self.plan.scripts.push(node);
                    let lease = self.shared.scripts.lease().as_millis();
                    let until = now.saturating_add(i64::try_from(lease).unwrap_or(i64::MAX));
                    self.plan.lease(node, until, true);
                }
                Work::CancelUnfinished => self.plan.cancel = true,
            }
        }
        Ok(())
    }
}
