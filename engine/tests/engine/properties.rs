//! Property tests: random trees, random callback orders, random failures.

use std::collections::{HashMap, HashSet};

use aetr_engine::graph;
use aetr_engine::machine::{Event, MemoryRun, Outcome, Phase, Reply, RunChange, State, Work};
use aetr_engine::script::{ScriptCall, ScriptRunner};
use aetr_engine::step::{Action, ApiAction, ManualAction, MapSpec};
use aetr_engine::{ChildLink, Chooser, Limits, Mapper, NodeIdx, Reducer, Snapshot, Step, StepBody};
use proptest::prelude::*;
use uuid::Uuid;

use crate::support::{ctx, FakeScripts};

#[derive(Debug, Clone)]
enum Script {
    None,
    NoOp,
    Js { throws: bool },
}

/// What a Branch's function returns.
#[derive(Debug, Clone)]
enum Choice {
    /// The k-th child (modulo the count), by its name.
    Name(usize),
    /// The k-th child (modulo the count), by its index.
    Index(usize),
    /// No child.
    Nothing,
    /// A child that is not there.
    Unknown,
    Throws,
}

#[derive(Debug, Clone)]
enum Tree {
    Api,
    NoOp,
    Wait,
    Manual,
    Seq(Vec<(Script, Tree)>),
    Par(Script, Vec<(Script, Tree)>),
    Branch(Choice, Vec<(Script, Tree)>),
    /// A Map whose items function lists this many items (or throws), with a cap or none.
    Map(Option<usize>, Option<u32>, Script, Box<(Script, Tree)>),
}

fn script(throw_weight: u32) -> impl Strategy<Value = Script> {
    prop_oneof![
        3 => Just(Script::None),
        1 => Just(Script::NoOp),
        3 => Just(Script::Js { throws: false }),
        throw_weight => Just(Script::Js { throws: true }),
    ]
}

fn choice(throw_weight: u32) -> impl Strategy<Value = Choice> {
    prop_oneof![
        3 => (0usize..5).prop_map(Choice::Name),
        3 => (0usize..5).prop_map(Choice::Index),
        1 => Just(Choice::Nothing),
        throw_weight => Just(Choice::Unknown),
        throw_weight => Just(Choice::Throws),
    ]
}

fn tree(throw_weight: u32) -> impl Strategy<Value = Tree> {
    let leaf = prop_oneof![
        8 => Just(Tree::Api),
        2 => Just(Tree::NoOp),
        1 => Just(Tree::Wait),
        1 => Just(Tree::Manual),
    ];
    leaf.prop_recursive(4, 48, 5, move |inner| {
        let children = move |inner| prop::collection::vec((script(throw_weight), inner), 0..5);
        prop_oneof![
            children(inner.clone()).prop_map(Tree::Seq),
            (script(throw_weight), children(inner.clone())).prop_map(|(r, c)| Tree::Par(r, c)),
            (choice(throw_weight), children(inner.clone())).prop_map(|(p, c)| Tree::Branch(p, c)),
            (
                prop_oneof![6 => (0usize..5).prop_map(Some), throw_weight => Just(None)],
                proptest::option::of(1u32..3),
                script(throw_weight),
                (script(throw_weight), inner),
            )
                .prop_map(|(n, cap, r, c)| Tree::Map(n, cap, r, Box::new(c))),
        ]
    })
}

