//! `aetr` as a client (design.md, "The command line"): `run`, `wait`, `steps` and `runs`
//! against a real server, as a shell script or a person runs them: their exit codes, standard
//! output and standard error, JSON in a pipe and text on a terminal; and the long poll that
//! `run` and `wait` use.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::runs::{api, mapped, noop, seq};
use crate::support::{Respond, TestApp, TestService};

/// What a command did.
struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!("not JSON ({e}): {:?}, stderr {:?}", self.stdout, self.stderr)
        })
    }
}

/// Runs `aetr ARGS` against `app` with `stdin` (bytes) in a pipe, off the test's runtime.
async fn aetr(app: &TestApp, args: &[&str], stdin: &[u8]) -> Ran {
    aetr_with(&app.url(""), &[], args, stdin).await
}

async fn aetr_with(url: &str, env: &[(&str, &str)], args: &[&str], stdin: &[u8]) -> Ran {
    let mut command = Command::new(env!("CARGO_BIN_EXE_aetr"));
    command
        .args(args)
        .env("AETR_URL", url)
        .env_remove("AETR_TOKEN")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let stdin = stdin.to_vec();
    tokio::task::spawn_blocking(move || {
        let mut child = command.spawn().expect("aetr starts");
        let _ = child.stdin.take().expect("a stdin").write_all(&stdin);
        let out = child.wait_with_output().expect("aetr ends");
        Ran {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    })
    .await
    .expect("the command's thread")
}

/// Runs `aetr ARGS` on a terminal (a pseudo-terminal, through `script`): what a person sees.
async fn aetr_on_a_terminal(app: &TestApp, args: &[&str]) -> Ran {
    let line = std::iter::once(env!("CARGO_BIN_EXE_aetr"))
        .chain(args.iter().copied())
        .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
        .collect::<Vec<_>>()
        .join(" ");
    let mut command = Command::new("script");
    command.args(["-qec", &line, "/dev/null"]).env("AETR_URL", app.url(""));
    let out = tokio::task::spawn_blocking(move || command.output().expect("script runs"))
        .await
        .expect("the command's thread");
    Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n"),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A tree that upper-cases its input without calling anything.
fn shout(name: &str) -> Value {
    seq(name, vec![mapped(noop("up"), "function apply(d) { return d.toUpperCase(); }")])
}

#[tokio::test]
async fn run_prints_the_result_raw_from_an_argument_or_standard_input() {
    let app = TestApp::spawn().await;
    let step = app.put_tree(&shout("shout")).await;
    let by_name = aetr(&app, &["run", "shout", "hello"], b"").await;
    assert_eq!((by_name.code, by_name.stdout.as_str()), (0, "HELLO"), "{}", by_name.stderr);
    assert_eq!(by_name.stderr, "", "nothing on standard error in a pipe");
    let piped = aetr(&app, &["run", &step.to_string()], b"from a pipe\n").await;
    assert_eq!((piped.code, piped.stdout.as_str()), (0, "FROM A PIPE\n"), "{}", piped.stderr);

    // --detach prints the id; `aetr wait` takes it on standard input (acjob | acpoll).
    let detached = aetr(&app, &["run", "--detach", "shout", "later"], b"").await;
    assert_eq!(detached.code, 0, "{}", detached.stderr);
    let id = detached.stdout.trim().to_owned();
    assert!(uuid::Uuid::try_parse(&id).is_ok(), "{id:?}");
    let waited = aetr(&app, &["wait"], id.as_bytes()).await;
    assert_eq!((waited.code, waited.stdout.as_str()), (0, "LATER"), "{}", waited.stderr);

    // On a terminal (a progress bar on standard error, cleared at the end), the same result.
    let seen = aetr_on_a_terminal(&app, &["run", "shout", "on a tty"]).await;
    assert_eq!(seen.code, 0, "{}", seen.stdout);
    assert!(seen.stdout.contains("ON A TTY"), "{:?}", seen.stdout);
}

#[tokio::test]
async fn run_and_wait_exit_codes_say_how_the_run_ended() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    svc.respond("/bad", Respond::Status(400));
    app.put_tree(&seq("fails", vec![api("bad", &svc.at("/bad"))])).await;
    app.put_tree(&seq("slow", vec![api("held", &svc.at("/held"))])).await;

    let failed = aetr(&app, &["run", "fails", "x"], b"").await;
    assert_eq!(failed.code, 1);
    assert_eq!(failed.stdout, "");
    assert!(
        failed.stderr.starts_with("aetr: run ") && failed.stderr.contains("failed: "),
        "{}",
        failed.stderr
    );
    assert_eq!(failed.stderr.lines().count(), 1, "one line: {}", failed.stderr);

    let still = aetr(&app, &["run", "--timeout", "1", "slow", "x"], b"").await;
    assert_eq!(still.code, 4, "{}", still.stderr);
    assert!(still.stderr.contains("is still Executing after 1 s"), "{}", still.stderr);
    svc.next().await;

    let detached = aetr(&app, &["run", "--detach", "slow", "y"], b"").await;
    let run = detached.stdout.trim().to_owned();
    svc.next().await;
    let cancelled = aetr(&app, &["runs", "cancel", &run], b"").await;
    assert_eq!(cancelled.code, 0, "{}", cancelled.stderr);
    assert_eq!(cancelled.json()["state"], "Cancelled");
    let waited = aetr(&app, &["wait", &run], b"").await;
    assert_eq!(waited.code, 3, "{}", waited.stderr);
}

#[tokio::test]
async fn bad_input_is_one_line_on_standard_error_and_never_a_panic() {
    let app = TestApp::spawn().await;
    app.put_tree(&shout("twin")).await;
    let mut other = shout("twin");
    other["children"][0]["name"] = json!("up2");
    app.put_tree(&other).await;

    let cases: Vec<(Ran, i32, &str)> = vec![
        (aetr(&app, &["run", "nobody", "x"], b"").await, 2, "no step is named \"nobody\""),
        (aetr(&app, &["run", "twin", "x"], b"").await, 2, "2 steps are named \"twin\""),
        (aetr(&app, &["run", "twin"], &[0xff, 0xfe, b'a']).await, 2, "not UTF-8"),
        (
            aetr_with("http://127.0.0.1:9", &[], &["run", "x", "y"], b"").await,
            1,
            "cannot reach the aetr server",
        ),
        (aetr(&app, &["runs", "show", "not-a-run"], b"").await, 1, "404"),
        (aetr(&app, &["wait"], b"").await, 2, "give a run's id"),
    ];
    for (ran, code, says) in cases {
        assert_eq!(ran.code, code, "{}", ran.stderr);
        assert!(ran.stderr.starts_with("aetr: ") && ran.stderr.contains(says), "{}", ran.stderr);
        assert_eq!(ran.stderr.lines().count(), 1, "one line: {}", ran.stderr);
        assert!(!ran.stderr.contains("panicked"), "{}", ran.stderr);
    }
    let usage = aetr(&app, &["run"], b"").await;
    assert_eq!(usage.code, 2, "clap's usage error: {}", usage.stderr);
}

#[tokio::test]
async fn a_refused_or_missing_token_says_so() {
    let app = TestApp::spawn_with(&[("AETR_API_TOKENS", "right-token-1")]).await;
    let url = app.url("");
    let none = aetr_with(&url, &[], &["steps", "ls"], b"").await;
    assert_eq!(none.code, 1);
    assert!(none.stderr.contains("needs an API token: set AETR_TOKEN"), "{}", none.stderr);
    let wrong = aetr_with(&url, &[("AETR_TOKEN", "wrong")], &["steps", "ls"], b"").await;
    assert_eq!(wrong.code, 1);
    assert!(wrong.stderr.contains("refused the API token"), "{}", wrong.stderr);
    let right = aetr_with(&url, &[("AETR_TOKEN", "right-token-1")], &["steps", "ls"], b"").await;
    assert_eq!((right.code, right.json()), (0, json!([])), "{}", right.stderr);
}

#[tokio::test]
async fn steps_put_get_ls_rm_print_json_in_a_pipe_and_text_on_a_terminal() {
    let app = TestApp::spawn().await;
    let tree = serde_json::to_vec(&shout("cli-tree")).unwrap_or_default();
    let put = aetr(&app, &["steps", "put", "-"], &tree).await;
    assert_eq!(put.code, 0, "{}", put.stderr);
    let id = put.json()["id"].as_str().unwrap_or_default().to_owned();

    let got = aetr(&app, &["steps", "get", "cli-tree"], b"").await;
    assert_eq!(got.json()["id"], json!(id));
    assert_eq!(got.json()["children"][0]["name"], "up");
    let listed = aetr(&app, &["steps", "ls", "cli"], b"").await;
    assert_eq!(listed.json(), json!([{"id": id, "name": "cli-tree", "stepType": "Sequential"}]));

    let text = aetr_on_a_terminal(&app, &["steps", "get", &id]).await;
    assert_eq!(text.code, 0, "{}", text.stdout);
    assert_eq!(text.stdout.trim_end(), "cli-tree (Sequential)\n  up (Action)");
    let text = aetr_on_a_terminal(&app, &["steps", "ls"]).await;
    assert!(text.stdout.contains(&format!("{id}  Sequential  cli-tree")), "{}", text.stdout);

    let removed = aetr(&app, &["steps", "rm", &id], b"").await;
    assert_eq!((removed.code, removed.json()), (0, json!({"deleted": id})), "{}", removed.stderr);
    let again = aetr(&app, &["steps", "rm", &id], b"").await;
    assert_eq!(again.code, 1, "a second removal is refused: {}", again.stderr);
}

#[tokio::test]
async fn runs_ls_show_events_and_retry_as_json_and_as_text() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    svc.respond("/a", Respond::Status(400));
    let step = app.put_tree(&seq("flaky", vec![api("a", &svc.at("/a"))])).await;
    let failed = aetr(&app, &["run", "flaky", "in"], b"").await;
    assert_eq!(failed.code, 1);
    svc.next().await;
    let run = app.get(&format!("/api/v1/runs?stepId={step}")).await.body[0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();

    let listed = aetr(&app, &["runs", "ls", "--state", "Error", "--step", "flaky"], b"").await;
    assert_eq!(listed.json()[0]["id"], json!(run), "{}", listed.stderr);
    let shown = aetr(&app, &["runs", "show", &run], b"").await;
    assert_eq!(shown.json()["children"][0]["state"], "Error");
    let text = aetr_on_a_terminal(&app, &["runs", "show", &run]).await;
    assert!(text.stdout.starts_with("flaky Error"), "{}", text.stdout);
    assert!(text.stdout.contains("\n  a Error: POST "), "{}", text.stdout);
    let events = aetr(&app, &["runs", "events", &run], b"").await;
    let kinds: Vec<Value> = events
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_default()["kind"].clone())
        .collect();
    assert_eq!(kinds.first(), Some(&json!("started")), "{}", events.stdout);
    assert!(kinds.contains(&json!("postFailed")), "{kinds:?}");

    svc.respond("/a", Respond::Status(202));
    let retried = aetr(&app, &["runs", "retry", &run], b"").await;
    assert_eq!(
        (retried.code, retried.json()["state"].clone()),
        (0, json!("Executing")),
        "{}",
        retried.stderr
    );
    let again = svc.next().await;
    let follow = {
        let url = app.url("");
        let run = run.clone();
        tokio::spawn(async move {
            aetr_with(&url, &[], &["runs", "events", "--follow", &run], b"").await
        })
    };
    app.post_raw(&again.callback, "done").await.expect(200);
    let followed = tokio::time::timeout(Duration::from_secs(30), follow)
        .await
        .expect("--follow ends when the run does")
        .expect("the command's task");
    assert_eq!(followed.code, 0, "{}", followed.stderr);
    let last: Value = serde_json::from_str(followed.stdout.lines().last().unwrap_or_default())
        .unwrap_or_default();
    assert_eq!(last["kind"], "callback", "the run's last event, then the end: {}", followed.stdout);
}

