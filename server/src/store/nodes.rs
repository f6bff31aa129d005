//! Run nodes as the state machine sees them: loading the nodes an event involves (locked),
//! writing the ones it changed, and the dispatcher's claims on due work.
//!
//! Lock order: a transaction locks a run's nodes in ascending `idx`, so the root first; every
//! event involves the root, which serialises a run's events. Statements that lock nodes of
//! several runs (the accepted POSTs, a cancel) lock in `(run_id, idx)` order, so that no two
//! transactions wait on each other in a cycle.

use std::time::SystemTime;

use std::borrow::Cow;

use aetr_engine::machine::{Fault, NodeState, Phase};
use aetr_engine::{Block, NodeIdx};
use anyhow::{anyhow, Context, Result};
use deadpool_postgres::GenericClient;
use futures_util::future::try_join;
use futures_util::TryFutureExt;
use tokio_postgres::types::{Json, ToSql};
use tokio_postgres::Row;
use uuid::Uuid;

use super::time::{opt_from_system, opt_to_system, to_system};
use super::PerRun;

/// A node's state as stored, with its lease's epoch.
#[derive(Debug, Clone)]
pub struct Stored {
    pub idx: NodeIdx,
    pub state: NodeState,
    pub epoch: i64,
    /// The revision of the run's snapshot that the node belongs to.
    pub rev: i32,
}

/// The columns that [`state_of`] reads.
macro_rules! state_columns {
    () => {
        "idx, phase, input, result, output, error, fault, attempt, round_from, live_from, \
         remaining, started, next_free, due_at, started_at, completed_at, lease_epoch, \
         snapshot_rev"
    };
}

/// Locks and loads nodes of runs (`$1` and `$2`: run ids and idx, pair by pair) in
/// `(run_id, idx)` order. Public for the tests that check its plan.
pub const LOCK_SQL: &str = concat!(
    "SELECT run_id, ",
    state_columns!(),
    " FROM run_nodes JOIN unnest($1::uuid[], $2::int[]) AS u(r, i) ON run_id = u.r AND idx = u.i
      ORDER BY run_id, idx FOR UPDATE OF run_nodes"
);

/// Locks and loads nodes of runs, in `(run_id, idx)` order (the lock order: a run's root
/// first). Each comes with its run's id.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn lock(
    client: &impl GenericClient,
    nodes: &[(Uuid, NodeIdx)],
) -> Result<Vec<(Uuid, Stored)>> {
    let runs: Vec<Uuid> = nodes.iter().map(|(run, _)| *run).collect();
    let idxs = to_i32s(nodes.iter().map(|(_, idx)| *idx))?;
    let statement = client.prepare_cached(LOCK_SQL).await?;
    let rows = client.query(&statement, &[&runs, &idxs]).await?;
    rows.iter().map(|row| Ok((row.try_get("run_id")?, stored_of(row)?))).collect()
}

/// See [`redrivable`].
pub(crate) const REDRIVABLE_SQL: &str = "SELECT idx FROM run_nodes
    WHERE run_id = $1 AND phase IN ('Error', 'Held', 'Ready') ORDER BY idx";

/// The nodes that a redrive resumes from: failed, held, and parked. Their phases cannot change
/// while the caller holds the root's lock.
#[tracing::instrument(level = "debug", skip_all, fields(run = %run))]
pub async fn redrivable(client: &impl GenericClient, run: Uuid) -> Result<Vec<NodeIdx>> {
    let statement = client.prepare_cached(REDRIVABLE_SQL).await?;
    let rows = client.query(&statement, &[&run]).await?;
    rows.iter().map(|r| Ok(r.try_get::<_, i32>(0)? as NodeIdx)).collect()
}

/// A node to write, and what becomes of its lease.
#[derive(Debug)]
pub struct Write<'a> {
    pub idx: NodeIdx,
    pub state: &'a NodeState,
    /// Its state as loaded, or `None` for a node that the event started: such a node must
    /// still be `Waiting`, or the write fails.
    pub before: Option<&'a NodeState>,
    /// The lease's end, or `None` to release it.
    pub lease_until: Option<i64>,
    /// A new holder: the epoch grows.
    pub new_holder: bool,
}

