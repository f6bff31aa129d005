//! Why a script worker died, from its exit status and the last lines it wrote to standard
//! error, and the error that a node gets for it.

use std::fmt;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use aetr_engine::script::ScriptError;

use super::worker::EXIT_OUT_OF_MEMORY;

/// SIGXCPU: the worker reached its CPU time limit (RLIMIT_CPU).
const SIGXCPU: i32 = 24;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Death {
    /// An allocation failed at the worker's address space limit (Rust aborts the process and
    /// says "memory allocation of N bytes failed"), or the worker had no memory left to start
    /// a thread.
    OutOfMemory { limit_mb: u64 },
    /// A native stack overflowed (Rust says so, then aborts).
    StackOverflow,
    /// The worker reached its CPU time limit.
    CpuTime,
    /// Killed by a signal, for a reason that the worker did not say.
    Signal(i32),
    /// The worker exited by itself.
    Exit(i32),
    /// Its status could not be read.
    Unknown,
}

impl Death {
    /// Reads a dead worker's status and its last lines of standard error.
    pub fn of(status: Option<ExitStatus>, stderr_tail: &str, limit_mb: u64) -> Death {
        if stderr_tail.contains("memory allocation of") {
            return Death::OutOfMemory { limit_mb };
        }
        if stderr_tail.contains("has overflowed its stack") {
            return Death::StackOverflow;
        }
        let Some(status) = status else { return Death::Unknown };
        match (status.signal(), status.code()) {
            (_, Some(code)) if code == i32::from(EXIT_OUT_OF_MEMORY) => {
                Death::OutOfMemory { limit_mb }
            }
            (Some(SIGXCPU), _) => Death::CpuTime,
            (Some(signal), _) => Death::Signal(signal),
            (None, Some(code)) => Death::Exit(code),
            (None, None) => Death::Unknown,
        }
    }

    /// The error of the call that the worker was running.
    pub fn error(&self) -> ScriptError {
        ScriptError::Limit(self.to_string())
    }
}

impl fmt::Display for Death {
    /// The texts that follow a node's `mapper: ` or `reducer: `.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Death::OutOfMemory { limit_mb } => write!(f, "out of memory (limit {limit_mb} MB)"),
            Death::StackOverflow => f.write_str("the script worker died (stack overflow)"),
            Death::CpuTime => f.write_str("the script worker died (CPU time limit)"),
            Death::Signal(signal) => write!(f, "the script worker died (signal {signal})"),
            Death::Exit(code) => write!(f, "the script worker died (exit code {code})"),
            Death::Unknown => f.write_str("the script worker died"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signalled(signal: i32) -> Option<ExitStatus> {
        Some(ExitStatus::from_raw(signal))
    }

    fn exited(code: i32) -> Option<ExitStatus> {
        Some(ExitStatus::from_raw(code << 8))
    }

    #[test]
    fn a_death_is_named_by_what_the_worker_said_then_by_its_status() {
        let oom = "memory allocation of 268435456 bytes failed\n";
        assert_eq!(Death::of(signalled(6), oom, 256).to_string(), "out of memory (limit 256 MB)");
        let overflow = "\nthread 'aetr-script' has overflowed its stack\nfatal runtime error: stack overflow\n";
        assert_eq!(Death::of(signalled(6), overflow, 256), Death::StackOverflow);
        assert_eq!(
            Death::of(signalled(9), "", 256).to_string(),
            "the script worker died (signal 9)"
        );
        assert_eq!(Death::of(signalled(SIGXCPU), "", 256), Death::CpuTime);
        assert_eq!(
            Death::of(exited(3), "", 256).to_string(),
            "the script worker died (exit code 3)"
        );
        assert_eq!(Death::of(None, "", 256).to_string(), "the script worker died");
        assert_eq!(
            Death::of(exited(EXIT_OUT_OF_MEMORY.into()), "", 128),
            Death::OutOfMemory { limit_mb: 128 }
        );
        assert_eq!(
            Death::of(signalled(9), "", 256).error(),
            ScriptError::Limit("the script worker died (signal 9)".into())
        );
    }
}
