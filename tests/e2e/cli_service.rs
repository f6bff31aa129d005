//! `aetr callback` and `aetr serve-command`: the real binary as a service's helper, against a
//! real aetr server, with real processes.

use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use uuid::Uuid;

use crate::runs::api;
use crate::support::{TestApp, TestService};

const DEADLINE: Duration = Duration::from_secs(30);

/// Runs `aetr ARGS` with `stdin` to its end: exit code, standard output, standard error.
async fn aetr(args: &[&str], stdin: &[u8]) -> (i32, String, String) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_aetr"))
        .args(args)
        .env_remove("AETR_URL")
        .env_remove("AETR_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).await.unwrap();
    drop(input);
    let out = tokio::time::timeout(DEADLINE, child.wait_with_output())
        .await
        .expect("aetr ended in time")
        .unwrap();
    (
        out.status.code().expect("an exit code, not a signal"),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// Asserts that standard error is one line, `aetr: ...`, and returns it.
#[track_caller]
fn one_line(err: &str) -> &str {
    let line = err.trim_end_matches('\n');
    assert!(!line.contains('\n') && line.starts_with("aetr: "), "not one line: {err:?}");
    assert!(!line.contains("panicked"), "{err}");
    line
}

/// A run of a tree that is one action calling `url`.
async fn run_of(app: &TestApp, url: &str, input: Value) -> Uuid {
    app.start_run(app.put_tree(&api("act", url)).await, input).await
}

#[tokio::test]
async fn callback_completes_a_node_from_its_argument_or_standard_input_and_a_repeat_exits_1() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;

    let run = run_of(&app, &svc.at("/a"), json!("in")).await;
    let a = svc.next().await;
    let (code, out, err) = aetr(&["callback", &a.callback, "the result"], b"").await;
    assert_eq!((code, out.as_str(), err.as_str()), (0, "", ""));
    assert_eq!(app.wait_run(run, "Complete").await["result"], "the result");

    // Again: 409, exit 1, aetr's own words.
    let (code, _, err) = aetr(&["callback", &a.callback, "again"], b"").await;
    assert_eq!(code, 1, "{err}");
    let line = one_line(&err);
    assert!(line.contains("409") && line.contains("already taken"), "{line}");
    assert_eq!(app.run(run).await["result"], "the result");

    // From standard input.
    let run = run_of(&app, &svc.at("/a"), json!("in")).await;
    let b = svc.next().await;
    let (code, _, err) = aetr(&["callback", &b.callback], "from stdin ✓\n".as_bytes()).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(app.wait_run(run, "Complete").await["result"], "from stdin ✓");

    // A token that aetr does not know: 404, exit 1.
    let forged = app.url("/api/v1/runs/complete?token=nope");
    let (code, _, err) = aetr(&["callback", &forged, "x"], b"").await;
    assert_eq!(code, 1, "{err}");
    assert!(one_line(&err).contains("unknown token"), "{err}");
}

#[tokio::test]
async fn callback_fail_fails_the_node_with_the_message() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    let run = run_of(&app, &svc.at("/a"), json!(1)).await;
    let a = svc.next().await;
    let (code, out, err) = aetr(&["callback", "--fail", &a.callback], b"disk full\n").await;
    assert_eq!((code, out.as_str()), (0, ""), "{err}");
    assert_eq!(app.wait_run(run, "Error").await["error"], "disk full");
}

#[tokio::test]
async fn callback_usage_errors_exit_2_with_one_line() {
    let complete = "http://127.0.0.1:9/api/v1/runs/complete?token=t";
    for (args, stdin) in [
        (vec!["callback", "not a url", "x"], &b""[..]),
        (vec!["callback", "ftp://127.0.0.1/api/v1/runs/complete", "x"], b""),
        (vec!["callback", "--fail", "http://127.0.0.1:9/elsewhere?token=t", "x"], b""),
        (vec!["callback", complete], b"ok\xff\xfe"),
        (vec!["callback", "--give-up-after=-1", complete, "x"], b""),
    ] {
        let (code, _, err) = aetr(&args, stdin).await;
        assert_eq!(code, 2, "{args:?}: {err}");
        one_line(&err);
    }
    let (_, _, err) = aetr(&["callback", complete], b"ok\xff\xfe").await;
    assert!(err.contains("not UTF-8"), "{err}");
    let (_, _, err) = aetr(&["callback", "--fail", "http://127.0.0.1:9/x?token=t", "x"], b"").await;
    assert!(err.contains("/runs/complete"), "{err}");
}

