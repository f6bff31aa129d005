//! Resilience: a server killed with runs in flight, and replicas sharing one database.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use uuid::Uuid;

use crate::runs::{api_with, mapped, par_js, seq};
use crate::support::{Received, Respond, TestApp, TestService};

/// A port that is free now, for a server that must keep its address across a restart.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `Sequential[a, Parallel[b, Sequential[a 2 s wait, c], Map[m] over three items two at a
/// time] (joined with +), Branch[d (mapped with !), e] choosing d]`, each action at its path of
/// `svc`, with a 1 s POST timeout (so that a lost POST is sent again 31 s later). The waits and
/// the Maps are in flight while b is sent, so that a server stopped then finds them, and e is
/// never sent.
fn tree(svc: &TestService) -> Value {
    let action =
        |name: &str| api_with(name, &svc.at(&format!("/{name}")), json!({"timeoutSeconds": 1}));
    let pause = json!({"name": "pause", "stepType": "Action",
                       "action": {"type": "wait", "seconds": 2}});
    seq(
        "s",
        vec![
            action("a"),
            par_js(
                "p",
                "function apply(rs) { return rs.join('+'); }",
                vec![
                    action("b"),
                    seq("later", vec![pause, action("c")]),
                    json!({"name": "each", "stepType": "Map",
                           "map": {"items": "function apply(x) { return [1, 2, 3].map(i => x + '#' + i); }",
                                   "maxConcurrency": 2},
                           "children": [action("m")]}),
                ],
            ),
            json!({"name": "route", "stepType": "Branch",
                   "branch": {"type": "js", "js": "function apply(x) { return 'd'; }"},
                   "children": [
                       mapped(action("d"), "function apply(d) { return d + '!'; }"),
                       action("e")]}),
        ],
    )
}

/// The result of [`tree`] for `input` when each service answers `<name>(<its input>)`.
fn expected(input: &str) -> String {
    let each: Vec<String> = (1..=3).map(|i| format!("m(a({input})#{i})")).collect();
    let each = serde_json::to_string(&each).unwrap();
    format!("d(b(a({input}))+c(a({input}))+{each})!")
}

/// The POSTs of a run of [`tree`]: a, b, c, d, and m three times.
const POSTS_A_RUN: usize = 7;

/// Every action calls back at once with `<name>(<its input>)`, retrying while aetr is away.
fn echo_services(svc: &TestService) {
    for name in ["a", "b", "c", "d", "m"] {
        let echo = Arc::new(|r: &Received| Some(format!("{}({})", &r.path[1..], r.body)));
        svc.respond(&format!("/{name}"), Respond::CallBack(echo));
    }
}

/// All the requests the service got until it has been quiet for a while.
async fn drain(svc: &TestService) -> Vec<Received> {
    let mut all = Vec::new();
    while let Some(r) = svc.next_within(Duration::from_millis(300)).await {
        all.push(r);
    }
    all
}

/// Each action of each run was sent with one Idempotency-Key only (a repeated POST is the same
/// attempt), and its outcome is recorded exactly once. An action is its node (`<nodeId>:<n>`
/// is the key): a Map's instances share their path.
async fn assert_each_action_done_once(app: &TestApp, received: &[Received]) {
    let mut keys: HashMap<(String, String), BTreeSet<String>> = HashMap::new();
    for r in received {
        let run = r.header("x-aetr-run").unwrap().to_owned();
        let key = r.header("idempotency-key").unwrap().to_owned();
        let node = key.split(':').next().unwrap().to_owned();
        keys.entry((run, format!("{} (node {node})", r.path))).or_default().insert(key);
    }
    for ((run, path), keys) in &keys {
        assert_eq!(keys.len(), 1, "run {run} {path} was sent as several attempts: {keys:?}");
    }
    let db = app.db().await;
    let rows = db
        .query(
            "SELECT run_id, idx, count(*) FILTER (WHERE status = 'Complete'), count(*)
             FROM attempts GROUP BY run_id, idx",
            &[],
        )
        .await
        .unwrap();
    for row in rows {
        let (run, idx): (Uuid, i32) = (row.get(0), row.get(1));
        let (complete, all): (i64, i64) = (row.get(2), row.get(3));
        assert_eq!(
            (complete, all),
            (1, 1),
            "run {run} node {idx}: {all} attempts, {complete} complete"
        );
    }
}