/// `GET /runs/{id}?wait=N` answers as soon as the run ends, on the server that ended it and on
/// a replica (told through a NOTIFY), and holds no database connection meanwhile.
#[tokio::test]
async fn a_long_poll_answers_when_the_run_ends_on_any_replica() {
    let app = TestApp::spawn().await;
    let replica = app.replica();
    let svc = TestService::start().await;
    let step = app.put_tree(&seq("s", vec![api("a", &svc.at("/a"))])).await;
    let run = app.start_run(step, json!("in")).await;
    let a = svc.next().await;

    let http = reqwest::Client::new();
    let poll = |base: String| {
        let http = http.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let answer = http.get(format!("{base}/api/v1/runs/{run}?depth=0&wait=30")).send().await;
            let body: Value = answer.expect("an answer").json().await.expect("JSON");
            (started.elapsed(), body)
        })
    };
    let here = poll(app.url(""));
    let there = poll(replica.base_url.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.post_raw(&a.callback, "out").await.expect(200);
    for waited in [here, there] {
        let (took, body) = waited.await.expect("the poll's task");
        assert_eq!(body["state"], "Complete");
        assert!(took < Duration::from_secs(20), "woken by the run's end, not the wait: {took:?}");
    }
    let ended = app.get(&format!("/api/v1/runs/{run}?wait=5")).await.expect(200);
    assert_eq!(ended.body["state"], "Complete", "an ended run answers at once");
    let bad = app.get(&format!("/api/v1/runs/{run}?wait=61")).await.expect(400);
    assert!(bad.errors()[0].starts_with("wait: "), "{:?}", bad.errors());
}

