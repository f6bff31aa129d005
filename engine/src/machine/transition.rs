//! The transitions of the run state machine. See the module docs of [`crate::machine`].

use std::collections::BTreeSet;

use super::redrive_latest::{Memo, Reuse};
use super::{
    Ctx, Event, Fault, MachineError, NewBlock, NodeState, Nodes, Outcome, Phase, Reply, Retry,
    RunChange, Work,
};
use crate::schema;
use crate::script::ScriptError;
use crate::snapshot::NodeIdx;
use crate::step::{Action, ApiAction, OnTimeout, Reducer, StepBody};
use crate::tree::Tree;

const ROOT: NodeIdx = 0;

/// Applies one event to the nodes it involves (see [`super::involved`]), in place.
pub fn apply(
    tree: &Tree<'_>,
    nodes: &mut Nodes,
    event: Event,
    ctx: &Ctx,
) -> Result<Outcome, MachineError> {
    let mut m = Machine::new(tree.clone(), nodes, ctx, None);
    let reply = m.event(event)?;
    m.fill_asked()?;
    Ok(m.outcome(reply))
}

/// Starts a run's root with `input`, reusing what `memo` allows: a redrive on new definitions.
/// Also returns the nodes that kept their old state.
pub(super) fn start_with(
    tree: &Tree<'_>,
    nodes: &mut Nodes,
    input: Option<String>,
    ctx: &Ctx,
    memo: &Memo<'_>,
) -> Result<(Outcome, BTreeSet<NodeIdx>), MachineError> {
    let mut m = Machine::new(tree.clone(), nodes, ctx, Some(memo));
    m.activate(ROOT, input)?;
    m.fill_asked()?;
    let reused = std::mem::take(&mut m.reused);
    Ok((m.outcome(Reply::Done), reused))
}

struct Machine<'a, 't> {
    tree: Tree<'t>,
    nodes: &'a mut Nodes,
    ctx: &'a Ctx,
    work: Vec<Work>,
    run: Option<RunChange>,
    /// A redrive on new definitions: what started nodes may reuse.
    memo: Option<&'a Memo<'a>>,
    reused: BTreeSet<NodeIdx>,
    /// The Maps that this event started.
    blocks: Vec<NewBlock>,
    /// The Maps whose instances ended in this event: their next ones are to start.
    to_fill: Vec<NodeIdx>,
}

type Step<T = ()> = Result<T, MachineError>;

impl<'a, 't> Machine<'a, 't> {
    fn new(tree: Tree<'t>, nodes: &'a mut Nodes, ctx: &'a Ctx, memo: Option<&'a Memo<'a>>) -> Self {
        nodes.begin_event();
        let (work, reused, blocks) = (Vec::new(), BTreeSet::new(), Vec::new());
        Machine { tree, nodes, ctx, work, run: None, memo, reused, blocks, to_fill: Vec::new() }
    }

    fn outcome(self, reply: Reply) -> Outcome {
        let changes = self.nodes.state_changes();
        Outcome { reply, work: self.work, run: self.run, changes, blocks: self.blocks }
    }

    fn event(&mut self, event: Event) -> Step<Reply> {
        if let Some(node) = event.node() {
            if !self.tree.contains(node) {
                return Err(MachineError::NoSuchNode(node));
            }
        }
        match event {
            Event::Start { input } => self.start(input),
            Event::Dispatched { node, attempt } => self.dispatched(node, attempt),
            Event::Result { node, attempt, result } => self.callback(node, attempt, Ok(result)),
            Event::Failure { node, attempt, error } => self.callback(node, attempt, Err(error)),
            Event::PostFailed { node, attempt, error, retry } => {
                self.post_failed(node, attempt, error, retry)
            }
            Event::Timeout { node, attempt } => self.timeout(node, attempt),
            Event::Mapped { node, outcome } => self.script_done(node, Phase::Received, outcome),
            Event::Reduced { node, outcome } => self.script_done(node, Phase::Reducing, outcome),
            Event::Chosen { node, outcome } => self.chosen(node, outcome),
            Event::Listed { node, outcome } => self.listed(node, outcome),
            Event::Settle { node, outcome } => self.settle_by_hand(node, outcome),
            Event::Redispatch { node } => self.redispatch(node),
            Event::Cancel => self.cancel(),
            Event::Redrive { nodes } => self.redrive(nodes),
        }
    }

    // ---- run events ----

