//! `aetr script-worker`: a process that runs mappers and reducers for the server that started
//! it, over its standard input and output (see [`super::protocol`]).
//!
//! It sets its own limits first (address space and CPU time), says that it is ready, then
//! answers requests one by one, in order. Its main thread reads requests; a thread with a large
//! stack runs them, and writes replies in batches: it flushes them when no request waits. So
//! the server can send the next requests while a script runs, and pays one write for many
//! replies.
//!
//! It exits as soon as its standard input closes, even in the middle of a script: the server
//! retires it, stops, or has died.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::fd::AsFd;
use std::panic::AssertUnwindSafe;
use std::process::ExitCode;
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};

use aetr_engine::script::{BoaRunner, BoaRunnerConfig, ScriptError, ScriptRunner};

use super::limits;
use super::protocol::{self, Outcome, Reply, Request, ScriptHash, PROTOCOL_VERSION};
use crate::config::WorkerArgs;

/// The script thread's stack. boa's parser and compiler recurse on a script's nesting, and
/// calls back into JavaScript from builtins recurse too. The stack counts in the address space
/// limit, so it is not larger than it needs to be.
const STACK_BYTES: usize = 16 * 1024 * 1024;

/// How much of the replies is gathered before a write, at most.
const OUTPUT_BUFFER_BYTES: usize = 64 * 1024;

/// The longest error text that a reply carries; longer ones are cut.
const MAX_ERROR_BYTES: usize = 4096;

/// The exit code of a worker that cannot start: a protocol it does not speak, or limits that it
/// cannot set.
const EXIT_CANNOT_START: u8 = 2;
/// The exit code of a worker that got a request it cannot read.
const EXIT_BAD_REQUEST: u8 = 3;
/// The exit code of a worker that has no memory left to start the thread that parses a new
/// script.
pub const EXIT_OUT_OF_MEMORY: u8 = 4;

/// How the runner says that it could not start the thread that parses a new script: in a
/// worker, only the address space limit makes that fail.
const NO_PARSE_THREAD: &str = "cannot check the script: ";

pub fn run(args: &WorkerArgs) -> ExitCode {
    match start(args) {
        Ok(requests) => match read_requests(&requests) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("aetr script worker: {e}");
                ExitCode::from(EXIT_BAD_REQUEST)
            }
        },
        Err(e) => {
            eprintln!("aetr script worker: {e}");
            ExitCode::from(EXIT_CANNOT_START)
        }
    }
}

/// Sets the limits and starts the script thread: the sender is its queue of requests.
fn start(args: &WorkerArgs) -> io::Result<Sender<Request>> {
    if args.protocol != PROTOCOL_VERSION {
        return Err(io::Error::other(format!(
            "the server speaks protocol {}, and this binary {PROTOCOL_VERSION}",
            args.protocol
        )));
    }
    limits::apply(args.memory_mb, args.cpu_seconds)?;
    // Standard output unbuffered (std's is line-buffered, and binary frames are full of '\n').
    let output = File::from(io::stdout().as_fd().try_clone_to_owned()?);
    let config = BoaRunnerConfig {
        max_result_bytes: args.max_result_bytes,
        max_parse_stack_bytes: STACK_BYTES,
        ..BoaRunnerConfig::default()
    };
    let (requests, queue) = mpsc::channel();
    std::thread::Builder::new()
        .name("aetr-script".to_owned())
        .stack_size(STACK_BYTES)
        .spawn(move || serve(&queue, output, config))?;
    Ok(requests)
}

/// Reads requests until standard input closes.
fn read_requests(requests: &Sender<Request>) -> io::Result<()> {
    let mut input = io::stdin().lock();
    while let Some(frame) = protocol::read_frame(&mut input, u32::MAX as usize)? {
        let request = protocol::decode_request(&frame)?;
        drop(frame);
        if requests.send(request).is_err() {
            // The script thread has stopped: its output is closed.
            return Ok(());
        }
    }
    Ok(())
}

