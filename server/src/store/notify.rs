//! Completion webhooks' rows: each run's `notify` target (`run_notify`), and the outbox of
//! messages (`notify_messages`), one for each time a run with a target ends. A message is
//! written by the transaction that ends its run (see [`ENQUEUE_SQL`]), so no end is lost, and
//! claimed by any server with a lease, so a server killed mid-try leaves it to another.

use anyhow::Result;
use deadpool_postgres::GenericClient;
use tokio_postgres::types::Json;
use uuid::Uuid;

use super::time::{opt_to_system, to_system};
use crate::notify::Target;

/// See [`insert_targets`]. A run that another start's idempotency key won was not inserted:
/// its target is dropped with it.
pub(crate) const INSERT_TARGETS_SQL: &str = "INSERT INTO run_notify (run_id, url, secret, headers)
    SELECT u.run_id, u.url, u.secret, u.headers
    FROM unnest($1::uuid[], $2::text[], $3::text[], $4::json[]) AS u(run_id, url, secret, headers)
    WHERE EXISTS (SELECT 1 FROM runs r WHERE r.id = u.run_id)";

/// Stores the targets of new runs, in the transaction that inserts them (after them).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn insert_targets(
    client: &impl GenericClient,
    targets: &[(Uuid, &Target)],
) -> Result<()> {
    if targets.is_empty() {
        return Ok(());
    }
    let runs: Vec<Uuid> = targets.iter().map(|(run, _)| *run).collect();
    let urls: Vec<&str> = targets.iter().map(|(_, t)| t.url.as_str()).collect();
    let secrets: Vec<Option<&str>> = targets.iter().map(|(_, t)| t.secret.as_deref()).collect();
    let headers: Vec<Json<serde_json::Value>> =
        targets.iter().map(|(_, t)| Json(t.headers_json())).collect();
    let statement = client.prepare_cached(INSERT_TARGETS_SQL).await?;
    client.execute(&statement, &[&runs, &urls, &secrets, &headers]).await?;
    Ok(())
}

/// A run that a transaction ends, as its message tells it.
#[derive(Debug, Clone)]
pub struct RunEnd<'a> {
    pub run: Uuid,
    pub state: &'static str,
    pub result: Option<&'a str>,
    pub error: Option<&'a str>,
    /// The id of the node that failed the run.
    pub failed_node: Option<Uuid>,
    pub completed_at: Option<i64>,
}

/// Tells every server that runs ended (waking their waiters), and queues the message of each
/// one that has a `notify` target, with its body as it will be sent and signed on every try.
/// `json_build_object` keeps the keys in the order design.md gives them.
pub(crate) const ENQUEUE_SQL: &str = "WITH ended AS (
        SELECT * FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::uuid[],
                             $7::bigint[], $8::text[])
            AS e(run_id, state, result, error, failed_node, completed_at, message_id)
    ), queued AS (
        INSERT INTO notify_messages (id, run_id, body, next_at, give_up_at)
        SELECT e.message_id, e.run_id,
               json_build_object('type', 'run.finished', 'runId', e.run_id, 'stepId', r.step_id,
                   'state', e.state, 'result', e.result, 'error', e.error,
                   'failedNode', e.failed_node,
                   'createdAt', (extract(epoch FROM r.created_at) * 1000)::bigint,
                   'completedAt', e.completed_at)::text,
               now(), now() + interval '24 hours'
        FROM ended e JOIN run_notify n ON n.run_id = e.run_id JOIN runs r ON r.id = e.run_id
    )
    SELECT pg_notify($1, e.run_id::text) FROM ended e";

/// See [`ENQUEUE_SQL`]: `channel` is the one on which servers hear that runs ended.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn enqueue(
    client: &impl GenericClient,
    channel: &str,
    ends: &[RunEnd<'_>],
) -> Result<()> {
    if ends.is_empty() {
        return Ok(());
    }
    let runs: Vec<Uuid> = ends.iter().map(|e| e.run).collect();
    let states: Vec<&str> = ends.iter().map(|e| e.state).collect();
    let results: Vec<Option<&str>> = ends.iter().map(|e| e.result).collect();
    let errors: Vec<Option<&str>> = ends.iter().map(|e| e.error).collect();
    let failed: Vec<Option<Uuid>> = ends.iter().map(|e| e.failed_node).collect();
    let completed: Vec<Option<i64>> = ends.iter().map(|e| e.completed_at).collect();
    let ids: Vec<String> = ends.iter().map(|_| message_id()).collect();
    let statement = client.prepare_cached(ENQUEUE_SQL).await?;
    client
        .execute(
            &statement,
            &[&channel, &runs, &states, &results, &errors, &failed, &completed, &ids],
        )
        .await?;
    Ok(())
}

