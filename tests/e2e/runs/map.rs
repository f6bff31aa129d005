//! Map steps: a child run once per item of a list, with the instances' results in item order
//! (design.md, "More step types").

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::{api, noop};
use crate::support::{Respond, TestApp, TestService};

/// A Map step over its input (or over what `items` lists), capped at `cap` if given.
fn map(name: &str, spec: Value, child: Value) -> Value {
    json!({"name": name, "stepType": "Map", "map": spec, "children": [child]})
}

/// The POSTs of a run's instances, by their input (each item is unique in these tests).
async fn take_by_input(svc: &TestService, n: usize) -> Vec<crate::support::Received> {
    let mut all = svc.take(n).await;
    all.sort_by(|a, b| a.body.cmp(&b.body));
    all
}

#[tokio::test]
async fn a_map_runs_its_child_once_per_item_and_collects_the_results_in_item_order() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    let step = app.put_tree(&map("each", json!({}), api("call", &svc.at("/call")))).await;

    let run = app.start_run(step, json!(["c", {"n": 1}, "a", 7])).await;
    let mut got = svc.take(4).await;
    let bodies: Vec<&str> = got.iter().map(|r| r.body.as_str()).collect();
    for item in ["c", r#"{"n":1}"#, "a", "7"] {
        assert!(bodies.contains(&item), "a string item is raw, others their JSON: {bodies:?}");
    }
    // The instances are the Map's children, with their items' indexes.
    let page = app.get(&format!("/api/v1/runs/{run}/nodes/{run}/children")).await.expect(200).body;
    let page = page.as_array().expect("a page of instances").clone();
    assert_eq!(page.len(), 4, "{page:#?}");
    for (i, node) in page.iter().enumerate() {
        assert_eq!(node["index"], i, "{node:#}");
        assert_eq!(node["stepTree"]["name"], "call");
        assert_eq!(node["parent"], run.to_string());
    }
    assert_eq!(page[1]["input"], r#"{"n":1}"#);
    let tree = app.run(run).await;
    assert_eq!(tree["stepTree"]["stepType"], "Map");
    assert_eq!(tree["childCount"], 4, "{tree:#}");
    let third = format!("/api/v1/runs/{run}/nodes/{}", page[2]["id"].as_str().unwrap());
    assert_eq!(app.get(&third).await.expect(200).body["input"], "a");

    // Finish in reverse item order: the result is still in item order.
    got.sort_by(|a, b| b.body.cmp(&a.body));
    for r in &got {
        let result =
            if r.body == "7" { "seven".to_owned() } else { format!("[\"{}\"]", r.body.len()) };
        app.post_raw(&r.callback, result).await.expect(200);
    }
    let done = app.wait_run(run, "Complete").await;
    let result: Value = serde_json::from_str(done["result"].as_str().unwrap()).unwrap();
    assert_eq!(result, json!([["1"], ["7"], ["1"], "seven"]), "collect, in item order: {done:#}");
    let progress = app.get(&format!("/api/v1/runs/{run}/progress")).await.expect(200).body;
    assert_eq!(progress["nodes"], 5, "the Map and its instances: {progress:#}");
    assert_eq!(progress["actions"], 4, "{progress:#}");
    assert_eq!(progress["counts"]["Complete"], 4, "{progress:#}");
}

#[tokio::test]
async fn max_concurrency_caps_the_instances_in_flight_and_each_end_starts_the_next() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    let step = app
        .put_tree(&map("capped", json!({"maxConcurrency": 2}), api("call", &svc.at("/c"))))
        .await;
    let run = app.start_run(step, json!(["i0", "i1", "i2", "i3", "i4"])).await;

    let mut in_flight = take_by_input(&svc, 2).await;
    assert_eq!(in_flight.iter().map(|r| r.body.as_str()).collect::<Vec<_>>(), ["i0", "i1"]);
    svc.expect_none(Duration::from_millis(500)).await;
    let mut seen = 2;
    while let Some(r) = in_flight.pop() {
        app.post_raw(&r.callback, format!("done-{}", r.body)).await.expect(200);
        if seen < 5 {
            let next = svc.next().await;
            assert_eq!(next.body, format!("i{seen}"), "the next item starts, in item order");
            seen += 1;
            in_flight.push(next);
            svc.expect_none(Duration::from_millis(100)).await;
        }
        assert!(in_flight.len() <= 2, "never more than 2 in flight");
    }
    let done = app.wait_run(run, "Complete").await;
    let result: Value = serde_json::from_str(done["result"].as_str().unwrap()).unwrap();
    assert_eq!(result, json!(["done-i0", "done-i1", "done-i2", "done-i3", "done-i4"]));
}

