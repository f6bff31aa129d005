//! Deleting old runs (`AETR_RETENTION_DAYS`): every server sweeps, and replicas share the work
//! (a batch skips the runs that another holds). Each batch is its own short transaction of a
//! few runs, so that callbacks and dispatches of runs in flight never wait behind a sweep.

use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::store::retention;
use crate::store::time::now_ms;

/// How often a server sweeps when the last sweep left nothing to delete.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// The first sweep, soon after the server starts.
const FIRST_SWEEP: Duration = Duration::from_secs(1);
/// The pause between two batches of one sweep.
const BETWEEN_BATCHES: Duration = Duration::from_millis(20);
/// The most runs, and about the most nodes, that one batch deletes.
const BATCH_RUNS: i64 = 100;
const BATCH_NODES: i64 = 5_000;

const DAY_MS: i64 = 24 * 3_600 * 1_000;

/// Sweeps every [`SWEEP_EVERY`] until `stopping`, deleting the runs that finished more than
/// `days` days ago.
pub fn start(pool: Pool, days: u32, stopping: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut wait = FIRST_SWEEP;
        loop {
            tokio::select! {
                () = stopping.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
            let deleted = sweep(&pool, days, &stopping).await;
            if deleted > 0 {
                tracing::info!(
                    runs = deleted,
                    days,
                    "deleted runs that finished before the retention period"
                );
            }
            wait = SWEEP_EVERY;
        }
    })
}

/// Deletes old runs, batch by batch, until none is left (or the server stops). Returns how many.
async fn sweep(pool: &Pool, days: u32, stopping: &CancellationToken) -> u64 {
    let before = now_ms() - i64::from(days) * DAY_MS;
    let mut total = 0;
    while !stopping.is_cancelled() {
        let batch = async {
            let client = pool.get().await?;
            retention::delete_old(&client, before, BATCH_RUNS, BATCH_NODES).await
        };
        match batch.await {
            Ok(0) => break,
            Ok(n) => total += n,
            Err(e) => {
                tracing::warn!(
                    error = format!("{e:#}"),
                    "cannot delete old runs; the next sweep tries again"
                );
                break;
            }
        }
        tokio::time::sleep(BETWEEN_BATCHES).await;
    }
    total
}