#[tokio::test]
async fn runs_complete_and_fail_settle_a_waiting_action_named_or_by_id() {
    let app = TestApp::spawn().await;
    let approval = json!({"name": "approve", "stepType": "Action", "action": {"type": "manual"}});
    let step = app.put_tree(&seq("flow", vec![approval, noop("after")])).await;
    let waiting = |t: &Value| t["children"][0]["state"] == "Executing";

    let run = app.start_run(step, json!("order")).await;
    app.wait_until(run, "the approval waits", waiting).await;
    let id = run.to_string();
    let done = aetr(&app, &["runs", "complete", &id, "approve", "approved by Ann"], b"").await;
    assert_eq!(done.code, 0, "{}", done.stderr);
    assert_eq!(done.json()["state"], "Complete");
    assert_eq!(app.wait_run(run, "Complete").await["result"], "approved by Ann");

    // The result may come on standard input; the node may be given by its id.
    let run = app.start_run(step, json!("order")).await;
    let tree = app.wait_until(run, "the approval waits", waiting).await;
    let node = tree["children"][0]["id"].as_str().unwrap().to_owned();
    let id = run.to_string();
    let done = aetr(&app, &["runs", "complete", &id, &node], b"from stdin").await;
    assert_eq!(done.code, 0, "{}", done.stderr);
    assert_eq!(app.wait_run(run, "Complete").await["result"], "from stdin");

    let run = app.start_run(step, json!("order")).await;
    app.wait_until(run, "the approval waits", waiting).await;
    let id = run.to_string();
    let unknown = aetr(&app, &["runs", "fail", &id, "nobody"], b"").await;
    assert_eq!(unknown.code, 2, "{}", unknown.stderr);
    assert!(unknown.stderr.contains("no action named \"nobody\" that waits"), "{}", unknown.stderr);
    let failed = aetr(&app, &["runs", "fail", &id, "approve", "over budget"], b"").await;
    assert_eq!(failed.code, 0, "{}", failed.stderr);
    assert_eq!(app.wait_run(run, "Error").await["error"], "over budget");
    // Once it has failed, failing it again is refused, in one line.
    let node = app.run(run).await["children"][0]["id"].as_str().unwrap().to_owned();
    let again = aetr(&app, &["runs", "fail", &id, &node], b"").await;
    assert_eq!(again.code, 1);
    assert!(again.stderr.contains("409"), "{}", again.stderr);
}