/// See [`write()`]. A node that was started must still be `Waiting`: if one is not, the
/// statement fails (rather than writing fewer rows), so that its transaction rolls back even
/// when the COMMIT went with it, before the answer (see [`super::changes::commit`]).
pub(crate) const WRITE_SQL: &str = "WITH written AS (
        UPDATE run_nodes n SET
            phase = u.phase,
            input = CASE WHEN u.keep & 1 = 0 THEN u.input ELSE n.input END,
            result = CASE WHEN u.keep & 2 = 0 THEN u.result ELSE n.result END,
            output = CASE WHEN u.keep & 4 = 0 THEN u.output ELSE n.output END,
            error = CASE WHEN u.keep & 8 = 0 THEN u.error ELSE n.error END,
            fault = u.fault, attempt = u.attempt, round_from = u.round_from,
            live_from = u.live_from, remaining = u.remaining, due_at = u.due_at,
            started_at = u.started_at, completed_at = u.completed_at,
            lease_until = u.lease_until, lease_epoch = n.lease_epoch + u.bump,
            started = u.started, next_free = u.next_free
        FROM unnest($1::uuid[], $2::int[], $3::text[], $4::int[], $5::text[], $6::text[],
                    $7::text[], $8::text[], $9::jsonb[], $10::int[], $11::int[], $12::int[],
                    $13::int[], $14::timestamptz[], $15::timestamptz[], $16::timestamptz[],
                    $17::timestamptz[], $18::int[], $19::bool[], $20::int[], $21::int[])
            AS u(run_id, idx, phase, keep, input, result, output, error, fault, attempt,
                 round_from, live_from, remaining, due_at, started_at, completed_at,
                 lease_until, bump, fresh, started, next_free)
        WHERE n.run_id = u.run_id AND n.idx = u.idx AND (NOT u.fresh OR n.phase = 'Waiting')
        RETURNING n.run_id, n.idx, n.lease_epoch),
    counted AS (SELECT count(*) AS matched FROM written)
    SELECT w.run_id, w.idx, w.lease_epoch
    FROM counted LEFT JOIN written w ON true
    WHERE CASE WHEN counted.matched = cardinality($2::int[]) THEN w.run_id IS NOT NULL
        ELSE aetr_fail(format(
            '%s of %s node writes matched (runs %s); a node that was started was not Waiting',
            counted.matched, cardinality($2::int[]),
            (SELECT string_agg(DISTINCT r::text, ', ') FROM unnest($1::uuid[]) AS r)))
        END";

/// Writes changed nodes of runs. Returns each node's lease epoch after the write, with its run
/// and idx. Large texts that did not change are not sent again.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn write(
    client: &impl GenericClient,
    writes: &PerRun<'_, Write<'_>>,
) -> Result<Vec<(Uuid, NodeIdx, i64)>> {
    let mut c = Columns::default();
    for (run, w) in super::flatten(writes) {
        c.push(run, w)?;
    }
    if c.idx.is_empty() {
        return Ok(Vec::new());
    }
    let statement = client.prepare_cached(WRITE_SQL).await?;
    let rows = client.query(&statement, &c.params()).await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get::<_, i32>(1)? as NodeIdx, r.try_get(2)?)))
        .collect()
}

/// The arrays of a [`write()`] or an [`insert_all`].
#[derive(Default)]
struct Columns {
    run: Vec<Uuid>,
    idx: Vec<i32>,
    phase: Vec<&'static str>,
    keep: Vec<i32>,
    input: Vec<Option<String>>,
    result: Vec<Option<String>>,
    output: Vec<Option<String>>,
    error: Vec<Option<String>>,
    fault: Vec<Option<Json<Fault>>>,
    attempt: Vec<i32>,
    round_from: Vec<i32>,
    live_from: Vec<i32>,
    remaining: Vec<i32>,
    due_at: Vec<Option<SystemTime>>,
    started_at: Vec<Option<SystemTime>>,
    completed_at: Vec<Option<SystemTime>>,
    lease_until: Vec<Option<SystemTime>>,
    bump: Vec<i32>,
    fresh: Vec<bool>,
    started: Vec<i32>,
    next_free: Vec<i32>,
}

