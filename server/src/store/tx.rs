//! A transaction whose `BEGIN` travels down the connection with its first statements, and whose
//! `COMMIT` may travel with its last, instead of each waiting for its own round trip as with
//! `Client::transaction`.
//!
//! tokio-postgres sends a statement when its future is first polled (once it is prepared: see
//! [`super::prepare`]), and PostgreSQL runs what one connection sends in order. So
//! [`Tx::begin`], polled in a join before the transaction's first statements, opens the
//! transaction before them; [`Tx::commit`], polled after the last ones, commits after them, or
//! rolls back if one of them failed (PostgreSQL answers the COMMIT of a failed transaction by
//! rolling it back). A check that must be able to undo the transaction must then be made by
//! the statements themselves, not by the caller after their answers.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};

use deadpool_postgres::Object;
use futures_util::future::try_join;
use futures_util::FutureExt;

/// The settings of a transaction that moves runs, sent with its `BEGIN`. Each of its statements
/// looks rows up by key (a run and a node, an attempt), a few hundred at most, and an index
/// finds each in microseconds. But the planner prices those lookups above a hash join over the
/// whole table until the table is some hundreds of thousands of rows, which costs a batch ten
/// times more (bench/README.md, "Measurements behind constants in the code"). One statement
/// for both (`set_config(..., true)` is `SET LOCAL`): a chain step sends 8.3 statements, not
/// 9.4.
pub const KEYED_LOOKUPS: &str =
    "SELECT set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true)";

/// A pooled connection with a transaction that may be open. Dropped while open (an error, or
/// a task that stops half-way), it rolls the transaction back as the connection goes back to
/// the pool.
#[derive(Debug)]
pub struct Tx {
    /// `None` only while dropping.
    client: Option<Object>,
    open: AtomicBool,
}

impl Tx {
    pub fn new(client: Object) -> Tx {
        Tx { client: Some(client), open: AtomicBool::new(false) }
    }

    /// The connection, to run statements in the transaction.
    pub fn client(&self) -> &Object {
        self.client.as_ref().expect("a Tx has its client until it is dropped")
    }

    /// Sends `BEGIN`, then `then` (simple statements, such as `SET LOCAL`s; may be empty).
    pub async fn begin(&self, then: &str) -> Result<(), tokio_postgres::Error> {
        self.open.store(true, Ordering::Release);
        self.client().batch_execute(&format!("BEGIN; {then}")).await
    }

    /// Runs `writes`, and the COMMIT after them, in one round trip: `statements` (every one that
    /// `writes` may send) are prepared first, so that `writes` sends them all at its first
    /// poll, before the COMMIT. If one fails, the COMMIT rolls back, and its error is returned.
    pub async fn commit_with<T>(
        &self,
        statements: &[&str],
        writes: impl Future<Output = anyhow::Result<T>>,
    ) -> anyhow::Result<T> {
        let client = self.client();
        super::prepare(client, statements).await?;
        let prepared = client.statement_cache.size();
        let (written, ()) = try_join(writes, async { Ok(self.commit().await?) }).await?;
        debug_assert_eq!(
            client.statement_cache.size(),
            prepared,
            "a statement missing from `statements` was prepared: it may have gone after the COMMIT"
        );
        Ok(written)
    }

    /// Commits the transaction.
    pub async fn commit(&self) -> Result<(), tokio_postgres::Error> {
        // Sent, the COMMIT ends the transaction whatever its answer: nothing is left to undo.
        self.open.store(false, Ordering::Release);
        self.client().batch_execute("COMMIT").await
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else { return };
        if !self.open.load(Ordering::Acquire) {
            return;
        }
        // Polled once, the ROLLBACK is sent (its answer is not awaited), so it comes before
        // anything that the connection's next user sends. A connection that cannot take it is
        // closed rather than put back.
        if let Some(Err(_)) = client.batch_execute("ROLLBACK").now_or_never() {
            drop(Object::take(client));
        }
    }
}