/// Starts `n` runs of `step`, each with its own input.
async fn start_runs(app: &TestApp, step: Uuid, n: usize) -> Vec<(Uuid, String)> {
    let mut runs = Vec::with_capacity(n);
    for i in 0..n {
        let input = format!("run-{i}");
        runs.push((app.start_run(step, json!(input)).await, input));
    }
    runs
}

/// Every run of [`tree`] completes with the result its input makes.
async fn assert_exact_results(app: &TestApp, runs: &[(Uuid, String)]) {
    for (run, input) in runs {
        let done = app.wait_root_for(*run, "Complete", Duration::from_secs(120)).await;
        assert_eq!(done["result"], expected(input).as_str(), "run {run}");
    }
}

/// 30 runs of [`tree`] on a server that keeps its port across a restart; `interrupt` stops it
/// and starts it again once 40 POSTs were made, with runs at different stages. Every run must
/// then complete with its exact result, and every action be sent and recorded once.
async fn thirty_runs_survive(interrupt: impl FnOnce(&mut TestApp)) {
    let bind = format!("127.0.0.1:{}", free_port());
    let mut app = TestApp::spawn_with(&[("AETR_BIND", &bind)]).await;
    let svc = TestService::start().await;
    echo_services(&svc);
    let runs = start_runs(&app, app.put_tree(&tree(&svc)).await, 30).await;
    let mut received = svc.take(40).await;
    interrupt(&mut app);
    assert_exact_results(&app, &runs).await;
    received.extend(drain(&svc).await);
    assert_eq!(
        received.len(),
        30 * POSTS_A_RUN,
        "one POST per action, none lost and none repeated"
    );
    assert_each_action_done_once(&app, &received).await;
}

#[tokio::test]
async fn runs_in_flight_survive_kill_9_with_exact_results_and_one_outcome_per_action() {
    thirty_runs_survive(TestApp::crash_and_restart).await;
}

#[tokio::test]
async fn replicas_share_the_work_and_take_each_others_callbacks_without_dispatching_twice() {
    let app = TestApp::spawn().await;
    let other = app.replica();
    let svc = TestService::start().await;
    let action = |name: &str| api_with(name, &svc.at(&format!("/{name}")), json!({}));
    let step = app.put_tree(&seq("s", vec![action("a"), action("b")])).await;
    let mut runs = Vec::new();
    for i in 0..200 {
        // Half the runs start on each replica.
        let start = if i % 2 == 0 { app.url("") } else { other.base_url.clone() };
        let url = format!("{start}/api/v1/runs/step/{step}");
        let answer =
            app.http.post(url).json(&json!({"input": format!("r{i}")})).send().await.unwrap();
        assert_eq!(answer.status(), 201);
        let id: Value = answer.json().await.unwrap();
        runs.push(Uuid::parse_str(id["id"].as_str().unwrap()).unwrap());
    }
    let mut received = Vec::new();
    let mut dispatched_by = HashMap::<bool, usize>::new();
    while received.len() < 400 {
        let r = svc.next().await;
        // Call back the replica that did not send it.
        let from_first = r.callback.starts_with(&app.url(""));
        *dispatched_by.entry(from_first).or_default() += 1;
        let (mine, theirs) = if from_first {
            (app.url(""), other.base_url.clone())
        } else {
            (other.base_url.clone(), app.url(""))
        };
        let callback = r.callback.replacen(&mine, &theirs, 1);
        let answer = app
            .http
            .post(callback)
            .body(format!("{}({})", &r.path[1..], r.body))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        received.push(r);
    }
    for (i, run) in runs.iter().enumerate() {
        let done = app.wait_root_for(*run, "Complete", Duration::from_secs(30)).await;
        assert_eq!(done["result"], format!("b(a(r{i}))"));
    }
    received.extend(drain(&svc).await);
    assert_eq!(received.len(), 400, "no action was sent twice");
    assert_each_action_done_once(&app, &received).await;
    assert!(dispatched_by.len() == 2, "both replicas dispatched: {dispatched_by:?}");
}

