//! Helpers: trees from JSON, a deterministic script runner, and a driver that plays services.

use std::collections::HashMap;

use aetr_engine::graph;
use aetr_engine::machine::{Ctx, Event, MemoryRun, Outcome, Reply, Work};
use aetr_engine::parse::{AnyPool, AnyUrl, Parser};
use aetr_engine::script::{BoaRunner, ScriptCall, ScriptError, ScriptRunner};
use aetr_engine::{Limits, NodeIdx, Snapshot, Step};
use serde_json::{json, Value};
use uuid::Uuid;

pub const NOW: i64 = 1_000_000;

pub fn ctx() -> Ctx {
    Ctx {
        now: NOW,
        jitter: 0.5,
        default_callback_timeout_seconds: Some(60),
        max_map_items: aetr_engine::machine::DEFAULT_MAX_MAP_ITEMS,
    }
}

/// Ids 1, 2, 3... so that tests are repeatable.
pub fn counter_ids() -> impl FnMut() -> Uuid {
    let mut n = 0u128;
    move || {
        n += 1;
        Uuid::from_u128(n)
    }
}

pub fn api(name: &str) -> Value {
    json!({"name": name, "stepType": "Action", "action": {"type": "api", "url": format!("http://svc.test/{name}")}})
}

pub fn noop(name: &str) -> Value {
    json!({"name": name, "stepType": "Action", "action": {"type": "no-op"}})
}

pub fn seq(name: &str, children: Vec<Value>) -> Value {
    json!({"name": name, "stepType": "Sequential", "children": children})
}

pub fn par(name: &str, children: Vec<Value>) -> Value {
    json!({"name": name, "stepType": "Parallel", "children": children})
}

pub fn with_reducer(mut step: Value, js: &str) -> Value {
    step["reducer"] = json!({"type": "js", "js": js});
    step
}

pub fn with_mapper(mut step: Value, js: &str) -> Value {
    step["mapper"] = json!({"type": "js", "js": js});
    step
}

/// Parses a fat tree with the boa runner's compile check and expands it into a snapshot.
pub fn snapshot_of(tree: &Value) -> Snapshot {
    let mut scripts = BoaRunner::default();
    let mut ids = counter_ids();
    let limits = Limits::default();
    let fat = Parser {
        limits: &limits,
        scripts: &mut scripts,
        new_id: &mut ids,
        urls: &AnyUrl,
        pools: &AnyPool,
    }
    .fat_tree(tree)
    .unwrap();
    let steps: HashMap<Uuid, Step> = fat.steps.into_iter().map(|s| (s.id, s)).collect();
    graph::snapshot(fat.root, &steps, &limits).unwrap()
}

pub fn idx_of(snap: &Snapshot, name: &str) -> NodeIdx {
    let found: Vec<usize> = (0..snap.len()).filter(|&i| snap.nodes()[i].name == name).collect();
    assert_eq!(found.len(), 1, "exactly one node named {name}");
    found[0] as NodeIdx
}

/// A run in memory, with a boa runner for its scripts and a log of the work it was given.
pub struct Harness {
    pub run: MemoryRun,
    pub scripts: BoaRunner,
    /// Dispatches not yet made, in the order they were asked for.
    pub dispatches: Vec<(NodeIdx, u32, i64)>,
    pub last: Option<Outcome>,
}

impl Harness {
    pub fn new(tree: &Value) -> Self {
        Self::of(snapshot_of(tree))
    }

    /// A dry run of `tree` (see [`aetr_engine::DryRun`]).
    pub fn dry(tree: &Value, dry: aetr_engine::DryRun) -> Self {
        Self::of(snapshot_of(tree).with_dry(Some(dry)))
    }

    fn of(snapshot: Snapshot) -> Self {
        Harness {
            run: MemoryRun::new(snapshot, ctx()),
            scripts: BoaRunner::default(),
            dispatches: vec![],
            last: None,
        }
    }

    pub fn idx(&self, name: &str) -> NodeIdx {
        idx_of(self.run.snapshot(), name)
    }

    /// Applies an event, then runs every script it asks for, at once.
    pub fn send(&mut self, event: Event) -> Reply {
        let (outcome, _) = self.run.apply(event).unwrap();
        let reply = outcome.reply;
        self.take_work(&outcome.work);
        self.last = Some(outcome);
        reply
    }

