//! Times: the engine counts epoch milliseconds, PostgreSQL stores `timestamptz`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Now, in epoch milliseconds.
pub fn now_ms() -> i64 {
    from_system(SystemTime::now())
}

pub fn to_system(ms: i64) -> SystemTime {
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms as u64)
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}

pub fn from_system(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

pub fn opt_to_system(ms: Option<i64>) -> Option<SystemTime> {
    ms.map(to_system)
}

pub fn opt_from_system(t: Option<SystemTime>) -> Option<i64> {
    t.map(from_system)
}