/// A new message's `webhook-id`.
fn message_id() -> String {
    format!("msg_{}", Uuid::now_v7().simple())
}

/// A message claimed for a try.
#[derive(Debug, Clone)]
pub struct Due {
    pub id: String,
    pub run: Uuid,
    pub body: String,
    /// This try's number, from 1.
    pub try_no: i32,
    pub give_up_at: i64,
    pub target: Target,
}

/// See [`claim`].
pub(crate) const CLAIM_SQL: &str = "WITH due AS (
        SELECT id FROM notify_messages
        WHERE state = 'Pending' AND next_at <= $1
        ORDER BY next_at
        LIMIT $3
        FOR UPDATE SKIP LOCKED
    )
    UPDATE notify_messages m SET tries = m.tries + 1, next_at = $2
    FROM due, run_notify n
    WHERE m.id = due.id AND n.run_id = m.run_id
    RETURNING m.id, m.run_id, m.body, m.tries, m.give_up_at, n.url, n.secret, n.headers";

/// Claims up to `limit` due messages for a try: each is leased until `lease_until`, when
/// another server may try it again if this one never recorded how the try went.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn claim(
    client: &impl GenericClient,
    now: i64,
    lease_until: i64,
    limit: i64,
) -> Result<Vec<Due>> {
    let statement = client.prepare_cached(CLAIM_SQL).await?;
    let rows =
        client.query(&statement, &[&to_system(now), &to_system(lease_until), &limit]).await?;
    rows.iter()
        .map(|row| {
            let headers: Json<serde_json::Value> = row.try_get("headers")?;
            Ok(Due {
                id: row.try_get("id")?,
                run: row.try_get("run_id")?,
                body: row.try_get("body")?,
                try_no: row.try_get("tries")?,
                give_up_at: super::time::from_system(row.try_get("give_up_at")?),
                target: Target::stored(row.try_get("url")?, row.try_get("secret")?, &headers.0),
            })
        })
        .collect()
}

/// How a try went, for its message's row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    Delivered,
    /// Tried again at this time.
    Again(i64),
    /// No more tries.
    Failed,
}

impl Settled {
    /// The message's state after the try, as the API shows it.
    pub fn state(self) -> &'static str {
        match self {
            Settled::Delivered => "Delivered",
            Settled::Again(_) => "Pending",
            Settled::Failed => "Failed",
        }
    }
}

/// See [`settle`].
pub(crate) const SETTLE_SQL: &str = "UPDATE notify_messages
    SET state = $3, next_at = coalesce($4, next_at)
    WHERE id = $1 AND tries = $2 AND state = 'Pending'";

/// Records how a try went, unless a later try of the same message was claimed meanwhile.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn settle(client: &impl GenericClient, due: &Due, settled: Settled) -> Result<()> {
    let next = match settled {
        Settled::Again(at) => Some(at),
        _ => None,
    };
    let statement = client.prepare_cached(SETTLE_SQL).await?;
    client
        .execute(&statement, &[&due.id, &due.try_no, &settled.state(), &opt_to_system(next)])
        .await?;
    Ok(())
}

/// A run's webhook, as `GET /runs/{id}` shows it: never its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub url: String,
    /// Of the run's latest message; `Pending` until the run ends.
    pub state: String,
    /// Tries of the latest message.
    pub tries: i32,
}

/// See [`status`].
pub(crate) const STATUS_SQL: &str = "SELECT n.url, coalesce(m.state, 'Pending') AS state,
        coalesce(m.tries, 0) AS tries
    FROM run_notify n
    LEFT JOIN LATERAL (
        SELECT state, tries FROM notify_messages
        WHERE run_id = n.run_id ORDER BY created_at DESC, id DESC LIMIT 1
    ) m ON true
    WHERE n.run_id = $1";

/// The webhook of a run, if it has one.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn status(client: &impl GenericClient, run: Uuid) -> Result<Option<Status>> {
    let statement = client.prepare_cached(STATUS_SQL).await?;
    let row = client.query_opt(&statement, &[&run]).await?;
    row.map(|row| {
        Ok(Status {
            url: row.try_get("url")?,
            state: row.try_get("state")?,
            tries: row.try_get("tries")?,
        })
    })
    .transpose()
}

statements!(INSERT_TARGETS_SQL, ENQUEUE_SQL, CLAIM_SQL, SETTLE_SQL, STATUS_SQL);
