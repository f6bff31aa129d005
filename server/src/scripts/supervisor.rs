//! The supervisor: one task that owns the script workers, hands calls to them, and watches
//! over them. [`super`]'s documentation gives the rules that it keeps.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aetr_engine::script::ScriptError;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::death::Death;
use super::process::{self, Outgoing, Process, WorkerEvent, WorkerId};
use super::protocol::{self, Response, ResponseKind, ScriptHash};
use super::ScriptSettings;

/// How many calls a worker holds at once: the one it runs, and the next ones, already sent, so
/// that it never waits for the server between calls, and reads and answers them in batches
/// (bench/README.md, "Measurements behind constants in the code"). The cost: when every
/// worker is busy, calls queued behind one that times out wait for it (they then go elsewhere).
pub const PIPELINE_DEPTH: usize = 16;
/// How long a new worker may take to say that it is ready.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long stopping workers may take to exit before they are killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(2);
/// The scripts whose source the supervisor remembers sending to one worker; past that, it
/// forgets them all (the source is sent again).
const MAX_KNOWN_SCRIPTS: usize = 1024;
/// The first and the longest wait before starting a worker again, after one that could not
/// start.
const RESPAWN_BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(10));

pub enum Command {
    Call(Call),
    /// Stop the workers, and answer once they have exited.
    Stop(oneshot::Sender<()>),
}

/// A call to run, and where its outcome goes.
#[derive(Debug)]
pub struct Call {
    pub script: ScriptHash,
    pub source: String,
    /// The call's bytes, from [`protocol::encode_call`].
    pub call: Arc<Vec<u8>>,
    pub reply: oneshot::Sender<Result<Option<String>, ScriptError>>,
    /// The call was running on a worker that died: it has had its second chance.
    pub retried: bool,
}

#[derive(Debug)]
struct Worker {
    /// Request frames for its input; `None` once the input is closed (it is retired, or the
    /// pool stops), which makes it exit.
    frames: Option<mpsc::UnboundedSender<Outgoing>>,
    /// Cancelling it kills the worker.
    kill: CancellationToken,
    pid: Option<u32>,
    /// It has said that it is ready.
    ready: bool,
    started: Instant,
    /// Killed: its exit is awaited, and nothing is asked of it.
    killed: bool,
    /// Retired (by calls, CPU time, or a stop): it takes no new calls, and is replaced.
    retiring: bool,
    /// The calls sent, by request id, in order: the first is running.
    in_flight: VecDeque<(u64, Call)>,
    /// When the first call in flight started running (as far as the supervisor can tell: when
    /// the worker became ready, answered the call before, or got it while idle).
    head_since: Instant,
    /// Calls sent in all.
    sent: u64,
    /// Its CPU time, as of its last reply.
    cpu: Duration,
    /// The scripts whose source it was sent.
    known: HashSet<ScriptHash>,
}

impl Worker {
    fn new(Process { frames, kill, pid }: Process) -> Worker {
        let now = Instant::now();
        Worker {
            frames: Some(frames),
            kill,
            pid,
            ready: false,
            started: now,
            killed: false,
            retiring: false,
            in_flight: VecDeque::new(),
            head_since: now,
            sent: 0,
            cpu: Duration::ZERO,
            known: HashSet::new(),
        }
    }

    /// When it must next be heard from.
    fn deadline(&self, timeout: Duration) -> Option<Instant> {
        if self.killed {
            None
        } else if !self.ready {
            Some(self.started + START_TIMEOUT)
        } else if self.in_flight.is_empty() {
            None
        } else {
            Some(self.head_since + timeout)
        }
    }

    /// Takes new calls.
    fn takes_calls(&self) -> bool {
        self.frames.is_some() && !self.retiring && !self.killed
    }
}