#[tokio::test]
async fn runs_rm_deletes_a_finished_run_and_refuses_one_in_flight() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    let done = app.start_run(app.put_tree(&noop("n")).await, json!("x")).await;
    app.wait_root(done, "Complete").await;
    let going = app.start_run(app.put_tree(&api("a", &svc.at("/a"))).await, json!("x")).await;
    svc.next().await;

    let (done_id, going_id) = (done.to_string(), going.to_string());
    let removed = aetr(&app, &["runs", "rm", &done_id], b"").await;
    assert_eq!(removed.code, 0, "{}", removed.stderr);
    assert_eq!(removed.json(), json!({"id": done_id, "deleted": true}));
    app.get(&format!("/api/v1/runs/{done}")).await.expect(404);
    let refused = aetr(&app, &["runs", "rm", &going_id], b"").await;
    assert_eq!(refused.code, 1);
    assert!(
        refused.stderr.contains("409") && refused.stderr.contains("in flight"),
        "{}",
        refused.stderr
    );
    app.get(&format!("/api/v1/runs/{going}")).await.expect(200);
}

#[tokio::test]
async fn run_notify_passes_the_webhook_and_its_secret_through() {
    let app = TestApp::spawn().await;
    let hook = TestService::start().await;
    hook.respond("/hook", Respond::Status(200));
    app.put_tree(&shout("shout")).await;
    let env = [("AETR_NOTIFY_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")];
    let ran =
        aetr_with(&app.url(""), &env, &["run", "--notify", &hook.at("/hook"), "shout", "hi"], b"")
            .await;
    assert_eq!((ran.code, ran.stdout.as_str()), (0, "HI"), "{}", ran.stderr);
    let got = hook.next().await;
    let body: Value = serde_json::from_str(&got.body).unwrap();
    assert_eq!((body["state"].as_str(), body["result"].as_str()), (Some("Complete"), Some("HI")));
    assert!(got.header("webhook-signature").is_some_and(|s| s.starts_with("v1,")), "signed");

    let refused = aetr(&app, &["run", "--notify", "ftp://example.com/", "shout", "x"], b"").await;
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("notify.url: scheme \"ftp\" is not supported"),
        "{}",
        refused.stderr
    );
}

