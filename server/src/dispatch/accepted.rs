//! Recording accepted POSTs in batches: one statement releases the leases of many nodes, so a
//! wide run's thousands of 2xx answers cost a few commits, not thousands.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Outbox;
use crate::store::nodes::{self, Accepted};

/// The most accepted POSTs one statement records.
const BATCH: usize = 1_000;
/// How long the recorder waits before it writes a batch: a callback that comes within it
/// records the POST's status itself (see [`super::answered`]).
const CALLBACK_WINDOW: Duration = Duration::from_millis(5);
/// How many times a batch is tried before its POSTs are left to their leases (which then run
/// out, and the attempts are sent again).
const TRIES: u32 = 5;

/// Records accepted POSTs until `stop` is cancelled and every one sent before it is recorded.
pub(crate) async fn record(
    outbox: Arc<Outbox>,
    mut accepted: mpsc::UnboundedReceiver<Accepted>,
    stop: CancellationToken,
) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let stopping = tokio::select! {
            biased;
            got = accepted.recv() => match got {
                Some(a) => { batch.push(a); false }
                None => true,
            },
            () = stop.cancelled() => true,
        };
        if !stopping {
            // A fast service's callback may come meanwhile, and make the recording needless.
            tokio::time::sleep(CALLBACK_WINDOW).await;
        }
        while batch.len() < BATCH {
            match accepted.try_recv() {
                Ok(a) => batch.push(a),
                Err(_) => break,
            }
        }
        batch.retain(|a| outbox.answered.take(a.run, a.idx, a.attempt));
        if !batch.is_empty() {
            write(&outbox, &batch).await;
            batch.clear();
        }
        if stopping && accepted.is_empty() {
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