impl Columns {
    /// The arrays as parameters, in the order of the fields (`$1` to `$21`).
    fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        vec![
            &self.run,
            &self.idx,
            &self.phase,
            &self.keep,
            &self.input,
            &self.result,
            &self.output,
            &self.error,
            &self.fault,
            &self.attempt,
            &self.round_from,
            &self.live_from,
            &self.remaining,
            &self.due_at,
            &self.started_at,
            &self.completed_at,
            &self.lease_until,
            &self.bump,
            &self.fresh,
            &self.started,
            &self.next_free,
        ]
    }

    /// Adds a node's write. A text that the node had already is sent as NULL, with its bit in
    /// `keep` set.
    fn push(&mut self, run: Uuid, w: &Write<'_>) -> Result<()> {
        let s = w.state;
        let keep = |bit: i32, now: &Option<String>, then: Option<&Option<String>>| {
            if then == Some(now) {
                bit
            } else {
                0
            }
        };
        let b = w.before;
        let keep = keep(1, &s.input, b.map(|b| &b.input))
            | keep(2, &s.result, b.map(|b| &b.result))
            | keep(4, &s.output, b.map(|b| &b.output))
            | keep(8, &s.error, b.map(|b| &b.error));
        let text = |bit: i32, t: &Option<String>| if keep & bit == 0 { t.clone() } else { None };
        self.run.push(run);
        self.idx.push(i32::try_from(w.idx)?);
        self.phase.push(s.phase.as_str());
        self.keep.push(keep);
        self.input.push(text(1, &s.input));
        self.result.push(text(2, &s.result));
        self.output.push(text(4, &s.output));
        self.error.push(text(8, &s.error));
        self.fault.push(s.fault.map(Json));
        self.attempt.push(i32::try_from(s.attempt)?);
        self.round_from.push(i32::try_from(s.round_from)?);
        self.live_from.push(i32::try_from(s.live_from)?);
        self.remaining.push(i32::try_from(s.remaining)?);
        self.due_at.push(opt_to_system(s.due_at));
        self.started_at.push(opt_to_system(s.started_at));
        self.completed_at.push(opt_to_system(s.completed_at));
        self.lease_until.push(opt_to_system(w.lease_until));
        self.bump.push(i32::from(w.new_holder));
        self.fresh.push(w.before.is_none());
        self.started.push(i32::try_from(s.started)?);
        self.next_free.push(i32::try_from(s.next_free)?);
        Ok(())
    }
}

/// New rows of a run: all the nodes of a new run (or of a run's new snapshot), or the
/// instances of Maps that started, with the blocks that number them.
#[derive(Debug)]
pub struct NewNodes<'a> {
    pub run: Uuid,
    pub rev: Revision,
    pub rows: Vec<NewRow<'a>>,
    pub blocks: Vec<Block>,
}

/// One new node: its state, the lease it takes, if any, and its place in the tree.
#[derive(Debug)]
pub struct NewRow<'a> {
    pub idx: NodeIdx,
    pub state: Cow<'a, NodeState>,
    /// The pool of an `api` action that names one.
    pub pool: Option<&'a str>,
    pub lease_until: Option<i64>,
    pub parent: Option<NodeIdx>,
    pub position: u32,
    pub depth: u32,
}

/// At most this many rows are inserted by one statement: a Map of 100,000 items is inserted
/// by several, sent together.
const INSERT_CHUNK: usize = 10_000;

