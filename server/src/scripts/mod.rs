//! Mappers and reducers, run in a pool of supervised worker processes.
//!
//! boa's own limits bound loops (per frame), recursion and result sizes, but not the time or
//! memory that its builtins take (`new Array(4e8).fill(1)`, a catastrophic regex). So scripts
//! run in worker processes: the `aetr` binary itself, as `aetr script-worker`, started by
//! [`ScriptPool`] and talking over pipes ([`protocol`]). A worker that misbehaves takes only
//! itself down, and the call it was running.
//!
//! - Each worker limits its own address space (`AETR_SCRIPT_MEMORY_MB`) and CPU time, and
//!   caches compiled scripts by the hash of their source: the source crosses the pipe once.
//! - Each call has a wall-clock limit (`AETR_SCRIPT_TIMEOUT_MS`). A call that outlives it has
//!   its worker killed and replaced, and fails with "timed out after N ms". It is not retried:
//!   it would time out again.
//! - A worker that dies while it holds calls (killed from outside, out of memory, a crash):
//!   the call that it was running is retried once, on another worker; if that worker dies
//!   too, the call fails with the cause ("out of memory (limit 256 MB)", "the script worker
//!   died (signal 9)"). The calls queued behind it had not started: they go to other workers
//!   as they are. Each call is answered exactly once.
//! - Workers are retired after `AETR_SCRIPT_WORKER_CALLS` calls or
//!   `AETR_SCRIPT_WORKER_CPU_SECONDS` of CPU time: a fresh worker replaces each at once, and the
//!   old one exits once it has answered its calls. A worker that dies is replaced.
//! - Calls are pipelined: each worker holds up to [`supervisor::PIPELINE_DEPTH`] calls, so
//!   that it never waits for the server between two, and frames are written in batches.
//! - A worker exits when its standard input closes (it is retired, or the pool stops), and
//!   when the server dies, even in the middle of a script: workers never outlive their server.
//!
//! The in-process [`aetr_engine::script::BoaRunner`] still checks scripts when trees are
//! saved, and runs inside each worker.

mod death;
mod limits;
mod process;
pub mod protocol;
mod supervisor;
pub mod worker;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aetr_engine::script::{ScriptCall, ScriptError};
use anyhow::{bail, Context};
use tokio::sync::{mpsc, oneshot};

use self::supervisor::{Call, Command, Supervisor};
use crate::config::ScriptArgs;

/// A call's arguments, owned so that they can cross to a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnedCall {
    Map(Option<String>),
    Reduce(Vec<Option<String>>),
}

impl OwnedCall {
    pub fn as_call(&self) -> ScriptCall<'_> {
        match self {
            OwnedCall::Map(data) => ScriptCall::Map { data: data.as_deref() },
            OwnedCall::Reduce(results) => ScriptCall::Reduce { results },
        }
    }
}

/// How the pool runs its workers.
#[derive(Debug, Clone)]
pub struct ScriptSettings {
    /// The `aetr` binary, whose `script-worker` command is a worker.
    pub program: PathBuf,
    /// How many workers take calls.
    pub workers: usize,
    /// The wall-clock limit of one call.
    pub timeout: Duration,
    /// Each worker's address space limit, in MiB.
    pub memory_mb: u64,
    /// A worker is retired after this many calls...
    pub max_calls_per_worker: u64,
    /// ... or once it has used this much CPU time.
    pub max_cpu_per_worker: Duration,
    /// The longest result that a call may return, in bytes.
    pub max_result_bytes: usize,
}

impl ScriptSettings {
    /// The settings of `aetr server`: workers are this very binary.
    pub fn of(args: &ScriptArgs, max_result_bytes: usize) -> anyhow::Result<ScriptSettings> {
        let program = std::env::current_exe()
            .context("cannot find the aetr binary, to start script workers")?;
        let workers = args.script_workers.map_or_else(
            || std::thread::available_parallelism().map_or(2, usize::from),
            |n| n as usize,
        );
        Ok(ScriptSettings {
            program,
            workers,
            timeout: Duration::from_millis(args.script_timeout_ms),
            memory_mb: args.script_memory_mb,
            max_calls_per_worker: args.script_worker_calls,
            max_cpu_per_worker: Duration::from_secs(args.script_worker_cpu_seconds),
            max_result_bytes,
        })
    }