#[tokio::test]
async fn a_kill_9_in_a_burst_of_200_dispatches_loses_none_and_sends_none_as_a_new_attempt() {
    let bind = format!("127.0.0.1:{}", free_port());
    let mut app = TestApp::spawn_with(&[("AETR_BIND", &bind)]).await;
    let svc = TestService::start().await;
    let echo = Arc::new(|r: &Received| Some(format!("{}({})", &r.path[1..], r.body)));
    svc.respond("/leaf", Respond::CallBack(echo));
    let leaves: Vec<Value> = (0..200)
        .map(|i| api_with(&format!("leaf{i}"), &svc.at("/leaf"), json!({"timeoutSeconds": 1})))
        .collect();
    let js = "function apply(rs) { return String(rs.filter(r => r === 'leaf(in)').length); }";
    let run = app.start_run(app.put_tree(&par_js("burst", js, leaves)).await, json!("in")).await;
    let mut received = svc.take(50).await;
    app.crash_and_restart();

    let done = app.wait_root_for(run, "Complete", Duration::from_secs(90)).await;
    assert_eq!(done["result"], "200");
    received.extend(drain(&svc).await);
    let keys: BTreeSet<&str> =
        received.iter().map(|r| r.header("idempotency-key").unwrap()).collect();
    assert_eq!(keys.len(), 200, "one key per leaf");
    assert!(keys.iter().all(|k| k.ends_with(":1")), "no leaf needed a second attempt");
    let db = app.db().await;
    let row = db
        .query_one(
            "SELECT count(*) FILTER (WHERE status = 'Complete'), count(*) FROM attempts
             WHERE run_id = $1",
            &[&run],
        )
        .await
        .unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (200, 200));
}

#[tokio::test]
async fn sigterm_under_load_exits_0_and_a_restart_finishes_every_run() {
    thirty_runs_survive(|app| {
        let (status, log) = app.stop_and_restart("TERM");
        assert!(status.success(), "SIGTERM exits 0: {status}\n{log}");
    })
    .await;
}

#[tokio::test]
#[ignore = "a benchmark: run it with --ignored --nocapture"]
async fn restart_with_1000_runs_in_flight() {
    const RUNS: usize = 1000;
    let bind = format!("127.0.0.1:{}", free_port());
    let mut app = TestApp::spawn_with(&[("AETR_BIND", &bind)]).await;
    let svc = TestService::start().await;
    // Every first attempt is told to come back in an hour.
    svc.respond("/a", Respond::TooMany(3600));
    let step = app.put_tree(&api_with("a", &svc.at("/a"), json!({}))).await;
    let mut runs = Vec::with_capacity(RUNS);
    for i in 0..RUNS {
        runs.push(app.start_run(step, json!(format!("r{i}"))).await);
    }
    svc.take(RUNS).await;
    let last = *runs.last().unwrap();
    app.wait_until(last, "its backoff", |run| run["state"] == "Pending").await;
    let (status, _) = app.stop("KILL");
    assert!(!status.success());
    // While it is down, the hour passes: every run's next POST is due.
    let db = app.db().await;
    let due = db.execute("UPDATE run_nodes SET due_at = now() WHERE phase = 'Ready'", &[]).await;
    assert_eq!(due.unwrap(), RUNS as u64);
    svc.respond("/a", Respond::Status(202));

    let restart = std::time::Instant::now();
    app.start_again();
    let listening = restart.elapsed();
    svc.next().await;
    let first = restart.elapsed();
    svc.take(RUNS - 1).await;
    let all = restart.elapsed();
    println!(
        "restart with {RUNS} runs due: listening after {listening:.2?}, first dispatch after \
         {first:.2?}, all {RUNS} dispatched after {all:.2?}"
    );
}

