//! `aetr serve-command --bind ADDR [--concurrency N] -- CMD [ARGS...]`: any command as a
//! service. Each POST is answered 202 at once; CMD then runs (no shell) with the body on its
//! standard input, at most N at a time, and its standard output is the result (exit 0), or its
//! exit status and the end of its standard error the failure, posted to the callback URL as
//! `aetr callback` would ([`deliver`]).
//!
//! Jobs run on the command's own runtime, not on the HTTP workers': the workers only answer and
//! hand each job over a channel. On SIGINT or SIGTERM new POSTs get 503, queued jobs report a
//! failure without running, running ones get `--grace` seconds to finish before they are
//! killed (and reported failed); a second signal kills them at once.

use std::collections::HashSet;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::http::Method;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use clap::Args;
use reqwest::Url;
use rustix::process::{Pid, Signal};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::callback::{deliver, fail_url, http_client, seconds, without_query, Delivery};
use super::Exit;

#[derive(Debug, Clone, Args)]
pub struct ServeCommandArgs {
    /// The address to serve on.
    #[arg(long, default_value = "127.0.0.1:8000")]
    pub bind: String,
    /// How many copies of the command may run at once; the rest wait.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
    /// Retry a callback after a connection error or a 5xx for up to this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 300.0)]
    pub give_up_after: f64,
    /// On SIGINT or SIGTERM, how long running commands may take to finish before they are
    /// killed.
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0)]
    pub grace: f64,
}

/// The largest request body taken (a larger one gets 413).
const MAX_BODY_BYTES: usize = 64 << 20;
/// How much of the command's standard error a failure quotes: its last lines, at most so many
/// bytes.
const TAIL_LINES: usize = 20;
const TAIL_BYTES: usize = 4096;
/// How long the callbacks of killed commands, and those still being retried, may take once the
/// grace period is over.
const LAST_CALLBACKS: Duration = Duration::from_secs(5);

pub async fn run(args: ServeCommandArgs) -> Exit {
    if args.concurrency == 0 {
        return Exit::Usage("--concurrency must be 1 or more".into());
    }
    let Some(give_up_after) = seconds(args.give_up_after) else {
        return Exit::Usage("--give-up-after must be a number of seconds, 0 or more".into());
    };
    let Some(grace) = seconds(args.grace) else {
        return Exit::Usage("--grace must be a number of seconds, 0 or more".into());
    };
    if args.command.first().is_none_or(|program| program.is_empty()) {
        return Exit::Usage("no command to serve: give it after --".into());
    }
    let http = match http_client() {
        Ok(http) => http,
        Err(e) => return Exit::Failed(e),
    };
    let (mut term, mut int) =
        match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            (Ok(term), Ok(int)) => (term, int),
            (Err(e), _) | (_, Err(e)) => {
                return Exit::Failed(format!("cannot watch for signals: {e}"))
            }
        };

    let (jobs_tx, mut jobs) = mpsc::unbounded_channel();
    let front = web::Data::new(Front {
        jobs: jobs_tx,
        next_id: AtomicU64::new(1),
        stopping: AtomicBool::new(false),
        in_hand: Arc::new(Mutex::new(HashSet::new())),
    });
    let in_hand = Arc::clone(&front.in_hand);
    let app_front = front.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(app_front.clone())
            .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
            .default_service(web::to(accept))
    })
    .workers(2)
    .disable_signals()
    .shutdown_timeout(5)
    .bind(args.bind.as_str());
    let server = match server {
        Ok(server) => server,
        Err(e) => return Exit::Failed(format!("cannot listen on {}: {e}", args.bind)),
    };
    let Some(addr) = server.addrs().first().copied() else {
        return Exit::Failed(format!("cannot listen on {}: it names no address", args.bind));
    };
    let command = args.command.join(" ");
    eprintln!(
        "aetr serve-command listening on http://{addr} (runs `{command}`, {} at a time)",
        args.concurrency
    );
    let server = server.run();
    let handle = server.handle();
    let mut serving = tokio::spawn(server);

    let runner = Arc::new(Runner {
        command: args.command,
        slots: Arc::new(Semaphore::new(args.concurrency)),
        http,
        give_up_after,
        stop: CancellationToken::new(),
        kill: CancellationToken::new(),
        in_hand,
    });
    let tracker = TaskTracker::new();
    let mut failed = None;
    loop {
        tokio::select! {
            job = jobs.recv() => match job {
                Some(job) => drop(tracker.spawn(Arc::clone(&runner).job(job))),
                None => break,
            },
            _ = term.recv() => break,
            _ = int.recv() => break,
            served = &mut serving => {
                let why = match served {
                    Ok(Ok(())) => "it stopped".to_owned(),
                    Ok(Err(e)) => e.to_string(),
                    Err(e) => e.to_string(),
                };
                failed = Some(format!("the HTTP server failed: {why}"));
                break;
            }
        }
    }

    eprintln!(
        "aetr serve-command: stopping: new POSTs get 503; queued jobs fail; running ones have \
         {} s to finish",
        grace.as_secs_f64()
    );
    front.stopping.store(true, Ordering::SeqCst);
    runner.stop.cancel();
    if !serving.is_finished() {
        handle.stop(true).await;
        let _ = serving.await;
    }
    // Jobs answered 202 while the server stopped.
    while let Ok(job) = jobs.try_recv() {
        drop(tracker.spawn(Arc::clone(&runner).job(job)));
    }
    tracker.close();
    let finished = tokio::select! {
        _ = tracker.wait() => true,
        _ = tokio::time::sleep(grace) => false,
        _ = term.recv() => false,
        _ = int.recv() => false,
    };
    if !finished {
        eprintln!("aetr serve-command: killing the {} jobs still in hand", tracker.len());
        runner.kill.cancel();
        let waited =
            tokio::time::timeout(LAST_CALLBACKS + Duration::from_secs(1), tracker.wait()).await;
        if waited.is_err() {
            eprintln!(
                "aetr serve-command: {} callbacks abandoned (aetr will time those nodes out)",
                tracker.len()
            );
        }
    }
    eprintln!("aetr serve-command stopped");
    match failed {
        Some(why) => Exit::Failed(why),
        None => Exit::Done,
    }
}