/// See [`insert_all`].
pub(crate) const INSERT_ALL_SQL: &str = "INSERT INTO run_nodes
        (run_id, idx, phase, input, result, output, error, fault, attempt, round_from,
         live_from, remaining, due_at, started_at, completed_at, lease_until, lease_epoch,
         started, next_free, parent_idx, position, depth, snapshot_rev, pool)
    SELECT u.run_id, u.idx, u.phase, u.input, u.result, u.output, u.error, u.fault,
           u.attempt, u.round_from, u.live_from, u.remaining, u.due_at, u.started_at,
           u.completed_at, u.lease_until, u.epoch + u.bump, u.started, u.next_free,
           u.parent_idx, u.position, u.depth, u.rev, u.pool
    FROM unnest($1::uuid[], $2::int[], $3::text[], $4::int[], $5::text[], $6::text[],
                $7::text[], $8::text[], $9::jsonb[], $10::int[], $11::int[], $12::int[],
                $13::int[], $14::timestamptz[], $15::timestamptz[], $16::timestamptz[],
                $17::timestamptz[], $18::int[], $19::bool[], $20::int[], $21::int[],
                $22::int[], $23::int[], $24::int[], $25::int[], $26::bigint[], $27::text[])
        AS u(run_id, idx, phase, keep, input, result, output, error, fault, attempt,
             round_from, live_from, remaining, due_at, started_at, completed_at, lease_until,
             bump, fresh, started, next_free, parent_idx, position, depth, rev, epoch, pool)";

/// See [`insert_all`].
pub(crate) const INSERT_BLOCKS_SQL: &str = "WITH b AS (
        INSERT INTO run_blocks (run_id, rev, base, map_idx, count)
        SELECT * FROM unnest($1::uuid[], $2::int[], $3::int[], $4::int[], $5::int[])
        RETURNING run_id, base
    )
    UPDATE runs r SET node_count = greatest(r.node_count, e.last)
    FROM (SELECT run_id, max(end_idx) AS last
          FROM unnest($1::uuid[], $6::int[]) AS u(run_id, end_idx) GROUP BY run_id) e
    WHERE r.id = e.run_id";

/// Inserts new nodes of runs, in statements of at most [`INSERT_CHUNK`] rows, and the blocks
/// that number them (a run's `node_count` then covers them). Returns the lease epochs of the
/// nodes that take a lease, with their runs.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn insert_all(
    client: &impl GenericClient,
    runs: &[&NewNodes<'_>],
) -> Result<Vec<(Uuid, NodeIdx, i64)>> {
    let rows: Vec<(&NewNodes<'_>, &NewRow<'_>)> =
        runs.iter().flat_map(|new| new.rows.iter().map(move |row| (*new, row))).collect();
    let mut epochs = Vec::new();
    let mut chunks = Vec::new();
    for chunk in rows.chunks(INSERT_CHUNK) {
        let mut c = Columns::default();
        let (mut parent, mut position, mut depth, mut rev, mut epoch, mut pool) =
            (vec![], vec![], vec![], vec![], vec![], vec![]);
        for &(new, row) in chunk {
            let (idx, lease_until) = (row.idx, row.lease_until);
            let state = row.state.as_ref();
            let new_holder = lease_until.is_some();
            c.push(new.run, &Write { idx, state, before: None, lease_until, new_holder })?;
            parent.push(row.parent.map(i32::try_from).transpose()?);
            position.push(i32::try_from(row.position)?);
            depth.push(i32::try_from(row.depth)?);
            rev.push(new.rev.rev);
            epoch.push(new.rev.first_epoch);
            pool.push(row.pool);
            if new_holder {
                epochs.push((new.run, idx, new.rev.first_epoch + 1));
            }
        }
        chunks.push((c, parent, position, depth, rev, epoch, pool));
    }
    let statement = client.prepare_cached(INSERT_ALL_SQL).await?;
    let inserts = chunks.iter().map(|(c, parent, position, depth, rev, epoch, pool)| {
        let mut params = c.params();
        params.extend([parent as &(dyn ToSql + Sync), position, depth, rev, epoch, pool]);
        let statement = &statement;
        async move { client.execute(statement, &params).await }
    });
    let blocks: Vec<(Uuid, i32, &Block)> =
        runs.iter().flat_map(|n| n.blocks.iter().map(move |b| (n.run, n.rev.rev, b))).collect();
    let insert_blocks = async {
        if blocks.is_empty() {
            return anyhow::Ok(());
        }
        let column = |f: fn(&Block) -> u64| -> Result<Vec<i32>> {
            blocks.iter().map(|(_, _, b)| Ok(i32::try_from(f(b))?)).collect()
        };
        let runs: Vec<Uuid> = blocks.iter().map(|(run, ..)| *run).collect();
        let revs: Vec<i32> = blocks.iter().map(|(_, rev, _)| *rev).collect();
        let (base, map) = (column(|b| b.base.into())?, column(|b| b.map.into())?);
        let (count, end) = (column(|b| b.count.into())?, column(Block::end)?);
        let statement = client.prepare_cached(INSERT_BLOCKS_SQL).await?;
        client.execute(&statement, &[&runs, &revs, &base, &map, &count, &end]).await?;
        Ok(())
    };
    try_join(futures_util::future::try_join_all(inserts).err_into(), insert_blocks).await?;
    Ok(epochs)
}