    fn start(&mut self, input: Option<String>) -> Step<Reply> {
        if self.nodes.read(ROOT)?.phase != Phase::Waiting {
            return Ok(Reply::Conflict("the run has already started"));
        }
        self.activate(ROOT, input)?;
        Ok(Reply::Done)
    }

    fn cancel(&mut self) -> Step<Reply> {
        if self.halted()? {
            return Ok(Reply::Conflict("the run has already finished"));
        }
        let now = self.ctx.now;
        let root = self.nodes.write(ROOT)?;
        root.phase = Phase::Cancelled;
        root.completed_at = Some(now);
        root.due_at = None;
        self.work.push(Work::CancelUnfinished);
        self.run = Some(RunChange::Cancelled);
        Ok(Reply::Done)
    }

    fn redrive(&mut self, mut targets: Vec<NodeIdx>) -> Step<Reply> {
        if self.nodes.read(ROOT)?.phase != Phase::Error {
            return Ok(Reply::Conflict("only a run in Error can be retried"));
        }
        targets.sort_unstable();
        targets.dedup();
        // Reopen the parents that failed because a child did, so that what the children pass
        // on can flow up again.
        for &idx in &targets {
            let st = self.nodes.read(idx)?;
            if st.phase == Phase::Error && matches!(st.fault, Some(Fault::Child(_))) {
                let st = self.nodes.write(idx)?;
                st.phase = Phase::Executing;
                clear_failure(st);
                // A Map runs as many instances again as its cap allows.
                if self.tree.step(idx).body.map().is_some() {
                    self.to_fill.push(idx);
                }
            }
        }
        self.run = Some(RunChange::Resumed);
        for &idx in &targets {
            let st = self.nodes.read(idx)?;
            match (st.phase, st.fault) {
                (Phase::Error, Some(Fault::Action)) => {
                    let next = st.attempt + 1;
                    let st = self.nodes.write(idx)?;
                    clear_failure(st);
                    st.round_from = next;
                    self.begin_attempt(idx, next)?;
                }
                (Phase::Error, Some(Fault::Mapper)) => {
                    let st = self.nodes.write(idx)?;
                    clear_failure(st);
                    st.phase = Phase::Received;
                    self.work.push(Work::Map { node: idx });
                }
                (Phase::Error, Some(Fault::Reducer)) => {
                    let st = self.nodes.write(idx)?;
                    clear_failure(st);
                    st.phase = Phase::Reducing;
                    self.work.push(Work::Reduce { node: idx });
                }
                (Phase::Error, Some(Fault::Branch)) => {
                    let st = self.nodes.write(idx)?;
                    clear_failure(st);
                    st.phase = Phase::Choosing;
                    self.work.push(Work::Choose { node: idx });
                }
                (Phase::Error, Some(Fault::Items | Fault::Input)) => {
                    let st = self.nodes.write(idx)?;
                    clear_failure(st);
                    st.phase = Phase::Waiting;
                    let input = st.input.take();
                    self.activate(idx, input)?;
                }
                (Phase::Ready, _) => {
                    let not_before = st.due_at.unwrap_or(self.ctx.now).max(self.ctx.now);
                    let attempt = st.attempt;
                    self.nodes.write(idx)?.due_at = Some(not_before);
                    self.work.push(Work::Dispatch { node: idx, attempt, not_before });
                }
                (Phase::Held, _) => {
                    self.nodes.write(idx)?.phase = Phase::Complete;
                    self.pass_to_parent(idx)?;
                }
                _ => {}
            }
        }
        Ok(Reply::Done)
    }

    // ---- action events ----

    fn dispatched(&mut self, idx: NodeIdx, attempt: u32) -> Step<Reply> {
        let st = self.nodes.read(idx)?;
        // Only an `api` action is ever sent: a `wait` or `manual` one that a lease's expiry
        // brings here is left to its deadline.
        if !matches!(self.tree.step(idx).body, StepBody::Action { action: Action::Api(_) }) {
            return Ok(Reply::Skip);
        }
        if self.halted()? {
            // A due action of a stopped run is parked: no longer due, so that the dispatcher
            // stops finding it. A redrive makes it due again.
            if st.phase == Phase::Ready && st.due_at.is_some() {
                self.nodes.write(idx)?.due_at = None;
            }
            return Ok(Reply::Skip);
        }
        match st.phase {
            Phase::Ready if st.attempt == attempt => {
                let deadline = self.deadline(idx)?;
                let now = self.ctx.now;
                let st = self.nodes.write(idx)?;
                st.phase = Phase::Executing;
                st.due_at = deadline;
                st.started_at.get_or_insert(now);
                Ok(Reply::Send)
            }
            // The same attempt again, after a crash or an expired lease.
            Phase::Executing if st.attempt == attempt => Ok(Reply::Send),
            _ => Ok(Reply::Skip),
        }
    }

