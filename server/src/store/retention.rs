//! Deleting finished runs: one by hand (`DELETE /runs/{id}`), or the old ones in small batches
//! (`AETR_RETENTION_DAYS`). A run's nodes, attempts and history go with it (the foreign keys
//! cascade).

use anyhow::Result;
use deadpool_postgres::GenericClient;
use uuid::Uuid;

use super::time::to_system;

/// What became of a request to delete a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    Deleted,
    /// The run is still in flight (Pending or Executing): it is kept.
    InFlight,
    NoSuchRun,
}

/// See [`delete_finished`]. The outer query sees the row as it was before the delete, so it
/// tells a run in flight from one that is not there. A redrive that commits first makes the run
/// Executing again, and the delete, which then reads the row anew, keeps it.
pub(crate) const DELETE_FINISHED_SQL: &str = "WITH gone AS (
        DELETE FROM runs WHERE id = $1 AND state IN ('Complete', 'Error', 'Cancelled')
        RETURNING id
    )
    SELECT (SELECT count(*) FROM gone) AS deleted,
           (SELECT count(*) FROM runs WHERE id = $1) AS found";

/// Deletes a run that has finished, with its nodes, attempts and history.
#[tracing::instrument(level = "debug", skip_all, fields(run = %run))]
pub async fn delete_finished(client: &impl GenericClient, run: Uuid) -> Result<Deleted> {
    let statement = client.prepare_cached(DELETE_FINISHED_SQL).await?;
    let row = client.query_one(&statement, &[&run]).await?;
    let (deleted, found): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
    Ok(match (deleted, found) {
        (0, 0) => Deleted::NoSuchRun,
        (0, _) => Deleted::InFlight,
        _ => Deleted::Deleted,
    })
}

/// See [`delete_old`]. The oldest finished runs are locked, skipping those that another
/// transaction holds (another replica's sweep), and `runs_finished` (migration V6) finds them
/// without a scan; of those, the first ones whose nodes before them number less than `$3` go.
pub(crate) const DELETE_OLD_SQL: &str = "DELETE FROM runs r USING (
        SELECT id FROM (
            SELECT id, sum(node_count) OVER (ORDER BY completed_at, id) - node_count AS before
            FROM (SELECT id, node_count, completed_at FROM runs
                  WHERE state IN ('Complete', 'Error', 'Cancelled') AND completed_at < $1
                  ORDER BY completed_at LIMIT $2 FOR UPDATE SKIP LOCKED) oldest
        ) counted
        WHERE before < $3
    ) picked
    WHERE r.id = picked.id";

/// Deletes the oldest runs that finished before `before` (epoch milliseconds), in one
/// statement: at most `max_runs` of them, and no more of them than make `max_nodes` nodes (one
/// at least). Returns how many runs it deleted.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn delete_old(
    client: &impl GenericClient,
    before: i64,
    max_runs: i64,
    max_nodes: i64,
) -> Result<u64> {
    let statement = client.prepare_cached(DELETE_OLD_SQL).await?;
    Ok(client.execute(&statement, &[&to_system(before), &max_runs, &max_nodes.max(1)]).await?)
}

statements!(DELETE_FINISHED_SQL, DELETE_OLD_SQL);