/// The snapshot revision that new nodes belong to, and the lease epoch they start at: above
/// every epoch that the run's nodes had before, so that no report on earlier work applies.
#[derive(Debug, Clone, Copy, Default)]
pub struct Revision {
    pub rev: i32,
    pub first_epoch: i64,
}

/// See [`lock_all`].
pub(crate) const LOCK_ALL_SQL: &str = concat!(
    "SELECT ",
    state_columns!(),
    " FROM run_nodes WHERE run_id = $1 ORDER BY idx FOR UPDATE"
);

/// Locks and loads all of a run's nodes, in idx order.
#[tracing::instrument(level = "debug", skip_all, fields(run = %run))]
pub async fn lock_all(client: &impl GenericClient, run: Uuid) -> Result<Vec<Stored>> {
    let statement = client.prepare_cached(LOCK_ALL_SQL).await?;
    let rows = client.query(&statement, &[&run]).await?;
    rows.iter().map(stored_of).collect()
}

/// See [`delete_all`].
pub(crate) const DELETE_ALL_SQL: &str = "DELETE FROM run_nodes WHERE run_id = $1";

/// Deletes all of a run's nodes (and so their attempts).
#[tracing::instrument(level = "debug", skip_all, fields(run = %run))]
pub async fn delete_all(client: &impl GenericClient, run: Uuid) -> Result<()> {
    let statement = client.prepare_cached(DELETE_ALL_SQL).await?;
    client.execute(&statement, &[&run]).await?;
    Ok(())
}

/// See [`cancel_unfinished`].
pub(crate) const CANCEL_NODES_SQL: &str = "UPDATE run_nodes n
    SET phase = 'Cancelled', completed_at = $2, due_at = NULL, lease_until = NULL
    FROM (SELECT idx FROM run_nodes
          WHERE run_id = $1
            AND phase IN ('Waiting', 'Ready', 'Executing', 'Received', 'Reducing', 'Choosing',
                          'Listing')
          ORDER BY idx FOR UPDATE) u
    WHERE n.run_id = $1 AND n.idx = u.idx";

/// See [`cancel_unfinished`].
pub(crate) const CANCEL_ATTEMPTS_SQL: &str =
    "UPDATE attempts SET status = 'Cancelled', finished_at = $2
    WHERE run_id = $1 AND status = 'Executing'";

/// Makes every unfinished node of a run `Cancelled`, and its unfinished attempts too.
/// The two statements go together, in this order (see [`super::prepare`]).
#[tracing::instrument(level = "debug", skip_all, fields(run = %run))]
pub async fn cancel_unfinished(client: &impl GenericClient, run: Uuid, now: i64) -> Result<()> {
    let now = to_system(now);
    let (nodes, attempts) = try_join(
        client.prepare_cached(CANCEL_NODES_SQL),
        client.prepare_cached(CANCEL_ATTEMPTS_SQL),
    )
    .await?;
    try_join(client.execute(&nodes, &[&run, &now]), client.execute(&attempts, &[&run, &now]))
        .await?;
    Ok(())
}