/// Stores the tree as steps and expands it into a snapshot.
fn snapshot(t: &Tree) -> Snapshot {
    fn add(t: &Tree, steps: &mut Vec<Step>, n: &mut u32) -> Uuid {
        *n += 1;
        let me = *n;
        let id = Uuid::from_u128(me as u128);
        let src = |s: &Script, kind: &str, n: u32| match s {
            Script::Js { throws: true } => Some(format!("throw-{kind}{n}")),
            Script::Js { throws: false } => Some(format!("{kind}{n}")),
            _ => None,
        };
        let link = |(s, c): &(Script, Tree), steps: &mut Vec<Step>, n: &mut u32| {
            let mapper = match s {
                Script::None => None,
                Script::NoOp => Some(Mapper::NoOp),
                js => Some(Mapper::Js { js: src(js, "m", *n).unwrap_or_default() }),
            };
            ChildLink { id: add(c, steps, n), mapper }
        };
        let (body, children) = match t {
            Tree::Api => (
                StepBody::Action { action: Action::Api(ApiAction::new("http://svc.test/")) },
                vec![],
            ),
            Tree::NoOp => (StepBody::Action { action: Action::NoOp }, vec![]),
            Tree::Wait => (StepBody::Action { action: Action::Wait { seconds: 5 } }, vec![]),
            Tree::Manual => {
                (StepBody::Action { action: Action::Manual(ManualAction::default()) }, vec![])
            }
            Tree::Branch(choice, cs) => {
                let children: Vec<ChildLink> = cs.iter().map(|c| link(c, steps, n)).collect();
                let count = children.len().max(1);
                let js = match choice {
                    // Children are named after their numbers, which are unique in the tree.
                    Choice::Name(_) | Choice::Index(_) | Choice::Nothing if children.is_empty() => {
                        "pick-none".into()
                    }
                    Choice::Name(k) => format!("pick:n{}", children[k % count].id.as_u128()),
                    Choice::Index(k) => format!("pick:{}", k % count),
                    Choice::Nothing => "pick-none".into(),
                    Choice::Unknown => "pick:nobody".into(),
                    Choice::Throws => format!("throw-b{n}"),
                };
                (StepBody::Branch { branch: Chooser::Js { js } }, children)
            }
            Tree::Seq(cs) => (StepBody::Sequential, cs.iter().map(|c| link(c, steps, n)).collect()),
            Tree::Par(r, cs) => {
                let reducer = reducer(r, src(r, "r", *n));
                (StepBody::Parallel { reducer }, cs.iter().map(|c| link(c, steps, n)).collect())
            }
            Tree::Map(items, cap, r, child) => {
                let reducer = match r {
                    Script::None => Reducer::Collect,
                    r => reducer(r, src(r, "r", *n)),
                };
                let items =
                    Some(items.map_or_else(|| format!("throw-i{n}"), |k| format!("items:{k}")));
                let map = MapSpec { items, max_concurrency: *cap };
                (StepBody::Map { map, reducer }, vec![link(child, steps, n)])
            }
        };
        steps.push(Step { id, name: format!("n{me}"), body, input_schema: None, children });
        id
    }
    fn reducer(r: &Script, js: Option<String>) -> Reducer {
        match r {
            Script::None => Reducer::Last,
            Script::NoOp => Reducer::NoOp,
            Script::Js { .. } => Reducer::Js { js: js.unwrap_or_default() },
        }
    }
    let mut steps = Vec::new();
    let root = add(t, &mut steps, &mut 0);
    let steps: HashMap<Uuid, Step> = steps.into_iter().map(|s| (s.id, s)).collect();
    graph::snapshot(root, &steps, &Limits::default()).unwrap()
}

/// What a service answers for a node (its template, in a Map's instance) and input.
fn service(node: NodeIdx, input: Option<&str>) -> String {
    format!("s{node}<{}>", input.unwrap_or("-"))
}

/// What a service answers in a run.
fn answer(run: &MemoryRun, node: NodeIdx) -> String {
    service(run.tree().node(node).template, run.node(node).input.as_deref())
}

