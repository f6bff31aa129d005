//! Runs end to end: the real server POSTs to services that the tests play, and the tests call
//! back when they choose.

mod callbacks;
mod concurrency;
mod contract;
mod dry_run;
mod failures;
mod map;
mod notify;
mod operator;
mod parallel;
mod plans;
mod pools;
mod reads;
mod retention;
mod schemas;
mod sequential;
mod step_types;
mod transactions;

use serde_json::{json, Value};

use crate::support::TestService;

/// An Action step calling `url`.
pub fn api(name: &str, url: &str) -> Value {
    json!({"name": name, "stepType": "Action", "action": {"type": "api", "url": url}})
}

/// An Action step calling `url`, with more options.
pub fn api_with(name: &str, url: &str, options: Value) -> Value {
    let mut step = api(name, url);
    for (k, v) in options.as_object().expect("options are an object") {
        step["action"][k] = v.clone();
    }
    step
}

/// A no-op Action step.
pub fn noop(name: &str) -> Value {
    json!({"name": name, "stepType": "Action", "action": {"type": "no-op"}})
}

pub fn seq(name: &str, children: Vec<Value>) -> Value {
    json!({"name": name, "stepType": "Sequential", "children": children})
}

pub fn par(name: &str, children: Vec<Value>) -> Value {
    json!({"name": name, "stepType": "Parallel", "children": children})
}

/// A Parallel step with a JS reducer.
pub fn par_js(name: &str, js: &str, children: Vec<Value>) -> Value {
    let mut step = par(name, children);
    step["reducer"] = json!({"type": "js", "js": js});
    step
}

/// The same step with a JS mapper on its link.
pub fn mapped(mut step: Value, js: &str) -> Value {
    step["mapper"] = json!({"type": "js", "js": js});
    step
}

/// `Parallel[a, Sequential[b, c]]`, each action at its own path of `svc`.
pub fn a_beside_b_then_c(svc: &TestService) -> Value {
    par(
        "p",
        vec![
            api("a", &svc.at("/a")),
            seq("s", vec![api("b", &svc.at("/b")), api("c", &svc.at("/c"))]),
        ],
    )
}