#[derive(Debug)]
pub struct Supervisor {
    settings: ScriptSettings,
    workers: BTreeMap<WorkerId, Worker>,
    /// Calls that wait for a worker, first come first served.
    pending: VecDeque<Call>,
    next_worker: WorkerId,
    next_request: u64,
    events: mpsc::UnboundedSender<WorkerEvent>,
    /// No worker is started before then, unless calls wait: the last one could not start.
    respawn_after: Option<Instant>,
    backoff: Duration,
    /// A stop has begun.
    stopping: bool,
    /// When the workers that have not exited since the stop began are killed.
    kill_after: Option<Instant>,
    stopped: Vec<oneshot::Sender<()>>,
}

impl Supervisor {
    pub fn new(settings: ScriptSettings, events: mpsc::UnboundedSender<WorkerEvent>) -> Self {
        Supervisor {
            settings,
            workers: BTreeMap::new(),
            pending: VecDeque::new(),
            next_worker: 1,
            next_request: 1,
            events,
            respawn_after: None,
            backoff: RESPAWN_BACKOFF.0,
            stopping: false,
            kill_after: None,
            stopped: Vec::new(),
        }
    }

    /// Runs until a stop is asked for (or every pool handle is dropped) and the workers have
    /// exited.
    pub async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut events: mpsc::UnboundedReceiver<WorkerEvent>,
    ) {
        self.top_up();
        let timer = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(timer);
        let mut open = true;
        loop {
            let deadline = self.next_deadline();
            if let Some(deadline) = deadline {
                timer.as_mut().reset(deadline.into());
            }
            tokio::select! {
                Some(event) = events.recv() => match event {
                    WorkerEvent::Response(id, reply) => self.on_response(id, reply),
                    WorkerEvent::Exited(id, death) => self.on_exit(id, &death),
                },
                command = commands.recv(), if open => match command {
                    Some(Command::Call(call)) => self.submit(call),
                    Some(Command::Stop(done)) => self.stop(Some(done)),
                    None => {
                        open = false;
                        self.stop(None);
                    }
                },
                () = &mut timer, if deadline.is_some() => self.on_timer(Instant::now()),
            }
            self.dispatch();
            if self.stopping && self.workers.is_empty() {
                break;
            }
        }
        for done in self.stopped.drain(..) {
            let _ = done.send(());
        }
    }

    fn submit(&mut self, call: Call) {
        if self.stopping {
            // Dropped: its caller waits for ever (see `ScriptPool::stop`).
            return;
        }
        self.pending.push_back(call);
    }

    /// Hands the waiting calls to the least busy workers that take them.
    fn dispatch(&mut self) {
        self.top_up();
        while let Some(call) = self.pending.pop_front() {
            if call.reply.is_closed() {
                continue; // Its caller has gone.
            }
            let free = self
                .workers
                .iter()
                .filter(|(_, w)| w.takes_calls() && w.in_flight.len() < PIPELINE_DEPTH)
                .min_by_key(|(_, w)| w.in_flight.len())
                .map(|(id, _)| *id);
            match free {
                Some(id) => self.send(id, call),
                None => {
                    self.pending.push_front(call);
                    break;
                }
            }
        }
    }

    fn send(&mut self, id: WorkerId, call: Call) {
        let Some(worker) = self.workers.get_mut(&id) else {
            self.pending.push_front(call);
            return;
        };
        let request = self.next_request;
        self.next_request += 1;
        if worker.known.len() >= MAX_KNOWN_SCRIPTS && !worker.known.contains(&call.script) {
            worker.known.clear();
        }
        let source = worker.known.insert(call.script).then_some(call.source.as_str());
        let head = protocol::request_head(request, &call.script, source, call.call.len());
        let frame = Outgoing { head, call: Arc::clone(&call.call) };
        if worker.frames.as_ref().is_none_or(|frames| frames.send(frame).is_err()) {
            // Its writer has stopped, so it is dying: its exit will be reported.
            worker.known.remove(&call.script);
            worker.frames = None;
            self.pending.push_front(call);
            return;
        }
        if worker.in_flight.is_empty() {
            worker.head_since = Instant::now();
        }
        worker.in_flight.push_back((request, call));
        worker.sent += 1;
        if worker.sent >= self.settings.max_calls_per_worker {
            self.retire(id, "calls");
        }
    }

    fn on_response(&mut self, id: WorkerId, reply: Response) {
        let Some(worker) = self.workers.get_mut(&id) else { return };
        let now = Instant::now();
        worker.cpu = reply.cpu;
        if reply.kind == ResponseKind::Ready && !worker.ready {
            worker.ready = true;
            worker.head_since = now;
            self.backoff = RESPAWN_BACKOFF.0;
            return;
        }
        let in_order = worker.in_flight.front().is_some_and(|(request, _)| *request == reply.id);
        if !in_order || reply.kind == ResponseKind::Ready {
            tracing::error!(
                worker = id,
                reply = reply.id,
                "a script worker answered out of turn; it is killed"
            );
            self.kill(id);
            return;
        }
        let Some((_, call)) = worker.in_flight.pop_front() else { return };
        worker.head_since = now;
        match reply.kind {
            ResponseKind::Done(outcome) => {
                let _ = call.reply.send(outcome);
            }
            ResponseKind::UnknownScript => {
                worker.known.remove(&call.script);
                self.pending.push_front(call);
            }
            ResponseKind::Ready => {}
        }
        if worker.cpu >= self.settings.max_cpu_per_worker {
            self.retire(id, "CPU time");
        }
        self.close_if_done(id);
    }

    /// A worker has exited: the call that it was running is retried once, on another worker,
    /// and fails if it had been retried already; the calls after it never started, and are
    /// sent again as they are.
    fn on_exit(&mut self, id: WorkerId, death: &Death) {
        let Some(worker) = self.workers.remove(&id) else { return };
        if !worker.ready && !self.stopping {
            // It died before it was ready: wait a little before the next one.
            self.back_off();
        }
        let pid = worker.pid;
        let mut calls = worker.in_flight.into_iter().map(|(_, call)| call);
        let Some(mut running) = calls.next() else {
            if !worker.retiring && !worker.killed {
                tracing::warn!(worker = id, pid, %death, "a script worker died; it is replaced");
            }
            return;
        };
        self.requeue(calls);
        if running.retried {
            tracing::warn!(worker = id, pid, %death,
                "a script worker died running a call, for the second time: the call fails");
            let _ = running.reply.send(Err(death.error()));
        } else {
            tracing::warn!(worker = id, pid, %death,
                "a script worker died running a call; the call is retried on another worker");
            running.retried = true;
            self.pending.push_front(running);
        }
    }

    /// Kills the workers whose call ran out of time, and those that did not start in time.
    fn on_timer(&mut self, now: Instant) {
        let timeout = self.settings.timeout;
        let late: Vec<WorkerId> = self
            .workers
            .iter()
            .filter(|(_, w)| w.deadline(timeout).is_some_and(|deadline| deadline <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            let Some(worker) = self.workers.get_mut(&id) else { continue };
            if !worker.ready {
                tracing::warn!(
                    worker = id,
                    pid = worker.pid,
                    "a script worker did not start in time; it is killed"
                );
                // Its calls never started: they are sent again as it exits.
                self.kill(id);
                continue;
            }
            let mut calls = std::mem::take(&mut worker.in_flight).into_iter().map(|(_, c)| c);
            if let Some(running) = calls.next() {
                let ms = timeout.as_millis();
                tracing::warn!(
                    worker = id,
                    pid = worker.pid,
                    "a script call ran past AETR_SCRIPT_TIMEOUT_MS ({ms} ms); its worker is killed"
                );
                let _ =
                    running.reply.send(Err(ScriptError::Limit(format!("timed out after {ms} ms"))));
            }
            self.requeue(calls);
            self.kill(id);
        }
        if self.respawn_after.is_some_and(|after| after <= now) {
            self.respawn_after = None;
        }
        if self.kill_after.is_some_and(|after| after <= now) {
            self.kill_after = None;
            let ids: Vec<WorkerId> = self.workers.keys().copied().collect();
            for id in ids {
                self.kill(id);
            }
        }
    }

    /// Calls that never started, back at the front of the queue, in their order.
    fn requeue(&mut self, calls: impl DoubleEndedIterator<Item = Call>) {
        for call in calls.rev() {
            self.pending.push_front(call);
        }
    }

    /// Stops giving a worker calls, and starts its replacement. Its input closes once the calls
    /// in flight are answered.
    fn retire(&mut self, id: WorkerId, why: &str) {
        let Some(worker) = self.workers.get_mut(&id) else { return };
        if worker.retiring {
            return;
        }
        worker.retiring = true;
        tracing::debug!(
            worker = id,
            calls = worker.sent,
            cpu_ms = worker.cpu.as_millis() as u64,
            "script worker retired ({why}); a fresh one replaces it"
        );
        self.close_if_done(id);
        self.top_up();
    }

    /// Closes a retired worker's input once it has no call in flight: it exits.
    fn close_if_done(&mut self, id: WorkerId) {
        if let Some(worker) = self.workers.get_mut(&id) {
            if worker.retiring && worker.in_flight.is_empty() {
                worker.frames = None;
            }
        }
    }

    /// Kills a worker. It stays until its exit is reported; its calls in flight are handled
    /// then.
    fn kill(&mut self, id: WorkerId) {
        if let Some(worker) = self.workers.get_mut(&id) {
            worker.killed = true;
            worker.retiring = true;
            worker.kill.cancel();
        }
    }

    /// Starts workers until enough take calls.
    ///
    /// After a worker that could not start, it waits a little (longer each time) before the
    /// next, unless calls wait and no worker takes them: then it starts one at once, so that
    /// calls do not wait for nothing. Each worker that dies before it is ready uses up a call's
    /// chance (see [`Supervisor::on_exit`]), so this is no endless loop. If a worker cannot
    /// even be started, and none takes calls, the waiting calls fail.
    fn top_up(&mut self) {
        if self.stopping {
            return;
        }
        let mut taking = self.workers.values().filter(|w| w.takes_calls()).count();
        if self.respawn_after.is_some() && (self.pending.is_empty() || taking > 0) {
            return;
        }
        while taking < self.settings.workers {
            let id = self.next_worker;
            self.next_worker += 1;
            match process::spawn(id, &self.settings, self.events.clone()) {
                Ok(process) => {
                    self.workers.insert(id, Worker::new(process));
                    taking += 1;
                }
                Err(e) => {
                    tracing::error!(error = %e, program = %self.settings.program.display(),
                        "cannot start a script worker");
                    self.back_off();
                    if taking == 0 {
                        let error = format!("cannot start a script worker: {e}");
                        for call in self.pending.drain(..) {
                            let _ = call.reply.send(Err(ScriptError::Limit(error.clone())));
                        }
                    }
                    return;
                }
            }
        }
    }

    /// Begins a stop: calls that wait or are in flight are dropped (their callers wait for
    /// ever), and every worker's input is closed, so that it exits.
    fn stop(&mut self, done: Option<oneshot::Sender<()>>) {
        self.stopped.extend(done);
        if self.stopping {
            return;
        }
        self.stopping = true;
        self.kill_after = Some(Instant::now() + STOP_TIMEOUT);
        self.pending.clear();
        for worker in self.workers.values_mut() {
            worker.in_flight.clear();
            worker.retiring = true;
        }
        let ids: Vec<WorkerId> = self.workers.keys().copied().collect();
        for id in ids {
            self.close_if_done(id);
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let timeout = self.settings.timeout;
        let workers = self.workers.values().filter_map(|w| w.deadline(timeout));
        workers.chain(self.respawn_after).chain(self.kill_after).min()
    }

    fn back_off(&mut self) {
        self.respawn_after = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(RESPAWN_BACKOFF.1);
    }
}
