//! Pools' rows, and the claim of pooled nodes. A node whose action names a pool has the
//! pool's name in its row; it is `busy` while `Executing`, or while it is claimed for its POST
//! (`Ready` with a live lease). Claims of one pool take the pool's row lock, count its busy
//! nodes, and take the earliest due of its waiting nodes that fit, so that no more than
//! `slots` are busy across all servers, and the waiting are served first come, first served.

use anyhow::Result;
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::nodes::{claimed_of, Claimed};
use super::time::{from_system, to_system};

/// A pool as stored, with how many of its attempts are busy and waiting now.
#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    pub name: String,
    pub slots: i32,
    pub per_second: Option<f64>,
    pub used: i64,
    pub waiting: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

macro_rules! select_pools {
    ($filter:literal) => {
        concat!(
            "SELECT p.name, p.slots, p.per_second, p.created_at, p.updated_at,
                (SELECT count(*) FROM run_nodes n WHERE n.pool = p.name
                   AND (n.phase = 'Executing' OR (n.phase = 'Ready' AND n.lease_until >= $2))) AS used,
                (SELECT count(*) FROM run_nodes n WHERE n.pool = p.name AND n.phase = 'Ready'
                   AND n.due_at <= $2 AND (n.lease_until IS NULL OR n.lease_until < $2)) AS waiting
             FROM pools p ",
            $filter
        )
    };
}

/// See [`list`].
pub(crate) const LIST_SQL: &str =
    select_pools!("WHERE $1::text IS NULL OR p.name = $1 ORDER BY p.name");

fn pool_of(row: &Row) -> Result<Pool> {
    Ok(Pool {
        name: row.try_get("name")?,
        slots: row.try_get("slots")?,
        per_second: row.try_get("per_second")?,
        used: row.try_get("used")?,
        waiting: row.try_get("waiting")?,
        created_at: from_system(row.try_get("created_at")?),
        updated_at: from_system(row.try_get("updated_at")?),
    })
}

/// Every pool (or the one named), with its counts at `now`.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn list(client: &impl GenericClient, name: Option<&str>, now: i64) -> Result<Vec<Pool>> {
    let statement = client.prepare_cached(LIST_SQL).await?;
    let rows = client.query(&statement, &[&name, &to_system(now)]).await?;
    rows.iter().map(pool_of).collect()
}

/// See [`names`].
pub(crate) const NAMES_SQL: &str = "SELECT name FROM pools";

/// The names of every pool.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn names(client: &impl GenericClient) -> Result<Vec<String>> {
    let statement = client.prepare_cached(NAMES_SQL).await?;
    let rows = client.query(&statement, &[]).await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

/// See [`put`]. A new pool's bucket starts with one token.
pub(crate) const PUT_SQL: &str = "INSERT INTO pools AS p (name, slots, per_second, tokens)
    VALUES ($1, $2, $3, 1)
    ON CONFLICT (name) DO UPDATE
    SET slots = excluded.slots, per_second = excluded.per_second, updated_at = now()
    RETURNING (xmax = 0) AS created";

/// Creates or replaces a pool. Returns whether it is new.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn put(
    client: &impl GenericClient,
    name: &str,
    slots: i32,
    per_second: Option<f64>,
) -> Result<bool> {
    let statement = client.prepare_cached(PUT_SQL).await?;
    Ok(client.query_one(&statement, &[&name, &slots, &per_second]).await?.try_get("created")?)
}

/// See [`users`]: the steps whose action names the pool, and the unfinished nodes of runs
/// that do.
pub(crate) const USERS_SQL: &str = "SELECT
        (SELECT coalesce(array_agg(format('%s (%s)', s.name, s.id) ORDER BY s.name), '{}')
         FROM (SELECT name, id FROM steps WHERE action::jsonb ->> 'pool' = $1 LIMIT 5) s) AS steps,
        (SELECT count(*) FROM steps WHERE action::jsonb ->> 'pool' = $1) AS step_count,
        (SELECT count(*) FROM run_nodes WHERE pool = $1
           AND phase IN ('Waiting', 'Ready', 'Executing')) AS nodes";