    fn callback(
        &mut self,
        idx: NodeIdx,
        attempt: u32,
        outcome: Result<Option<String>, String>,
    ) -> Step<Reply> {
        let st = self.nodes.read(idx)?;
        if attempt == 0 || attempt > st.attempt {
            return Ok(Reply::NotWaiting);
        }
        if attempt < st.live_from {
            return Ok(Reply::Superseded);
        }
        match st.phase {
            // An attempt that is due but not yet sent has no token out.
            Phase::Ready if attempt == st.attempt => return Ok(Reply::NotWaiting),
            // A retry's backoff may be running while an earlier, live attempt answers.
            Phase::Executing | Phase::Ready => {}
            Phase::Received | Phase::Held | Phase::Complete => return Ok(Reply::Repeat),
            Phase::Error if st.fault == Some(Fault::Mapper) => return Ok(Reply::Repeat),
            _ => return Ok(Reply::NotWaiting),
        }
        if !matches!(self.tree.step(idx).body, StepBody::Action { action: Action::Api(_) }) {
            return Ok(Reply::NotWaiting);
        }
        // The deadline passed before its timer fired: the timeout applies now.
        if st.phase == Phase::Executing
            && attempt == st.attempt
            && st.due_at.is_some_and(|deadline| deadline <= self.ctx.now)
        {
            self.timeout(idx, attempt)?;
            return Ok(Reply::Late);
        }
        self.nodes.write(idx)?.due_at = None;
        match outcome {
            Ok(result) => self.settle(idx, result)?,
            Err(error) => self.fail(idx, error, Fault::Action)?,
        }
        Ok(Reply::Done)
    }

    fn post_failed(
        &mut self,
        idx: NodeIdx,
        attempt: u32,
        error: String,
        retry: Retry,
    ) -> Step<Reply> {
        let st = self.nodes.read(idx)?;
        // Once the callback has arrived, the POST's outcome no longer matters.
        if st.phase != Phase::Executing || st.attempt != attempt {
            return Ok(Reply::Ignored);
        }
        let policy = self.api_action(idx)?.effective_retry();
        let tries = st.tries_this_round();
        match retry {
            Retry::After(hint) if tries < policy.max_attempts => {
                let delay = hint.unwrap_or_else(|| policy.delay_ms(tries, self.ctx.jitter));
                let live_from = st.live_from;
                self.schedule(
                    idx,
                    attempt + 1,
                    live_from,
                    self.ctx.now.saturating_add(delay as i64),
                )?;
            }
            Retry::After(_) if tries > 1 => {
                self.fail(idx, format!("{error} (after {tries} attempts)"), Fault::Action)?
            }
            _ => self.fail(idx, error, Fault::Action)?,
        }
        Ok(Reply::Done)
    }

    fn timeout(&mut self, idx: NodeIdx, attempt: u32) -> Step<Reply> {
        let st = self.nodes.read(idx)?;
        if st.phase != Phase::Executing || st.attempt != attempt {
            return Ok(Reply::Ignored);
        }
        match &self.tree.step(idx).body {
            StepBody::Action { action: Action::Wait { .. } } => {
                let input = st.input.clone();
                self.nodes.write(idx)?.due_at = None;
                self.settle(idx, input)?;
                return Ok(Reply::Done);
            }
            StepBody::Action { action: manual @ Action::Manual(_) } => {
                let secs = manual
                    .callback_timeout_seconds(self.ctx.default_callback_timeout_seconds)
                    .unwrap_or_default();
                self.fail(idx, format!("no decision by hand within {secs} s"), Fault::Action)?;
                return Ok(Reply::Done);
            }
            _ => {}
        }
        let action = self.api_action(idx)?;
        let policy = action.effective_retry();
        let tries = st.tries_this_round();
        if action.effective_on_timeout() == OnTimeout::Retry && tries < policy.max_attempts {
            let due = self.ctx.now.saturating_add(policy.delay_ms(tries, self.ctx.jitter) as i64);
            // The timed-out attempt is superseded: its callback now gets 409.
            self.schedule(idx, attempt + 1, attempt + 1, due)?;
        } else {
            let secs = action
                .callback_timeout_seconds(self.ctx.default_callback_timeout_seconds)
                .unwrap_or_default();
            self.fail(
                idx,
                format!("no callback within {secs} s (attempt {attempt})"),
                Fault::Action,
            )?;
        }
        Ok(Reply::Done)
    }