/// The result the tree must produce, computed directly: `Err` if a script throws.
fn expected(
    snap: &Snapshot,
    idx: NodeIdx,
    input: Option<String>,
    scripts: &mut FakeScripts,
) -> Result<Option<String>, ()> {
    let node = snap.node(idx);
    let own = match &node.body {
        StepBody::Action { action: Action::Api(_) | Action::Manual(_) } => {
            Some(service(idx, input.as_deref()))
        }
        StepBody::Action { action: Action::NoOp | Action::Wait { .. } } => input,
        StepBody::Branch { branch } => {
            let choice = scripts.call(branch.script(), ScriptCall::Map { data: None });
            match choice.map_err(|_| ())? {
                None => input,
                Some(choice) => {
                    let by_name = node.children.iter().find(|&&c| snap.node(c).name == choice);
                    let by_index = choice.parse::<usize>().ok().and_then(|i| node.children.get(i));
                    let child = *by_name.or(by_index).ok_or(())?;
                    expected(snap, child, input, scripts)?
                }
            }
        }
        StepBody::Sequential => {
            let mut cur = input;
            for &c in &node.children {
                cur = expected(snap, c, cur, scripts)?;
            }
            cur
        }
        StepBody::Parallel { reducer } => {
            let outs: Vec<Option<String>> = node
                .children
                .iter()
                .map(|&c| expected(snap, c, input.clone(), scripts))
                .collect::<Result<_, _>>()?;
            reduce(reducer, &outs, scripts)?
        }
        StepBody::Map { map, reducer } => {
            let js = map.items.as_deref().unwrap_or_default();
            let list = scripts.call(js, ScriptCall::Map { data: input.as_deref() });
            let items: Vec<String> =
                serde_json::from_str(&list.map_err(|_| ())?.unwrap_or_default()).unwrap();
            let outs: Vec<Option<String>> = items
                .into_iter()
                .map(|item| expected(snap, node.children[0], Some(item), scripts))
                .collect::<Result<_, _>>()?;
            reduce(reducer, &outs, scripts)?
        }
    };
    match node.mapper_script() {
        Some(js) => scripts.call(js, ScriptCall::Map { data: own.as_deref() }).map_err(|_| ()),
        None => Ok(own),
    }
}

fn reduce(
    reducer: &Reducer,
    outs: &[Option<String>],
    scripts: &mut FakeScripts,
) -> Result<Option<String>, ()> {
    match reducer {
        Reducer::Js { js } => {
            scripts.call(js, ScriptCall::Reduce { results: outs }).map_err(|_| ())
        }
        builtin => Ok(builtin.apply_builtin(outs).flatten()),
    }
}

/// A deterministic random stream from the test's seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Item {
    Work(Work),
    /// A service that holds this attempt's token.
    Service {
        node: NodeIdx,
        attempt: u32,
    },
    /// The deadline of a `wait` action's attempt passes.
    Timer {
        node: NodeIdx,
        attempt: u32,
    },
    /// A person decides on a `manual` action.
    Person {
        node: NodeIdx,
    },
}

/// Plays the services and the shell in a random order, checking invariants on every event.
struct Driver {
    run: MemoryRun,
    scripts: FakeScripts,
    rng: Rng,
    pending: Vec<Item>,
    dispatched: HashSet<(NodeIdx, u32)>,
    terminal_changes: Vec<RunChange>,
    /// The attempts of `wait` and `manual` actions that have begun waiting.
    armed: HashSet<(NodeIdx, u32)>,
    /// Percent of first attempts whose service reports a failure.
    fail_percent: u64,
}

impl Driver {
    fn new(snap: Snapshot, seed: u64, fail_percent: u64) -> Self {
        Driver {
            run: MemoryRun::new(snap, ctx()),
            scripts: FakeScripts::default(),
            rng: Rng(seed | 1),
            pending: Vec::new(),
            dispatched: HashSet::new(),
            terminal_changes: Vec::new(),
            armed: HashSet::new(),
            fail_percent,
        }
    }

    fn apply(&mut self, event: Event) -> Outcome {
        let (outcome, changed) = self.run.apply(event).unwrap();
        for w in &outcome.work {
            if *w != Work::CancelUnfinished {
                self.pending.push(Item::Work(*w));
            }
        }
        if let Some(change) = &outcome.run {
            if change != &RunChange::Resumed {
                self.terminal_changes.push(change.clone());
            }
        }
        let tree = self.run.tree();
        for idx in changed {
            let st = self.run.node(idx);
            let waits_here = st.phase == Phase::Executing && self.armed.insert((idx, st.attempt));
            match &tree.step(idx).body {
                StepBody::Action { action: Action::Wait { .. } } if waits_here => {
                    self.pending.push(Item::Timer { node: idx, attempt: st.attempt })
                }
                StepBody::Action { action: Action::Manual(_) } if waits_here => {
                    self.pending.push(Item::Person { node: idx })
                }
                _ => {}
            }
            if self.run.node(idx).phase == Phase::Complete {
                for c in tree.children(&tree.node(idx)) {
                    let child = self.run.node(c).phase;
                    assert!(
                        matches!(child, Phase::Complete | Phase::Skipped),
                        "node {idx} completed before its child {c} ({child:?})"
                    );
                }
            }
        }
        self.check_caps();
        outcome
    }