#[tokio::test]
async fn concurrent_claimers_never_claim_the_same_node() {
    const LEAVES: usize = 500;
    let mut app = TestApp::spawn().await;
    let svc = TestService::start().await;
    svc.respond("/leaf", Respond::TooMany(3600));
    let leaves: Vec<Value> =
        (0..LEAVES).map(|i| api_with(&format!("leaf{i}"), &svc.at("/leaf"), json!({}))).collect();
    let run = app.start_run(app.put_tree(&crate::runs::par("p", leaves)).await, json!(null)).await;
    svc.take(LEAVES).await;
    app.wait_until(run, "every leaf's backoff", |tree| {
        tree["children"].as_array().unwrap().iter().all(|leaf| leaf["state"] == "Pending")
    })
    .await;
    // No server claims now: eight claimers race for the due nodes, in small bites.
    app.stop("TERM");
    let db = app.db().await;
    db.execute("UPDATE run_nodes SET due_at = now() WHERE phase = 'Ready'", &[]).await.unwrap();
    let claimers = (0..8).map(|_| {
        let connecting = app.db();
        async move {
            let client = connecting.await;
            let mut mine = Vec::new();
            loop {
                let now = std::time::SystemTime::now();
                let lease = now + Duration::from_secs(60);
                let claim = aetr_server::store::nodes::CLAIM_SQL;
                let claimed = client.query(claim, &[&now, &7i64, &7i64, &lease]).await.unwrap();
                if claimed.is_empty() {
                    return mine;
                }
                mine.extend(claimed.iter().map(|row| (row.get("run_id"), row.get("idx"))));
            }
        }
    });
    let all: Vec<(Uuid, i32)> =
        futures_util::future::join_all(claimers).await.into_iter().flatten().collect();
    let distinct: BTreeSet<_> = all.iter().collect();
    assert_eq!(all.len(), LEAVES, "every due node claimed once");
    assert_eq!(distinct.len(), LEAVES, "no node claimed twice");
}

#[tokio::test]
async fn a_database_outage_is_503_meanwhile_and_every_run_completes_after_it() {
    use aetr_server::db::embedded::{Cluster, Keep};
    let dir = std::env::temp_dir().join(format!("aetr-outage-{}", Uuid::new_v4().simple()));
    let start = |keep| {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || Cluster::start(&dir, keep).expect("a cluster"))
    };
    let cluster = start(Keep::Data).await.unwrap();
    let admin = aetr_server::db::connect(&cluster.pg_config("postgres")).await.unwrap();
    admin.batch_execute("CREATE DATABASE aetr").await.unwrap();
    drop(admin);
    let app = TestApp::on_database(&cluster.connection_string("aetr"), &[]);
    let svc = TestService::start().await;
    echo_services(&svc);
    let step = app.put_tree(&tree(&svc)).await;
    let runs = start_runs(&app, step, 20).await;
    svc.take(20).await;

    tokio::task::spawn_blocking(move || cluster.stop().expect("stop the cluster")).await.unwrap();
    let (run, _) = &runs[0];
    let down = app.get(&format!("/api/v1/runs/{run}")).await.expect(503);
    assert!(down.header("retry-after").is_some(), "a 503 says when to try again");
    app.get("/readyz").await.expect(503);
    app.get("/healthz").await.expect(200);
    tokio::time::sleep(Duration::from_secs(1)).await;

    // The same data, started again (and removed when the tests end).
    let _cluster = start(Keep::Nothing).await.unwrap();
    assert_exact_results(&app, &runs).await;
    app.get("/readyz").await.expect(200);
}