    // ---- operators' events ----

    fn settle_by_hand(
        &mut self,
        idx: NodeIdx,
        outcome: Result<Option<String>, String>,
    ) -> Step<Reply> {
        if !matches!(
            self.tree.step(idx).body,
            StepBody::Action { action: Action::Api(_) | Action::Manual(_) }
        ) {
            return Ok(Reply::Conflict(
                "only an action that calls a service, or a manual one, can be settled by hand",
            ));
        }
        let st = self.nodes.read(idx)?;
        let settles = match (&outcome, st.phase) {
            (_, Phase::Ready | Phase::Executing) => true,
            // A failed action of a failed run may be completed, for a redrive to pass it on.
            (Ok(_), Phase::Error) => st.fault == Some(Fault::Action),
            _ => false,
        };
        if !settles {
            return Ok(Reply::Conflict(
                "only an action that is Pending or Executing (or, to complete it, failed) can be \
                 settled by hand",
            ));
        }
        let st = self.nodes.write(idx)?;
        if st.phase == Phase::Error {
            // The run stays failed at this node until it is retried.
            st.phase = Phase::Executing;
            clear_failure(st);
        }
        st.live_from = st.attempt + 1;
        st.due_at = None;
        match outcome {
            Ok(result) => self.settle(idx, result)?,
            Err(error) => self.fail(idx, error, Fault::Action)?,
        }
        Ok(Reply::Done)
    }

    fn redispatch(&mut self, idx: NodeIdx) -> Step<Reply> {
        if !matches!(self.tree.step(idx).body, StepBody::Action { action: Action::Api(_) }) {
            return Ok(Reply::Conflict(
                "only an action that calls a service can be dispatched by hand",
            ));
        }
        if self.halted()? {
            return Ok(Reply::Conflict("the run has stopped; retry the run instead"));
        }
        let st = self.nodes.read(idx)?;
        match st.phase {
            // Not sent yet (a retry's backoff): send it now.
            Phase::Ready => {
                let (attempt, live_from) = (st.attempt, st.live_from);
                self.nodes.write(idx)?.round_from = attempt;
                self.schedule(idx, attempt, live_from, self.ctx.now)?;
            }
            Phase::Executing => {
                let next = st.attempt + 1;
                self.nodes.write(idx)?.round_from = next;
                self.schedule(idx, next, next, self.ctx.now)?;
            }
            _ => {
                return Ok(Reply::Conflict(
                    "only an action that is Pending or Executing can be dispatched again",
                ))
            }
        }
        Ok(Reply::Done)
    }

    fn script_done(
        &mut self,
        idx: NodeIdx,
        waiting_in: Phase,
        outcome: Result<Option<String>, ScriptError>,
    ) -> Step<Reply> {
        if self.nodes.read(idx)?.phase != waiting_in {
            return Ok(Reply::Ignored);
        }
        match (waiting_in, outcome) {
            (Phase::Received, Ok(output)) => self.pass_on(idx, output)?,
            (_, Ok(result)) => self.settle(idx, result)?,
            (Phase::Received, Err(e)) => self.fail(idx, format!("mapper: {e}"), Fault::Mapper)?,
            (_, Err(e)) => self.fail(idx, format!("reducer: {e}"), Fault::Reducer)?,
        }
        Ok(Reply::Done)
    }

    /// A Branch's function chose: run that child with the Branch's input and skip the others,
    /// or, for no choice, skip them all and complete with the input.
    fn chosen(
        &mut self,
        idx: NodeIdx,
        outcome: Result<Option<String>, ScriptError>,
    ) -> Step<Reply> {
        let st = self.nodes.read(idx)?;
        if st.phase != Phase::Choosing {
            return Ok(Reply::Ignored);
        }
        let input = st.input.clone();
        let children = self.tree.children(&self.tree.node(idx));
        let choice = match outcome {
            Err(e) => {
                return self.fail(idx, format!("branch: {e}"), Fault::Branch).map(|()| Reply::Done)
            }
            Ok(None) => None,
            Ok(Some(text)) => match pick(&self.tree, &children, &text) {
                Some(child) => Some(child),
                None => {
                    self.fail(idx, format!("branch: no child named {text:?}"), Fault::Branch)?;
                    return Ok(Reply::Done);
                }
            },
        };
        self.nodes.write(idx)?.phase = Phase::Executing;
        for &child in &children {
            if Some(child) != choice {
                self.skip(child)?;
            }
        }
        match choice {
            Some(child) => self.activate(child, input)?,
            None => self.settle(idx, input)?,
        }
        Ok(Reply::Done)
    }