/// What a claim found to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimKind {
    /// An action that is due: send it.
    Dispatch,
    /// A POST whose outcome was never recorded (its sender died): send the same attempt again.
    Resend,
    /// A mapper or reducer whose runner died: run it again.
    Script,
    /// The callback deadline passed.
    Timeout,
}

/// A node claimed by a dispatcher, which holds its lease at `epoch`.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub run: Uuid,
    pub idx: NodeIdx,
    pub kind: ClaimKind,
    pub phase: Phase,
    pub attempt: u32,
    pub epoch: i64,
    /// The revision of the run's snapshot that the node belongs to.
    pub rev: i32,
    /// A dispatch's input, or a Branch function's.
    pub input: Option<String>,
    /// A mapper's data.
    pub result: Option<String>,
}

/// The dispatcher's claim (see [`claim`]). Public for the tests that check its plan.
pub const CLAIM_SQL: &str = "WITH due AS (
        SELECT run_id, idx, 'dispatch' AS kind FROM run_nodes
        WHERE phase = 'Ready' AND pool IS NULL AND due_at <= $1
          AND (lease_until IS NULL OR lease_until < $1)
        ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED
    ), resend AS (
        SELECT run_id, idx, 'resend' AS kind FROM run_nodes
        WHERE lease_until < $1 AND phase = 'Executing'
        ORDER BY lease_until LIMIT $2 FOR UPDATE SKIP LOCKED
    ), scripts AS (
        SELECT run_id, idx, 'script' AS kind FROM run_nodes
        WHERE lease_until < $1 AND phase IN ('Received', 'Reducing', 'Choosing', 'Listing')
        ORDER BY lease_until LIMIT $3 FOR UPDATE SKIP LOCKED
    ), overdue AS (
        SELECT run_id, idx, 'timeout' AS kind FROM run_nodes
        WHERE phase = 'Executing' AND due_at <= $1 AND lease_until IS NULL
        ORDER BY due_at LIMIT $3 FOR UPDATE SKIP LOCKED
    ), claimed AS (
        SELECT * FROM due UNION ALL SELECT * FROM resend
        UNION ALL SELECT * FROM scripts UNION ALL SELECT * FROM overdue
    )
    UPDATE run_nodes n SET lease_until = $4, lease_epoch = n.lease_epoch + 1
    FROM claimed c WHERE n.run_id = c.run_id AND n.idx = c.idx
    RETURNING n.run_id, n.idx, c.kind, n.phase, n.attempt, n.lease_epoch, n.snapshot_rev,
              CASE WHEN c.kind IN ('dispatch', 'resend') OR n.phase IN ('Choosing', 'Listing')
                   THEN n.input END AS input,
              CASE WHEN n.phase = 'Received' THEN n.result END AS result";

/// Claims due work in one statement: up to `sends` actions to send (due ones, and POSTs whose
/// sender's lease expired), and up to `others` scripts and callback deadlines. Each claimed
/// node is leased until `lease_until`, with a new epoch. Rows that another transaction holds
/// are skipped.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn claim(
    client: &impl GenericClient,
    now: i64,
    sends: i64,
    others: i64,
    lease_until: i64,
) -> Result<Vec<Claimed>> {
    let statement = client.prepare_cached(CLAIM_SQL).await?;
    let rows = client
        .query(&statement, &[&to_system(now), &sends, &others, &to_system(lease_until)])
        .await?;
    rows.iter().map(claimed_of).collect()
}

/// A claimed node, from a row with the columns that [`CLAIM_SQL`] returns.
pub(crate) fn claimed_of(row: &Row) -> Result<Claimed> {
    let kind = match row.try_get::<_, &str>("kind")? {
        "dispatch" => ClaimKind::Dispatch,
        "resend" => ClaimKind::Resend,
        "script" => ClaimKind::Script,
        _ => ClaimKind::Timeout,
    };
    Ok(Claimed {
        run: row.try_get("run_id")?,
        idx: row.try_get::<_, i32>("idx")? as NodeIdx,
        kind,
        phase: phase_of(row.try_get("phase")?)?,
        attempt: row.try_get::<_, i32>("attempt")? as u32,
        epoch: row.try_get("lease_epoch")?,
        rev: row.try_get("snapshot_rev")?,
        input: row.try_get("input")?,
        result: row.try_get("result")?,
    })
}

