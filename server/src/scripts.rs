//! Mappers and reducers, run on a small pool of dedicated threads, each with its own boa
//! runner (which caches compiled scripts). Callers wait without blocking their runtime.
//!
//! boa's own limits bound loops, recursion and result sizes, but not the time or memory that
//! its builtins take; isolating scripts in worker processes with rlimits is the next step.

use std::panic::AssertUnwindSafe;
use std::sync::{mpsc, Arc, Mutex};

use aetr_engine::script::{BoaRunner, ScriptCall, ScriptError, ScriptRunner};
use tokio::sync::oneshot;

/// Each script thread's stack: boa's parser and compiler recurse on a script's nesting.
const STACK_BYTES: usize = 64 * 1024 * 1024;

/// A call's arguments, owned so that they can cross to a script thread.
#[derive(Debug)]
pub enum OwnedCall {
    Map(Option<String>),
    Reduce(Vec<Option<String>>),
}

impl OwnedCall {
    fn as_call(&self) -> ScriptCall<'_> {
        match self {
            OwnedCall::Map(data) => ScriptCall::Map { data: data.as_deref() },
            OwnedCall::Reduce(results) => ScriptCall::Reduce { results },
        }
    }
}

struct Job {
    source: String,
    call: OwnedCall,
    reply: oneshot::Sender<Result<Option<String>, ScriptError>>,
}

/// The script threads. Dropping the pool ends them once their queue is empty.
#[derive(Debug)]
pub struct ScriptPool {
    jobs: mpsc::Sender<Job>,
}

impl ScriptPool {
    pub fn start(threads: usize) -> std::io::Result<ScriptPool> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..threads.max(1) {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name(format!("aetr-script-{n}"))
                .stack_size(STACK_BYTES)
                .spawn(move || work(&queue))?;
        }
        Ok(ScriptPool { jobs })
    }

    /// Calls a script's `apply`.
    pub async fn call(
        &self,
        source: String,
        call: OwnedCall,
    ) -> Result<Option<String>, ScriptError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { source, call, reply })
            .map_err(|_| ScriptError::Limit("the script threads have stopped".into()))?;
        answer
            .await
            .unwrap_or_else(|_| Err(ScriptError::Limit("the script's thread stopped".into())))
    }
}

fn work(queue: &Mutex<mpsc::Receiver<Job>>) {
    let mut runner = BoaRunner::default();
    loop {
        let job = match queue.lock().unwrap_or_else(|e| e.into_inner()).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
            runner.call(&job.source, job.call.as_call())
        }));
        let outcome = outcome.unwrap_or_else(|_| {
            // A panic inside boa: its context may be broken, so start afresh.
            runner = BoaRunner::default();
            Err(ScriptError::Limit("the script engine failed on this script".into()))
        });
        let _ = job.reply.send(outcome);
    }
}