    /// Ends a node that a Branch did not choose, and every node below it, in `Skipped`.
    fn skip(&mut self, idx: NodeIdx) -> Step {
        let now = self.ctx.now;
        let mut below = vec![idx];
        while let Some(n) = below.pop() {
            let st = self.nodes.start(n)?;
            st.phase = Phase::Skipped;
            st.completed_at = Some(now);
            below.extend(self.tree.children(&self.tree.node(n)));
        }
        Ok(())
    }

    /// A Map's items function ran: its instances start on the list it returned.
    fn listed(
        &mut self,
        idx: NodeIdx,
        outcome: Result<Option<String>, ScriptError>,
    ) -> Step<Reply> {
        if self.nodes.read(idx)?.phase != Phase::Listing {
            return Ok(Reply::Ignored);
        }
        let items = match outcome {
            Err(e) => Err(format!("map.items: {e}")),
            Ok(text) => items_of(text.as_deref()).ok_or_else(|| {
                "map.items: the function returned no array (nor the JSON text of one)".to_owned()
            }),
        };
        self.nodes.write(idx)?.phase = Phase::Executing;
        self.start_map(idx, items)?;
        Ok(Reply::Done)
    }

    /// Starts a Map's instances, one per item: all of them, or the first `maxConcurrency`.
    fn start_map(&mut self, idx: NodeIdx, items: Result<Vec<Option<String>>, String>) -> Step {
        let inputs = match items {
            Ok(inputs) if inputs.len() > self.ctx.max_map_items as usize => {
                let (n, max) = (inputs.len(), self.ctx.max_map_items);
                let why =
                    format!("map: {n} items, more than the limit of {max} (AETR_MAX_MAP_ITEMS)");
                return self.fail(idx, why, Fault::Items);
            }
            Ok(inputs) => inputs,
            Err(why) => return self.fail(idx, why, Fault::Items),
        };
        let count = inputs.len() as u32;
        if count == 0 {
            return self.reduce(idx);
        }
        let base = self.tree.first_free().max(u64::from(self.nodes.read(ROOT)?.next_free));
        let invariant = |what: String| MachineError::Invariant { node: idx, what };
        let block = NodeIdx::try_from(base)
            .ok()
            .and_then(|base| self.tree.block_for(idx, base, count))
            .ok_or_else(|| invariant("a Map without its child".into()))?;
        if block.end() > i32::MAX as u64 {
            let why = format!(
                "map: {count} instances of {} nodes would give the run more than {} nodes",
                block.size,
                i32::MAX
            );
            return self.fail(idx, why, Fault::Items);
        }
        self.tree.add(block).map_err(invariant)?;
        self.nodes.write(ROOT)?.next_free = block.end() as NodeIdx;
        let st = self.nodes.write(idx)?;
        (st.remaining, st.started) = (count, 0);
        self.blocks.push(NewBlock { block, inputs });
        self.fill(idx)
    }

    /// The input of instance `i` of a Map that this event started.
    fn new_instance_input(&self, map: NodeIdx, i: u32) -> Step<Option<String>> {
        let new = self.blocks.iter().find(|b| b.block.map == map);
        let input = new.and_then(|b| b.inputs.get(i as usize));
        let block = self.tree.blocks().of_map(map).ok_or(MachineError::NotLoaded(map))?;
        input.cloned().ok_or(MachineError::NotLoaded(block.instance(i)))
    }