#[tokio::test]
async fn callbacks_that_come_together_start_as_many_next_instances_in_one_batch() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    // The service calls back at once, so callbacks of several instances come together.
    svc.respond("/now", Respond::CallBack(Arc::new(|r| Some(format!("r{}", r.body)))));
    let tree = map("capped", json!({"maxConcurrency": 8}), api("call", &svc.at("/now")));
    let step = app.put_tree(&tree).await;
    let run = app.start_run(step, json!((0..300).collect::<Vec<_>>())).await;
    let done = app.wait_root_for(run, "Complete", Duration::from_secs(60)).await;
    let want: Vec<String> = (0..300).map(|i| format!("r{i}")).collect();
    assert_eq!(done["result"], serde_json::to_string(&want).unwrap());
    assert!(!app.server().log().contains("ERROR"), "{}", app.server().log());
}

#[tokio::test]
async fn instances_under_a_cap_that_end_as_they_start_start_the_next_ones_in_the_same_event() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    svc.respond("/now", Respond::CallBack(Arc::new(|r| Some(r.body.clone()))));
    // An inner Map over an empty list, with no reducer to run, ends as it starts.
    let mut inner = map("inner", json!({}), api("call", &svc.at("/now")));
    inner["reducer"] = json!({"type": "no-op"});
    let step = app.put_tree(&map("outer", json!({"maxConcurrency": 1}), inner)).await;
    let run = app.start_run(step, json!([[1], [], [], [2], [], []])).await;
    let done = app.wait_root_for(run, "Complete", Duration::from_secs(30)).await;
    assert_eq!(done["result"], "[null,null,null,null,null,null]", "{done:#}");
    assert_eq!(svc.take(2).await.len(), 2, "one POST for each inner item");
    assert!(!app.server().log().contains("ERROR"), "{}", app.server().log());
}

