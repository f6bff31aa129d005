//! Parallel steps: children start together, each branch advances on its own, and the reducer
//! combines the mapped results in child order.

use serde_json::{json, Value};

use super::{api, mapped, noop, par, par_js, seq};
use crate::support::{Received, TestApp, TestService};

/// The request for `path` among `got`.
fn take(got: &mut Vec<Received>, path: &str) -> Received {
    let at = got.iter().position(|r| r.path == path).unwrap_or_else(|| panic!("no POST to {path}"));
    got.remove(at)
}

#[tokio::test]
async fn a_js_reducer_gets_the_mapped_results_in_child_order_whatever_order_they_came_in() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    let tree = par_js(
        "fan-out",
        "function apply(results) { return results.join(','); }",
        vec![
            api("a", &svc.at("/a")),
            mapped(api("b", &svc.at("/b")), "function apply(d) { return d.toUpperCase(); }"),
            api("c", &svc.at("/c")),
        ],
    );
    let run = app.start_run(app.put_tree(&tree).await, json!({"x": 1})).await;
    let mut got = svc.take(3).await;
    for r in &got {
        assert_eq!(r.body, r#"{"x":1}"#, "every child gets the parent's input");
    }
    let (a, b, c) = (take(&mut got, "/a"), take(&mut got, "/b"), take(&mut got, "/c"));
    app.post_raw(&c.callback, "c").await.expect(200);
    app.post_raw(&a.callback, "a").await.expect(200);
    assert_eq!(app.run(run).await["state"], "Executing", "b has not called back");
    app.post_raw(&b.callback, "b").await.expect(200);
    let done = app.wait_run(run, "Complete").await;
    assert_eq!(done["result"], "a,B,c");
    assert_eq!(done["counts"], json!({"Complete": 3}));
    assert_eq!(done["childCount"], 3);
}

#[tokio::test]
async fn the_default_reducer_is_the_last_childs_result_in_child_order() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    let tree = par(
        "p",
        vec![
            api("a", &svc.at("/a")),
            mapped(api("b", &svc.at("/b")), "function apply(d) { return d + '!'; }"),
        ],
    );
    let run = app.start_run(app.put_tree(&tree).await, json!(null)).await;
    let mut got = svc.take(2).await;
    let (a, b) = (take(&mut got, "/a"), take(&mut got, "/b"));
    app.post_raw(&b.callback, "last").await.expect(200);
    app.post_raw(&a.callback, "first").await.expect(200);
    let done = app.wait_run(run, "Complete").await;
    assert_eq!(done["result"], "last!", "b is last in child order, though it called back first");
}

#[tokio::test]
async fn each_branch_advances_on_its_own() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    let tree = par(
        "p",
        vec![
            seq("s", vec![api("a1", &svc.at("/a1")), api("a2", &svc.at("/a2"))]),
            api("b", &svc.at("/b")),
        ],
    );
    let run = app.start_run(app.put_tree(&tree).await, json!("in")).await;
    let mut got = svc.take(2).await;
    let (a1, b) = (take(&mut got, "/a1"), take(&mut got, "/b"));
    app.post_raw(&a1.callback, "one").await.expect(200);
    let a2 = svc.next().await;
    assert_eq!(a2.path, "/a2", "a2 is sent while b has not called back");
    assert_eq!(a2.body, "one");
    app.post_raw(&a2.callback, "two").await.expect(200);
    assert_eq!(app.run(run).await["state"], "Executing");
    app.post_raw(&b.callback, "bee").await.expect(200);
    let done = app.wait_run(run, "Complete").await;
    assert_eq!(done["result"], "bee");
    assert_eq!(done["children"][0]["result"], "two");
}

#[tokio::test]
async fn empty_parents_and_no_op_actions_complete_without_any_service() {
    let app = TestApp::spawn().await;
    let empty_seq = app.put_tree(&seq("empty", vec![])).await;
    let done = app.wait_run(app.start_run(empty_seq, json!("kept")).await, "Complete").await;
    assert_eq!(done["result"], "kept", "an empty Sequential passes its input on");

    let empty_par = app.put_tree(&par("empty", vec![])).await;
    let done = app.wait_run(app.start_run(empty_par, json!("in")).await, "Complete").await;
    assert_eq!(done["result"], Value::Null, "the last of no results is none");

    let counted = par_js("count", "function apply(rs) { return rs.length; }", vec![]);
    let done = app
        .wait_run(app.start_run(app.put_tree(&counted).await, json!(null)).await, "Complete")
        .await;
    assert_eq!(done["result"], "0", "a script's number is passed on as its JSON text");

    let tree = seq(
        "s",
        vec![
            mapped(noop("n1"), "function apply(d) { return d + '-1'; }"),
            par_js(
                "p",
                "function apply(rs) { return rs.join('+'); }",
                vec![noop("n2"), mapped(noop("n3"), "function apply(d) { return null; }")],
            ),
        ],
    );
    let done =
        app.wait_run(app.start_run(app.put_tree(&tree).await, json!("x")).await, "Complete").await;
    assert_eq!(done["result"], "x-1+", "null from a mapper is no result, joined as empty");
    assert_eq!(done["children"][0]["result"], "x", "a no-op's result is its input");

    let mut silent = par("quiet", vec![noop("a")]);
    silent["reducer"] = json!({"type": "no-op"});
    let done = app
        .wait_run(app.start_run(app.put_tree(&silent).await, json!("x")).await, "Complete")
        .await;
    assert_eq!(done["result"], Value::Null, "a no-op reducer gives no result");
}