    /// Starts a Map's next instances, in item order, while fewer than its `maxConcurrency` run
    /// (all of them, without one). (An instance that ends while the run has stopped is held,
    /// and asks for none until a redrive passes it on.) An instance not started is
    /// `Waiting` with its input: made by this event, or loaded by the shell
    /// ([`super::preload`]). A loop, not a recursion: an instance that ends as it starts only
    /// asks for its Map to be filled again ([`Self::fill_asked`]).
    fn fill(&mut self, map: NodeIdx) -> Step {
        let cap = self.tree.step(map).body.map().and_then(|m| m.max_concurrency);
        let Some(block) = self.tree.blocks().of_map(map).copied() else { return Ok(()) };
        loop {
            let st = self.nodes.read(map)?;
            let running = st.started - (block.count - st.remaining);
            let full = cap.is_some_and(|cap| running >= cap);
            if st.phase != Phase::Executing || st.started >= block.count || full {
                return Ok(());
            }
            let (i, next) = (st.started, block.instance(st.started));
            self.nodes.write(map)?.started += 1;
            let input = match self.nodes.get(next) {
                Some(st) => st.input.clone(),
                // Not stored yet: the Map started in this event.
                None => self.new_instance_input(map, i)?,
            };
            self.activate(next, input)?;
        }
    }

    /// Fills the Maps whose instances ended in this event (see [`Self::fill`]).
    fn fill_asked(&mut self) -> Step {
        while let Some(map) = self.to_fill.pop() {
            self.fill(map)?;
        }
        Ok(())
    }

    // ---- the walk ----

    /// Starts a `Waiting` node with its input, and the nodes below it that start with it.
    fn activate(&mut self, idx: NodeIdx, input: Option<String>) -> Step {
        if let Some(memo) = self.memo {
            if let Some(reuse) = memo.reuse(&self.tree, idx, &input) {
                return self.reuse(memo, idx, reuse);
            }
        }
        let node = self.tree.node(idx);
        let step = node.step;
        let now = self.ctx.now;
        let st = self.nodes.start(idx)?;
        st.phase = Phase::Executing;
        if let Some(schema) = &step.input_schema {
            if let Err(mismatches) = schema.check(input.as_deref()) {
                st.input = input;
                st.started_at = Some(now);
                let error = format!("input: {}", schema::describe(&mismatches));
                return self.fail(idx, error, Fault::Input);
            }
        }
        let dry = self.tree.snapshot().dry();
        let is_api = matches!(step.body, StepBody::Action { action: Action::Api(_) });
        // An action starts executing when it is sent ([`Self::dispatched`]).
        if !is_api || dry.is_some() {
            st.started_at = Some(now);
        }
        match &step.body {
            // A dry run sends nothing, and waits for no timer.
            StepBody::Action { action: Action::Api(_) } if dry.is_some() => {
                st.input = input.clone();
                let result = dry.and_then(|d| d.result(&step.name, input));
                self.settle(idx, result)
            }
            StepBody::Action { action: Action::Wait { .. } } if dry.is_some() => {
                st.input = input.clone();
                self.settle(idx, input)
            }
            StepBody::Action { action: Action::Api(_) | Action::Manual(_) } => {
                st.input = input;
                let next = st.attempt + 1;
                st.round_from = next;
                self.begin_attempt(idx, next)
            }
            StepBody::Action { action: Action::Wait { seconds } } => {
                st.input = input.clone();
                if *seconds == 0 {
                    return self.settle(idx, input);
                }
                let next = st.attempt + 1;
                (st.attempt, st.round_from, st.live_from) = (next, next, next);
                st.due_at = Some(now.saturating_add(i64::from(*seconds) * 1000));
                Ok(())
            }
            StepBody::Action { action: Action::NoOp } => {
                st.input = input.clone();
                self.settle(idx, input)
            }
            StepBody::Branch { .. } => {
                st.input = input;
                st.phase = Phase::Choosing;
                self.work.push(Work::Choose { node: idx });
                Ok(())
            }
            StepBody::Sequential => {
                st.input = input.clone();
                match self.tree.child(&node, 0) {
                    Some(first) => self.activate(first, input),
                    None => self.settle(idx, input),
                }
            }
            StepBody::Parallel { .. } => {
                st.input = input.clone();
                let children = self.tree.children(&node);
                st.remaining = children.len() as u32;
                if children.is_empty() {
                    return self.reduce(idx);
                }
                for child in children {
                    self.activate(child, input.clone())?;
                }
                Ok(())
            }
            StepBody::Map { map, .. } => {
                st.input = input.clone();
                if map.items.is_some() {
                    st.phase = Phase::Listing;
                    self.work.push(Work::List { node: idx });
                    return Ok(());
                }
                let items = items_of(input.as_deref())
                    .ok_or_else(|| "map: the input is not a JSON array".to_owned());
                self.start_map(idx, items)
            }
        }
    }

