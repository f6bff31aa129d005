//! The resource limits that a script worker sets on itself when it starts.

use std::io;
use std::time::Duration;

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
use rustix::time::{clock_gettime, ClockId};

/// Limits the address space (RLIMIT_AS) to `memory_mb` MiB and the CPU time (RLIMIT_CPU) to
/// `cpu_seconds`: the kernel sends SIGXCPU then, and SIGKILL a second later. No core dumps: a
/// worker that dies at its memory limit aborts, and its core is of no use.
pub fn apply(memory_mb: u64, cpu_seconds: u64) -> io::Result<()> {
    let memory = memory_mb.saturating_mul(1024 * 1024);
    lower(Resource::As, memory, memory).map_err(|e| context(e, "RLIMIT_AS"))?;
    lower(Resource::Cpu, cpu_seconds, cpu_seconds.saturating_add(1))
        .map_err(|e| context(e, "RLIMIT_CPU"))?;
    lower(Resource::Core, 0, 0).map_err(|e| context(e, "RLIMIT_CORE"))
}

/// Sets a limit's soft and hard values, never above the hard value it has (which would need a
/// privilege).
fn lower(resource: Resource, soft: u64, hard: u64) -> io::Result<()> {
    let now = getrlimit(resource);
    let cap = |value: u64| Some(now.maximum.map_or(value, |max| value.min(max)));
    setrlimit(resource, Rlimit { current: cap(soft.min(hard)), maximum: cap(hard) })
        .map_err(io::Error::from)
}

fn context(e: io::Error, what: &str) -> io::Error {
    io::Error::new(e.kind(), format!("cannot set {what}: {e}"))
}

/// The CPU time that this process has used so far, in all its threads.
pub fn cpu_time() -> Duration {
    let now = clock_gettime(ClockId::ProcessCPUTime);
    let secs = u64::try_from(now.tv_sec).unwrap_or(0);
    let nanos = u32::try_from(now.tv_nsec).unwrap_or(0);
    Duration::new(secs, nanos)
}
