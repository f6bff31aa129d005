//! Storage: SQL next to the code that uses it, prepared and cached per connection. Functions
//! take `&impl GenericClient`, so that a caller can group them in one transaction. The writes
//! of running runs take the rows of many runs at once ([`PerRun`]): one statement writes what a
//! transaction changed in all the runs it moved.

/// Lists a module's SQL statements, by name, as its `STATEMENTS` (see [`statements`]).
macro_rules! statements {
    ($($name:ident),* $(,)?) => {
        /// This module's SQL statements, by name.
        pub(crate) const STATEMENTS: &[(&str, &str)] = &[$((stringify!($name), $name)),*];
    };
}

pub mod attempts;
pub mod changes;
pub mod events;
pub mod nodes;
pub mod notify;
pub mod pools;
pub mod retention;
pub mod runs;
pub mod schedules;
pub mod steps;
pub mod time;
pub mod tx;
pub mod views;

/// Every SQL statement of the store, with its name: each module's `..._SQL` constants. The
/// tests prepare each one against the migrated schema, so that a typo in a statement that is
/// rarely run fails at once, as `sqlx::query!` would at compile time.
#[doc(hidden)]
pub fn statements() -> Vec<(&'static str, &'static str)> {
    [
        attempts::STATEMENTS,
        changes::STATEMENTS,
        events::STATEMENTS,
        nodes::STATEMENTS,
        notify::STATEMENTS,
        pools::STATEMENTS,
        retention::STATEMENTS,
        runs::STATEMENTS,
        schedules::STATEMENTS,
        steps::STATEMENTS,
        views::STATEMENTS,
    ]
    .concat()
}

/// Prepares `statements` on the connection (at once, those it prepared before). A statement
/// prepared is sent when the future that runs it is first polled, so the futures of a join are
/// then sent, and run by PostgreSQL, in the join's order, all in one round trip; a statement not
/// yet prepared would wait for its preparation, and go after the ones polled after it.
pub(crate) async fn prepare(
    client: &impl deadpool_postgres::GenericClient,
    statements: &[&str],
) -> Result<(), tokio_postgres::Error> {
    futures_util::future::try_join_all(statements.iter().map(|sql| client.prepare_cached(sql)))
        .await?;
    Ok(())
}

/// Rows of several runs: each run with its own rows.
pub type PerRun<'a, T> = [(uuid::Uuid, &'a [T])];

/// Each row of `rows` with its run's id beside it.
pub(crate) fn flatten<'a, T>(rows: &'a PerRun<'a, T>) -> impl Iterator<Item = (uuid::Uuid, &'a T)> {
    rows.iter().flat_map(|(run, rows)| rows.iter().map(move |row| (*run, row)))
}