    /// Starts a node with what it had before a redrive on new definitions: its subtree's states
    /// and its result, and, unless its mapper is to run again, its output.
    fn reuse(&mut self, memo: &Memo<'_>, idx: NodeIdx, reuse: Reuse) -> Step {
        let kept = |tree: &Tree<'_>, new: NodeIdx, st: &NodeState| {
            let old = memo.paired(tree, new).map(|o| memo.old(o).clone()).ok_or_else(|| {
                MachineError::Invariant { node: new, what: "reused without a pair".into() }
            })?;
            let attempt = st.attempt.max(old.attempt);
            Ok::<_, MachineError>(NodeState { attempt, live_from: attempt + 1, ..old })
        };
        let mut below = self.tree.children(&self.tree.node(idx));
        while let Some(d) = below.pop() {
            // An instance's nodes below its first are new: they start from the default state.
            let st = match self.nodes.get(d) {
                Some(_) => self.nodes.write(d)?,
                None => self.nodes.start(d)?,
            };
            *st = kept(&self.tree, d, st)?;
            self.reused.insert(d);
            below.extend(self.tree.children(&self.tree.node(d)));
        }
        let st = self.nodes.start(idx)?;
        *st = kept(&self.tree, idx, st)?;
        match reuse {
            Reuse::All(_) => {
                st.phase = Phase::Complete;
                self.reused.insert(idx);
                match idx {
                    ROOT => self.run = Some(RunChange::Complete { result: st.output.clone() }),
                    _ => self.pass_to_parent(idx)?,
                }
                Ok(())
            }
            Reuse::Result(_) => {
                st.phase = Phase::Executing;
                clear_failure(st);
                st.output = None;
                let result = st.result.clone();
                self.settle(idx, result)
            }
        }
    }

    /// Starts `attempt` of an action now: an `api` one is due to be sent, and a `manual` one
    /// waits for a person until its deadline.
    fn begin_attempt(&mut self, idx: NodeIdx, attempt: u32) -> Step {
        if !matches!(self.tree.step(idx).body, StepBody::Action { action: Action::Manual(_) }) {
            return self.schedule(idx, attempt, attempt, self.ctx.now);
        }
        let deadline = self.deadline(idx)?;
        let now = self.ctx.now;
        let st = self.nodes.write(idx)?;
        st.phase = Phase::Executing;
        (st.attempt, st.live_from) = (attempt, attempt);
        st.due_at = deadline;
        st.started_at.get_or_insert(now);
        Ok(())
    }

    /// When an action that waits for a callback or a decision gives up, if ever.
    fn deadline(&self, idx: NodeIdx) -> Step<Option<i64>> {
        let StepBody::Action { action } = &self.tree.step(idx).body else {
            return Err(MachineError::Invariant { node: idx, what: "not an action".into() });
        };
        let seconds = action.callback_timeout_seconds(self.ctx.default_callback_timeout_seconds);
        let ms = |s: u64| s.saturating_mul(1000).min(i64::MAX as u64) as i64;
        Ok(seconds.map(|s| self.ctx.now.saturating_add(ms(s))))
    }

    /// Makes `attempt` of an action due at `due`.
    fn schedule(&mut self, idx: NodeIdx, attempt: u32, live_from: u32, due: i64) -> Step {
        let st = self.nodes.write(idx)?;
        st.phase = Phase::Ready;
        st.attempt = attempt;
        st.live_from = live_from;
        st.due_at = Some(due);
        self.work.push(Work::Dispatch { node: idx, attempt, not_before: due });
        Ok(())
    }

    /// All of a Parallel step's children have passed on their results.
    fn reduce(&mut self, idx: NodeIdx) -> Step {
        let reducer = self.tree.step(idx).body.reducer();
        self.nodes.write(idx)?.phase = Phase::Reducing;
        match reducer {
            // `no-op` needs no child's result.
            Some(Reducer::NoOp) => self.settle(idx, None),
            _ => {
                self.work.push(Work::Reduce { node: idx });
                Ok(())
            }
        }
    }

    /// The node has its own result: run its mapper, or pass the result on.
    fn settle(&mut self, idx: NodeIdx, result: Option<String>) -> Step {
        let has_script = self.tree.step(idx).mapper_script().is_some();
        let st = self.nodes.write(idx)?;
        st.result = result.clone();
        if has_script {
            st.phase = Phase::Received;
            self.work.push(Work::Map { node: idx });
            Ok(())
        } else {
            self.pass_on(idx, result)
        }
    }

    /// The node's mapped result is ready: the node is done, and its parent moves on, unless
    /// the run has stopped.
    fn pass_on(&mut self, idx: NodeIdx, output: Option<String>) -> Step {
        let halted = idx != ROOT && self.halted()?;
        let now = self.ctx.now;
        let st = self.nodes.write(idx)?;
        st.output = output.clone();
        st.completed_at = Some(now);
        st.due_at = None;
        if halted {
            st.phase = Phase::Held;
            return Ok(());
        }
        st.phase = Phase::Complete;
        if idx == ROOT {
            self.run = Some(RunChange::Complete { result: output });
            return Ok(());
        }
        self.pass_to_parent(idx)
    }

    fn pass_to_parent(&mut self, idx: NodeIdx) -> Step {
        let node = self.tree.node(idx);
        let Some(parent) = node.parent else { return Ok(()) };
        let parent_node = self.tree.node(parent);
        match parent_node.step.body {
            StepBody::Sequential => {
                let output = self.nodes.read(idx)?.output.clone();
                match self.tree.child(&parent_node, node.position + 1) {
                    Some(next) => self.activate(next, output),
                    None => self.settle(parent, output),
                }
            }
            StepBody::Parallel { .. } | StepBody::Map { .. } => {
                let st = self.nodes.write(parent)?;
                st.remaining =
                    st.remaining.checked_sub(1).ok_or_else(|| MachineError::Invariant {
                        node: parent,
                        what: "a child passed on its result after all had".into(),
                    })?;
                if st.remaining == 0 {
                    return self.reduce(parent);
                }
                // A Map's next instance starts once this event's walk is done.
                if matches!(parent_node.step.body, StepBody::Map { .. }) {
                    self.to_fill.push(parent);
                }
                Ok(())
            }
            StepBody::Branch { .. } => {
                let output = self.nodes.read(idx)?.output.clone();
                self.settle(parent, output)
            }
            StepBody::Action { .. } => {
                Err(MachineError::Invariant { node: parent, what: "an action has a child".into() })
            }
        }
    }

    /// The node failed: so do its ancestors and the run, and nothing new starts.
    fn fail(&mut self, idx: NodeIdx, error: String, fault: Fault) -> Step {
        let now = self.ctx.now;
        let was_halted = self.halted()?;
        let st = self.nodes.write(idx)?;
        st.phase = Phase::Error;
        st.error = Some(error.clone());
        st.fault = Some(fault);
        st.completed_at = Some(now);
        st.due_at = None;
        let mut child = idx;
        for ancestor in self.tree.ancestors(idx) {
            let st = self.nodes.write(ancestor)?;
            if st.phase == Phase::Error {
                break;
            }
            st.phase = Phase::Error;
            st.error = Some(error.clone());
            st.fault = Some(Fault::Child(child));
            st.completed_at = Some(now);
            child = ancestor;
        }
        if !was_halted {
            self.run = Some(RunChange::Error { node: idx, error });
        }
        Ok(())
    }

    /// The run has stopped: it failed, was cancelled, or is complete.
    fn halted(&self) -> Step<bool> {
        Ok(self.nodes.read(ROOT)?.phase.state().is_terminal())
    }

    fn api_action(&self, idx: NodeIdx) -> Step<&'t ApiAction> {
        match &self.tree.step(idx).body {
            StepBody::Action { action: Action::Api(a) } => Ok(a),
            _ => Err(MachineError::Invariant { node: idx, what: "not an api action".into() }),
        }
    }
}

fn clear_failure(st: &mut NodeState) {
    st.error = None;
    st.fault = None;
    st.completed_at = None;
}

/// The child that a Branch's function chose: by name, or else by a 0-based index.
fn pick(tree: &Tree<'_>, children: &[NodeIdx], choice: &str) -> Option<NodeIdx> {
    let by_name = children.iter().copied().find(|&c| tree.step(c).name == choice);
    by_name.or_else(|| {
        let index: usize = choice.trim().parse().ok()?;
        children.get(index).copied()
    })
}

/// A Map's items: the inputs of its instances, from the JSON text of a list. A string item is
/// passed on raw, any other as its JSON text. `None` if the text is not a JSON array.
fn items_of(text: Option<&str>) -> Option<Vec<Option<String>>> {
    let items: Vec<serde_json::Value> = serde_json::from_str(text?).ok()?;
    let input = |item: serde_json::Value| match item {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    };
    Some(items.into_iter().map(|item| Some(input(item))).collect())
}