/// What the HTTP workers share: where jobs go.
struct Front {
    jobs: mpsc::UnboundedSender<Job>,
    next_id: AtomicU64,
    stopping: AtomicBool,
    /// The `Idempotency-Key`s of the jobs queued or running: aetr re-sends the same attempt
    /// (same key) after a crash, and one copy is enough.
    in_hand: Arc<Mutex<HashSet<String>>>,
}

/// One POST to serve.
struct Job {
    id: u64,
    input: web::Bytes,
    callback: Url,
    key: Option<String>,
}

/// Answers every request at once: 202 to a POST with an `aetr` callback URL (the job is handed
/// over before the answer), 400 to one without, 405 to other methods.
async fn accept(req: HttpRequest, input: web::Bytes, front: web::Data<Front>) -> HttpResponse {
    let refuse = |mut answer: actix_web::HttpResponseBuilder, why: &str| {
        answer.content_type("text/plain; charset=utf-8").body(format!("{why}\n"))
    };
    if req.method() != Method::POST {
        let mut answer = HttpResponse::MethodNotAllowed();
        answer.insert_header((actix_web::http::header::ALLOW, "POST"));
        return refuse(answer, "only POST: aetr posts an action's input here");
    }
    let callback = url::form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(name, _)| name == "aetr")
        .map(|(_, value)| value.into_owned());
    let Some(callback) = callback else {
        let why = "no `aetr` query parameter: aetr adds the callback URL there";
        return refuse(HttpResponse::BadRequest(), why);
    };
    let callback = match Url::parse(&callback) {
        Ok(url) if ["http", "https"].contains(&url.scheme()) => url,
        _ => return refuse(HttpResponse::BadRequest(), "the `aetr` parameter is no http(s) URL"),
    };
    if !callback.path().ends_with("/runs/complete") {
        let why = "the `aetr` URL's path does not end in /runs/complete";
        return refuse(HttpResponse::BadRequest(), why);
    }
    if front.stopping.load(Ordering::SeqCst) {
        return refuse(HttpResponse::ServiceUnavailable(), "aetr serve-command is stopping");
    }
    let key =
        req.headers().get("idempotency-key").and_then(|key| key.to_str().ok()).map(str::to_owned);
    let id = front.next_id.fetch_add(1, Ordering::Relaxed);
    if let Some(key) = &key {
        let mut in_hand = front.in_hand.lock().unwrap_or_else(|e| e.into_inner());
        if !in_hand.insert(key.clone()) {
            eprintln!(
                "aetr serve-command: job {id}: the same attempt ({key}) is already queued or \
                 running; not run again"
            );
            return HttpResponse::Accepted().finish();
        }
    }
    let job = Job { id, input, callback, key };
    match front.jobs.send(job) {
        Ok(()) => HttpResponse::Accepted().finish(),
        Err(_) => refuse(HttpResponse::ServiceUnavailable(), "aetr serve-command is stopping"),
    }
}