    /// No Map has more instances started and not finished than its `maxConcurrency`.
    fn check_caps(&self) {
        let tree = self.run.tree();
        for idx in self.run.node_numbers() {
            let node = tree.node(idx);
            let Some(cap) = node.step.body.map().and_then(|m| m.max_concurrency) else { continue };
            let running = tree
                .children(&node)
                .into_iter()
                .filter(|&c| {
                    let phase = self.run.node(c).phase;
                    phase != Phase::Waiting && phase != Phase::Held && !phase.state().is_terminal()
                })
                .count();
            assert!(
                running <= cap as usize,
                "Map {idx} runs {running} instances, over its cap {cap}"
            );
        }
    }

    /// Every node of the run, with its state.
    fn states(&self) -> Vec<(NodeIdx, &aetr_engine::machine::NodeState)> {
        self.run.node_numbers().into_iter().map(|i| (i, self.run.node(i))).collect()
    }

    /// Handles pending items in a random order until none is left.
    fn drain(&mut self) {
        while !self.pending.is_empty() {
            self.step_one();
        }
    }

    /// Handles one pending item, picked at random.
    fn step_one(&mut self) {
        let item = self.pending.swap_remove(self.rng.below(self.pending.len()));
        {
            match item {
                Item::Work(Work::Dispatch { node, attempt, .. }) => {
                    if self.apply(Event::Dispatched { node, attempt }).reply == Reply::Send {
                        assert!(
                            self.dispatched.insert((node, attempt)),
                            "node {node} attempt {attempt} sent twice"
                        );
                        self.pending.push(Item::Service { node, attempt });
                    }
                }
                Item::Work(script) => {
                    let event = self.run.run_script(script, &mut self.scripts).unwrap();
                    self.apply(event);
                }
                Item::Timer { node, attempt } => {
                    let reply = self.apply(Event::Timeout { node, attempt }).reply;
                    assert!(matches!(reply, Reply::Done | Reply::Ignored), "{reply:?}");
                }
                Item::Person { node } => {
                    let fails = self.run.node(node).live_from == self.run.node(node).round_from
                        && self.run.node(node).attempt == 1
                        && self.rng.chance(self.fail_percent);
                    let outcome = match fails {
                        true => Err(format!("service {node} refused by hand")),
                        false => Ok(Some(answer(&self.run, node))),
                    };
                    let reply = self.apply(Event::Settle { node, outcome }).reply;
                    assert!(matches!(reply, Reply::Done | Reply::Conflict(_)), "{reply:?}");
                }
                Item::Service { node, attempt } => {
                    let event = if attempt == 1 && self.rng.chance(self.fail_percent) {
                        Event::Failure { node, attempt, error: format!("service {node} failed") }
                    } else {
                        Event::Result { node, attempt, result: Some(answer(&self.run, node)) }
                    };
                    let reply = self.apply(event.clone()).reply;
                    assert!(matches!(reply, Reply::Done | Reply::NotWaiting), "{reply:?}");
                    // Services may repeat a callback: it never changes anything.
                    if self.rng.chance(10) {
                        let before = self.run.nodes().to_vec();
                        let reply = self.apply(event).reply;
                        assert!(matches!(reply, Reply::Repeat | Reply::NotWaiting), "{reply:?}");
                        assert_eq!(self.run.nodes(), &before[..]);
                    }
                }
            }
        }
    }