/// When work next comes due (see [`next_due`]). Public for the tests that check its plan.
pub const NEXT_DUE_SQL: &str = "SELECT least(
        (SELECT min(due_at) FROM run_nodes
         WHERE phase = 'Ready' AND pool IS NULL AND due_at IS NOT NULL AND lease_until IS NULL),
        (SELECT min(lease_until) FROM run_nodes WHERE lease_until IS NOT NULL),
        (SELECT min(due_at) FROM run_nodes
         WHERE phase = 'Executing' AND due_at IS NOT NULL AND lease_until IS NULL))";

/// When work next comes due (a Ready node, a lease, a callback deadline), if any is known.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn next_due(client: &impl GenericClient) -> Result<Option<i64>> {
    let statement = client.prepare_cached(NEXT_DUE_SQL).await?;
    let row = client.query_one(&statement, &[]).await?;
    Ok(opt_from_system(row.try_get(0)?))
}

/// See [`children_outputs`].
pub(crate) const CHILDREN_OUTPUTS_SQL: &str =
    "SELECT output FROM run_nodes WHERE run_id = $1 AND parent_idx = $2 ORDER BY idx";

/// The outputs of a node's children, in child order: what its reducer combines.
#[tracing::instrument(level = "debug", skip_all, fields(run = %run, node = idx))]
pub async fn children_outputs(
    client: &impl GenericClient,
    run: Uuid,
    idx: NodeIdx,
) -> Result<Vec<Option<String>>> {
    let statement = client.prepare_cached(CHILDREN_OUTPUTS_SQL).await?;
    let rows = client.query(&statement, &[&run, &i32::try_from(idx)?]).await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

/// See [`last_child_output`].
pub(crate) const LAST_CHILD_OUTPUT_SQL: &str =
    "SELECT output FROM run_nodes WHERE run_id = $1 AND parent_idx = $2
    ORDER BY idx DESC LIMIT 1";

/// The output of a node's last child: all that the `last` reducer needs.
#[tracing::instrument(level = "debug", skip_all, fields(run = %run, node = idx))]
pub async fn last_child_output(
    client: &impl GenericClient,
    run: Uuid,
    idx: NodeIdx,
) -> Result<Option<String>> {
    let statement = client.prepare_cached(LAST_CHILD_OUTPUT_SQL).await?;
    let row = client.query_opt(&statement, &[&run, &i32::try_from(idx)?]).await?;
    Ok(row.map(|r| r.try_get(0)).transpose()?.flatten())
}

/// A POST that a service accepted (2xx): its node now waits for the callback.
#[derive(Debug, Clone, Copy)]
pub struct Accepted {
    pub run: Uuid,
    pub idx: NodeIdx,
    pub attempt: u32,
    pub epoch: i64,
    pub http_status: u16,
}

/// See [`accept`].
pub(crate) const ACCEPT_LATE_SQL: &str = "UPDATE attempts a SET http_status = v.status
    FROM unnest($1::uuid[], $2::int[], $3::int[], $4::int[]) AS v(run_id, idx, n, status)
    WHERE a.run_id = v.run_id AND a.idx = v.idx AND a.n = v.n AND a.http_status IS NULL";

/// See [`accept`].
pub(crate) const ACCEPT_SQL: &str = "WITH u AS (
        SELECT * FROM unnest($1::uuid[], $2::int[], $3::int[], $4::bigint[], $5::int[])
            AS u(run_id, idx, n, epoch, status)
    ), held AS (
        SELECT n.run_id, n.idx, u.n, u.status FROM run_nodes n
        JOIN u ON n.run_id = u.run_id AND n.idx = u.idx AND n.lease_epoch = u.epoch
        WHERE n.phase = 'Executing'
        ORDER BY n.run_id, n.idx FOR UPDATE OF n
    ), released AS (
        UPDATE run_nodes n SET lease_until = NULL
        FROM held h WHERE n.run_id = h.run_id AND n.idx = h.idx
    )
    UPDATE attempts a SET http_status = h.status
    FROM held h WHERE a.run_id = h.run_id AND a.idx = h.idx AND a.n = h.n";