#[tokio::test]
async fn callback_retries_a_503_and_gives_up_on_a_dead_server_at_its_deadline() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    let run = run_of(&app, &svc.at("/a"), json!(1)).await;
    let a = svc.next().await;

    // A proxy in front of aetr that answers the first request 503 and passes the rest on.
    let aetr_addr = app.url("").trim_start_matches("http://").to_owned();
    let proxy = FlakyProxy::start(aetr_addr.clone()).await;
    let through_proxy = a.callback.replace(&aetr_addr, &proxy.addr);
    assert_ne!(through_proxy, a.callback);
    let (code, _, err) = aetr(&["callback", &through_proxy, "after a 503"], b"").await;
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("503") && err.contains("again in"), "the retry is told: {err}");
    assert!(!err.contains("token"), "{err}");
    assert!(proxy.connections.load(Ordering::SeqCst) >= 2);
    assert_eq!(app.wait_run(run, "Complete").await["result"], "after a 503");

    // Nothing listens: connection errors until --give-up-after.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let dead = format!("http://127.0.0.1:{port}/api/v1/runs/complete?token=t");
    let started = Instant::now();
    let (code, _, err) = aetr(&["callback", "--give-up-after", "1", &dead, "x"], b"").await;
    assert_eq!(code, 1, "{err}");
    assert!(err.lines().last().unwrap().starts_with("aetr: gave up on the callback"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(15), "{:?}", started.elapsed());
}

/// A TCP proxy whose first connection gets `503` (after its whole request is read), and whose
/// others are passed to `to`.
struct FlakyProxy {
    addr: String,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl FlakyProxy {
    async fn start(to: String) -> FlakyProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let connections = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&connections);
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let first = count.fetch_add(1, Ordering::SeqCst) == 0;
                let to = to.clone();
                tokio::spawn(async move {
                    if first {
                        read_request(&mut client).await;
                        let answer = "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\
                                      connection: close\r\n\r\n";
                        let _ = client.write_all(answer.as_bytes()).await;
                        let _ = client.shutdown().await;
                    } else if let Ok(mut server) = TcpStream::connect(&to).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        FlakyProxy { addr, connections, task }
    }
}

impl Drop for FlakyProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one HTTP/1.1 request with a `content-length` body.
async fn read_request(stream: &mut TcpStream) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await.unwrap_or(0);
        if n == 0 {
            return;
        }
        seen.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&seen).to_ascii_lowercase();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|l| l.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if seen.len() >= end + 4 + length {
                return;
            }
        }
    }
}

/// A running `aetr serve-command`, its standard error kept; killed when dropped.
struct ServeCommand {
    child: tokio::process::Child,
    url: String,
    log: Arc<Mutex<String>>,
    /// Reads its standard error into `log`, to the end.
    reader: tokio::task::JoinHandle<()>,
}

