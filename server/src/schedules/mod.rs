//! Schedules (design.md, "Schedules"): runs of a step started on the ticks of a cron
//! expression. Every server looks for due schedules; the one that claims a schedule's row
//! (`FOR UPDATE SKIP LOCKED`) starts the tick's run while it holds the row, with the
//! idempotency key `schedule:<id>:<tick>`, so each tick starts exactly one run whichever
//! replicas are up, even if a server dies between starting the run and recording the tick.
//! After an outage only the latest missed tick runs: a schedule's next tick is always counted
//! from the time it fired.

pub mod cron;

use std::time::Duration;

use aetr_engine::parse::run_input;
use deadpool_postgres::Pool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::runs::{RunError, Runs, StartRun};
use crate::store::schedules::{self, Overlap, Schedule};
use crate::store::time::now_ms;
use cron::Ticks;

/// How many due schedules one transaction fires.
const BATCH: i64 = 32;
/// The longest a server sleeps before it looks again (a schedule made or changed elsewhere).
const MAX_SLEEP: Duration = Duration::from_secs(1);
const MIN_SLEEP: Duration = Duration::from_millis(5);

/// The idempotency key of a tick's run.
pub fn tick_key(schedule: uuid::Uuid, tick: i64) -> String {
    format!("schedule:{schedule}:{tick}")
}

/// Starts firing due schedules until `stopping`. It looks when the next one is due (one small
/// query), and opens a transaction only when one is.
pub fn start(runs: Runs, pool: Pool, stopping: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let wait = match until_next(&pool).await {
                Some(wait) => wait,
                None => {
                    let fired = fire_due(&runs, &pool).await.unwrap_or_else(|e| {
                        tracing::warn!(
                            error = format!("{e:#}"),
                            "cannot fire due schedules; trying again"
                        );
                        0
                    });
                    if fired as i64 == BATCH {
                        continue;
                    }
                    MIN_SLEEP
                }
            };
            tokio::select! {
                () = stopping.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    })
}

/// How long to sleep until the next schedule is due, at most [`MAX_SLEEP`]; `None` when one is
/// due now.
async fn until_next(pool: &Pool) -> Option<Duration> {
    let next = async { schedules::next_due(&pool.get().await?).await };
    match next.await {
        Ok(Some(at)) if at <= now_ms() => None,
        Ok(Some(at)) => {
            let ms = u64::try_from(at - now_ms()).unwrap_or(0);
            Some(Duration::from_millis(ms).clamp(MIN_SLEEP, MAX_SLEEP))
        }
        Ok(None) => Some(MAX_SLEEP),
        Err(e) => {
            tracing::warn!(error = format!("{e:#}"), "cannot read when schedules are due");
            Some(MAX_SLEEP)
        }
    }
}

/// Fires the schedules that are due, in one transaction that holds their rows. Returns how
/// many. An error leaves them all due: the runs already started are found again by their
/// idempotency keys.
async fn fire_due(runs: &Runs, pool: &Pool) -> anyhow::Result<usize> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let now = now_ms();
    let due = schedules::claim_due(&tx, now, BATCH).await?;
    for (schedule, last_run_going) in &due {
        let tick = fire(runs, schedule, *last_run_going, now).await?;
        let run = tick.run.map(|run| (tick.at, run));
        schedules::fired(&tx, schedule.id, tick.next, run, tick.error.as_deref()).await?;
    }
    tx.commit().await?;
    Ok(due.len())
}

/// What one tick did.
#[derive(Debug)]
struct Tick {
    at: i64,
    /// The tick after it.
    next: Option<i64>,
    run: Option<uuid::Uuid>,
    error: Option<String>,
}

/// Starts the run of a due schedule's latest tick (unless it skips it). `Err` only when the
/// database failed, so that the tick is tried again.
async fn fire(
    runs: &Runs,
    schedule: &Schedule,
    last_run_going: bool,
    now: i64,
) -> Result<Tick, RunError> {
    let d = &schedule.definition;
    let due = schedule.next_fire_at.unwrap_or(now);
    let ticks = match Ticks::parse(&d.cron, Some(&d.timezone)) {
        Ok(ticks) => ticks,
        Err((field, why)) => {
            let error = Some(format!("{field}: {why}"));
            return Ok(Tick { at: due, next: None, run: None, error });
        }
    };
    // The latest tick that has come, even if earlier ones were missed while no server ran.
    let at = ticks.latest_at(now).filter(|t| *t >= due).unwrap_or(due);
    let next = ticks.next_after(now.max(at));
    if d.overlap == Overlap::Skip && last_run_going {
        tracing::info!(schedule = %schedule.id, tick = at, "tick skipped: the schedule's last run is still going");
        return Ok(Tick { at, next, run: None, error: None });
    }
    let request = StartRun {
        step_id: d.step_id,
        input: d.input.as_ref().and_then(run_input),
        idempotency_key: Some(tick_key(schedule.id, at)),
        notify: None,
        schedule_id: Some(schedule.id),
        dry: None,
    };
    match runs.start(request).await {
        Ok(started) => {
            tracing::info!(schedule = %schedule.id, tick = at, run = %started.id, "schedule fired");
            Ok(Tick { at, next, run: Some(started.id), error: None })
        }
        Err(e @ (RunError::Conflict | RunError::Unavailable(_))) => Err(e),
        Err(e) => {
            tracing::warn!(schedule = %schedule.id, tick = at, error = %e, "a schedule's tick started no run");
            Ok(Tick { at, next, run: None, error: Some(e.to_string()) })
        }
    }
}