/// Records accepted POSTs: each node's lease is released (so that it is not sent again), if
/// its sender still holds it, and the attempt's HTTP status is kept (even when the callback
/// came before the answer, and the node has moved on).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn accept(client: &impl GenericClient, accepted: &[Accepted]) -> Result<()> {
    // The attempts whose node had moved on (its callback came before the answer): their
    // status, in a statement of its own. Within the first, it could lock an attempt before
    // its node while a callback's batch holds the node and waits for the attempt: a deadlock,
    // which PostgreSQL breaks only after its deadlock timeout. An update of no row commits
    // nothing.
    let runs: Vec<Uuid> = accepted.iter().map(|a| a.run).collect();
    let idxs: Vec<i32> = accepted.iter().map(|a| a.idx as i32).collect();
    let attempts: Vec<i32> = accepted.iter().map(|a| a.attempt as i32).collect();
    let epochs: Vec<i64> = accepted.iter().map(|a| a.epoch).collect();
    let statuses: Vec<i32> = accepted.iter().map(|a| i32::from(a.http_status)).collect();
    let statement = client.prepare_cached(ACCEPT_SQL).await?;
    client.execute(&statement, &[&runs, &idxs, &attempts, &epochs, &statuses]).await?;
    let late = client.prepare_cached(ACCEPT_LATE_SQL).await?;
    client.execute(&late, &[&runs, &idxs, &attempts, &statuses]).await?;
    Ok(())
}

pub fn phase_of(s: &str) -> Result<Phase> {
    Phase::parse(s).ok_or_else(|| anyhow!("unknown node phase {s:?}"))
}

fn stored_of(row: &Row) -> Result<Stored> {
    let idx = row.try_get::<_, i32>("idx")? as NodeIdx;
    let state = state_of(row).with_context(|| format!("node {idx} cannot be read"))?;
    let (epoch, rev) = (row.try_get("lease_epoch")?, row.try_get("snapshot_rev")?);
    Ok(Stored { idx, state, epoch, rev })
}

/// A node's state from the columns of `state_columns!`.
pub fn state_of(row: &Row) -> Result<NodeState> {
    let count = |name: &str| -> Result<u32> { Ok(u32::try_from(row.try_get::<_, i32>(name)?)?) };
    Ok(NodeState {
        phase: phase_of(row.try_get("phase")?)?,
        input: row.try_get("input")?,
        result: row.try_get("result")?,
        output: row.try_get("output")?,
        error: row.try_get("error")?,
        fault: row.try_get::<_, Option<Json<Fault>>>("fault")?.map(|f| f.0),
        attempt: count("attempt")?,
        round_from: count("round_from")?,
        live_from: count("live_from")?,
        remaining: count("remaining")?,
        started: count("started")?,
        next_free: count("next_free")?,
        due_at: opt_from_system(row.try_get("due_at")?),
        started_at: opt_from_system(row.try_get("started_at")?),
        completed_at: opt_from_system(row.try_get("completed_at")?),
    })
}

fn to_i32s(idxs: impl Iterator<Item = NodeIdx>) -> Result<Vec<i32>> {
    idxs.map(|i| Ok(i32::try_from(i)?)).collect()
}

statements!(
    LOCK_SQL,
    REDRIVABLE_SQL,
    WRITE_SQL,
    INSERT_ALL_SQL,
    INSERT_BLOCKS_SQL,
    LOCK_ALL_SQL,
    DELETE_ALL_SQL,
    CANCEL_NODES_SQL,
    CANCEL_ATTEMPTS_SQL,
    CLAIM_SQL,
    NEXT_DUE_SQL,
    CHILDREN_OUTPUTS_SQL,
    LAST_CHILD_OUTPUT_SQL,
    ACCEPT_LATE_SQL,
    ACCEPT_SQL
);
