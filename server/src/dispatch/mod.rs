//! The dispatcher: it finds due work in the database and does it. It is driven by the database
//! alone, so any number of servers can share one, and nothing is lost when one dies.
//!
//! One loop claims batches of due nodes with a lease (`FOR UPDATE SKIP LOCKED`, see
//! [`nodes::claim`]) as POST slots free up: actions that are due, POSTs whose sender's lease
//! ran out (sent again with the same attempt), scripts whose runner died, and callback
//! deadlines that passed. Each claimed node goes through its run's mailbox like any event,
//! fenced on the lease's epoch. When there is nothing to claim, the loop sleeps until the next
//! known due time, a wake-up (work left by this server, or a NOTIFY from another), or the
//! polling interval, whichever comes first.

mod accepted;
mod listen;
mod request;
mod send;

use std::sync::Arc;
use std::time::Duration;

use aetr_engine::machine::{Event, Reply};
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::runs::{Fence, Runs, ScriptJob, ScriptKind, Shared};
use crate::store::nodes::{self, Accepted, ClaimKind, Claimed};
use crate::store::time::now_ms;
pub(crate) use send::SendJob;

/// The most actions claimed at once for sending (fewer when fewer POST slots are free).
const CLAIM_SENDS: usize = 256;
/// The most nodes claimed at once for scripts and for timeouts.
const CLAIM_OTHERS: i64 = 256;
/// How long a claim holds a node before the work is recorded as begun.
const CLAIM_LEASE_MS: i64 = 30_000;
/// The shortest sleep between claims, so that a due time in the past cannot make it spin.
const MIN_SLEEP: Duration = Duration::from_millis(5);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// The dispatcher's background tasks.
#[derive(Debug)]
pub struct Dispatcher {
    claims: JoinHandle<()>,
    listener: JoinHandle<()>,
    recorder: JoinHandle<()>,
    stop_recorder: CancellationToken,
}

impl Dispatcher {
    /// Starts claiming, listening and recording. `database` is for the LISTEN connection.
    pub fn start(
        runs: &Runs,
        database: tokio_postgres::Config,
        accepted: mpsc::UnboundedReceiver<Accepted>,
    ) -> Dispatcher {
        let shared = &runs.shared;
        let stop_recorder = CancellationToken::new();
        Dispatcher {
            claims: tokio::spawn(claim_loop(Arc::clone(shared))),
            listener: tokio::spawn(listen::listen(
                Arc::clone(shared),
                database,
                shared.stopping.clone(),
            )),
            recorder: tokio::spawn(accepted::record(
                Arc::clone(shared),
                accepted,
                stop_recorder.clone(),
            )),
            stop_recorder,
        }
    }

    /// Ends the dispatcher's tasks, after [`Runs::stop`] (which stops the claims and waits for
    /// the work in hand): the accepted POSTs that are left are recorded first.
    pub async fn stop(self) {
        let _ = self.claims.await;
        let _ = self.listener.await;
        self.stop_recorder.cancel();
        let _ = self.recorder.await;
    }
}

async fn claim_loop(shared: Arc<Shared>) {
    let stopping = shared.stopping.clone();
    let mut backoff = Duration::from_millis(100);
    loop {
        // Sends need a free POST slot: claim only as many as there are.
        let first = tokio::select! {
            permit = Arc::clone(&shared.permits).acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => return,
            },
            () = stopping.cancelled() => return,
        };
        let mut permits = vec![first];
        while let Ok(p) = Arc::clone(&shared.permits).try_acquire_owned() {
            permits.push(p);
            if permits.len() >= CLAIM_SENDS {
                break;
            }
        }
        let now = now_ms();
        let claimed = async {
            let client = shared.pool.get().await?;
            let sends = permits.len() as i64;
            nodes::claim(&client, now, sends, CLAIM_OTHERS, now + CLAIM_LEASE_MS).await
        }
        .await;
        let claimed = match claimed {
            Ok(claimed) => {
                backoff = Duration::from_millis(100);
                claimed
            }
            Err(e) => {
                drop(permits);
                tracing::warn!(
                    error = format!("{e:#}"),
                    retry_in_ms = backoff.as_millis() as u64,
                    "cannot claim due work"
                );
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = stopping.cancelled() => return,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        let idle = claimed.is_empty();
        for work in claimed {
            let permit = match work.kind {
                ClaimKind::Dispatch | ClaimKind::Resend => permits.pop(),
                ClaimKind::Script | ClaimKind::Timeout => None,
            };
            let task = Arc::clone(&shared);
            shared.spawn(async move { task.do_claimed(work, permit).await });
        }
        drop(permits);
        if idle {
            let sleep = until_due(&shared, now).await;
            tokio::select! {
                () = tokio::time::sleep(sleep) => {}
                () = shared.wake.notified() => {}
                () = stopping.cancelled() => return,
            }
        }
    }
}

/// How long to sleep when nothing is due: until the next known due time, at most the polling
/// interval.
async fn until_due(shared: &Shared, now: i64) -> Duration {
    let poll = shared.settings.poll_interval;
    let next = async {
        let client = shared.pool.get().await?;
        nodes::next_due(&client).await
    }
    .await;
    match next {
        Ok(Some(at)) => {
            let ms = u64::try_from(at.saturating_sub(now)).unwrap_or(0);
            Duration::from_millis(ms).clamp(MIN_SLEEP, poll.max(MIN_SLEEP))
        }
        _ => poll,
    }
}

impl Shared {
    /// Does one claimed piece of work, reporting through the run's mailbox under the claim's
    /// lease.
    async fn do_claimed(self: Arc<Self>, work: Claimed, permit: Option<OwnedSemaphorePermit>) {
        let Claimed { run, idx, kind, phase, attempt, epoch, rev, input, result } = work;
        let fence = Some(Fence { idx, epoch });
        let snap = match self.snapshot_at(run, Some(rev)).await {
            Ok(Some(snap)) => snap,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(%run, error = %e, "cannot read a run's snapshot");
                return;
            }
        };
        match kind {
            ClaimKind::Dispatch | ClaimKind::Resend => {
                let permit = match permit {
                    Some(p) => p,
                    None => match Arc::clone(&self.permits).acquire_owned().await {
                        Ok(p) => p,
                        Err(_) => return,
                    },
                };
                let event = Event::Dispatched { node: idx, attempt };
                match self.submit(run, event, fence, None).await {
                    Ok(Reply::Send) => {
                        let job = SendJob { run, idx, attempt, epoch, input, permit };
                        self.send(snap, job).await;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(%run, node = idx, error = %e, "a claimed dispatch failed")
                    }
                }
            }
            ClaimKind::Timeout => {
                let event = Event::Timeout { node: idx, attempt };
                if let Err(e) = self.submit(run, event, fence, None).await {
                    tracing::warn!(%run, node = idx, error = %e, "a callback deadline could not be applied");
                }
            }
            ClaimKind::Script => {
                if let Some(kind) = ScriptKind::of(phase, result) {
                    let job = ScriptJob { run, idx, epoch, kind };
                    self.run_script(snap, job).await;
                }
            }
        }
    }
}
