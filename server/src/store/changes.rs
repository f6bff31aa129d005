//! The one write path for what a transaction changed in runs: a group of runs' batches of
//! events, a group of starts, and a redrive on the latest definitions all end here.
//!
//! Each kind of row is written in one statement for all the runs of the transaction, in this
//! order: nodes written, nodes inserted, attempts moved to new nodes, attempts superseded, sent
//! and ended, history, run states, the NOTIFY that wakes dispatchers, the NOTIFY of the runs
//! that ended (for the requests that wait for them) with their webhooks' messages, and the
//! cancels. The
//! COMMIT goes down the connection with them, in one round trip (see [`Tx::commit_with`]), and
//! a statement that fails turns it into a rollback. What comes out is the lease epoch of every
//! node written, which fences the work that the transaction started.

use std::collections::HashMap;

use aetr_engine::NodeIdx;
use anyhow::Result;
use deadpool_postgres::GenericClient;
use futures_util::future::{try_join, try_join3, try_join4, try_join_all};
use uuid::Uuid;

use super::attempts::{self, Ended, Held};
use super::events::{self, NewEvent};
use super::nodes::{self, NewNodes, Write};
use super::notify::{self, RunEnd};
use super::runs::{self, FailedNode, StateUpdate};
use super::tx::Tx;
use crate::metrics::{StateLabel, METRICS};
use crate::otel;
use crate::runs::node_id::node_id;

/// The channel that wakes dispatchers (of every server) when work waits in the database.
pub const WORK_CHANNEL: &str = "aetr_work";

/// See [`notify()`].
pub(crate) const NOTIFY_SQL: &str = "SELECT pg_notify($1, '')";

/// The channel that tells every server which runs ended (its payload: a run's id), to wake
/// the requests that wait for them (`runs::finished`).
pub const RUN_FINISHED_CHANNEL: &str = "aetr_run_finished";

/// Every statement that [`commit`] may send, prepared before it sends any.
pub(crate) const WRITES: [&str; 13] = [
    nodes::WRITE_SQL,
    nodes::INSERT_ALL_SQL,
    nodes::INSERT_BLOCKS_SQL,
    attempts::PUT_BACK_SQL,
    attempts::SUPERSEDE_SQL,
    attempts::INSERT_SQL,
    attempts::FINISH_SQL,
    events::INSERT_SQL,
    runs::SET_STATES_SQL,
    NOTIFY_SQL,
    notify::ENQUEUE_SQL,
    nodes::CANCEL_NODES_SQL,
    nodes::CANCEL_ATTEMPTS_SQL,
];

/// What a transaction changes in one run.
#[derive(Debug)]
pub struct RunChanges<'a> {
    pub run: Uuid,
    /// Nodes that changed.
    pub written: Vec<Write<'a>>,
    /// New nodes: every node of a new run (or of a run's new snapshot), or the instances of
    /// the Maps that started.
    pub inserted: Option<NewNodes<'a>>,
    /// Attempts moved to the nodes of a new snapshot (a redrive on the latest definitions).
    pub moved: Option<&'a Held>,
    /// Nodes whose attempts below the given number are superseded.
    pub superseded: &'a [(NodeIdx, u32)],
    /// Attempts sent (or sent again).
    pub sent: &'a [(NodeIdx, u32)],
    pub ended: &'a [Ended],
    pub history: &'a [NewEvent],
    /// The run's new state, when its root's changed.
    pub state: Option<StateUpdate>,
    /// The run was cancelled: its unfinished nodes (those not written here) end `Cancelled`.
    pub cancel: bool,
}

impl RunChanges<'_> {
    /// How the run ended, if this transaction ends it: its root's result and error are among
    /// the nodes written (or inserted, for a run that ended as it started).
    fn end(&self) -> Option<RunEnd<'_>> {
        let update = self.state.filter(|s| s.state.is_terminal())?;
        let written = self.written.iter().find(|w| w.idx == 0).map(|w| w.state);
        let inserted = || {
            let rows = &self.inserted.as_ref()?.rows;
            rows.iter().find(|r| r.idx == 0).map(|r| r.state.as_ref())
        };
        let root = written.or_else(inserted);
        Some(RunEnd {
            run: self.run,
            state: update.state.as_str(),
            result: root.and_then(|r| r.result.as_deref()),
            error: root.and_then(|r| r.error.as_deref()),
            failed_node: match update.failed_node {
                FailedNode::At(idx) => Some(node_id(self.run, idx)),
                _ => None,
            },
            completed_at: update.completed_at,
        })
    }
}