/// Who uses a pool: up to five steps (`name (id)`), how many steps, and how many unfinished
/// nodes.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn users(client: &impl GenericClient, name: &str) -> Result<(Vec<String>, i64, i64)> {
    let statement = client.prepare_cached(USERS_SQL).await?;
    let row = client.query_one(&statement, &[&name]).await?;
    Ok((row.try_get("steps")?, row.try_get("step_count")?, row.try_get("nodes")?))
}

/// See [`delete`].
pub(crate) const DELETE_SQL: &str = "DELETE FROM pools WHERE name = $1";

/// `false`: there was no such pool.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn delete(client: &impl GenericClient, name: &str) -> Result<bool> {
    let statement = client.prepare_cached(DELETE_SQL).await?;
    Ok(client.execute(&statement, &[&name]).await? == 1)
}

/// See [`survey`].
pub(crate) const SURVEY_SQL: &str = "SELECT
        EXISTS (SELECT 1 FROM pools) AS any,
        ARRAY(SELECT p.name FROM pools p WHERE EXISTS (
            SELECT 1 FROM run_nodes n WHERE n.pool = p.name AND n.phase = 'Ready'
              AND n.due_at <= $1 AND (n.lease_until IS NULL OR n.lease_until < $1))) AS waiting,
        (SELECT min(due_at) FROM run_nodes WHERE phase = 'Ready' AND pool IS NOT NULL
           AND due_at > $1 AND lease_until IS NULL) AS next_due";

/// What the dispatcher needs to know of the pools, in one round trip.
#[derive(Debug, Default)]
pub struct Survey {
    /// Whether there is any pool at all.
    pub any: bool,
    /// The pools that have due nodes waiting for a slot.
    pub waiting: Vec<String>,
    /// When the next pooled node that is not due yet (a retry's backoff) comes due.
    pub next_due: Option<i64>,
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn survey(client: &impl GenericClient, now: i64) -> Result<Survey> {
    let statement = client.prepare_cached(SURVEY_SQL).await?;
    let row = client.query_one(&statement, &[&to_system(now)]).await?;
    Ok(Survey {
        any: row.try_get("any")?,
        waiting: row.try_get("waiting")?,
        next_due: super::time::opt_from_system(row.try_get("next_due")?),
    })
}

/// See [`claim`]: the pool's row, locked.
pub(crate) const LOCK_SQL: &str =
    "SELECT slots, per_second, tokens, refilled_at FROM pools WHERE name = $1 FOR UPDATE";

/// See [`claim`]: the pool's busy nodes, counted once its row is locked. (In the statement
/// that takes the lock, a count would see the database as it was before the wait for the
/// lock, without the claims of the server that held it.)
pub(crate) const BUSY_SQL: &str = "SELECT count(*) FROM run_nodes WHERE pool = $1
    AND (phase = 'Executing' OR (phase = 'Ready' AND lease_until >= $2))";

/// See [`claim`]: the earliest due waiting nodes of the pool, leased.
pub(crate) const CLAIM_SQL: &str = "WITH due AS (
        SELECT run_id, idx, 'dispatch' AS kind FROM run_nodes
        WHERE pool = $1 AND phase = 'Ready' AND due_at <= $2
          AND (lease_until IS NULL OR lease_until < $2)
        ORDER BY due_at, run_id, idx LIMIT $3 FOR UPDATE SKIP LOCKED
    )
    UPDATE run_nodes n SET lease_until = $4, lease_epoch = n.lease_epoch + 1
    FROM due c WHERE n.run_id = c.run_id AND n.idx = c.idx
    RETURNING n.run_id, n.idx, c.kind, n.phase, n.attempt, n.lease_epoch, n.snapshot_rev,
              n.input, NULL::text AS result";