/// Runs jobs: the command, the concurrency bound, the callbacks.
struct Runner {
    command: Vec<String>,
    slots: Arc<Semaphore>,
    http: reqwest::Client,
    give_up_after: Duration,
    /// Cancelled on the first signal: queued jobs fail without running.
    stop: CancellationToken,
    /// Cancelled when the grace period is over: running commands are killed.
    kill: CancellationToken,
    in_hand: Arc<Mutex<HashSet<String>>>,
}

/// How a command ended: its result or failure message, and a summary for the log.
struct Ended {
    result: Result<String, String>,
    summary: String,
}

impl Runner {
    async fn job(self: Arc<Self>, job: Job) {
        let id = job.id;
        let shown = without_query(&job.callback);
        let permit = tokio::select! {
            biased;
            _ = self.stop.cancelled() => None,
            permit = Arc::clone(&self.slots).acquire_owned() => permit.ok(),
        };
        let ended = match permit {
            None => Ended {
                result: Err("aetr serve-command stopped before the command ran".into()),
                summary: "not run: stopping".into(),
            },
            Some(_permit) => {
                eprintln!("aetr serve-command: job {id} started, for {shown}");
                let started = Instant::now();
                let mut ended = self.execute(&job.input).await;
                ended.summary =
                    format!("{} after {:.2} s", ended.summary, started.elapsed().as_secs_f64());
                ended
            }
        };
        let (url, body, what) = match ended.result {
            Ok(result) => (Some(job.callback.clone()), result, "result"),
            Err(message) => (fail_url(&job.callback), message, "failure"),
        };
        let delivered = match &url {
            Some(url) => Some(self.call_back(id, url, body).await),
            None => None,
        };
        let mut line = match &delivered {
            Some(delivered) => format!("{what} {}", told(delivered)),
            None => format!("{what} not sent: the callback URL has no /runs/fail"),
        };
        // A result that aetr refuses for itself (too large, say) would leave the node waiting
        // for its callback timeout: it is reported as the failure instead.
        if let (Some(Some(Delivery::Refused { status, message, .. })), Some(fail)) =
            (&delivered, fail_url(&job.callback))
        {
            if what == "result" && ![404, 409].contains(status) {
                let why = format!(
                    "aetr refused the result of `{}` ({status}): {message}",
                    self.command.join(" ")
                );
                let again = self.call_back(id, &fail, why).await;
                line = format!("{line}; failure {}", told(&again));
            }
        }
        eprintln!("aetr serve-command: job {id} finished: {}; {line}", ended.summary);
        if let Some(key) = &job.key {
            self.in_hand.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
        }
    }

    /// Posts a callback (see [`deliver`]); `None` when it was abandoned on a stop.
    async fn call_back(&self, id: u64, url: &Url, body: String) -> Option<Delivery> {
        let log = |why: &str, wait: Duration| {
            eprintln!(
                "aetr serve-command: job {id}: callback: {why}; again in {:.1} s",
                wait.as_secs_f64()
            );
        };
        let killed = self.kill.is_cancelled();
        let deadline = Instant::now() + if killed { LAST_CALLBACKS } else { self.give_up_after };
        let delivery = deliver(&self.http, url, body, deadline, log);
        tokio::pin!(delivery);
        tokio::select! {
            delivered = &mut delivery => Some(delivered),
            _ = self.kill.cancelled(), if !killed => {
                tokio::time::timeout(LAST_CALLBACKS, &mut delivery).await.ok()
            }
        }
    }