/// The script thread: answers requests in order, and flushes the replies whenever no request
/// waits. Ends when its output closes.
fn serve(queue: &Receiver<Request>, output: File, config: BoaRunnerConfig) {
    let mut replies = Replies::new(output);
    let mut scripts = Scripts::new(config);
    if replies.send(0, Outcome::Ready).and_then(|()| replies.flush()).is_err() {
        return;
    }
    loop {
        let request = match queue.try_recv() {
            Ok(request) => request,
            Err(TryRecvError::Empty) => {
                if replies.flush().is_err() {
                    return;
                }
                match queue.recv() {
                    Ok(request) => request,
                    Err(_) => return,
                }
            }
            Err(TryRecvError::Disconnected) => return,
        };
        let id = request.id;
        let outcome = scripts.answer(request);
        if replies.send(id, outcome).is_err() {
            return;
        }
    }
}

/// The reply frames, written through a buffer.
struct Replies {
    output: BufWriter<File>,
    frame: Vec<u8>,
}

impl Replies {
    fn new(output: File) -> Replies {
        Replies { output: BufWriter::with_capacity(OUTPUT_BUFFER_BYTES, output), frame: Vec::new() }
    }

    fn send(&mut self, id: u64, outcome: Outcome) -> io::Result<()> {
        self.frame.clear();
        protocol::encode_reply(&Reply { id, cpu: limits::cpu_time(), outcome }, &mut self.frame);
        let written = self.output.write_all(&self.frame);
        if self.frame.capacity() > OUTPUT_BUFFER_BYTES {
            // A large result: do not keep its buffer.
            self.frame = Vec::new();
        }
        written
    }

    fn flush(&mut self) -> io::Result<()> {
        self.output.flush()
    }
}

/// The scripts that this worker knows, by hash, and the runner that compiles and runs them.
struct Scripts {
    config: BoaRunnerConfig,
    runner: BoaRunner,
    /// Sources by hash, with when each was last used: as many as the runner caches.
    sources: HashMap<ScriptHash, (String, u64)>,
    /// A clock for least-recently-used eviction: the number of requests so far.
    tick: u64,
}

impl Scripts {
    fn new(config: BoaRunnerConfig) -> Scripts {
        Scripts { config, runner: BoaRunner::new(config), sources: HashMap::new(), tick: 0 }
    }

    fn answer(&mut self, request: Request) -> Outcome {
        self.tick += 1;
        if let Some(source) = request.source {
            self.remember(request.script, source);
        }
        let Some(entry) = self.sources.get_mut(&request.script) else {
            return Outcome::UnknownScript;
        };
        entry.1 = self.tick;
        let (source, call) = (&entry.0, request.call.as_call());
        let runner = &mut self.runner;
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| runner.call(source, call)));
        Outcome::Done(match outcome {
            Ok(Err(ScriptError::Compile(message))) if message.starts_with(NO_PARSE_THREAD) => {
                // Not the script's fault: this worker's memory is used up. Its death gives the
                // call another go on a fresh worker (see `super`).
                eprintln!("aetr script worker: out of memory: {message}");
                std::process::exit(i32::from(EXIT_OUT_OF_MEMORY));
            }
            Ok(outcome) => outcome.map_err(clipped),
            Err(_) => {
                // A panic inside boa: its context may be broken, so start afresh.
                self.runner = BoaRunner::new(self.config);
                Err(ScriptError::Limit("the script engine failed on this script".to_owned()))
            }
        })
    }

    fn remember(&mut self, script: ScriptHash, source: String) {
        if !self.sources.contains_key(&script) && self.sources.len() >= self.config.cache_capacity {
            let oldest = self.sources.iter().min_by_key(|(_, (_, used))| *used).map(|(h, _)| *h);
            if let Some(oldest) = oldest {
                self.sources.remove(&oldest);
            }
        }
        self.sources.insert(script, (source, self.tick));
    }
}

/// An error whose text is cut to [`MAX_ERROR_BYTES`]: it is for people, and is stored with
/// its node.
fn clipped(error: ScriptError) -> ScriptError {
    let clip = |mut text: String| {
        if text.len() > MAX_ERROR_BYTES {
            let mut end = MAX_ERROR_BYTES;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            text.push('…');
        }
        text
    };
    match error {
        ScriptError::Compile(text) => ScriptError::Compile(clip(text)),
        ScriptError::Thrown(text) => ScriptError::Thrown(clip(text)),
        ScriptError::Limit(text) => ScriptError::Limit(clip(text)),
    }
}
