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
mod answered;
mod listen;
mod outbox;
pub mod request;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::runs::Runs;
use crate::store::nodes::{self, Accepted, ClaimKind, Claimed};
use crate::store::pools;
use crate::store::time::now_ms;
pub use outbox::{Outbox, Settings, Slot};

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
        outbox: &Arc<Outbox>,
        database: tokio_postgres::Config,
        accepted: mpsc::UnboundedReceiver<Accepted>,
    ) -> Dispatcher {
        let stop_recorder = CancellationToken::new();
        let stopping = runs.stopping();
        Dispatcher {
            claims: tokio::spawn(claim_loop(runs.clone(), Arc::clone(outbox))),
            listener: tokio::spawn(listen::listen(
                Arc::clone(outbox),
                runs.finished(),
                database,
                stopping,
            )),
            recorder: tokio::spawn(accepted::record(
                Arc::clone(outbox),
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

async fn claim_loop(runs: Runs, outbox: Arc<Outbox>) {
    let stopping = runs.stopping();
    let mut backoff = Duration::from_millis(100);
    let mut seen = PoolsSeen::default();
    loop {
        // Sends need a free POST slot: claim only as many as there are.
        let first = tokio::select! {
            slot = outbox.slot() => match slot {
                Some(slot) => slot,
                None => return,
            },
            () = stopping.cancelled() => return,
        };
        let mut slots = vec![first];
        while let Some(slot) = outbox.try_slot() {
            slots.push(slot);
            if slots.len() >= CLAIM_SENDS {
                break;
            }
        }
        let now = now_ms();
        let claimed = async {
            let client = outbox.pool.get().await?;
            let sends = slots.len() as i64;
            nodes::claim(&client, now, sends, CLAIM_OTHERS, now + CLAIM_LEASE_MS).await
        }
        .await;
        let claimed = match claimed {
            Ok(claimed) => {
                backoff = Duration::from_millis(100);
                claimed
            }
            Err(e) => {
                drop(slots);
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
        // The send slots that the claim left free go to pooled actions that wait for their
        // pools' slots.
        let sends = claimed
            .iter()
            .filter(|c| matches!(c.kind, ClaimKind::Dispatch | ClaimKind::Resend))
            .count();
        let free = slots.len().saturating_sub(sends);
        let (pooled, pools_retry_at) = claim_pooled(&outbox, &mut seen, now, free).await;
        let mut claimed = claimed;
        claimed.extend(pooled);
        let idle = claimed.is_empty();
        for work in claimed {
            let slot = match work.kind {
                ClaimKind::Dispatch | ClaimKind::Resend => slots.pop(),
                ClaimKind::Script | ClaimKind::Timeout => None,
            };
            let task = runs.clone();
            runs.spawn(async move { task.do_claimed(work, slot).await });
        }
        drop(slots);
        if idle {
            let mut sleep = until_due(&outbox, now).await;
            if let Some(at) = pools_retry_at {
                let ms = u64::try_from(at.saturating_sub(now)).unwrap_or(0);
                sleep = sleep.min(Duration::from_millis(ms).max(MIN_SLEEP));
            }
            tokio::select! {
                () = tokio::time::sleep(sleep) => {}
                () = outbox.woken() => {}
                () = stopping.cancelled() => return,
            }
        }
    }
}

/// What the claim loop knows of the pools: whether there were any when it last looked.
#[derive(Debug, Default)]
struct PoolsSeen {
    any: bool,
    at: i64,
}

/// How long the claim loop trusts that there are no pools (one may be made on another server).
const NO_POOLS_FOR_MS: i64 = 1_000;

/// Claims up to `free` pooled nodes, pool by pool (see [`pools::claim`]). Returns them, and
/// when to look again if a pool's per-second limit or a retry's backoff holds some back. While
/// there are no pools, it looks once a second, so that actions without a pool pay nothing.
async fn claim_pooled(
    outbox: &Outbox,
    seen: &mut PoolsSeen,
    now: i64,
    free: usize,
) -> (Vec<Claimed>, Option<i64>) {
    if !seen.any && now - seen.at < NO_POOLS_FOR_MS {
        return (Vec::new(), None);
    }
    let claims = async {
        let mut client = outbox.pool.get().await?;
        let survey = pools::survey(&client, now).await?;
        *seen = PoolsSeen { any: survey.any, at: now };
        let (mut claimed, mut retry_at) = (Vec::new(), survey.next_due);
        for name in survey.waiting {
            let left = free.saturating_sub(claimed.len()) as i64;
            if left == 0 {
                break;
            }
            let got = pools::claim(&mut client, &name, now, left, now + CLAIM_LEASE_MS).await?;
            claimed.extend(got.claimed);
            retry_at = retry_at.into_iter().chain(got.retry_at).min();
        }
        anyhow::Ok((claimed, retry_at))
    };
    claims.await.unwrap_or_else(|e| {
        tracing::warn!(error = format!("{e:#}"), "cannot claim the pools' waiting actions");
        (Vec::new(), None)
    })
}

/// How long to sleep when nothing is due: until the next known due time, at most the polling
/// interval.
async fn until_due(outbox: &Outbox, now: i64) -> Duration {
    let poll = outbox.poll_interval();
    let next = async {
        let client = outbox.pool.get().await?;
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