/// See [`claim`].
pub(crate) const SPEND_SQL: &str = "UPDATE pools SET tokens = $2, refilled_at = $3 WHERE name = $1";

/// What a pool's claim took, and when it is worth trying again if it left some waiting for
/// the per-second limit.
#[derive(Debug, Default)]
pub struct PoolClaim {
    pub claimed: Vec<Claimed>,
    /// When the next token comes, if the per-second limit held some back.
    pub retry_at: Option<i64>,
}

/// Claims up to `limit` of a pool's waiting nodes for sending, as far as its free slots and
/// its per-second tokens allow, in one transaction that holds the pool's row.
#[tracing::instrument(level = "debug", skip_all, fields(pool = name))]
pub async fn claim(
    client: &mut deadpool_postgres::Client,
    name: &str,
    now: i64,
    limit: i64,
    lease_until: i64,
) -> Result<PoolClaim> {
    let tx = client.transaction().await?;
    let statement = tx.prepare_cached(LOCK_SQL).await?;
    let Some(row) = tx.query_opt(&statement, &[&name]).await? else {
        return Ok(PoolClaim::default());
    };
    let slots: i32 = row.try_get("slots")?;
    let statement = tx.prepare_cached(BUSY_SQL).await?;
    let busy: i64 = tx.query_one(&statement, &[&name, &to_system(now)]).await?.try_get(0)?;
    let per_second: Option<f64> = row.try_get("per_second")?;
    let tokens =
        refill(row.try_get("tokens")?, from_system(row.try_get("refilled_at")?), per_second, now);
    let free = (i64::from(slots) - busy).max(0);
    let allowed = match tokens {
        Some(t) => free.min(t.floor() as i64),
        None => free,
    }
    .min(limit);
    let mut out = PoolClaim::default();
    if allowed > 0 {
        let statement = tx.prepare_cached(CLAIM_SQL).await?;
        let rows = tx
            .query(&statement, &[&name, &to_system(now), &allowed, &to_system(lease_until)])
            .await?;
        out.claimed = rows.iter().map(claimed_of).collect::<Result<_>>()?;
    }
    if let (Some(tokens), Some(rate)) = (tokens, per_second) {
        let left = tokens - out.claimed.len() as f64;
        let statement = tx.prepare_cached(SPEND_SQL).await?;
        tx.execute(&statement, &[&name, &left, &to_system(now)]).await?;
        // Held back by the rate while slots were free: try again when the next token comes.
        if free > allowed && allowed < limit {
            let wait_s = (1.0 - left.clamp(0.0, 1.0)) / rate;
            out.retry_at = Some(now + (wait_s * 1000.0).ceil() as i64);
        }
    }
    tx.commit().await?;
    Ok(out)
}

/// A pool's tokens at `now`: refilled at `rate` a second since `at`, into a bucket that holds a
/// tenth of a second's worth (at least one token), so that POSTs start evenly spaced and no
/// one-second window holds more than about `rate` of them. `None` when the pool has no rate.
fn refill(tokens: f64, at: i64, rate: Option<f64>, now: i64) -> Option<f64> {
    let rate = rate?;
    let elapsed = (now - at).max(0) as f64 / 1000.0;
    Some((tokens + elapsed * rate).min((rate / 10.0).max(1.0)))
}

statements!(
    LIST_SQL, NAMES_SQL, PUT_SQL, USERS_SQL, DELETE_SQL, SURVEY_SQL, LOCK_SQL, BUSY_SQL, CLAIM_SQL,
    SPEND_SQL
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_refills_at_its_rate_up_to_a_tenth_of_a_second_of_it() {
        assert_eq!(refill(0.0, 0, None, 5_000), None);
        assert_eq!(refill(0.0, 0, Some(2.0), 250), Some(0.5));
        assert_eq!(refill(0.0, 0, Some(2.0), 10_000), Some(1.0), "at least one token");
        assert_eq!(refill(0.0, 0, Some(500.0), 10_000), Some(50.0), "a tenth of a second's worth");
    }
}
