//! `aetr script-worker`: a process that runs mappers and reducers for the server that started
//! it, over its standard input and output (see [`super::protocol`]).
//!
//! It sets its own limits first (address space and CPU time), says that it is ready, then
//! answers requests one by one, in order, on a thread with a large stack. It writes its replies
//! in batches: it flushes them only before it would wait for the next request, so requests that
//! the server sent ahead (pipelined) are answered with one write.
//!
//! It exits when its standard input closes (the server retires it, or stops), and when the
//! server dies, even in the middle of a script: its main thread watches its parent.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};
use std::os::fd::AsFd;
use std::panic::AssertUnwindSafe;
use std::process::ExitCode;
use std::time::Duration;

use aetr_engine::script::{BoaRunner, BoaRunnerConfig, ScriptError, ScriptRunner};

use super::limits;
use super::protocol::{self, Request, Response, ResponseKind, ScriptHash, PROTOCOL_VERSION};
use crate::config::WorkerArgs;

/// The script thread's stack. boa's parser and compiler recurse on a script's nesting, and
/// calls back into JavaScript from builtins recurse too. The stack counts in the address space
/// limit, so it is not larger than it needs to be.
const STACK_BYTES: usize = 16 * 1024 * 1024;

/// How much of the requests and of the replies is buffered, each way.
const BUFFER_BYTES: usize = 64 * 1024;

/// How often the main thread checks that the server is alive.
const PARENT_CHECK: Duration = Duration::from_millis(100);

/// The longest error text that a reply carries; longer ones are cut.
const MAX_ERROR_BYTES: usize = 4096;

/// The exit code of a worker that cannot start: a protocol it does not speak, or limits that it
/// cannot set.
const EXIT_CANNOT_START: u8 = 2;
/// The exit code of a worker that got a request it cannot read.
const EXIT_BAD_REQUEST: u8 = 3;
/// The exit code of a worker whose script thread panicked outside a script.
const EXIT_PANIC: u8 = 5;
/// The exit code of a worker that has no memory left to start the thread that parses a new
/// script.
pub const EXIT_OUT_OF_MEMORY: u8 = 4;

/// How the runner says that it could not start the thread that parses a new script: in a
/// worker, only the address space limit makes that fail.
const NO_PARSE_THREAD: &str = "cannot check the script: ";

pub fn run(args: &WorkerArgs) -> ExitCode {
    let parent = std::os::unix::process::parent_id();
    if let Err(e) = start(args) {
        eprintln!("aetr script worker: {e}");
        return ExitCode::from(EXIT_CANNOT_START);
    }
    // The script thread ends the process when its input closes, but it reads its input only
    // between scripts. A server that dies while a script runs leaves this worker to a new
    // parent: this thread sees that, and ends the process.
    while std::os::unix::process::parent_id() == parent {
        std::thread::sleep(PARENT_CHECK);
    }
    ExitCode::SUCCESS
}

/// Sets the limits and starts the script thread.
fn start(args: &WorkerArgs) -> io::Result<()> {
    if args.protocol != PROTOCOL_VERSION {
        return Err(io::Error::other(format!(
            "the server speaks protocol {}, and this binary {PROTOCOL_VERSION}",
            args.protocol
        )));
    }
    limits::apply(args.memory_mb, args.cpu_seconds)?;
    // Its own handles on standard input and output, buffered here: std's standard output is
    // line-buffered, and binary frames are full of '\n'.
    let input = File::from(io::stdin().as_fd().try_clone_to_owned()?);
    let output = File::from(io::stdout().as_fd().try_clone_to_owned()?);
    let config = BoaRunnerConfig {
        max_result_bytes: args.max_result_bytes,
        max_parse_stack_bytes: STACK_BYTES,
        ..BoaRunnerConfig::default()
    };
    std::thread::Builder::new().name("aetr-script".to_owned()).stack_size(STACK_BYTES).spawn(
        move || {
            let served =
                std::panic::catch_unwind(AssertUnwindSafe(|| serve(input, output, config)));
            std::process::exit(i32::from(served.unwrap_or(EXIT_PANIC)));
        },
    )?;
    Ok(())
}

/// The script thread: answers requests in order, until its input closes (0) or breaks the
/// protocol, or its output closes. Returns the process's exit code.
fn serve(input: File, output: File, config: BoaRunnerConfig) -> u8 {
    let mut input = BufReader::with_capacity(BUFFER_BYTES, input);
    let mut replies = Replies::new(output);
    let mut scripts = Scripts::new(config);
    let mut id = 0;
    let mut outcome = ResponseKind::Ready;
    loop {
        if replies.send(id, outcome).is_err() {
            return 0; // The server has gone.
        }
        if !holds_a_frame(input.buffer()) && replies.flush().is_err() {
            return 0;
        }
        let request = match protocol::read_frame(&mut input, u32::MAX as usize) {
            Ok(Some(frame)) => protocol::decode_request(&frame),
            Ok(None) => return 0,
            Err(e) => Err(e),
        };
        let request = match request {
            Ok(request) => request,
            Err(e) => {
                eprintln!("aetr script worker: {e}");
                return EXIT_BAD_REQUEST;
            }
        };
        id = request.id;
        outcome = scripts.answer(request);
    }
}

/// Whether `buffered` holds a whole frame: reading it will not wait.
fn holds_a_frame(buffered: &[u8]) -> bool {
    let Some(prefix) = buffered.first_chunk::<4>() else { return false };
    buffered.len() - 4 >= u32::from_le_bytes(*prefix) as usize
}

/// The reply frames, written through a buffer.
struct Replies {
    output: BufWriter<File>,
    frame: Vec<u8>,
}

impl Replies {
    fn new(output: File) -> Replies {
        Replies { output: BufWriter::with_capacity(BUFFER_BYTES, output), frame: Vec::new() }
    }

    fn send(&mut self, id: u64, outcome: ResponseKind) -> io::Result<()> {
        self.frame.clear();
        protocol::encode_response(
            &Response { id, cpu: limits::cpu_time(), kind: outcome },
            &mut self.frame,
        );
        let written = self.output.write_all(&self.frame);
        if self.frame.capacity() > BUFFER_BYTES {
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

    fn answer(&mut self, request: Request) -> ResponseKind {
        self.tick += 1;
        if let Some(source) = request.source {
            self.remember(request.script, source);
        }
        let Some(entry) = self.sources.get_mut(&request.script) else {
            return ResponseKind::UnknownScript;
        };
        entry.1 = self.tick;
        let (source, call) = (&entry.0, request.call.as_call());
        let runner = &mut self.runner;
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| runner.call(source, call)));
        ResponseKind::Done(match outcome {
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
