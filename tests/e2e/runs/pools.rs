//! Pools against the real binary (design.md, "Pools: protecting a service"): at most `slots`
//! attempts of a pool's actions Executing at once, across runs and two servers on one
//! database; the waiting served first come, first served; `perSecond`; and the API's checks.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{api, api_with, par, seq};
use crate::support::{Received, TestApp, TestService};

fn pooled(name: &str, url: &str, pool: &str) -> Value {
    api_with(name, url, json!({"pool": pool}))
}

async fn pool(app: &TestApp, name: &str) -> Value {
    app.get(&format!("/api/v1/pools/{name}")).await.expect(200).body
}

#[tokio::test]
async fn pools_are_checked_listed_and_deleted_only_when_nothing_uses_them() {
    let app = TestApp::spawn().await;
    let put = |name: &'static str, body: Value| {
        let app = &app;
        async move { app.put(&format!("/api/v1/pools/{name}"), &body).await }
    };
    let zero = put("billing", json!({"slots": 0})).await;
    assert_eq!(
        (zero.status, zero.errors()),
        (422, vec!["slots: must be from 1 to 1000000, not 0".to_owned()])
    );
    let bad = put("-bad", json!({"slots": 1, "perSecond": -1})).await;
    assert_eq!(bad.status, 422);
    let mut errors = bad.errors();
    errors.sort();
    assert!(errors[0].starts_with("name: a pool's name is 1 to 100 letters"), "{errors:?}");
    assert_eq!(errors[1], "perSecond: must be more than 0, not -1");
    let typed = put("billing", json!({"slots": "two", "extra": 1})).await;
    assert_eq!(typed.status, 400, "{:?}", typed.body);

    let made = put("billing", json!({"slots": 2, "perSecond": 5})).await.expect(201).body;
    assert_eq!(made["slots"], 2);
    assert_eq!(made["perSecond"], 5.0);
    assert_eq!((made["used"].as_i64(), made["waiting"].as_i64()), (Some(0), Some(0)));
    let replaced = put("billing", json!({"slots": 3})).await.expect(200).body;
    assert_eq!((replaced["slots"].as_i64(), replaced["perSecond"].clone()), (Some(3), Value::Null));
    let all = app.get("/api/v1/pools").await.expect(200).body;
    assert_eq!(all.as_array().map(Vec::len), Some(1));

    // An action may name only a pool that exists: a 422 at its place.
    let unknown = seq("bill", vec![pooled("charge", "http://127.0.0.1:9/c", "nope")]);
    let errors = app.put("/api/v1/steps", &unknown).await.expect(422).errors();
    assert_eq!(
        errors,
        [r#"children[0].action.pool: no pool named "nope"; create it with PUT /api/v1/pools/nope"#]
    );
    let step =
        app.put_tree(&seq("bill", vec![pooled("charge", "http://127.0.0.1:9/c", "billing")])).await;
    let tree = app.tree(step).await;
    assert_eq!(tree["children"][0]["action"]["pool"], "billing");

    let refused = app.delete("/api/v1/pools/billing").await.expect(409);
    let error = &refused.errors()[0];
    assert!(
        error.starts_with(r#"pool "billing" is named by the action of 1 step(s): charge ("#),
        "{error}"
    );
    let mut changed = tree.clone();
    changed["children"][0]["action"].as_object_mut().unwrap().remove("pool");
    app.put("/api/v1/steps", &changed).await.expect(200);
    app.delete("/api/v1/pools/billing").await.expect(204);
    app.get("/api/v1/pools/billing").await.expect(404);
}

/// How many POSTs are in flight (received and not yet called back) never passes `slots`.
struct InFlight {
    held: Vec<Received>,
    most: usize,
}

impl InFlight {
    fn got(&mut self, r: Received) {
        self.held.push(r);
        self.most = self.most.max(self.held.len());
    }
}

#[tokio::test]
async fn at_most_the_pools_slots_execute_at_once_across_runs_and_servers_first_come_first_served() {
    let app = TestApp::spawn().await;
    let replica = app.replica();
    let svc = TestService::start().await;
    app.put("/api/v1/pools/fragile", &json!({"slots": 2})).await.expect(201);
    let leaves = |run: &str| {
        (0..5)
            .map(|i| pooled(&format!("{run}{i}"), &svc.at(&format!("/{run}{i}")), "fragile"))
            .collect()
    };
    let first = app.put_tree(&par("first", leaves("a"))).await;
    let second = app.put_tree(&par("second", leaves("b"))).await;
    // Unpooled actions are not held back by the pool.
    let free = app
        .put_tree(&par(
            "free",
            (0..3).map(|i| api(&format!("f{i}"), &svc.at(&format!("/f{i}")))).collect(),
        ))
        .await;

    let run_a = app.start_run(first, json!("x")).await;
    let mut flight = InFlight { held: svc.take(2).await, most: 2 };
    // The second run starts later, on the other server.
    let start = format!("{}/api/v1/runs/step/{second}", replica.base_url);
    let run_b: Value = reqwest::Client::new()
        .post(&start)
        .json(&json!({"input": "y"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let run_b = run_b["id"].as_str().unwrap().to_owned();
    let run_free = app.start_run(free, json!("z")).await;
    let unpooled = svc.take(3).await;
    assert!(
        unpooled.iter().all(|r| r.path.starts_with("/f")),
        "{:?}",
        unpooled.iter().map(|r| &r.path).collect::<Vec<_>>()
    );
    for r in &unpooled {
        app.post_raw(&r.callback, "free").await.expect(200);
    }
    app.wait_run(run_free, "Complete").await;
    svc.expect_none(Duration::from_millis(500)).await;
    let shown = pool(&app, "fragile").await;
    assert_eq!(
        (shown["used"].as_i64(), shown["waiting"].as_i64()),
        (Some(2), Some(8)),
        "{shown:#}"
    );

    // Each callback frees a slot, which goes to the earliest due of those waiting: the first
    // run's actions, all of them before any of the second run's.
    let mut order: Vec<String> = flight.held.iter().map(|r| r.path.clone()).collect();
    for _ in 0..8 {
        let done = flight.held.remove(0);
        app.post_raw(&done.callback, "ok").await.expect(200);
        let next = svc.next_within(Duration::from_secs(10)).await.expect("a freed slot is taken");
        order.push(next.path.clone());
        flight.got(next);
        svc.expect_none(Duration::from_millis(100)).await;
    }
    for done in flight.held.drain(..) {
        app.post_raw(&done.callback, "ok").await.expect(200);
    }
    app.wait_run(run_a, "Complete").await;
    app.wait_root(run_b.parse().unwrap(), "Complete").await;
    assert_eq!(flight.most, 2, "never more than the pool's slots in flight");
    let firsts = order.iter().take(5).filter(|p| p.starts_with("/a")).count();
    assert_eq!(firsts, 5, "first come, first served: {order:?}");
    let shown = pool(&app, "fragile").await;
    assert_eq!((shown["used"].as_i64(), shown["waiting"].as_i64()), (Some(0), Some(0)));
}

#[tokio::test]
async fn per_second_spaces_the_pools_posts() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    app.put("/api/v1/pools/slow", &json!({"slots": 100, "perSecond": 4})).await.expect(201);
    let tree = par(
        "burst",
        (0..6).map(|i| pooled(&format!("p{i}"), &svc.at(&format!("/p{i}")), "slow")).collect(),
    );
    let step = app.put_tree(&tree).await;
    let started = Instant::now();
    app.start_run(step, json!("go")).await;
    let mut at = Vec::new();
    for _ in 0..6 {
        svc.next().await;
        at.push(started.elapsed());
    }
    // 4 a second, evenly: a POST about every 250 ms.
    for pair in at.windows(2) {
        assert!(pair[1] - pair[0] >= Duration::from_millis(200), "{at:?}");
    }
    assert!(at[5] >= Duration::from_millis(1_100), "{at:?}");
}
