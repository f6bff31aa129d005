//! The step graph: references, cycles, sizes with reuse expanded, and snapshots.

use std::collections::HashMap;

use aetr_engine::graph::{self, find_cycle, Overlay};
use aetr_engine::parse::Reference;
use aetr_engine::step::Action;
use aetr_engine::{ChildLink, Limits, Mapper, Severity, Step, StepBody};
use uuid::Uuid;

use crate::support::*;

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn step(n: u128, body: StepBody, children: &[u128]) -> Step {
    Step {
        id: id(n),
        name: format!("s{n}"),
        body,
        input_schema: None,
        children: children.iter().map(|&c| ChildLink { id: id(c), mapper: None }).collect(),
    }
}

fn leaf(n: u128) -> Step {
    step(n, StepBody::Action { action: Action::NoOp }, &[])
}

fn store(steps: Vec<Step>) -> HashMap<Uuid, Step> {
    steps.into_iter().map(|s| (s.id, s)).collect()
}

#[test]
fn unknown_references_are_422_at_their_path() {
    let stored = store(vec![leaf(1)]);
    let refs = vec![
        Reference { id: id(1), path: "children[0].id".into() },
        Reference { id: id(2), path: "children[1].id".into() },
    ];
    let errs = graph::unknown_references(&refs, &stored);
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].to_string(), format!("children[1].id: no step with id {}", id(2)));
    assert_eq!(errs[0].severity, Severity::Refused);
}

#[test]
fn a_cycle_through_stored_steps_is_found_and_named() {
    // Stored: 1 → 2 → 3. Saving 3 with child 1 closes a cycle.
    let stored = store(vec![
        step(1, StepBody::Sequential, &[2]),
        step(2, StepBody::Sequential, &[3]),
        leaf(3),
    ]);
    let new = [step(3, StepBody::Sequential, &[1])];
    let over = Overlay { top: &new[..], base: &stored };
    assert_eq!(find_cycle(id(3), &over), Some(vec![id(3), id(1), id(2), id(3)]));
    let err = graph::check_tree(id(3), &over, &Limits::default()).unwrap_err();
    assert_eq!(err.to_string(), "the steps would form a cycle: \"s3\" → \"s1\" → \"s2\" → \"s3\"");
    assert_eq!(err.severity, Severity::Refused);
    // A step that is its own child.
    let own = store(vec![step(5, StepBody::Sequential, &[5])]);
    assert_eq!(find_cycle(id(5), &own), Some(vec![id(5), id(5)]));
    // Reuse without a cycle is fine: a diamond.
    let diamond = store(vec![
        step(1, StepBody::Sequential, &[2, 3]),
        step(2, StepBody::Sequential, &[4]),
        step(3, StepBody::Sequential, &[4]),
        leaf(4),
    ]);
    assert_eq!(find_cycle(id(1), &diamond), None);
}

#[test]
fn sizes_count_nodes_with_reuse_expanded() {
    // Each level names the one below twice: 2^21 - 1 nodes from 21 steps.
    let mut steps: Vec<Step> =
        (1..=20).map(|n| step(n, StepBody::Sequential, &[n + 1, n + 1])).collect();
    steps.push(leaf(21));
    let stored = store(steps);
    let err = graph::check_tree(id(1), &stored, &Limits::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the tree has 2097151 nodes with reuse expanded, more than the limit of 200000 (AETR_MAX_NODES)"
    );
    let shape = graph::check_tree(id(10), &stored, &Limits::default()).unwrap();
    assert_eq!((shape.nodes, shape.depth), (4095, 11));
    let err = graph::check_tree(id(10), &stored, &Limits { max_depth: 10, ..Limits::default() })
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the tree is 11 levels deep with reuse expanded, more than the limit of 10 (AETR_MAX_DEPTH)"
    );
}