/// The lease epochs of the nodes that a transaction wrote, by run and node. A node that was not
/// written has none.
#[derive(Debug, Clone, Default)]
pub struct Epochs(HashMap<(Uuid, NodeIdx), i64>);

impl Epochs {
    /// The epoch that a node's lease has after the transaction (0 if it was not written).
    pub fn of(&self, run: Uuid, idx: NodeIdx) -> i64 {
        self.0.get(&(run, idx)).copied().unwrap_or_default()
    }
}

impl FromIterator<(Uuid, NodeIdx, i64)> for Epochs {
    fn from_iter<I: IntoIterator<Item = (Uuid, NodeIdx, i64)>>(rows: I) -> Epochs {
        Epochs(rows.into_iter().map(|(run, idx, epoch)| ((run, idx), epoch)).collect())
    }
}

/// Writes what a transaction changed in `runs`, and commits, all in one round trip. `notify`:
/// work waits in the database, so every server's dispatcher is woken once it is committed.
#[tracing::instrument(level = "debug", skip_all, fields(runs = changes.len()))]
pub async fn commit(tx: &Tx, changes: &[RunChanges<'_>], notify: bool, now: i64) -> Result<Epochs> {
    let client = tx.client();
    let written: Vec<(Uuid, &[Write<'_>])> =
        changes.iter().map(|c| (c.run, c.written.as_slice())).collect();
    let inserted: Vec<&NewNodes<'_>> = changes.iter().filter_map(|c| c.inserted.as_ref()).collect();
    let moved: Vec<(Uuid, &Held)> =
        changes.iter().filter_map(|c| Some((c.run, c.moved?))).collect();
    let superseded: Vec<(Uuid, &[(NodeIdx, u32)])> =
        changes.iter().map(|c| (c.run, c.superseded)).collect();
    let sent: Vec<(Uuid, &[(NodeIdx, u32)])> = changes.iter().map(|c| (c.run, c.sent)).collect();
    let ended: Vec<(Uuid, &[Ended])> = changes.iter().map(|c| (c.run, c.ended)).collect();
    let history: Vec<(Uuid, &[NewEvent])> = changes.iter().map(|c| (c.run, c.history)).collect();
    let states: Vec<StateUpdate> = changes.iter().filter_map(|c| c.state).collect();

    let nodes = try_join3(
        nodes::write(client, &written),
        nodes::insert_all(client, &inserted),
        try_join_all(moved.iter().map(|(run, held)| attempts::put_back(client, *run, held))),
    );
    let rest = try_join3(
        attempts::record(client, &superseded, &sent, &ended, now),
        events::insert(client, &history, now),
        runs::set_states(client, &states),
    );
    let finished: Vec<RunEnd<'_>> = changes.iter().filter_map(RunChanges::end).collect();
    // Each notification is a future of its own in the join, so that both go down the connection
    // at the first poll, before the COMMIT (one awaited after the other would go after it).
    let wake = async {
        match notify {
            true => self::notify(client).await,
            false => Ok(()),
        }
    };
    let tell_waiters = notify::enqueue(client, RUN_FINISHED_CHANNEL, &finished);
    // A cancel ends the nodes that its transaction did not write, after them.
    let cancels = try_join_all(
        changes.iter().filter(|c| c.cancel).map(|c| nodes::cancel_unfinished(client, c.run, now)),
    );
    let writes = try_join(try_join4(nodes, rest, wake, tell_waiters), cancels);
    let (((written, inserted, _), ..), _) = tx.commit_with(&WRITES, writes).await?;
    for ended in states.iter().filter(|s| s.state.is_terminal()) {
        let state = ended.state.as_str();
        if !ended.dry {
            METRICS.runs_finished.get_or_create(&StateLabel { state }).inc();
        }
        otel::run_ended(ended.id, state, ended.completed_at);
    }
    METRICS.actions_dispatched.inc_by(changes.iter().map(|c| c.sent.len() as u64).sum());
    Ok(written.into_iter().chain(inserted).collect())
}

/// Wakes every server's dispatcher when the transaction commits.
async fn notify(client: &impl GenericClient) -> Result<()> {
    let statement = client.prepare_cached(NOTIFY_SQL).await?;
    client.execute(&statement, &[&WORK_CHANNEL]).await?;
    Ok(())
}

statements!(NOTIFY_SQL);
