//! Times the engine alone on a wide run: 10,000 callbacks to a 10,000-leaf Parallel step whose
//! JS reducer counts them. Each event loads only the nodes it involves, as the server does.
//!
//! cargo run --release -p aetr-engine --example callbacks [-- LEAVES]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aetr_engine::graph;
use aetr_engine::machine::{Ctx, Event, MemoryRun, Reply, State, Work};
use aetr_engine::script::BoaRunner;
use aetr_engine::step::{Action, ApiAction};
use aetr_engine::{ChildLink, Limits, Reducer, Step, StepBody};
use uuid::Uuid;

fn main() {
    let leaves: u32 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let leaf = Step {
        id: Uuid::from_u128(2),
        name: "leaf".into(),
        body: StepBody::Action { action: Action::Api(ApiAction::new("http://svc.test/")) },
        input_schema: None,
        children: vec![],
    };
    let root = Step {
        id: Uuid::from_u128(1),
        name: "wide".into(),
        body: StepBody::Parallel {
            reducer: Reducer::Js { js: "function apply(rs) { return rs.length; }".into() },
        },
        input_schema: None,
        children: (0..leaves).map(|_| ChildLink { id: leaf.id, mapper: None }).collect(),
    };
    let steps: HashMap<Uuid, Step> = [(root.id, root), (leaf.id, leaf)].into();

    let t = Instant::now();
    let snapshot =
        graph::snapshot(Uuid::from_u128(1), &steps, &Limits::default()).expect("a valid tree");
    let snapshot_time = t.elapsed();

    let ctx = Ctx {
        now: 0,
        jitter: 0.5,
        default_callback_timeout_seconds: Some(604_800),
        max_map_items: aetr_engine::machine::DEFAULT_MAX_MAP_ITEMS,
    };
    let mut run = MemoryRun::new(snapshot, ctx);
    let t = Instant::now();
    let (start, _) = run.apply(Event::Start { input: Some("{}".into()) }).expect("start");
    let start_time = t.elapsed();

    let dispatches: Vec<(u32, u32)> = start
        .work
        .iter()
        .filter_map(|w| match *w {
            Work::Dispatch { node, attempt, .. } => Some((node, attempt)),
            _ => None,
        })
        .collect();
    let t = Instant::now();
    for &(node, attempt) in &dispatches {
        let (out, _) = run.apply(Event::Dispatched { node, attempt }).expect("dispatched");
        assert_eq!(out.reply, Reply::Send);
    }
    let dispatch_time = t.elapsed();

    let t = Instant::now();
    let mut join = None;
    for &(node, attempt) in &dispatches {
        let (out, _) = run
            .apply(Event::Result { node, attempt, result: Some("ok".into()) })
            .expect("callback");
        assert_eq!(out.reply, Reply::Done);
        join = join.or(out.work.first().copied());
    }
    let callback_time = t.elapsed();

    let t = Instant::now();
    let mut scripts = BoaRunner::default();
    let reduced =
        run.run_script(join.expect("the last callback joins"), &mut scripts).expect("a reduction");
    run.apply(reduced).expect("reduced");
    let reduce_time = t.elapsed();
    assert_eq!(run.root().state(), State::Complete);
    assert_eq!(run.root().result.as_deref(), Some(leaves.to_string().as_str()));

    let per = |d: Duration| d.as_secs_f64() * 1e6 / f64::from(leaves);
    println!("engine alone, a Parallel root with {leaves} actions and a JS reducer:");
    println!("  snapshot             {:>10.2?}", snapshot_time);
    println!("  start                {:>10.2?}  ({:.2} µs a leaf)", start_time, per(start_time));
    println!(
        "  {leaves} dispatched   {:>10.2?}  ({:.2} µs each)",
        dispatch_time,
        per(dispatch_time)
    );
    println!(
        "  {leaves} callbacks    {:>10.2?}  ({:.2} µs each)",
        callback_time,
        per(callback_time)
    );
    println!("  reduce (boa)         {:>10.2?}", reduce_time);
}