#[test]
fn a_snapshot_numbers_nodes_in_pre_order_with_links_and_positions() {
    let mut root = step(1, StepBody::Parallel { reducer: Default::default() }, &[2, 3, 2]);
    root.children[2].mapper = Some(Mapper::Js { js: "function apply(d) { return d; }".into() });
    let stored = store(vec![root, step(2, StepBody::Sequential, &[3]), leaf(3)]);
    let snap = graph::snapshot(id(1), &stored, &Limits::default()).unwrap();
    type Row = (Uuid, Option<u32>, u32, u32, Vec<u32>);
    let summary: Vec<Row> = snap
        .nodes()
        .iter()
        .map(|n| (n.step_id, n.parent, n.position, n.depth, n.children.clone()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (id(1), None, 0, 0, vec![1, 3, 4]),
            (id(2), Some(0), 0, 1, vec![2]),
            (id(3), Some(1), 0, 2, vec![]),
            (id(3), Some(0), 1, 1, vec![]),
            (id(2), Some(0), 2, 1, vec![5]),
            (id(3), Some(4), 0, 2, vec![]),
        ]
    );
    assert!(snap.node(4).mapper.is_some(), "the mapper belongs to the link, by position");
    assert!(snap.node(1).mapper.is_none());
    assert_eq!(snap.ancestors(5).collect::<Vec<_>>(), vec![4, 0]);
    assert_eq!(snap.action_count(), 3);
    // It survives storage unchanged.
    let json = serde_json::to_string(&snap).unwrap();
    assert_eq!(serde_json::from_str::<aetr_engine::Snapshot>(&json).unwrap(), snap);
}

#[test]
fn a_snapshot_is_stored_with_each_step_once_and_read_back_the_same() {
    use aetr_engine::Snapshot;
    use serde_json::json;
    let read = |json: serde_json::Value| serde_json::from_value::<Snapshot>(json);

    // 50 uses of one leaf, and a Sequential over it: three steps stored, 53 nodes.
    let mut root = step(1, StepBody::Parallel { reducer: Default::default() }, &[2; 50]);
    root.children.push(ChildLink { id: id(3), mapper: None });
    root.children[1].mapper = Some(Mapper::Js { js: "function apply(d) { return d; }".into() });
    let stored = store(vec![root, leaf(2), step(3, StepBody::Sequential, &[2])]);
    let snap = graph::snapshot(id(1), &stored, &Limits::default()).unwrap();
    let json = serde_json::to_value(&snap).unwrap();
    let names: Vec<&str> =
        json["steps"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["s1", "s2", "s3"]);
    assert_eq!(json["tree"].as_array().unwrap().len(), 53);
    assert_eq!(json["tree"][0], json!({"step": 0}));
    assert_eq!(json["tree"][1], json!({"step": 1, "parent": 0}));
    let mapper = json!({"type": "js", "js": "function apply(d) { return d; }"});
    assert_eq!(json["tree"][2], json!({"step": 1, "parent": 0, "mapper": mapper}));
    assert_eq!(json["tree"][52], json!({"step": 1, "parent": 51}));
    assert_eq!(read(json).unwrap(), snap);

    // Every kind of step, an input schema and a dry run survive it.
    let mut tree = par("root", vec![with_mapper(api("a"), "function apply(x) { return x; }")]);
    let children = tree["children"].as_array_mut().unwrap();
    children.push(json!({"name": "m", "stepType": "Map", "map": {"maxConcurrency": 3},
        "children": [seq("each", vec![api("call"), noop("skip")])]}));
    children.push(json!({"name": "b", "stepType": "Branch",
        "branch": {"type": "js", "js": "function apply(x) { return 0; }"},
        "children": [api("left"), api("right")]}));
    tree["inputSchema"] = json!({"type": "object"});
    let snap = snapshot_of(&tree).with_dry(Some(aetr_engine::DryRun::default()));
    assert_eq!(read(serde_json::to_value(&snap).unwrap()).unwrap(), snap);
    // A snapshot stored whole, as before this form, still reads.
    assert_eq!(read(json!({"nodes": snap.nodes(), "dry": {}})).unwrap(), snap);

    // A tree that does not link up is refused, not read wrong.
    let one = json!([{"stepId": id(1), "name": "a", "stepType": "Sequential"}]);
    let bad = json!({"steps": one, "tree": [{"step": 0}, {"step": 0, "parent": 2}]});
    let error = read(bad).unwrap_err().to_string();
    assert!(error.contains("snapshot node 1 comes before its parent 2"), "{error}");
    let error = read(json!({"steps": [], "tree": [{"step": 0}]})).unwrap_err().to_string();
    assert!(error.contains("snapshot node 0 names step 0 of 0"), "{error}");
}

#[test]
fn a_snapshot_does_not_change_when_the_steps_do() {
    let tree = seq("s", vec![api("a")]);
    let snap = snapshot_of(&tree);
    let before = snap.clone();
    // Editing the stored steps later is another snapshot; this one is a value.
    drop(tree);
    assert_eq!(snap, before);
    assert_eq!(snap.node(1).name, "a");
}