    fn to_redrive(&self) -> Vec<NodeIdx> {
        self.states()
            .into_iter()
            .filter(|(_, st)| matches!(st.phase, Phase::Error | Phase::Held | Phase::Ready))
            .map(|(i, _)| i)
            .collect()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// Without failures, every order of callbacks gives the same, expected result.
    #[test]
    fn the_result_does_not_depend_on_callback_order(t in tree(0), seed in any::<u64>(), input in proptest::option::of("[a-z]{0,3}")) {
        let snap = snapshot(&t);
        let want = expected(&snap, 0, input.clone(), &mut FakeScripts::default()).unwrap();
        let mut d = Driver::new(snap, seed, 0);
        d.apply(Event::Start { input });
        d.drain();
        prop_assert_eq!(d.run.root().state(), State::Complete);
        prop_assert_eq!(&d.run.root().result, &want);
        prop_assert_eq!(&d.terminal_changes, &vec![RunChange::Complete { result: want }]);
        prop_assert!(d.states().iter().all(|(_, n)| matches!(n.phase, Phase::Complete | Phase::Skipped)), "every node completes or is skipped");
        let tree = d.run.tree();
        for (i, st) in d.states() {
            if st.phase == Phase::Skipped {
                let parent = tree.node(i).parent;
                let skipped_by = parent.map(|p| &tree.step(p).body);
                prop_assert!(parent.map(|p| d.run.node(p).phase) == Some(Phase::Skipped) || matches!(skipped_by, Some(StepBody::Branch { .. })), "node {} skipped, but not by a Branch", i);
            }
        }
    }

    /// With failing services and throwing scripts, a run ends in exactly one terminal state,
    /// and stays there whatever arrives late.
    #[test]
    fn a_run_reaches_exactly_one_terminal_state(t in tree(1), seed in any::<u64>(), fail in 0u64..40) {
        let snap = snapshot(&t);
        let script_fails = expected(&snap, 0, None, &mut FakeScripts::default()).is_err();
        let mut d = Driver::new(snap, seed, fail);
        d.apply(Event::Start { input: None });
        d.drain();
        let root = d.run.root().state();
        prop_assert!(root.is_terminal());
        prop_assert_eq!(d.terminal_changes.len(), 1, "{:?}", d.terminal_changes);
        if script_fails {
            prop_assert_eq!(root, State::Error);
        }
        if root == State::Error {
            let is_error = matches!(d.terminal_changes[0], RunChange::Error { .. });
            prop_assert!(is_error);
            let error = d.run.root().error.clone().unwrap();
            prop_assert!(error.starts_with("service ") || error.starts_with("mapper: ") || error.starts_with("reducer: ") || error.starts_with("branch: ") || error.starts_with("map.items: "), "{}", error);
        }
    }

    /// After failures, redrives resume the run until it completes with the expected result,
    /// and no node is ever dispatched twice in one attempt.
    #[test]
    fn redrive_completes_a_failed_run_with_the_expected_result(t in tree(0), seed in any::<u64>(), fail in 10u64..60) {
        let snap = snapshot(&t);
        let want = expected(&snap, 0, Some("in".into()), &mut FakeScripts::default()).unwrap();
        let mut d = Driver::new(snap, seed, fail);
        d.apply(Event::Start { input: Some("in".into()) });
        d.drain();
        let mut redrives = 0;
        while d.run.root().state() == State::Error {
            redrives += 1;
            prop_assert!(redrives < 100);
            let nodes = d.to_redrive();
            prop_assert_eq!(d.apply(Event::Redrive { nodes }).reply, Reply::Done);
            d.drain();
        }
        prop_assert_eq!(d.run.root().state(), State::Complete);
        prop_assert_eq!(&d.run.root().result, &want);
    }

    /// A cancel at any moment cancels every unfinished node, and nothing happens after it.
    #[test]
    fn cancel_at_any_moment_is_final(t in tree(0), seed in any::<u64>(), steps in 0usize..30) {
        let snap = snapshot(&t);
        let mut d = Driver::new(snap, seed, 0);
        d.apply(Event::Start { input: None });
        for _ in 0..steps {
            if d.pending.is_empty() { break; }
            d.step_one();
        }
        let finished = d.run.root().state().is_terminal();
        let reply = d.apply(Event::Cancel).reply;
        if finished {
            prop_assert!(matches!(reply, Reply::Conflict(_)));
        } else {
            prop_assert_eq!(reply, Reply::Done);
            prop_assert!(d.states().iter().all(|(_, n)| n.state().is_terminal()));
            let dispatched = d.dispatched.len();
            d.drain();
            prop_assert_eq!(d.run.root().state(), State::Cancelled);
            prop_assert_eq!(d.dispatched.len(), dispatched, "nothing is dispatched after a cancel");
        }
        prop_assert_eq!(d.terminal_changes.len(), 1);
    }
}
