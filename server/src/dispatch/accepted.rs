//! Recording accepted POSTs in batches: one statement releases the leases of many nodes, so a
//! wide run's thousands of 2xx answers cost a few commits, not thousands.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Outbox;
use crate::store::nodes::{self, Accepted};

/// The most accepted POSTs one statement records.
const BATCH: usize = 1_000;
/// How long each accepted POST waits before it is recorded: a callback that comes within it
/// records the POST's status itself (see [`super::answered`]), and its node's write ends the
/// lease. Not longer: a server killed in the window leaves its node leased, so the POST is
/// sent again only when the lease runs out (its timeout and 30 s more), and the callback's
/// deadline waits as long (bench/README.md, "Measurements behind constants in the code").
const CALLBACK_WINDOW: Duration = Duration::from_millis(5);
/// How many times a batch is tried before its POSTs are left to their leases (which then run
/// out, and the attempts are sent again).
const TRIES: u32 = 5;

/// Records accepted POSTs, each once its [`CALLBACK_WINDOW`] has passed, until `stop` is
/// cancelled; then every one sent before it is recorded at once.
pub(crate) async fn record(
    outbox: Arc<Outbox>,
    mut accepted: mpsc::UnboundedReceiver<Accepted>,
    stop: CancellationToken,
) {
    let mut waiting: VecDeque<(Instant, Accepted)> = VecDeque::new();
    let mut stopping = false;
    loop {
        let due = waiting.front().map(|(at, _)| *at + CALLBACK_WINDOW);
        tokio::select! {
            biased;
            got = accepted.recv(), if !stopping => match got {
                Some(a) => waiting.push_back((Instant::now(), a)),
                None => stopping = true,
            },
            () = stop.cancelled(), if !stopping => stopping = true,
            () = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {}
            // Stopping, with nothing waiting: what was sent meanwhile is taken below.
            else => {}
        }
        while let Ok(a) = accepted.try_recv() {
            waiting.push_back((Instant::now(), a));
        }
        let now = Instant::now();
        let due = |(at, _): &(Instant, Accepted)| stopping || *at + CALLBACK_WINDOW <= now;
        while waiting.front().is_some_and(due) {
            let batch: Vec<Accepted> = std::iter::from_fn(|| {
                waiting.front().is_some_and(due).then(|| waiting.pop_front()).flatten()
            })
            .take(BATCH)
            .map(|(_, a)| a)
            .filter(|a| outbox.answered.take(a.run, a.idx, a.attempt))
            .collect();
            if !batch.is_empty() {
                write(&outbox, &batch).await;
            }
        }
        if stopping && waiting.is_empty() && accepted.is_empty() {
            return;
        }
    }
}

#[tracing::instrument(level = "debug", skip_all, fields(posts = batch.len()))]
async fn write(outbox: &Outbox, batch: &[Accepted]) {
    let mut delay = Duration::from_millis(50);
    for tries in 1..=TRIES {
        let written = async {
            let client = outbox.pool.get().await?;
            nodes::accept(&client, batch).await
        }
        .await;
        match written {
            Ok(()) => return,
            Err(e) if tries < TRIES => {
                tracing::debug!(error = format!("{e:#}"), "recording accepted POSTs failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(e) => tracing::warn!(
                error = format!("{e:#}"),
                posts = batch.len(),
                "cannot record accepted POSTs; their leases will run out and they will be sent again"
            ),
        }
    }
}