    fn take_work(&mut self, work: &[Work]) {
        for w in work {
            match *w {
                Work::Dispatch { node, attempt, not_before } => {
                    self.dispatches.push((node, attempt, not_before))
                }
                Work::CancelUnfinished => {}
                script => {
                    let event = self.run.run_script(script, &mut self.scripts).unwrap();
                    let (outcome, _) = self.run.apply(event).unwrap();
                    assert_eq!(outcome.reply, Reply::Done);
                    self.take_work(&outcome.work);
                }
            }
        }
    }

    /// Redrives the run on a new definition of its tree, as `?definition=latest` does, and
    /// takes the work that starts.
    pub fn redrive_latest(&mut self, tree: &Value) -> aetr_engine::machine::LatestRedrive {
        let new = snapshot_of(tree);
        let input = self.run.root().input.clone();
        let redriven = aetr_engine::machine::redrive_latest(
            self.run.snapshot(),
            self.run.tree().blocks(),
            self.run.nodes(),
            &new,
            input,
            &self.run.ctx,
        )
        .unwrap();
        self.run = MemoryRun::with_states(
            new,
            redriven.states.clone(),
            &redriven.outcome,
            redriven.instances.clone(),
            self.run.ctx,
        );
        self.dispatches.clear();
        self.take_work(&redriven.outcome.work);
        redriven
    }

    pub fn start(&mut self, input: Option<&str>) {
        assert_eq!(self.send(Event::Start { input: input.map(str::to_owned) }), Reply::Done);
    }

    /// Dispatches the named node's due attempt, checking that it was asked for.
    pub fn dispatch(&mut self, name: &str) -> u32 {
        let node = self.idx(name);
        let pos = self
            .dispatches
            .iter()
            .position(|d| d.0 == node)
            .unwrap_or_else(|| panic!("{name} is not due"));
        let (_, attempt, _) = self.dispatches.remove(pos);
        assert_eq!(self.send(Event::Dispatched { node, attempt }), Reply::Send);
        attempt
    }

    pub fn is_due(&self, name: &str) -> bool {
        let node = self.idx(name);
        self.dispatches.iter().any(|d| d.0 == node)
    }

    pub fn succeed(&mut self, name: &str, attempt: u32, result: &str) -> Reply {
        let node = self.idx(name);
        self.send(Event::Result { node, attempt, result: Some(result.to_owned()) })
    }

    pub fn fail(&mut self, name: &str, attempt: u32, error: &str) -> Reply {
        let node = self.idx(name);
        self.send(Event::Failure { node, attempt, error: error.to_owned() })
    }

    pub fn state(&self, name: &str) -> &aetr_engine::machine::NodeState {
        self.run.node(self.idx(name))
    }
}

/// A deterministic stand-in for scripts, for property tests: a mapper `tag` wraps its data as
/// `tag(data)`, a reducer joins its results as `tag[a,b]`, and a source starting with `throw`
/// throws. It counts compile checks, to show that saving compiles every script.
#[derive(Debug, Default)]
pub struct FakeScripts {
    pub checks: usize,
}

impl ScriptRunner for FakeScripts {
    fn check(&mut self, source: &str) -> Result<(), ScriptError> {
        self.checks += 1;
        if source.contains("syntax error") {
            Err(ScriptError::Compile("bad".into()))
        } else {
            Ok(())
        }
    }

    fn call(&mut self, source: &str, call: ScriptCall<'_>) -> Result<Option<String>, ScriptError> {
        if source.starts_with("throw") {
            return Err(ScriptError::Thrown(format!("{source} threw")));
        }
        // A Branch's function: `pick:<choice>` chooses `<choice>`, `pick-none` nothing.
        if let Some(choice) = source.strip_prefix("pick:") {
            return Ok(Some(choice.to_owned()));
        }
        if source == "pick-none" {
            return Ok(None);
        }
        // A Map's items function: `items:<n>` lists n items made from its data.
        if let Some(n) = source.strip_prefix("items:") {
            let data = match call {
                ScriptCall::Map { data } => data.unwrap_or("-").to_owned(),
                ScriptCall::Reduce { .. } => "-".to_owned(),
            };
            let n: usize = n.parse().unwrap_or(0);
            let items: Vec<String> = (0..n).map(|i| format!("{data}#{i}")).collect();
            return Ok(Some(serde_json::to_string(&items).unwrap_or_default()));
        }
        Ok(Some(match call {
            ScriptCall::Map { data } => format!("{source}({})", data.unwrap_or("-")),
            ScriptCall::Reduce { results } => {
                let parts: Vec<&str> =
                    results.iter().map(|r| r.as_deref().unwrap_or("-")).collect();
                format!("{source}[{}]", parts.join(","))
            }
        }))
    }
}