    /// Runs the command with `input` on its standard input.
    async fn execute(&self, input: &[u8]) -> Ended {
        let program = &self.command[0];
        let mut child = match tokio::process::Command::new(program)
            .args(&self.command[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group: a Ctrl-C on the terminal reaches serve-command alone (which
            // gives running commands their grace period), and a kill reaches the whole group.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
        {
            Ok(child) => child,
            Err(e) => {
                return Ended {
                    result: Err(format!("`{program}` could not start: {e}")),
                    summary: format!("could not start: {e}"),
                }
            }
        };
        let (stdin, stdout, stderr) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take());
        let ran = {
            let work = async {
                let write = async move {
                    if let Some(mut stdin) = stdin {
                        // A command that does not read all of its input is no failure.
                        let _ = stdin.write_all(input).await;
                    }
                };
                let read_out = async move {
                    let mut out = Vec::new();
                    match stdout {
                        Some(mut stdout) => stdout.read_to_end(&mut out).await.map(|_| out),
                        None => Ok(out),
                    }
                };
                let (_, out, err) = tokio::join!(write, read_out, read_tail(stderr));
                (out, err, child.wait().await)
            };
            tokio::select! {
                ran = work => Some(ran),
                _ = self.kill.cancelled() => None,
            }
        };
        let command = self.command.join(" ");
        let (out, err, status) = match ran {
            Some((out, err, Ok(status))) => (out, err, status),
            Some((_, _, Err(e))) => {
                return Ended {
                    result: Err(format!("`{command}` could not be waited for: {e}")),
                    summary: format!("lost: {e}"),
                }
            }
            None => {
                if let Some(group) = child.id().and_then(|id| Pid::from_raw(id as i32)) {
                    let _ = rustix::process::kill_process_group(group, Signal::KILL);
                }
                let _ = child.kill().await;
                return Ended {
                    result: Err(format!("`{command}` was killed: aetr serve-command stopped")),
                    summary: "killed: stopping".into(),
                };
            }
        };
        let summary = describe(status);
        if !status.success() {
            let tail = tail(&err);
            let message = match tail.is_empty() {
                true => {
                    format!("`{command}` ended with {summary}, with nothing on its standard error")
                }
                false => {
                    format!("`{command}` ended with {summary}; its standard error ends:\n{tail}")
                }
            };
            return Ended { result: Err(message), summary };
        }
        let result = match out {
            Ok(out) => String::from_utf8(out).map_err(|e| {
                format!(
                    "`{command}` exited 0, but its standard output is not UTF-8 (an invalid byte \
                     at offset {}); a result must be text",
                    e.utf8_error().valid_up_to()
                )
            }),
            Err(e) => Err(format!("`{command}` exited 0, but its standard output broke: {e}")),
        };
        Ended { result, summary }
    }
}

/// How a callback went, for the log.
fn told(delivered: &Option<Delivery>) -> String {
    match delivered {
        Some(Delivery::Taken) => "taken".into(),
        Some(other) => format!("not taken: {other}"),
        None => "abandoned: aetr serve-command stopped".into(),
    }
}

/// Reads a stream to its end, keeping only its end (enough for [`tail`]).
async fn read_tail(stream: Option<impl AsyncRead + Unpin>) -> Vec<u8> {
    let mut kept = Vec::new();
    let Some(mut stream) = stream else { return kept };
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return kept,
            Ok(n) => {
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > 16 * TAIL_BYTES {
                    kept.drain(..kept.len() - 4 * TAIL_BYTES);
                }
            }
        }
    }
}

/// The last [`TAIL_LINES`] lines of a stream, at most [`TAIL_BYTES`] bytes of them.
fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.trim_end().lines().collect();
    let tail = lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n");
    if tail.len() <= TAIL_BYTES {
        return tail;
    }
    let mut cut = tail.len() - TAIL_BYTES;
    while !tail.is_char_boundary(cut) {
        cut += 1;
    }
    format!("…{}", &tail[cut..])
}

/// How a process ended, in words: `exit status 3`, `signal 9 (SIGKILL)`.
fn describe(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exit status {code}");
    }
    match status.signal() {
        Some(signal) => {
            let name = match signal {
                1 => " (SIGHUP)",
                2 => " (SIGINT)",
                3 => " (SIGQUIT)",
                6 => " (SIGABRT)",
                9 => " (SIGKILL)",
                11 => " (SIGSEGV)",
                13 => " (SIGPIPE)",
                15 => " (SIGTERM)",
                _ => "",
            };
            format!("signal {signal}{name}")
        }
        None => status.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_is_the_last_lines_and_at_most_4_kib() {
        let many: String = (1..=30).map(|i| format!("line {i}\n")).collect();
        let tail = tail(many.as_bytes());
        assert!(tail.starts_with("line 11\n") && tail.ends_with("line 30"), "{tail}");
        let long = "é".repeat(5000);
        let cut = super::tail(long.as_bytes());
        assert!(cut.starts_with('…') && cut.len() <= TAIL_BYTES + '…'.len_utf8(), "{}", cut.len());
        assert_eq!(super::tail(b"  \n"), "");
    }
}