#[tokio::test]
async fn run_dry_run_calls_nothing_and_steps_clone_copies_the_tree() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    let tree = seq(
        "pay",
        vec![mapped(api("charge", &svc.at("/charge")), "function apply(d) { return d + '!'; }")],
    );
    let step = app.put_tree(&tree).await;
    let ran = aetr(&app, &["run", "--dry-run", "--result", "charge=ok", "pay", "x"], b"").await;
    assert_eq!((ran.code, ran.stdout.as_str()), (0, "ok!"), "{}", ran.stderr);
    let ran = aetr(&app, &["run", "--dry-run", "pay", "in"], b"").await;
    assert_eq!((ran.code, ran.stdout.as_str()), (0, "in!"), "no result given: its input");
    svc.expect_none(Duration::from_millis(200)).await;
    let bad = aetr(&app, &["run", "--dry-run", "--result", "charge", "pay", "x"], b"").await;
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("expected NAME=TEXT"), "{}", bad.stderr);

    let listed = aetr(&app, &["runs", "ls", "--dry"], b"").await;
    assert_eq!(listed.json().as_array().map(Vec::len), Some(2), "{}", listed.stdout);
    assert!(listed.json().as_array().unwrap().iter().all(|r| r["dryRun"] == true));
    let real = aetr(&app, &["runs", "ls"], b"").await;
    assert_eq!(real.json(), json!([]), "dry runs are not listed as real ones");

    let cloned = aetr(&app, &["steps", "clone", "pay", "--name", "pay v2"], b"").await;
    assert_eq!(cloned.code, 0, "{}", cloned.stderr);
    let copy = cloned.json()["id"].as_str().unwrap().parse().unwrap();
    assert_ne!(copy, step);
    let copied = app.tree(copy).await;
    assert_eq!(copied["name"], "pay v2");
    assert_eq!(copied["children"][0]["mapper"], app.tree(step).await["children"][0]["mapper"]);
}

#[tokio::test]
async fn schedules_add_ls_rm_as_json_and_as_text() {
    let app = TestApp::spawn().await;
    app.put_tree(&shout("shout")).await;
    let add = [
        "schedules",
        "add",
        "shout",
        "*/2 * * * * *",
        "--input",
        "tick",
        "--timezone",
        "Europe/Paris",
    ];
    let added = aetr(&app, &add, b"").await;
    assert_eq!(added.code, 0, "{}", added.stderr);
    let id = added.json()["id"].as_str().expect("an id").to_owned();
    let listed = aetr(&app, &["schedules", "ls", "--step", "shout"], b"").await;
    let list = listed.json();
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(
        (list[0]["cron"].as_str(), list[0]["input"].as_str()),
        (Some("*/2 * * * * *"), Some("tick"))
    );
    assert_eq!(list[0]["timezone"], "Europe/Paris");
    let seen = aetr_on_a_terminal(&app, &["schedules", "ls"]).await;
    assert!(seen.stdout.contains(&id) && seen.stdout.contains("Europe/Paris"), "{}", seen.stdout);

    // A tick starts a run of the step, with the schedule's input.
    let runs = loop {
        let runs = app.get(&format!("/api/v1/runs?scheduleId={id}")).await.expect(200).body;
        if runs.as_array().is_some_and(|r| !r.is_empty()) {
            break runs;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(runs[0]["input"], "tick");

    let bad = aetr(&app, &["schedules", "add", "shout", "61 * * * *"], b"").await;
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("answered 422: cron: "), "{}", bad.stderr);
    let removed = aetr(&app, &["schedules", "rm", &id], b"").await;
    assert_eq!((removed.code, removed.json()["deleted"].as_str()), (0, Some(id.as_str())));
    let gone = aetr(&app, &["schedules", "rm", &id], b"").await;
    assert_eq!(gone.code, 1, "{}", gone.stderr);
}
