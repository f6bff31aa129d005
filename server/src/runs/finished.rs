//! Waiting for runs to end: `GET /runs/{id}?wait=N` (a long poll) parks here, holding no
//! database connection, until the run ends or the wait runs out. A run's end wakes its waiters
//! on this server as soon as its transaction commits, and on every other server through a
//! NOTIFY on [`RUN_FINISHED_CHANNEL`](crate::store::changes::RUN_FINISHED_CHANNEL), so a
//! thousand clients waiting on a thousand runs cost a thousand parked futures, not polls.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use uuid::Uuid;

/// The runs that requests wait on, each with the signal that wakes its waiters.
#[derive(Debug, Default)]
pub struct Finished {
    waiting: Mutex<HashMap<Uuid, Arc<Notify>>>,
    /// Woken by every end, waited on by the webhooks' deliverer.
    any: Arc<Notify>,
}

impl Finished {
    /// A run ended: wakes whoever waits for it here.
    pub fn ended(&self, run: Uuid) {
        if let Some(signal) = self.lock().remove(&run) {
            signal.notify_waiters();
        }
        self.any.notify_one();
    }

    /// The signal that every run's end gives (to one waiter, or to the next to wait).
    pub fn any_ended(&self) -> Arc<Notify> {
        Arc::clone(&self.any)
    }

    /// Waits up to `wait` for `run` to end, unless `ended_already` (called once this waiter is
    /// registered, so that an end between the check and the wait is not missed) says it has.
    pub async fn wait(&self, run: Uuid, wait: Duration, ended_already: impl Future<Output = bool>) {
        let signal = Arc::clone(self.lock().entry(run).or_default());
        let waiter = Waiter { finished: self, run, signal };
        let notified = waiter.signal.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if !ended_already.await {
            let _ = tokio::time::timeout(wait, notified).await;
        }
    }

    /// How many runs are waited on.
    #[cfg(test)]
    fn waited_on(&self) -> usize {
        self.lock().len()
    }

    /// How many requests wait on `run`.
    #[cfg(test)]
    fn waiters(&self, run: Uuid) -> usize {
        self.lock().get(&run).map_or(0, |s| Arc::strong_count(s) - 1)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Arc<Notify>>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A registered waiter: the last one to leave removes its run's entry.
struct Waiter<'a> {
    finished: &'a Finished,
    run: Uuid,
    signal: Arc<Notify>,
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        let mut waiting = self.finished.lock();
        // The map's reference and this one: no other waiter is left.
        let last = waiting
            .get(&self.run)
            .is_some_and(|s| Arc::ptr_eq(s, &self.signal) && Arc::strong_count(&self.signal) == 2);
        if last {
            waiting.remove(&self.run);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_end_wakes_every_waiter_and_the_last_to_leave_clears_the_entry() {
        let finished = Arc::new(Finished::default());
        let run = Uuid::now_v7();
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let finished = Arc::clone(&finished);
                tokio::spawn(async move {
                    finished.wait(run, Duration::from_secs(30), async { false }).await;
                })
            })
            .collect();
        while finished.waiters(run) < 3 {
            tokio::task::yield_now().await;
        }
        finished.ended(run);
        for waiter in waiters {
            tokio::time::timeout(Duration::from_secs(5), waiter)
                .await
                .unwrap_or_else(|_| panic!("a waiter was not woken"))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        assert_eq!(finished.waited_on(), 0);
    }

    #[tokio::test]
    async fn a_run_that_ended_already_is_not_waited_for_and_a_wait_runs_out() {
        let finished = Finished::default();
        let run = Uuid::now_v7();
        let started = std::time::Instant::now();
        finished.wait(run, Duration::from_secs(30), async { true }).await;
        assert!(started.elapsed() < Duration::from_secs(5));
        finished.wait(run, Duration::from_millis(50), async { false }).await;
        assert_eq!(finished.waited_on(), 0, "a waiter that timed out leaves no entry");
    }
}
