//! One script worker process: how it is started, and the tasks that carry its frames.
//!
//! Each worker has three tasks: one writes request frames to its standard input, in batches;
//! one reads its reply frames from standard output and, once it has exited, reports how it
//! died; one logs what it writes to standard error, and keeps the last lines, which tell an
//! allocation failure from other deaths.

use std::collections::VecDeque;
use std::io;
use std::process::Stdio;
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::death::Death;
use super::protocol::{self, Response, PROTOCOL_VERSION};
use super::ScriptSettings;

pub type WorkerId = u64;

/// What a worker's tasks tell the supervisor, in the order it happened.
#[derive(Debug)]
pub enum WorkerEvent {
    Response(WorkerId, Response),
    Exited(WorkerId, Death),
}

/// A request's frame: its head, then the call's bytes (shared: a call may be sent again).
#[derive(Debug)]
pub struct Outgoing {
    pub head: Vec<u8>,
    pub call: Arc<Vec<u8>>,
}

/// A running worker's handles.
#[derive(Debug)]
pub struct Process {
    /// Frames for its standard input. Dropping it closes that input, and the worker exits.
    pub frames: mpsc::UnboundedSender<Outgoing>,
    /// Cancelling it kills the worker.
    pub kill: CancellationToken,
    pub pid: Option<u32>,
}

/// How much of the frames is gathered before a write, at most, each way.
const BUFFER_BYTES: usize = 64 * 1024;
/// The last lines of standard error that are kept, to tell how a worker died.
const STDERR_LINES: usize = 8;
/// The longest line of standard error that is kept whole.
const STDERR_LINE_BYTES: u64 = 4096;
/// Room in a reply's frame beside its text (an error text is at most 4 KiB).
const REPLY_OVERHEAD_BYTES: usize = 64 * 1024;

/// Starts a worker: `<program> script-worker`, with an empty environment.
pub fn spawn(
    id: WorkerId,
    settings: &ScriptSettings,
    events: mpsc::UnboundedSender<WorkerEvent>,
) -> io::Result<Process> {
    let mut child = Command::new(&settings.program)
        .arg("script-worker")
        .args(["--protocol", &PROTOCOL_VERSION.to_string()])
        .args(["--memory-mb", &settings.memory_mb.to_string()])
        .args(["--cpu-seconds", &settings.cpu_limit_seconds().to_string()])
        .args(["--max-result-bytes", &settings.max_result_bytes.to_string()])
        .env_clear()
        // One malloc arena: each arena reserves 64 MiB of address space, which counts in the
        // worker's limit.
        .env("MALLOC_ARENA_MAX", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id();
    let (Some(stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(io::Error::other("a script worker's pipes are missing"));
    };
    let (frames, queue) = mpsc::unbounded_channel();
    let kill = CancellationToken::new();
    tokio::spawn(write_frames(stdin, queue));
    let stderr = tokio::spawn(read_stderr(id, stderr));
    let max_reply_bytes = settings.max_result_bytes.saturating_add(REPLY_OVERHEAD_BYTES);
    let watch =
        Watch { id, child, stderr, kill: kill.clone(), events, memory_mb: settings.memory_mb };
    tokio::spawn(watch.read_replies(stdout, max_reply_bytes));
    tracing::debug!(worker = id, pid, "script worker started");
    Ok(Process { frames, kill, pid })
}

/// Writes frames as they come, and flushes once no more wait. Ends when the queue closes,
/// which closes the worker's standard input, or when the worker stops reading.
async fn write_frames(stdin: ChildStdin, mut queue: mpsc::UnboundedReceiver<Outgoing>) {
    let mut input = BufWriter::with_capacity(BUFFER_BYTES, stdin);
    while let Some(first) = queue.recv().await {
        let mut next = Some(first);
        while let Some(frame) = next {
            let written = match input.write_all(&frame.head).await {
                Ok(()) => input.write_all(&frame.call).await,
                Err(e) => Err(e),
            };
            if written.is_err() {
                return;
            }
            next = queue.try_recv().ok();
        }
        if input.flush().await.is_err() {
            return;
        }
    }
}

/// Logs a worker's standard error, line by line, and returns its last lines.
async fn read_stderr(id: WorkerId, stderr: ChildStderr) -> String {
    let mut reader = BufReader::new(stderr);
    let mut tail = VecDeque::with_capacity(STDERR_LINES);
    let mut line = Vec::new();
    loop {
        line.clear();
        // A longer line is read in pieces.
        match (&mut reader).take(STDERR_LINE_BYTES).read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line).trim_end().to_owned();
        if text.is_empty() {
            continue;
        }
        tracing::warn!(worker = id, "script worker: {text}");
        if tail.len() == STDERR_LINES {
            tail.pop_front();
        }
        tail.push_back(text);
    }
    Vec::from(tail).join("\n")
}

/// What watches one worker: its process, and the task that reads its standard error.
struct Watch {
    id: WorkerId,
    child: Child,
    stderr: JoinHandle<String>,
    kill: CancellationToken,
    events: mpsc::UnboundedSender<WorkerEvent>,
    memory_mb: u64,
}

impl Watch {
    /// Passes the worker's replies on until it closes its output (or is killed, or breaks the
    /// protocol), then waits for it to exit and reports how it died.
    async fn read_replies(mut self, stdout: ChildStdout, max_reply_bytes: usize) {
        let mut output = BufReader::with_capacity(BUFFER_BYTES, stdout);
        loop {
            let frame = tokio::select! {
                frame = protocol::read_frame_async(&mut output, max_reply_bytes) => frame,
                () = self.kill.cancelled() => break,
            };
            let reply = match frame {
                Ok(Some(frame)) => protocol::decode_response(&frame),
                Ok(None) => break,
                Err(e) => Err(e),
            };
            match reply {
                Ok(reply) => {
                    if self.events.send(WorkerEvent::Response(self.id, reply)).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    tracing::error!(worker = self.id, error = %e,
                        "a script worker broke the protocol; it is killed");
                    break;
                }
            }
        }
        // Whatever ended the replies, the worker is done: make sure that it exits.
        let _ = self.child.start_kill();
        let status = self.child.wait().await.ok();
        let tail = self.stderr.await.unwrap_or_default();
        let death = Death::of(status, &tail, self.memory_mb);
        let _ = self.events.send(WorkerEvent::Exited(self.id, death));
    }
}
