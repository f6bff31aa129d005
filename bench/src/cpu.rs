//! CPU time from /proc: a process's own, its children's that have exited (the kernel adds them
//! to the parent as it reaps them), and its live children's. Read before and after a scenario,
//! the difference is what the process and its children spent on it: PostgreSQL's postmaster
//! and its backends and helpers, or the aetr server and its script workers.

use std::collections::HashMap;

use anyhow::{Context, Result};

/// Linux reports /proc times in USER_HZ ticks, which are hundredths of a second everywhere.
const TICKS_PER_SECOND: f64 = 100.0;

/// One `/proc/<pid>/stat` line's fields that matter here.
struct Stat {
    ppid: i32,
    /// utime + stime: its own CPU time.
    own: u64,
    /// cutime + cstime: its exited (and waited for) children's.
    reaped: u64,
}

fn stat(pid: i32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name, in parentheses, may hold spaces: the fields start after its last ')'.
    let fields: Vec<&str> = text.rsplit_once(')')?.1.split_whitespace().collect();
    // fields[0] is field 3 (state): field n is fields[n - 3].
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    Some(Stat {
        ppid: fields.get(1)?.parse().ok()?,
        own: field(14)? + field(15)?,
        reaped: field(16)? + field(17)?,
    })
}

/// The parent of process `pid`, if it is there to read.
pub fn parent(pid: i32) -> Option<i32> {
    stat(pid).map(|s| s.ppid)
}

/// The CPU seconds of each process tree rooted at `roots`: each root's own, its reaped
/// children's, and its live children's own (their children are not counted: neither
/// PostgreSQL's nor aetr's have any).
pub fn seconds(roots: &[i32]) -> Result<Vec<f64>> {
    let mut children: HashMap<i32, u64> = roots.iter().map(|&r| (r, 0)).collect();
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        if let Some(s) = stat(pid) {
            if let Some(sum) = children.get_mut(&s.ppid) {
                *sum += s.own;
            }
        }
    }
    roots
        .iter()
        .map(|&root| {
            let s = stat(root).with_context(|| format!("process {root} is not in /proc"))?;
            Ok((s.own + s.reaped + children[&root]) as f64 / TICKS_PER_SECOND)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_process_has_spent_some_cpu_and_has_a_parent() {
        let me = std::process::id() as i32;
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        assert!(x > 0);
        assert!(super::seconds(&[me]).expect("/proc is readable")[0] > 0.0);
        assert!(super::parent(me).is_some());
    }
}
