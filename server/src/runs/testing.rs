//! Helpers for the shell's unit tests.

use std::collections::HashMap;

use aetr_engine::parse::{AnyPool, AnyUrl, Parser};
use aetr_engine::script::BoaRunner;
use aetr_engine::{graph, Limits, NodeIdx, Snapshot, Step};
use serde_json::{json, Value};
use uuid::Uuid;

/// The snapshot of a fat tree, as the API takes it.
pub fn snapshot_of(tree: &Value) -> Snapshot {
    let limits = Limits::default();
    let mut n = 0u128;
    let mut ids = move || {
        n += 1;
        Uuid::from_u128(n)
    };
    let mut scripts = BoaRunner::default();
    let fat = Parser {
        limits: &limits,
        scripts: &mut scripts,
        new_id: &mut ids,
        urls: &AnyUrl,
        pools: &AnyPool,
    }
    .fat_tree(tree)
    .unwrap_or_else(|e| panic!("{e}"));
    let steps: HashMap<Uuid, Step> = fat.steps.into_iter().map(|s| (s.id, s)).collect();
    graph::snapshot(fat.root, &steps, &limits).unwrap_or_else(|e| panic!("{e}"))
}

/// A Sequential step `seq` of api actions `a` and `b` (nodes 0, 1 and 2), `b` with a 10 s
/// timeout.
pub fn two_actions() -> Snapshot {
    let api = |name: &str, extra: Value| {
        let mut action = json!({"type": "api", "url": format!("http://svc.test/{name}")});
        action.as_object_mut().into_iter().for_each(|a| {
            a.extend(extra.as_object().cloned().unwrap_or_default());
        });
        json!({"name": name, "stepType": "Action", "action": action})
    };
    let tree = json!({"name": "seq", "stepType": "Sequential",
        "children": [api("a", json!({})), api("b", json!({"timeoutSeconds": 10}))]});
    snapshot_of(&tree)
}

/// The index of the node named `name`.
pub fn idx(snapshot: &Snapshot, name: &str) -> NodeIdx {
    let found = snapshot.nodes().iter().position(|n| n.name == name);
    found.unwrap_or_else(|| panic!("no node named {name}")) as NodeIdx
}