    /// A worker's hard CPU time limit (RLIMIT_CPU), in seconds: its budget, and room for the
    /// calls that it holds when it passes the budget (each bounded by the wall clock).
    fn cpu_limit_seconds(&self) -> u64 {
        let per_call = self.timeout.as_millis().div_ceil(1000) as u64;
        let held = per_call.saturating_mul(supervisor::PIPELINE_DEPTH as u64);
        self.max_cpu_per_worker.as_secs().saturating_add(held).saturating_add(10)
    }

    /// The largest call that is sent to a worker: more could not fit in its memory.
    fn max_call_bytes(&self) -> usize {
        let memory = usize::try_from(self.memory_mb.saturating_mul(1024 * 1024));
        memory.unwrap_or(usize::MAX).min(protocol::MAX_CALL_BYTES)
    }
}

/// The script workers. Cheap to clone: clones share the workers.
#[derive(Debug, Clone)]
pub struct ScriptPool {
    commands: mpsc::UnboundedSender<Command>,
    settings: Arc<ScriptSettings>,
}

/// How much longer than a call and its retry a script's node is leased to its server.
const LEASE_MARGIN: Duration = Duration::from_secs(10);

/// A script that each pool runs once as it starts, to check that its workers work.
const PROBE: &str = "function apply(data) { return data; }";

impl ScriptPool {
    /// How long a node whose script this pool runs is leased to this server: a call and its
    /// retry, and a margin. If the server dies, another runs the script again after it.
    pub fn lease(&self) -> Duration {
        self.settings.timeout.saturating_mul(2).saturating_add(LEASE_MARGIN)
    }

    /// Starts the workers, and checks that they run a script. Call it from the runtime that
    /// the pool is to run on.
    pub async fn start(settings: ScriptSettings) -> anyhow::Result<ScriptPool> {
        let (commands, queue) = mpsc::unbounded_channel();
        let (events, reports) = mpsc::unbounded_channel();
        tokio::spawn(Supervisor::new(settings.clone(), events).run(queue, reports));
        let pool = ScriptPool { commands, settings: Arc::new(settings) };
        let probe = pool.call(PROBE.to_owned(), OwnedCall::Map(Some("ok".to_owned())));
        match tokio::time::timeout(Duration::from_secs(30), probe).await {
            Ok(Ok(Some(answer))) if answer == "ok" => Ok(pool),
            Ok(Ok(answer)) => bail!("a script worker answered {answer:?} to a test script"),
            Ok(Err(e)) => bail!("a script worker failed a test script: {e}"),
            Err(_) => bail!("no script worker ran a test script within 30 s"),
        }
    }

    /// Calls a script's `apply` on a worker.
    ///
    /// Once [`ScriptPool::stop`] has been called, a call never finishes: the server is
    /// stopping, and its node's lease will run out, so that another server (or this one,
    /// restarted) runs it again. Failing it would fail its node for no fault of its own.
    pub async fn call(
        &self,
        source: String,
        call: OwnedCall,
    ) -> Result<Option<String>, ScriptError> {
        let encoded = protocol::encode_call(&call);
        drop(call);
        let max_bytes = self.settings.max_call_bytes();
        if encoded.len() > max_bytes {
            return Err(ScriptError::Limit(format!(
                "the script's input is {} bytes, more than the script workers' memory ({} MB)",
                encoded.len(),
                self.settings.memory_mb
            )));
        }
        let script = protocol::script_hash(&source);
        let (reply, answer) = oneshot::channel();
        let call = Call { script, source, call: Arc::new(encoded), reply, retried: false };
        if self.commands.send(Command::Call(call)).is_err() {
            return std::future::pending().await;
        }
        match answer.await {
            Ok(outcome) => outcome,
            Err(_) => std::future::pending().await,
        }
    }

    /// Stops the workers: closes their input, so that they exit, and kills those that have not
    /// exited after 2 seconds. Calls in flight or waiting are dropped (see
    /// [`ScriptPool::call`]).
    pub async fn stop(&self) {
        let (done, stopped) = oneshot::channel();
        if self.commands.send(Command::Stop(done)).is_ok() {
            let _ = stopped.await;
        }
    }
}