#[tokio::test]
async fn an_items_function_lists_the_items_and_an_empty_list_completes_at_once() {
    let app = TestApp::spawn().await;
    let step = app
        .put_tree(&map(
            "orders",
            json!({"items": "function apply(data) { return JSON.parse(data).orders; }"}),
            noop("each"),
        ))
        .await;
    let run = app.start_run(step, json!({"orders": [1, "two", null]})).await;
    let done = app.wait_run(run, "Complete").await;
    assert_eq!(done["result"], r#"[1,"two",null]"#, "{done:#}");

    let run = app.start_run(step, json!({"orders": []})).await;
    let done = app.wait_run(run, "Complete").await;
    assert_eq!(done["result"], "[]", "an empty list completes the Map at once");
    assert_eq!(done["childCount"], 0);
}

#[tokio::test]
async fn a_map_fails_on_an_input_that_is_not_a_list_an_items_function_that_throws_or_too_many_items(
) {
    let app = TestApp::spawn_with(&[("AETR_MAX_MAP_ITEMS", "3")]).await;
    let step = app.put_tree(&map("m", json!({}), noop("each"))).await;
    let run = app.start_run(step, json!({"not": "a list"})).await;
    let failed = app.wait_run(run, "Error").await;
    assert_eq!(failed["error"], "map: the input is not a JSON array", "{failed:#}");

    let run = app.start_run(step, json!([1, 2, 3, 4])).await;
    let failed = app.wait_run(run, "Error").await;
    let error = failed["error"].as_str().unwrap();
    assert!(error.contains("4 items") && error.contains("AETR_MAX_MAP_ITEMS"), "{error}");
    let run = app.start_run(step, json!([1, 2, 3])).await;
    app.wait_run(run, "Complete").await;

    let throws =
        map("t", json!({"items": "function apply(d) { throw new Error('no list'); }"}), noop("x"));
    let step = app.put_tree(&throws).await;
    let run = app.start_run(step, json!("x")).await;
    let failed = app.wait_run(run, "Error").await;
    assert!(failed["error"].as_str().unwrap().starts_with("map.items: "), "{failed:#}");
}

/// A Map over a, b and c whose instance b failed (and so the run), the others complete: the
/// app, the service, the step, the run and the three POSTs in item order.
async fn map_whose_second_instance_failed(
) -> (TestApp, TestService, uuid::Uuid, uuid::Uuid, Vec<crate::support::Received>) {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    let step = app.put_tree(&map("m", json!({}), api("call", &svc.at("/c")))).await;
    let run = app.start_run(step, json!(["a", "b", "c"])).await;
    let got = take_by_input(&svc, 3).await;
    app.post_raw(&got[0].callback, "A").await.expect(200);
    app.post_raw(&got[1].fail_url(), "b broke").await.expect(200);
    app.post_raw(&got[2].callback, "C").await.expect(200);
    (app, svc, step, run, got)
}

#[tokio::test]
async fn a_redrive_runs_only_the_failed_instances_again() {
    let (app, svc, _, run, _) = map_whose_second_instance_failed().await;
    let failed = app.wait_run(run, "Error").await;
    assert_eq!(failed["error"], "b broke", "{failed:#}");

    app.post(&format!("/api/v1/runs/{run}/retry"), &json!({})).await.expect(200);
    let again = svc.next().await;
    assert_eq!(again.body, "b", "only the failed instance is sent again");
    svc.expect_none(Duration::from_millis(300)).await;
    app.post_raw(&again.callback, "B").await.expect(200);
    let done = app.wait_run(run, "Complete").await;
    assert_eq!(done["result"], r#"["A","B","C"]"#);
}

#[tokio::test]
async fn a_redrive_on_the_latest_definitions_keeps_the_instances_that_completed() {
    let (app, svc, step, run, got) = map_whose_second_instance_failed().await;
    app.wait_run(run, "Error").await;

    // A new reducer: the Map runs again on the latest definitions, its items keep their results.
    let mut joined = app.get(&format!("/api/v1/steps/{step}")).await.expect(200).body;
    joined["reducer"] = json!({"type": "js", "js": "function apply(rs) { return rs.join('+'); }"});
    app.put_tree(&joined).await;
    let retry = format!("/api/v1/runs/{run}/retry?definition=latest");
    app.post(&retry, &json!({})).await.expect(200);
    let again = svc.next().await;
    assert_eq!(again.body, "b", "only the failed instance is sent again");
    svc.expect_none(Duration::from_millis(300)).await;
    app.post_raw(&got[1].callback, "old token").await.expect(409);
    app.post_raw(&again.callback, "B").await.expect(200);
    let done = app.wait_run(run, "Complete").await;
    assert_eq!(done["result"], "A+B+C");
    let page = app.get(&format!("/api/v1/runs/{run}/nodes/{run}/children")).await.expect(200).body;
    for (i, instance) in page.as_array().unwrap().iter().enumerate() {
        let id = instance["id"].as_str().unwrap();
        let node = app.get(&format!("/api/v1/runs/{run}/nodes/{id}")).await.expect(200).body;
        let statuses: Vec<&Value> =
            node["attempts"].as_array().unwrap().iter().map(|a| &a["status"]).collect();
        assert_eq!(statuses, [&json!("Complete")], "instance {i} has its one attempt: {node:#}");
    }
}

#[tokio::test]
async fn a_map_is_checked_when_it_is_saved() {
    let app = TestApp::spawn().await;
    let two = json!({"name": "m", "stepType": "Map", "children": [noop("a"), noop("b")]});
    let answer = app.put("/api/v1/steps", &two).await.expect(400);
    assert_eq!(answer.body["errors"][0], "children: a Map step has exactly one child; it has 2");
    let zero = map("m", json!({"maxConcurrency": 0}), noop("a"));
    let answer = app.put("/api/v1/steps", &zero).await.expect(400);
    assert_eq!(answer.body["errors"][0], "map.maxConcurrency: must be at least 1");
    let bad = map("m", json!({"items": "function apply(d) { return [ ; }"}), noop("a"));
    let answer = app.put("/api/v1/steps", &bad).await.expect(422);
    assert!(
        answer.body["errors"][0].as_str().unwrap().starts_with("map.items: "),
        "{:#}",
        answer.body
    );
    let step = app.put_tree(&map("m", json!({"maxConcurrency": 3}), noop("a"))).await;
    let saved = app.get(&format!("/api/v1/steps/{step}")).await.expect(200).body;
    assert_eq!(saved["map"], json!({"maxConcurrency": 3}));
    assert_eq!(saved["reducer"], json!({"type": "collect"}), "a Map collects by default");
}