impl ServeCommand {
    async fn start(options: &[&str], command: &[&str]) -> ServeCommand {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_aetr"))
            .arg("serve-command")
            .args(["--bind", "127.0.0.1:0"])
            .args(options)
            .arg("--")
            .args(command)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let kept = Arc::clone(&log);
        let reader = tokio::spawn(async move {
            let mut tx = Some(tx);
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(at) = line.find("listening on http://") {
                    let url = line[at + "listening on ".len()..].split_whitespace().next();
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(url.unwrap_or_default().to_owned());
                    }
                }
                let mut log = kept.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let url = tokio::time::timeout(DEADLINE, rx).await;
        let url = match url {
            Ok(Ok(url)) => url,
            _ => panic!("serve-command did not start listening:\n{}", log.lock().unwrap()),
        };
        ServeCommand { child, url, log, reader }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until its log satisfies `ready`.
    async fn wait_log(&self, what: &str, ready: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + DEADLINE;
        while !ready(&self.log()) {
            assert!(Instant::now() < deadline, "{what} is not in the log:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends a signal (by PID) and waits for it to exit (and its log to be read to the end):
    /// its exit code and its whole log.
    async fn stop(mut self, signal: &str) -> (i32, String) {
        let pid = self.child.id().expect("still running").to_string();
        let sent = tokio::process::Command::new("kill")
            .args([format!("-{signal}"), pid])
            .status()
            .await
            .unwrap();
        assert!(sent.success());
        let status = tokio::time::timeout(DEADLINE, self.child.wait()).await;
        let status = status.unwrap_or_else(|_| panic!("it did not stop:\n{}", self.log()));
        let read = tokio::time::timeout(DEADLINE, &mut self.reader).await;
        assert!(read.is_ok(), "its standard error did not end:\n{}", self.log());
        (status.unwrap().code().expect("an exit, not a signal"), self.log())
    }
}

impl Drop for ServeCommand {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- aetr serve-command's log ---\n{}", self.log());
        }
    }
}

#[tokio::test]
async fn serve_command_makes_sort_a_service_in_a_tree() {
    let app = TestApp::spawn().await;
    let sort = ServeCommand::start(&[], &["sort"]).await;
    let run = run_of(&app, &format!("{}/sort", sort.url), json!("pear\napple\nfig\n")).await;
    assert_eq!(app.wait_run(run, "Complete").await["result"], "apple\nfig\npear");
    sort.wait_log("the job's end", |log| log.contains("finished: exit status 0")).await;
    let log = sort.log();
    assert!(log.contains("job 1 started, for http://127.0.0.1:"), "{log}");
    assert!(log.contains("result taken"), "{log}");
    assert!(!log.contains("token"), "the token is never logged:\n{log}");
    let (code, log) = sort.stop("TERM").await;
    assert_eq!(code, 0, "{log}");
    assert!(log.ends_with("aetr serve-command stopped\n"), "{log}");
}

#[tokio::test]
async fn serve_command_fails_the_node_with_the_exit_status_and_the_end_of_stderr() {
    let app = TestApp::spawn().await;
    let script = "cat >/dev/null; echo 'line 1' >&2; echo boom >&2; exit 3";
    let failing = ServeCommand::start(&[], &["sh", "-c", script]).await;
    let run = run_of(&app, &format!("{}/x", failing.url), json!("in")).await;
    let error = app.wait_run(run, "Error").await["error"].as_str().unwrap().to_owned();
    assert!(error.contains("exit status 3") && error.ends_with("line 1\nboom"), "{error}");

    // A command that cannot start fails its nodes too.
    let missing = ServeCommand::start(&[], &["/nonexistent/command"]).await;
    let run = run_of(&app, &format!("{}/x", missing.url), json!("in")).await;
    let error = app.wait_run(run, "Error").await["error"].as_str().unwrap().to_owned();
    assert!(error.contains("could not start"), "{error}");

    // A result that aetr refuses (text with a NUL) is reported as the failure, not dropped.
    let nul = ServeCommand::start(&[], &["sh", "-c", r#"cat >/dev/null; printf 'a\000b'"#]).await;
    let run = run_of(&app, &format!("{}/x", nul.url), json!("in")).await;
    let error = app.wait_run(run, "Error").await["error"].as_str().unwrap().to_owned();
    assert!(error.starts_with("aetr refused the result of `sh -c"), "{error}");
    assert!(error.contains("(400)"), "{error}");
}

#[tokio::test]
async fn serve_command_with_concurrency_1_runs_one_copy_at_a_time_and_answers_the_rest_202() {
    let app = TestApp::spawn().await;
    let dir = TempDir::new();
    let (trace, gate) = (dir.0.join("trace"), dir.0.join("gate"));
    // Each copy writes `start`, waits for the gate file, writes `end` and echoes its input.
    let script =
        r#"echo start >> "$0"; while [ ! -e "$1" ]; do sleep 0.02; done; echo end >> "$0"; cat"#;
    let one = ServeCommand::start(
        &["--concurrency", "1"],
        &["sh", "-c", script, trace.to_str().unwrap(), gate.to_str().unwrap()],
    )
    .await;
    let step = app.put_tree(&api("gated", &format!("{}/gated", one.url))).await;
    let runs =
        [app.start_run(step, json!("first")).await, app.start_run(step, json!("second")).await];

    // Both POSTs are answered 202, while only one copy runs.
    for run in runs {
        wait_202(&app, run).await;
    }
    let deadline = Instant::now() + DEADLINE;
    while std::fs::read_to_string(&trace).unwrap_or_default().is_empty() {
        assert!(Instant::now() < deadline, "no copy started:\n{}", one.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(std::fs::read_to_string(&trace).unwrap(), "start\n", "{}", one.log());

    std::fs::write(&gate, "").unwrap();
    let mut results = Vec::new();
    for run in runs {
        results.push(app.wait_run(run, "Complete").await["result"].clone());
    }
    assert_eq!(results, [json!("first"), json!("second")]);
    assert_eq!(std::fs::read_to_string(&trace).unwrap(), "start\nend\nstart\nend\n");
}

/// A directory of the test's; when dropped, its `gate` file is made (so that a gated command
/// that a failed test left behind ends) and the directory removed.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let dir = std::env::temp_dir().join(format!("aetr-cli-service-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::write(self.0.join("gate"), "");
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Waits until the run's root node's first attempt was answered 202.
async fn wait_202(app: &TestApp, run: Uuid) {
    let root = app.run(run).await;
    let url = format!("/api/v1/runs/{run}/nodes/{}", root["id"].as_str().unwrap());
    let deadline = Instant::now() + DEADLINE;
    loop {
        let node = app.get(&url).await.expect(200).body;
        if node["attempts"][0]["httpStatus"] == 202 {
            return;
        }
        assert!(Instant::now() < deadline, "no 202 for run {run}: {node}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn serve_command_refuses_a_post_without_aetr_and_other_methods_and_stops_on_sigint() {
    let served = ServeCommand::start(&[], &["cat"]).await;
    let http = reqwest::Client::new();
    let answer = http.post(format!("{}/x", served.url)).body("in").send().await.unwrap();
    assert_eq!(answer.status(), 400);
    let text = answer.text().await.unwrap();
    assert!(text.trim_end().lines().count() == 1 && text.contains("aetr"), "{text}");
    let answer = http.get(format!("{}/x?aetr=http://h/runs/complete", served.url)).send().await;
    assert_eq!(answer.unwrap().status(), 405);
    let (code, log) = served.stop("INT").await;
    assert_eq!(code, 0, "{log}");
}

#[tokio::test]
async fn serve_command_on_sigterm_kills_what_outlives_its_grace_and_fails_what_was_queued() {
    let app = TestApp::spawn().await;
    // The running copy waits forever (until it is killed); `exec` leaves no shell behind.
    let script = "cat >/dev/null; echo running >&2; exec sleep 600";
    let slow =
        ServeCommand::start(&["--concurrency", "1", "--grace", "0.2"], &["sh", "-c", script]).await;
    let step = app.put_tree(&api("slow", &format!("{}/slow", slow.url))).await;
    let running = app.start_run(step, json!("a")).await;
    wait_202(&app, running).await;
    let queued = app.start_run(step, json!("b")).await;
    wait_202(&app, queued).await;
    slow.wait_log("the first job", |log| log.contains("job 1 started")).await;

    let (code, log) = slow.stop("TERM").await;
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("aetr serve-command stopped"), "{log}");
    assert!(!log.contains("job 2 started"), "{log}");

    let error = app.wait_run(running, "Error").await["error"].as_str().unwrap().to_owned();
    assert!(error.contains("was killed: aetr serve-command stopped"), "{error}");
    let error = app.wait_run(queued, "Error").await["error"].as_str().unwrap().to_owned();
    assert_eq!(error, "aetr serve-command stopped before the command ran");
}

/// The seed's pipeline, end to end: `cat input | aetr run count-words > output`, where the tree
/// chains two commands made services by `aetr serve-command`: `sort`, then `uniq -c`.
#[tokio::test]
async fn a_pipeline_of_two_commands_as_services_runs_from_a_shell_pipe() {
    let app = TestApp::spawn().await;
    let sort = ServeCommand::start(&[], &["sort"]).await;
    let uniq = ServeCommand::start(&[], &["uniq", "-c"]).await;
    let tree = json!({"name": "count-words", "stepType": "Sequential", "children": [
        api("sort", &format!("{}/sort", sort.url)),
        api("count", &format!("{}/uniq", uniq.url)),
    ]});
    app.put_tree(&tree).await;
    let output = std::env::temp_dir().join(format!("aetr-pipe-{}", Uuid::new_v4()));
    let pipeline = "printf 'b\\na\\nb\\nc\\nb\\n' | \"$AETR\" run count-words > \"$OUT\"";
    let status = tokio::process::Command::new("sh")
        .args(["-c", pipeline])
        .env("AETR", env!("CARGO_BIN_EXE_aetr"))
        .env("AETR_URL", app.url(""))
        .env("OUT", &output)
        .kill_on_drop(true)
        .status();
    let status = tokio::time::timeout(DEADLINE, status).await.expect("the pipeline ends");
    assert!(status.unwrap().success());
    let written = std::fs::read_to_string(&output).unwrap_or_default();
    let _ = std::fs::remove_file(&output);
    let counts: Vec<String> =
        written.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect();
    assert_eq!(counts, ["1 a", "3 b", "1 c"], "{written:?}");
}
